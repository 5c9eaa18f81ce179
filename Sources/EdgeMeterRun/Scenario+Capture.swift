import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterCapture
import EdgeMeterStartup

/// Suite kind `capture`: captures on `interface` while pinging `ping` targets, connecting to
/// `tcping` targets and/or requesting `http` URLs (one request per connection, in that order; or,
/// with none, for `duration`), then records the wire samples (probe `wire`), the capture's drop
/// counters and the app − wire differences (see `withCapture`).
///
/// With `container_image`, the scenario first starts a container of that image (through the Docker
/// Engine API; `container_command` as its command) on the default bridge, waits until it answers
/// (the first `http` URL's port, else ping), and the word `container` in `ping`, `tcping` and
/// `http` targets stands for its address; the container is removed at the end.
///
/// ```yaml
/// - name: docker0-calculator-wire
///   kind: capture
///   interface: docker0
///   container_image: edgemeter-base:latest
///   container_command: [edgemeter, serve, calculator, --role, all, --host, 0.0.0.0]
///   ping: [container]
///   http: ["http://container:50000/calculate"]
///   http_method: POST
///   http_body: "(5+6)*2"
///   count: 50
///   interval: 20ms
/// ```
///
/// ```yaml
/// - name: docker0-wire
///   kind: capture
///   interface: docker0
///   filter: icmp or tcp port 8080
///   ping: [172.17.0.2]
///   tcping: ["172.17.0.2:8080"]
///   http: ["http://172.17.0.2:50000/calculate"]
///   http_method: POST
///   http_body: "(5+6)*2"
///   count: 20
///   interval: 50ms
/// ```
public enum CaptureScenario {
    public static let schema = ScenarioSchema(
        kind: "capture",
        parameters: ["interface": .string, "filter": .string, "duration": .duration, "ping": .stringList, "tcping": .stringList, "http": .stringList,
                     "http_method": .oneOf(["GET", "POST", "PUT", "DELETE", "HEAD"]), "http_body": .string,
                     "count": .positiveInteger, "interval": .duration, "timeout": .duration, "snaplen": .positiveInteger,
                     "buffer_kib": .positiveInteger, "container_image": .string, "container_command": .stringList],
        required: ["interface"],
        check: { s in
            let probes = (s.strings("ping") ?? []).count + (s.strings("tcping") ?? []).count + (s.strings("http") ?? []).count
            if probes == 0 && s.duration("duration") == nil {
                return ("interface", "give `ping`, `tcping` or `http` targets to measure while capturing, or a capture `duration`")
            }
            let usesContainer = ((s.strings("ping") ?? []) + (s.strings("tcping") ?? []) + (s.strings("http") ?? [])).contains { $0.contains("container") }
            if usesContainer && s.string("container_image") == nil {
                return ("container_image", "targets name `container`: give `container_image` (e.g. edgemeter-base:latest, built by `edgemeter image build`)")
            }
            for u in s.strings("http") ?? [] {
                do { _ = try HTTPTarget(url: u.replacingOccurrences(of: "container", with: "127.0.0.1")) } catch { return ("http", "\(error)") }
            }
            if probes > 0 && s.int("count") == nil {
                return ("count", "give `count` (echoes/connections per target) so the scenario ends by itself")
            }
            if let i = s.duration("interval"), i.nanoseconds < 1_000_000 { return ("interval", "`interval` must be at least 1ms") }
            if let n = s.int("snaplen"), n < 64 || n > 262_144 { return ("snaplen", "`snaplen` must be between 64 and 262144 bytes, got \(n)") }
            for t in s.strings("tcping") ?? [] {
                do { _ = try Resolver.splitHostPort(t.replacingOccurrences(of: "container", with: "127.0.0.1")) } catch { return ("tcping", "\(error)") }
            }
            return nil
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        try await run(s, ctx: ctx)
    }

    static func run(_ s: ValidatedScenario, ctx: ScenarioContext) async throws {
        var fixture: ContainerFixture?
        var address = "container"
        if let image = s.string("container_image") {
            let f = try await ContainerFixture.start(image: image, command: s.strings("container_command"), runID: ctx.runID,
                                                     scenario: s.name)
            fixture = f
            address = f.address
            ctx.progress("container \(f.name) (\(image)) at \(f.address)")
        }
        do {
            try await measure(s, ctx: ctx, container: address, fixture: fixture)
        } catch {
            await fixture?.remove()
            throw error
        }
        await fixture?.remove()
    }

    static func measure(_ s: ValidatedScenario, ctx: ScenarioContext, container: String, fixture: ContainerFixture?) async throws {
        func sub(_ t: String) -> String { t.replacingOccurrences(of: "container", with: container) }
        let interface = s.string("interface")!
        let interval = s.duration("interval") ?? .milliseconds(100)
        let timeout = s.duration("timeout") ?? .seconds(1)
        let pingTargets = (s.strings("ping") ?? []).map(sub)
        let tcpTargets = (s.strings("tcping") ?? []).map(sub)
        let httpTargets = try (s.strings("http") ?? []).map { try HTTPTarget(url: sub($0)) }
        if let fixture {
            // Wait until the workload answers before measuring (at most 20 s).
            if let t = httpTargets.first {
                try await fixture.waitForTCP(host: t.host, port: t.port, stop: ctx.stop)
            }
        }
        do {
            try await withCapture(interface: interface, filter: s.string("filter"), snapLength: Int32(s.int("snaplen") ?? 65_535),
                                  bufferSize: s.int("buffer_kib").map { Int32($0 * 1024) }, scenario: s.name, ctx: ctx) { inner in
                if !pingTargets.isEmpty {
                    _ = try PingScenario.run(scenario: s.name, targets: pingTargets, family: .any,
                                             options: ICMPOptions(count: s.int("count"), interval: interval, timeout: timeout),
                                             ctx: inner, onLine: nil)
                }
                if !tcpTargets.isEmpty && !inner.stop.isStopped {
                    _ = try TCPingScenario.run(scenario: s.name, targets: tcpTargets, family: .any,
                                               options: TCPConnectOptions(count: s.int("count"), interval: interval, timeout: timeout),
                                               ctx: inner, onLine: nil)
                }
                for t in httpTargets where !inner.stop.isStopped {
                    let request = HTTPRequestSpec(method: s.string("http_method") ?? "GET", path: t.path,
                                                  headers: s.string("http_body") == nil ? [] : [("Content-Type", "text/plain")],
                                                  body: Array((s.string("http_body") ?? "").utf8))
                    let options = HTTPProbeOptions(request: request, count: s.int("count") ?? 10,
                                                   interval: interval, timeout: timeout)
                    _ = await HTTPProbe.run(target: t, options: options, runID: inner.runID, scenario: s.name, sink: inner.sink,
                                            stop: inner.stop, progress: nil)
                }
                if pingTargets.isEmpty && tcpTargets.isEmpty && httpTargets.isEmpty, let d = s.duration("duration") {
                    let end = ContinuousClock.now + d
                    while ContinuousClock.now < end && !inner.stop.isStopped {
                        try? await Task.sleep(for: min(.milliseconds(50), end - ContinuousClock.now))
                    }
                }
            }
        } catch let e as RunError {
            // A missing interface or capability: the suite notes the scenario as not run and goes on.
            throw ScenarioNotRun(e.description)
        }
    }
}

/// A container started for one capture scenario, on the default bridge, through the Engine API.
final class ContainerFixture: @unchecked Sendable {
    let client: DockerAPIClient
    let id: String
    let name: String
    let address: String

    init(client: DockerAPIClient, id: String, name: String, address: String) {
        self.client = client
        self.id = id
        self.name = name
        self.address = address
    }

    static func start(image: String, command: [String]?, runID: String, scenario: String) async throws -> ContainerFixture {
        let client: DockerAPIClient
        do {
            client = try DockerAPIClient()
            try await client.ping()
        } catch {
            throw ScenarioNotRun("dockerd is not reachable (\(error)); start it (`dockerd &`) to run this scenario")
        }
        let safe = String((runID + "-" + scenario).map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" })
        let name = "edgemeter-capture-\(safe)".prefix(120)
        var body: [String: Any] = ["Image": image, "Labels": ["edgemeter": "capture", "edgemeter.run": runID],
                                   "HostConfig": ["NetworkMode": "bridge"]]
        if let command { body["Cmd"] = command }
        let r = try await client.request(.POST, "/containers/create?name=\(name)", json: body)
        guard r.status == 201, let obj = r.json as? [String: Any], let id = obj["Id"] as? String else {
            if r.status == 404 { throw ScenarioNotRun("image \(image) not found in dockerd: build it with `edgemeter image build`") }
            throw ScenarioNotRun("creating container \(name): HTTP \(r.status): \(r.errorMessage)")
        }
        let started = try await client.request(.POST, "/containers/\(id)/start")
        guard started.status == 204 || started.status == 304 else {
            _ = try? await client.request(.DELETE, "/containers/\(id)?force=1")
            throw ScenarioNotRun("starting container \(name): HTTP \(started.status): \(started.errorMessage)")
        }
        let info = try await client.request(.GET, "/containers/\(id)/json")
        let ip = ((info.json as? [String: Any])?["NetworkSettings"] as? [String: Any])?["IPAddress"] as? String ?? ""
        guard !ip.isEmpty else {
            _ = try? await client.request(.DELETE, "/containers/\(id)?force=1")
            throw ScenarioNotRun("container \(name) has no address on the default bridge (docker0)")
        }
        return ContainerFixture(client: client, id: id, name: String(name), address: ip)
    }

    /// Polls a TCP connect to host:port every 50 ms until it succeeds (at most 20 s).
    func waitForTCP(host: String, port: Int, stop: StopFlag) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline && !stop.isStopped {
            if Self.connects(host: host, port: port) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
        throw RunError.setup("the container \(name) did not accept connections on \(host):\(port) within 20 s")
    }

    static func connects(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
    }

    func remove() async {
        _ = try? await client.request(.DELETE, "/containers/\(id)?force=1")
    }
}
