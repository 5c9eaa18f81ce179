import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterStartup
import EdgeMeterSystem

/// The containers one capture scenario starts, through the startup module's Docker engine client
/// (`DockerBackend`): each on the default bridge, named `edgemeter-capture-<run>-<scenario>[-<role>]`,
/// labelled `edgemeter` and `edgemeter.run=<instanceTag("<run>/<scenario>")>` (so `edgemeter
/// cleanup` finds leftovers), and all removed by `removeAll` (at the end, on failure, on Ctrl-C).
final class ContainerGroup: @unchecked Sendable {
    let backend: DockerBackend
    let namePrefix: String

    init(backend: DockerBackend, namePrefix: String) { (self.backend, self.namePrefix) = (backend, namePrefix) }

    /// The `edgemeter.run` label value of a scenario's containers.
    static func runTag(runID: String, scenario: String) -> String { instanceTag("\(runID)/\(scenario)") }

    /// Connects to dockerd (`DOCKER_HOST` or /var/run/docker.sock); a scenario that cannot reach it is not run.
    static func connect(runID: String, scenario: String) async throws -> ContainerGroup {
        let client: DockerAPIClient
        do {
            client = try DockerAPIClient()
            try await client.ping()
        } catch {
            throw ScenarioNotRun("dockerd is not reachable (\(error)); start it (`dockerd &`) to run this scenario")
        }
        let safe = FileName.safe(runID + "-" + scenario, replacement: "-")
        return ContainerGroup(backend: DockerBackend(client: client, runID: "\(runID)/\(scenario)"),
                              namePrefix: String("edgemeter-capture-\(safe)".prefix(110)))
    }

    /// Creates and starts a container of `image` (`command`, or the image's own) and returns its
    /// bridge address. The group knows it from its creation on, so a failure later removes it too.
    func start(image: String, command: [String]?, role: String? = nil) async throws -> ContainerFixture {
        let name = namePrefix + (role.map { "-\($0)" } ?? "")
        let id: String
        do {
            id = try await backend.createContainer(name: name, image: image, cmd: command ?? [], network: "bridge")
        } catch let e as StartupError {
            throw ScenarioNotRun(e.message)
        }
        let ip: String
        do {
            try await backend.client.startContainer(id)
            ip = try await backend.client.inspectContainer(id).address
        } catch let e as StartupError {
            throw ScenarioNotRun("container \(name): \(e.message)")
        }
        guard !ip.isEmpty else { throw ScenarioNotRun("container \(name) has no address on the default bridge (docker0)") }
        return ContainerFixture(id: id, name: name, address: ip)
    }

    func removeAll() async {
        await backend.cleanup()
    }
}

/// A container a capture scenario started: its id, name and bridge address.
struct ContainerFixture: Sendable {
    let id: String
    let name: String
    let address: String

    /// Waits until `port` on the container accepts a TCP connection (the `tcping` connect, every
    /// 50 ms, at most 20 s).
    func waitForTCP(port: Int, stop: StopFlag) async throws {
        guard let target = TimedTCPConnect.numericAddress(host: address, port: port) else {
            throw RunError.setup("the container \(name) has no numeric address (\(address))")
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline && !stop.isStopped {
            let attempt = await Task.detached {
                TimedTCPConnect.open(storage: target.storage, length: target.length, timeoutNanoseconds: 1_000_000_000)
            }.value
            if case .success(let c) = attempt {
                close(c.fd)
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        throw RunError.setup("the container \(name) did not accept connections on \(address):\(port) within 20 s")
    }
}

/// Targets of a capture scenario with the host `container` standing for a container's address: the
/// host part is replaced (a ping target, a tcping HOST:PORT, an http URL's host), never text inside
/// another name.
struct ContainerTargets {
    static let placeholder = "container"
    let address: String?

    func ping(_ t: String) -> String { t == Self.placeholder ? address ?? t : t }

    func tcping(_ t: String) throws -> String {
        let (host, port) = try Resolver.splitHostPort(t)
        guard host == Self.placeholder, let address else { return t }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    func http(_ url: String) throws -> HTTPTarget {
        var t = try HTTPTarget(url: url)
        if t.host == Self.placeholder, let address { t.host = address }
        return t
    }
}

/// The lab's 2-tier calculator as five containers on docker0: the four operation services, then
/// the front end pointing at their bridge addresses.
struct CalculatorDeployment: Sendable {
    static let operations: [(role: String, port: Int)] = [("sum", 50001), ("sub", 50002), ("mul", 50003), ("div", 50004)]
    let front: ContainerFixture
    let services: [(role: String, fixture: ContainerFixture, port: Int)]
    var all: [ContainerFixture] { services.map(\.fixture) + [front] }

    static func start(image: String, group: ContainerGroup, ctx: ScenarioContext) async throws -> CalculatorDeployment {
        var services: [(role: String, fixture: ContainerFixture, port: Int)] = []
        for (role, port) in operations {
            if ctx.stop.isStopped { throw RunError.setup("stopped (\(ctx.stop.reason ?? "stop requested")) while starting the calculator containers") }
            let f = try await group.start(image: image, command: ["edgemeter", "serve", "calculator", "--role", role, "--host", "0.0.0.0",
                                                                  "--port", String(port)], role: role)
            services.append((role, f, port))
        }
        for (role, f, port) in services {
            try await f.waitForTCP(port: port, stop: ctx.stop)
            ctx.progress("calculator \(role) container \(f.name) at \(f.address):\(port)")
        }
        var command = ["edgemeter", "serve", "calculator", "--role", "front", "--host", "0.0.0.0", "--port", "50000"]
        for (role, f, port) in services { command += ["--\(role)", "\(f.address):\(port)"] }
        let front = try await group.start(image: image, command: command, role: "front")
        try await front.waitForTCP(port: 50000, stop: ctx.stop)
        ctx.progress("calculator front end container \(front.name) at \(front.address):50000")
        return CalculatorDeployment(front: front, services: services)
    }

    /// Sends the request (the `http` probe's exchange, new connection each) until the front end
    /// answers 200 (at most 20 s).
    func warmUp(_ target: HTTPTarget, request: HTTPRequestSpec, stop: StopFlag) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        var last = "no answer"
        while ContinuousClock.now < deadline && !stop.isStopped {
            let x = await HTTPProbe.exchange(target, request: request, timeout: .seconds(2))
            if let r = x.response {
                if r.status == 200 { return }
                last = "HTTP \(r.status): \(r.bodyText.prefix(200))"
            } else if let e = x.error {
                last = e.description
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        throw RunError.setup("the calculator front end container \(front.name) at \(target) did not answer 200 within 20 s (last: \(last)); "
                             + "see `docker logs` of the edgemeter-capture-* containers")
    }
}
