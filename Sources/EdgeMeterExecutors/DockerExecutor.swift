import Foundation
import NIOCore
import NIOPosix
import EdgeMeterHTTP
import EdgeMeterStartup

/// Migrates a service between nodes that are Docker containers, for real, make-before-break:
///
/// 1. `start`: create and start the service's container for the target node (`POST
///    /containers/create`, `POST /containers/ID/start`, then `GET /containers/ID/json` for its
///    address on the container network);
/// 2. `ready`: `GET readyPath` on the container's address until it answers 200 (every
///    `readyPollInterval`, at most `readyTimeout`);
/// 3. `switch`: the `SwitchableProxy` in front of the nodes sends new requests to the target;
/// 4. `drain`: waits until the requests the proxy had sent to the old node have been answered
///    (at most `drainTimeout`);
/// 5. `stop`: stops and removes the old node's container.
///
/// A failure in 1-3 removes the target's container and points the proxy back at the old node
/// (if it had been switched); the old container was never touched. A failure in 4-5 is not rolled
/// back: the service already answers from the target; the report marks the phase failed and the
/// error says which container is left (`edgemeter cleanup` removes it: every container carries the
/// `edgemeter` label).
public final class DockerExecutor: MigrationExecutor, @unchecked Sendable {
    public let kind = "docker"

    public struct Configuration: Sendable {
        /// The image the service runs from (the edge app: an image with the edgemeter binary).
        public var image: String
        /// The container network (`bridge`: docker0).
        public var network: String = "bridge"
        /// The service's command for a node; `{service}` and `{to}` (the node) are replaced.
        public var command: [String]
        /// The port the service listens on inside its container.
        public var servicePort: Int
        /// Answers 200 when the service is ready.
        public var readyPath: String = "/healthz"
        public var readyTimeout: Duration = .seconds(20)
        public var readyPollInterval: Duration = .milliseconds(10)
        public var drainTimeout: Duration = .seconds(5)
        /// Container names are `edgemeter-<namePrefix>-<service>-<node>`.
        public var namePrefix: String
        /// Added to the `edgemeter` label (`edgemeter.run=<namePrefix>`), for cleanup.
        public var labels: [String: String] = [:]

        public init(image: String, command: [String], servicePort: Int, namePrefix: String) {
            (self.image, self.command, self.servicePort, self.namePrefix) = (image, command, servicePort, namePrefix)
        }
    }

    /// Where a service runs: its node, container and backend address.
    public struct Placement: Sendable, Equatable {
        public var node: String
        public var containerID: String
        public var backend: SwitchableProxy.Backend
    }

    public let client: DockerAPIClient
    public let proxy: SwitchableProxy
    public let configuration: Configuration
    private let lock = NSLock()
    private var placements: [String: Placement] = [:]

    public init(client: DockerAPIClient, proxy: SwitchableProxy, configuration: Configuration) {
        (self.client, self.proxy, self.configuration) = (client, proxy, configuration)
    }

    public func placement(of service: String) -> Placement? { lock.withLock { placements[service] } }

    /// Places `service` on `node` for the first time (start, ready, then the proxy points to it).
    public func deploy(service: String, on node: String) async throws -> MigrationReport {
        var report = MigrationReport(executor: kind, service: service, from: "", to: node)
        let p = try await startReady(service: service, node: node, report: &report)
        try await report.run("switch", "proxy → \(p.backend)") { proxy.switchTo(p.backend) }
        lock.withLock { placements[service] = p }
        return report
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        var report = MigrationReport(executor: kind, service: service, from: from, to: to)
        guard let old = placement(of: service) else {
            throw ExecutorError("service \(service) is not placed by this docker executor: deploy it first (DockerExecutor.deploy)", report: report)
        }
        guard old.node == from else {
            throw ExecutorError("service \(service) runs on \(old.node), not \(from): ask to migrate from \(old.node)", report: report)
        }
        guard from != to else { throw ExecutorError("service \(service) already runs on \(to): nothing to migrate", report: report) }

        var target: Placement?
        var switched = false
        do {
            let p = try await startReady(service: service, node: to, report: &report, created: { target = $0 })
            target = p
            try await report.run("switch", "proxy → \(p.backend)") {
                proxy.switchTo(p.backend)
                switched = true
            }
        } catch {
            await rollBack(target: target, old: old, switched: switched, report: &report)
            throw ExecutorError("migrating \(service) from \(from) to \(to) failed at \(report.phases.last?.name ?? "start"): \(error); "
                                + (report.outcome == .rolledBack ? "rolled back, \(service) still answers from \(from)"
                                   : "rollback failed too, see the report's rollback steps and run `edgemeter cleanup`"), report: report)
        }
        let new = target!
        lock.withLock { placements[service] = new }
        let drained = await proxy.waitDrained(old.backend, timeout: configuration.drainTimeout)
        do {
            try await report.run("drain", "requests in flight to \(old.backend) answered") {
                if !drained {
                    throw ExecutorError("\(proxy.inFlight(old.backend)) requests still in flight to \(from) after \(configuration.drainTimeout)")
                }
            }
            try await report.run("stop", "stop and remove container \(old.containerID.prefix(12))") {
                try await client.stopContainer(old.containerID, graceSeconds: 2)
                try await client.removeContainer(old.containerID)
            }
        } catch {
            throw ExecutorError("\(service) now answers from \(to), but the old instance on \(from) was not stopped cleanly: \(error); "
                                + "remove its container with `edgemeter cleanup`", report: report)
        }
        return report
    }

    /// Stops and removes every container this executor placed.
    public func removeAll() async {
        let all = lock.withLock { let a = placements; placements = [:]; return a }
        for p in all.values { try? await client.removeContainer(p.containerID) }
    }

    func containerName(service: String, node: String) -> String {
        func clean(_ s: String) -> String { String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" }) }
        return "edgemeter-\(clean(configuration.namePrefix))-\(clean(service))-\(clean(node))"
    }

    private func startReady(service: String, node: String, report: inout MigrationReport,
                            created: (Placement) -> Void = { _ in }) async throws -> Placement {
        let c = configuration
        let name = containerName(service: service, node: node)
        let argv = c.command.map { substitutePlaceholders($0, service: service, from: "", to: node) }
        var labels = c.labels
        labels["edgemeter"] = "migration"
        labels["edgemeter.run"] = c.namePrefix
        let spec = ContainerSpec(name: name, image: c.image, command: argv, network: c.network, labels: labels)
        var id = ""
        let address: String = try await report.run("start", "container \(name) (\(c.image)) on \(c.network)") {
            id = try await client.createContainer(spec)
            created(Placement(node: node, containerID: id, backend: .init(name: node, host: "", port: c.servicePort)))
            try await client.startContainer(id)
            let addr = try await containerAddress(id)
            guard !addr.isEmpty else {
                throw ExecutorError("container \(name) has no address on network \(c.network): use a network with IPv4 addresses (bridge)")
            }
            return addr
        }
        let backend = SwitchableProxy.Backend(name: node, host: address, port: c.servicePort)
        let placement = Placement(node: node, containerID: id, backend: backend)
        created(placement)
        try await report.run("ready", "GET http://\(address):\(c.servicePort)\(c.readyPath) → 200") {
            try await waitReady(backend)
        }
        return placement
    }

    /// The container's IPv4 address on the configured network.
    private func containerAddress(_ id: String) async throws -> String {
        let r = try await client.request(.GET, "/containers/\(id)/json")
        guard r.status == 200, let obj = r.json as? [String: Any], let ns = obj["NetworkSettings"] as? [String: Any] else {
            throw ExecutorError("inspecting container \(id.prefix(12)): HTTP \(r.status): \(r.errorMessage)")
        }
        if let nets = ns["Networks"] as? [String: Any], let net = nets[configuration.network] as? [String: Any],
           let ip = net["IPAddress"] as? String, !ip.isEmpty {
            return ip
        }
        return ns["IPAddress"] as? String ?? ""
    }

    private func waitReady(_ b: SwitchableProxy.Backend) async throws {
        let c = configuration
        let clock = ContinuousClock()
        let deadline = clock.now + c.readyTimeout
        var last = "no answer yet"
        let target = HTTPTarget(host: b.host, port: b.port, path: c.readyPath)
        while true {
            do {
                let addr = try SocketAddress(ipAddress: b.host, port: b.port)
                let conn = try await HTTPConnection.connect(to: addr, targetName: target.description, timeout: .milliseconds(500))
                defer { conn.close() }
                let x = try await conn.send(HTTPRequestSpec(path: c.readyPath), host: target.hostHeader, keepAlive: false, timeout: .seconds(1))
                if x.response.status == 200 { return }
                last = "HTTP \(x.response.status)"
            } catch {
                last = describe(error)
            }
            if clock.now >= deadline {
                throw ExecutorError("\(target) did not answer 200 within \(c.readyTimeout) (last: \(last)); see `docker logs` of the container")
            }
            try await Task.sleep(for: c.readyPollInterval)
        }
    }

    private func rollBack(target: Placement?, old: Placement, switched: Bool, report: inout MigrationReport) async {
        var ok = true
        if switched {
            do { try await report.run("rollback: switch", rollbackStep: true, "proxy → \(old.backend)") { proxy.switchTo(old.backend) } } catch { ok = false }
        }
        if let t = target, !t.containerID.isEmpty {
            do {
                try await report.run("rollback: remove", rollbackStep: true, "remove container \(t.containerID.prefix(12)) on \(t.node)") {
                    try await client.removeContainer(t.containerID)
                }
            } catch { ok = false }
        }
        report.outcome = ok ? .rolledBack : .rollbackFailed
    }
}
