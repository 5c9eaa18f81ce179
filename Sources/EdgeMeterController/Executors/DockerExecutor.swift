import Foundation
import NIOCore
import NIOPosix
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterStartup
import EdgeMeterSystem

/// Migrates a service between nodes that are Docker containers, for real, make-before-break:
///
/// 1. `start_target`: remove a leftover of the same name (an earlier failed attempt), create and
///    start the service's container for the target node (`POST /containers/create`, `POST
///    /containers/ID/start`), then read its address (`GET /containers/ID/json`);
/// 2. `wait_ready`: `GET readyPath` on the container's address until it answers 200 (every
///    `readyPollInterval`, at most `readyTimeout`);
/// 3. `switch`: the `SwitchableProxy` in front of the nodes sends new requests to the target;
/// 4. `stop_old`: waits until the requests the proxy had sent to the old node were answered (at
///    most `drainTimeout`; the detail gives the time), then stops and removes the old container.
///
/// A failure in 1-3 switches the proxy back (if it had been switched) and removes the target's
/// container; the old container was never touched. A failure in 4 is not rolled back (the target
/// serves): outcome `completed_with_leftover`; `edgemeter cleanup` removes the leftover (every
/// container carries the `edgemeter` label).
public final class DockerExecutor: MigrationExecutor, @unchecked Sendable {
    public let name = "docker"

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
        /// Nodes whose service container joins another container's network namespace instead of
        /// `network`: `networkMode` is `container:NAME` (a lab container node, so the service is
        /// reached through that node's links and their impairment) and `address` is where the
        /// proxy reaches it (the node's address).
        public var nodeNetworks: [String: NodeNetwork] = [:]

        public init(image: String, command: [String], servicePort: Int, namePrefix: String) {
            (self.image, self.command, self.servicePort, self.namePrefix) = (image, command, servicePort, namePrefix)
        }
    }

    /// A node's network for the service container: a Docker network mode and the address to reach it.
    public struct NodeNetwork: Sendable, Equatable {
        public var networkMode: String
        public var address: String
        public init(networkMode: String, address: String) { (self.networkMode, self.address) = (networkMode, address) }
    }

    /// Where a service runs: its node, container and backend address.
    public struct Placement: Sendable, Equatable {
        /// The proxy names each backend after its node.
        public var node: String { backend.name }
        public var containerID: String
        public var backend: SwitchableProxy.Backend
    }

    public let client: DockerAPIClient
    public let proxy: SwitchableProxy
    public let configuration: Configuration
    private let lock = NSLock()
    private var placements: [String: Placement] = [:]

    public let clock: any MeasurementClock

    public init(client: DockerAPIClient, proxy: SwitchableProxy, configuration: Configuration, clock: any MeasurementClock = SystemClock()) {
        (self.client, self.proxy, self.configuration, self.clock) = (client, proxy, configuration, clock)
    }

    public func placement(of service: String) -> Placement? { lock.withLock { placements[service] } }

    /// Places `service` on `node` for the first time (start, ready, then the proxy points to it).
    public func deploy(service: String, on node: String) async throws -> MigrationReport {
        var r = MigrationPhaseRecorder(executor: name, service: service, from: "", to: node, clock: clock)
        var target: Placement?
        do {
            let p = try await startReady(service: service, node: node, recorder: &r, created: { target = $0 })
            try await r.run(.switchPath, detail: "proxy → \(p.backend)") { proxy.switchTo(p.backend) }
            lock.withLock { placements[service] = p }
        } catch {
            if let t = target {
                await r.undo("stop_target", detail: "remove container \(t.containerID.prefix(12))") { try await client.removeContainer(t.containerID) }
            }
            throw r.failure(error)
        }
        return r.report
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        var r = MigrationPhaseRecorder(executor: name, service: service, from: from, to: to, clock: clock)
        guard let old = placement(of: service) else {
            throw ControllerError("service \(service) is not placed by this docker executor: deploy it first", status: 409)
        }
        guard old.node == from else {
            throw ControllerError("service \(service) runs on \(old.node), not \(from): migrate from \(old.node)", status: 409)
        }
        guard from != to else { throw ControllerError("service \(service) already runs on \(to): nothing to migrate", status: 409) }

        var target: Placement?
        var switched = false
        do {
            let p = try await startReady(service: service, node: to, recorder: &r, created: { target = $0 })
            try await r.run(.switchPath, detail: "proxy → \(p.backend)") {
                proxy.switchTo(p.backend)
                switched = true
            }
        } catch {
            if switched {
                await r.undo("switch_back", detail: "proxy → \(old.backend)") { proxy.switchTo(old.backend) }
            }
            if let t = target {
                await r.undo("stop_target", detail: "remove container \(t.containerID.prefix(12)) on \(t.node)") {
                    try await client.removeContainer(t.containerID)
                }
            }
            throw r.failure(error)
        }
        lock.withLock { placements[service] = target! }
        let clock = ContinuousClock()
        let t0 = clock.now
        let drained = await proxy.waitDrained(old.backend, timeout: configuration.drainTimeout)
        let drainMilliseconds = Double((clock.now - t0).nanoseconds) / 1e6
        await r.finishing(detail: String(format: "drained in %.1f ms, then stopped and removed container %@", drainMilliseconds,
                                         String(old.containerID.prefix(12)))) {
            if !drained {
                throw ControllerError("\(proxy.inFlight(old.backend)) requests were still in flight to \(from) after \(configuration.drainTimeout); "
                                      + "container \(old.containerID.prefix(12)) was left running for them", status: 500)
            }
            try await client.stopContainer(old.containerID, graceSeconds: 2)
            try await client.removeContainer(old.containerID)
        }
        return r.report
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

    private func startReady(service: String, node: String, recorder r: inout MigrationPhaseRecorder,
                            created: (Placement) -> Void) async throws -> Placement {
        let c = configuration
        let name = containerName(service: service, node: node)
        let argv = c.command.map { substitutePlaceholders($0, service: service, from: "", to: node) }
        var labels = c.labels
        labels["edgemeter"] = "migration"
        labels["edgemeter.run"] = c.namePrefix
        let nodeNetwork = c.nodeNetworks[node]
        let network = nodeNetwork?.networkMode ?? c.network
        let spec = ContainerSpec(name: name, image: c.image, command: argv, network: network, labels: labels)
        let placement: Placement = try await r.run(.startTarget, detail: "container \(name) (\(c.image)) on \(network)") {
            // A leftover of an earlier failed attempt is replaced (DELETE answers 404 when there is none).
            try await client.removeContainer(name)
            let id = try await client.createContainer(spec)
            created(Placement(containerID: id, backend: .init(name: node, host: "", port: c.servicePort)))
            try await client.startContainer(id)
            let addr: String
            if let nodeNetwork {
                addr = try await client.inspectContainer(id).hasExited ? "" : nodeNetwork.address
            } else {
                addr = try await containerAddress(id)
            }
            guard !addr.isEmpty else {
                let state = try await client.inspectContainer(id)
                if state.hasExited {
                    throw ControllerError("container \(name) exited right after starting (status \(state.exitCode)): see `docker logs \(name)` "
                                          + "(the service's command or the image is wrong)", status: 500)
                }
                throw ControllerError("container \(name) has no address on network \(c.network): use a network with IPv4 addresses (bridge)", status: 500)
            }
            return Placement(containerID: id, backend: SwitchableProxy.Backend(name: node, host: addr, port: c.servicePort))
        }
        created(placement)
        try await r.run(.waitReady, detail: "GET http://\(placement.backend.host):\(c.servicePort)\(c.readyPath) → 200") {
            try await waitReady(placement.backend)
        }
        return placement
    }

    /// The container's IPv4 address on the configured network.
    private func containerAddress(_ id: String) async throws -> String {
        let r = try await client.request(.GET, "/containers/\(id)/json")
        guard r.status == 200, let obj = r.json as? [String: Any], let ns = obj["NetworkSettings"] as? [String: Any] else {
            throw ControllerError("inspecting container \(id.prefix(12)): HTTP \(r.status): \(r.errorMessage)", status: 500)
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
                throw ControllerError("\(target) did not answer 200 within \(c.readyTimeout) (last: \(last)); see `docker logs` of the container", status: 500)
            }
            try await Task.sleep(for: c.readyPollInterval)
        }
    }
}
