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
/// With `calculator_containers: true`, the scenario starts the lab's 2-tier calculator as FIVE
/// containers of `container_image` (default `edgemeter-base:latest`) on docker0: `sum`, `sub`,
/// `mul`, `div` (`edgemeter serve calculator --role OP --host 0.0.0.0 --port 5000N`), then the front
/// end with `--sum IP:50001 --sub ... --div ...` pointing at their bridge addresses; `container`
/// stands for the front end's address. It sends one warm-up request (not recorded, it also opens
/// the front end's keep-alive connections to its services) before capturing, captures in
/// promiscuous mode (so the frames the bridge forwards between containers are seen; filter
/// `host A or host B ...` of the five containers unless `filter` is given) and adds the per-hop
/// breakdown of every request (client → front end → each operation service → back, see
/// `HopBreakdown`) to the samples and summary.md.
///
/// `load_rate` + `load_duration` (+ `load_connections`, default 4) add, after the probes, a
/// bounded fixed-rate (open loop, wrk2-style) HTTP load on the first `http` URL with the same
/// method and body (`LoadGenerator`), captured too: its report, the app-vs-wire comparison of its
/// latency distribution and the per-hop distribution under load.
///
/// All containers are named `edgemeter-capture-<run>-<scenario>[-<role>]`, labelled `edgemeter`
/// (so `edgemeter cleanup` finds leftovers) and `edgemeter.capture=<run>/<scenario>`, and removed
/// at the end, on failure and when the run is stopped (Ctrl-C).
///
/// `calc_expression` probes the `http` URLs with the calc probe instead (POST of the expression,
/// answer checked, the front end's `Server-Timing` per call recorded as `hopN_<service>`); with
/// `calculator_containers` each call the bridge saw is then paired with the front end's own timing
/// of it (phase `stack_overhead_hop`).
///
/// ```yaml
/// - name: docker0-calculator-hops
///   kind: capture
///   interface: docker0
///   calculator_containers: true
///   ping: [container]
///   http: ["http://container:50000/calculate"]
///   calc_expression: "(5+6)*2-8/4"
///   count: 20
///   interval: 20ms
///   load_rate: 200
///   load_duration: 3s
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
/// The capture itself (where, what, how much), from a suite's `kind: capture` or `edgemeter capture`
/// flags alike; the probes a suite scenario runs while capturing are read from the scenario.
public struct CaptureConfig: Sendable, Equatable {
    public var interface: String
    public var filter: String?
    /// Stop after this long (without probes in a suite; any time on the command line).
    public var duration: Duration?
    public var snapLength: Int
    public var bufferKiB: Int?
    /// nil: promiscuous only for `calculator_containers` (the bridge's frames between containers).
    public var promiscuous: Bool?
    /// Command line only: stop after this many packets, write the pcap here, drop root to this user.
    public var packets: Int?
    public var write: String?
    public var user: String?

    public init(_ s: ValidatedScenario) {
        interface = s.string("interface") ?? ""
        filter = s.string("filter")
        duration = s.duration("duration")
        snapLength = s.int("snaplen") ?? 65_535
        bufferKiB = s.int("buffer_kib")
        promiscuous = s.bool("promiscuous")
        packets = s.int("packets")
        write = s.string("write")
        user = s.string("user")
    }
}

public enum CaptureScenario {
    static func suiteOnly(_ key: String, _ type: ParameterType, _ help: String) -> ParameterSpec {
        ParameterSpec(key, cli: nil, type, help: help)
    }

    public static let declaration = KindDeclaration(
        kind: "capture",
        parameters: [
            ParameterSpec("interface", cli: "-i/--interface", .string, help: "Interface to capture on (see --list).", valueName: "IFACE"),
            ParameterSpec("filter", cli: "-f/--filter", .string,
                          help: "BPF filter in tcpdump syntax, e.g. \"icmp or tcp port 8080\" (or give it after the options, as tcpdump does).",
                          valueName: "BPF"),
            ParameterSpec("duration", cli: "--duration", .duration, help: "Stop after this long: seconds (5) or 500ms.", valueName: "S",
                          validate: ValueCheck.positive),
            ParameterSpec("snaplen", cli: "--snaplen", .positiveInteger, default: .integer(65_535),
                          help: "Bytes kept of each packet (65535 keeps whole packets up to a 64 KiB MTU).", valueName: "N", validate: { v in
                guard case .integer(let n) = v, n < 64 || n > 262_144 else { return nil }
                return "{} must be between 64 and 262144 bytes, got \(n)"
            }),
            ParameterSpec("buffer_kib", cli: "--buffer-size", .positiveInteger, unit: "KiB",
                          help: "Kernel capture ring in KiB (default 32768). It holds about size/snaplen packets: raise it (or lower --snaplen) if pcap_stats reports drops.",
                          valueName: "KiB", validate: { v in
                guard case .integer(let n) = v, n > 1_048_576 else { return nil }
                return "{} must be between 1 and 1048576 KiB, got \(n)"
            }),
            ParameterSpec("promiscuous", cli: "--promiscuous", .bool,
                          help: "Capture in promiscuous mode (default: off; on for a suite's calculator_containers)."),
            ParameterSpec("packets", cli: "--count", .positiveInteger, help: "Stop after this many packets.", valueName: "N", suite: false),
            ParameterSpec("write", cli: "-w/--write", .string,
                          help: "Write the packets to this pcap file (default: capture-<iface>.pcap in the run directory).", valueName: "FILE",
                          suite: false),
            ParameterSpec("user", cli: "--user", .string,
                          help: "Drop root privileges to this user right after the capture handle is open (as tcpdump -Z).", valueName: "NAME",
                          suite: false),
            suiteOnly("ping", .stringList, "Targets to ping while capturing (`container` stands for the scenario's container)."),
            suiteOnly("tcping", .stringList, "HOST:PORT targets to connect to while capturing."),
            suiteOnly("http", .stringList, "URLs to request while capturing (one request per connection)."),
            suiteOnly("http_method", .oneOf(["GET", "POST", "PUT", "DELETE", "HEAD"]), "Method of the `http` requests."),
            suiteOnly("http_body", .string, "Body of the `http` requests."),
            suiteOnly("calc_expression", .string, "Probe the `http` URLs with the calc probe and this expression."),
            ParameterSpec("count", cli: nil, .positiveInteger, help: "Echoes, connections or requests per target.",
                          validate: nil),
            ParameterSpec("interval", cli: nil, .duration, default: .duration(.milliseconds(100)), help: "Interval between probes.",
                          validate: ValueCheck.atLeast(.milliseconds(1))),
            ParameterSpec("timeout", cli: nil, .duration, default: .duration(.seconds(1)), help: "Limit of each probe."),
            suiteOnly("container_image", .string, "Start a container of this image first; `container` in targets is its address."),
            suiteOnly("container_command", .stringList, "The container's command."),
            suiteOnly("calculator_containers", .bool, "Start the 2-tier calculator as five containers on docker0."),
            suiteOnly("load_rate", .positiveNumber, "A fixed-rate load after the probes, in requests/s (at most 20000)."),
            suiteOnly("load_duration", .duration, "How long the load runs (100ms to 60s)."),
            suiteOnly("load_connections", .positiveInteger, "Connections of the load (default 4)."),
        ],
        required: ["interface"],
        checks: [{ s in
            if s.int("packets") != nil && s.duration("duration") != nil { return ("packets", "give either {duration} or {packets}, not both") }
            guard s.origin == .suite else { return nil }
            return suiteCheck(s)
        }])

    public static var schema: ScenarioSchema { declaration.schema }

    static func suiteCheck(_ s: ValidatedScenario) -> (key: String, message: String)? {
        let probes = (s.strings("ping") ?? []).count + (s.strings("tcping") ?? []).count + (s.strings("http") ?? []).count
        if probes == 0 && s.duration("duration") == nil {
            return ("interface", "give {ping}, {tcping} or {http} targets to measure while capturing, or a capture {duration}")
        }
        let usesContainer = ((s.strings("ping") ?? []) + (s.strings("tcping") ?? []) + (s.strings("http") ?? [])).contains { $0.contains("container") }
        let calculator = s.bool("calculator_containers") == true
        if calculator && s.strings("container_command") != nil {
            return ("container_command", "`calculator_containers` starts its own commands (edgemeter serve calculator --role ...); remove `container_command`")
        }
        if calculator && (s.strings("http") ?? []).isEmpty {
            return ("http", "`calculator_containers` needs an `http` URL for the front end, e.g. \"http://container:50000/calculate\" with http_method: POST")
        }
        if let e = s.string("calc_expression") {
            if s.string("http_body") != nil || s.string("http_method") != nil {
                return ("calc_expression", "`calc_expression` is POSTed as the body: remove `http_body` and `http_method`")
            }
            do { _ = try CalcScenario.options(expression: e, expect: nil, count: 1, interval: .seconds(1), timeout: .seconds(1)) } catch {
                return ("calc_expression", "`calc_expression` \(e): \(error)")
            }
        }
        if (s.number("load_rate") == nil) != (s.duration("load_duration") == nil) {
            return (s.number("load_rate") == nil ? "load_rate" : "load_duration",
                    "a load needs both `load_rate` (requests per second) and `load_duration` (e.g. 3s) so it is bounded")
        }
        if let d = s.duration("load_duration") {
            if (s.strings("http") ?? []).isEmpty { return ("load_duration", "the load goes to the first `http` URL: give `http`") }
            if d > .seconds(60) { return ("load_duration", "`load_duration` is limited to 60s in a capture scenario (the pcap holds every packet)") }
            if d < .milliseconds(100) { return ("load_duration", "`load_duration` must be at least 100ms") }
        }
        if let r = s.number("load_rate"), r > 20_000 { return ("load_rate", "`load_rate` is limited to 20000 requests/s in a capture scenario") }
        if usesContainer && s.string("container_image") == nil && !calculator {
            return ("container_image", "targets name `container`: give `container_image` (e.g. edgemeter-base:latest, built by `edgemeter image build`)")
        }
        for u in s.strings("http") ?? [] {
            do { _ = try HTTPTarget(url: u.replacingOccurrences(of: "container", with: "127.0.0.1")) } catch { return ("http", "\(error)") }
        }
        if probes > 0 && s.int("count") == nil {
            return ("count", "give `count` (echoes/connections per target) so the scenario ends by itself")
        }
        for t in s.strings("tcping") ?? [] {
            do { _ = try Resolver.splitHostPort(t.replacingOccurrences(of: "container", with: "127.0.0.1")) } catch { return ("tcping", "\(error)") }
        }
        return nil
    }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { CaptureConfig($0) }) { s, ctx in
        try await run(s, ctx: ctx)
    }

    static func run(_ s: ValidatedScenario, ctx: ScenarioContext) async throws {
        if s.bool("calculator_containers") == true {
            let group = ContainerGroup()
            do {
                let deployment = try await CalculatorDeployment.start(image: s.string("container_image") ?? "edgemeter-base:latest",
                                                                      runID: ctx.runID, scenario: s.name, group: group, ctx: ctx)
                try await measure(s, ctx: ctx, container: deployment.front.address, fixture: nil, deployment: deployment)
            } catch {
                await group.removeAll()
                throw error
            }
            await group.removeAll()
            return
        }
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
            try await measure(s, ctx: ctx, container: address, fixture: fixture, deployment: nil)
        } catch {
            await fixture?.remove()
            throw error
        }
        await fixture?.remove()
    }

    static func measure(_ s: ValidatedScenario, ctx: ScenarioContext, container: String, fixture: ContainerFixture?,
                        deployment: CalculatorDeployment?) async throws {
        func sub(_ t: String) -> String { t.replacingOccurrences(of: "container", with: container) }
        let capture = CaptureConfig(s)
        let interface = capture.interface
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
        let calcExpression = s.string("calc_expression")
        let method = calcExpression != nil ? "POST" : s.string("http_method") ?? "GET"
        let bodyText = calcExpression ?? s.string("http_body")
        func request(_ t: HTTPTarget) -> HTTPRequestSpec {
            HTTPRequestSpec(method: method, path: t.path, headers: bodyText == nil ? [] : [("Content-Type", "text/plain")],
                            body: Array((bodyText ?? "").utf8))
        }
        var filter = capture.filter
        if let deployment {
            // One request (not recorded) before capturing: the front end answers 200 and has its
            // keep-alive connections to the services open.
            try await deployment.warmUp(httpTargets[0], request: request(httpTargets[0]), stop: ctx.stop)
            if filter == nil { filter = deployment.all.map { "host \($0.address)" }.joined(separator: " or ") }
        }
        let loadResult = LoadBox()
        let promiscuous = capture.promiscuous ?? (deployment != nil)
        do {
            try await withCapture(interface: interface, filter: filter, snapLength: Int32(capture.snapLength),
                                  bufferSize: capture.bufferKiB.map { Int32($0 * 1024) }, promiscuous: promiscuous, scenario: s.name,
                                  filePrefix: "capture-" + String(s.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }), ctx: ctx,
                                  onAnalysis: { analysis, appSamples in
                                      guard let deployment, let front = httpTargets.first else { return }
                                      deployment.report(analysis, interface: interface, frontPort: front.port, appSamples: appSamples,
                                                        load: loadResult.value, scenario: s.name, ctx: ctx)
                                  }) { inner in
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
                    if let e = calcExpression {
                        let options = try CalcScenario.options(expression: e, expect: nil, count: s.int("count") ?? 10, interval: interval,
                                                               timeout: timeout)
                        let r = await CalcProbe.run(target: t, options: options, runID: inner.runID, scenario: s.name, sink: inner.sink,
                                                    stop: inner.stop)
                        inner.progress("\(t): \(r.succeeded)/\(r.attempts) answers correct")
                        continue
                    }
                    let options = HTTPProbeOptions(request: request(t), count: s.int("count") ?? 10,
                                                   interval: interval, timeout: timeout)
                    let r = await HTTPProbe.run(target: t, options: options, runID: inner.runID, scenario: s.name, sink: inner.sink,
                                                stop: inner.stop, progress: nil)
                    inner.progress("\(t): \(r.succeeded)/\(r.attempts) requests succeeded")
                }
                if let rate = s.number("load_rate"), let d = s.duration("load_duration"), let t = httpTargets.first, !inner.stop.isStopped {
                    var o = LoadOptions(request: request(t), connections: s.int("load_connections") ?? 4, rate: rate, duration: d,
                                        timeout: timeout)
                    o.threads = 1
                    let started = Date()
                    let r = try await LoadScenario.record(target: t, options: o, scenario: s.name, ctx: inner)
                    loadResult.value = (r, started, Date())
                    inner.progress(String(format: "load on %@: %d responses, %.1f req/s, %d errors", t.description, r.responses, r.achievedRate, r.totalErrors))
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

    static func connectDocker() async throws -> DockerAPIClient {
        do {
            let client = try DockerAPIClient()
            try await client.ping()
            return client
        } catch {
            throw ScenarioNotRun("dockerd is not reachable (\(error)); start it (`dockerd &`) to run this scenario")
        }
    }

    /// Creates and starts a container named `edgemeter-capture-<run>-<scenario>[-<role>]` on the
    /// default bridge; `group` gets it as soon as it exists, so a failure later removes it too.
    static func start(image: String, command: [String]?, runID: String, scenario: String, role: String? = nil,
                      client given: DockerAPIClient? = nil, group: ContainerGroup? = nil) async throws -> ContainerFixture {
        let client: DockerAPIClient
        if let given { client = given } else { client = try await connectDocker() }
        let safe = String((runID + "-" + scenario).map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" })
        let name = ("edgemeter-capture-\(safe)".prefix(110)) + (role.map { "-\($0)" } ?? "")
        var body: [String: Any] = ["Image": image, "Labels": ["edgemeter": "capture", "edgemeter.run": runID,
                                                              "edgemeter.capture": "\(runID)/\(scenario)"],
                                   "HostConfig": ["NetworkMode": "bridge"]]
        if let command { body["Cmd"] = command }
        let r = try await client.request(.POST, "/containers/create?name=\(name)", json: body)
        guard r.status == 201, let obj = r.json as? [String: Any], let id = obj["Id"] as? String else {
            if r.status == 404 { throw ScenarioNotRun("image \(image) not found in dockerd: build it with `edgemeter image build`") }
            throw ScenarioNotRun("creating container \(name): HTTP \(r.status): \(r.errorMessage)")
        }
        group?.add(client: client, id: id)
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

/// Containers one scenario started; `removeAll` force-removes each (and anything else labelled
/// with the scenario, e.g. a create that answered after an error).
final class ContainerGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(DockerAPIClient, String)] = []

    func add(client: DockerAPIClient, id: String) {
        lock.lock(); items.append((client, id)); lock.unlock()
    }

    private func take() -> [(DockerAPIClient, String)] {
        lock.lock(); defer { lock.unlock() }
        let all = items
        items = []
        return all
    }

    func removeAll() async {
        let all = take()
        for (client, id) in all.reversed() {
            _ = try? await client.request(.DELETE, "/containers/\(id)?force=1")
        }
    }
}

/// The result of a load run inside a capture, handed to the report after the capture.
final class LoadBox: @unchecked Sendable {
    var value: (result: LoadResult, started: Date, ended: Date)?
}

/// The lab's 2-tier calculator as five containers on docker0: the four operation services, then
/// the front end pointing at their bridge addresses.
struct CalculatorDeployment: Sendable {
    static let operations: [(role: String, port: Int)] = [("sum", 50001), ("sub", 50002), ("mul", 50003), ("div", 50004)]
    let front: ContainerFixture
    let services: [(role: String, fixture: ContainerFixture, port: Int)]
    var all: [ContainerFixture] { services.map(\.fixture) + [front] }

    static func start(image: String, runID: String, scenario: String, group: ContainerGroup, ctx: ScenarioContext) async throws -> CalculatorDeployment {
        let client = try await ContainerFixture.connectDocker()
        var services: [(role: String, fixture: ContainerFixture, port: Int)] = []
        for (role, port) in operations {
            if ctx.stop.isStopped { throw RunError.setup("stopped (\(ctx.stop.reason ?? "stop requested")) while starting the calculator containers") }
            let f = try await ContainerFixture.start(image: image, command: ["edgemeter", "serve", "calculator", "--role", role, "--host", "0.0.0.0",
                                                                            "--port", String(port)],
                                                     runID: runID, scenario: scenario, role: role, client: client, group: group)
            services.append((role, f, port))
        }
        for (role, f, port) in services {
            try await f.waitForTCP(host: f.address, port: port, stop: ctx.stop)
            ctx.progress("calculator \(role) container \(f.name) at \(f.address):\(port)")
        }
        var command = ["edgemeter", "serve", "calculator", "--role", "front", "--host", "0.0.0.0", "--port", "50000"]
        for (role, f, port) in services { command += ["--\(role)", "\(f.address):\(port)"] }
        let front = try await ContainerFixture.start(image: image, command: command, runID: runID, scenario: scenario, role: "front",
                                                     client: client, group: group)
        try await front.waitForTCP(host: front.address, port: 50000, stop: ctx.stop)
        ctx.progress("calculator front end container \(front.name) at \(front.address):50000")
        return CalculatorDeployment(front: front, services: services)
    }

    /// Pairs each call the front end made for a calc probe request (on the wire) with the front
    /// end's own measurement of that call (its `Server-Timing` entry `hopN_<service>`, from sending
    /// the call on its pooled connection to having the reply) and records the difference
    /// front end − wire (probe `wire`, phase `stack_overhead_hop`, label `service`): what the front
    /// end's HTTP client, its container's stack and the veth add to the call as the bridge saw it.
    func serverTimingVersusWire(_ rows: [RequestHops], probeSamples: [String: Sample], serverTiming: [String: [Sample]],
                                interface: String, scenario: String, ctx: ScenarioContext) -> String {
        var byService: [String: [(app: Double, wire: Double)]] = [:]
        var services: [String] = []
        var unpaired = 0
        for r in rows {
            guard let app = probeSamples[String(r.request.clientPort)], let seq = app.labels["seq"], let hops = serverTiming[seq] else { continue }
            for (k, c) in r.calls.enumerated() {
                let phase = "hop\(k + 1)_\(c.service)"
                guard let st = hops.first(where: { $0.phase == phase && $0.target == app.target }), let av = st.value,
                      let wns = c.exchange.responseNs else { unpaired += 1; continue }
                let wv = Double(wns) / 1e6
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: WireSamples.probe, target: app.target, metric: "latency",
                                       phase: "stack_overhead_hop", value: av - wv, unit: "ms", timestamp: st.timestamp, status: .ok,
                                       labels: ["service": c.service, "call": String(k), "seq": seq, "local_port": String(r.request.clientPort),
                                                "app_probe": "calc", "app_phase": phase, "app_clock": "front end (Server-Timing)",
                                                "wire_phase": "hop_\(c.service)", "interface": interface, "clock": "capture"]))
                if !services.contains(c.service) { services.append(c.service) }
                byService[c.service, default: []].append((av, wv))
            }
        }
        func q(_ v: [Double], _ p: Double) -> String {
            let v = v.sorted()
            return v.isEmpty ? "—" : Format.fixed(v[min(v.count - 1, Int((p * Double(v.count - 1)).rounded()))], 3)
        }
        var md = "### Per hop: the front end's own timing vs the wire (\(interface))\n\n"
        md += "Front end: its `Server-Timing` entry for the call (sending on its pooled connection → reply parsed). Wire: the call's "
        md += "first request byte → last response byte on \(interface). Overhead = front end − wire: its HTTP client, its "
        md += "container's stack and the veth pair.\n\n"
        md += "| service | pairs | front end p50 ms | wire p50 ms | overhead p50 ms | overhead p90 ms | overhead max ms |\n|---|---:|---:|---:|---:|---:|---:|\n"
        for name in services {
            let v = byService[name]!
            md += "| \(name) | \(v.count) | \(q(v.map(\.app), 0.5)) | \(q(v.map(\.wire), 0.5)) | \(q(v.map { $0.app - $0.wire }, 0.5)) "
            md += "| \(q(v.map { $0.app - $0.wire }, 0.9)) | \(q(v.map { $0.app - $0.wire }, 1)) |\n"
        }
        if unpaired > 0 { md += "\n\(unpaired) calls had no matching `Server-Timing` entry (failed request or a different call order).\n" }
        return md
    }

    /// Sends the request until the front end answers 200 (at most 20 s).
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

    /// Records the per-hop samples and adds the per-hop sections (probe requests, then the load's
    /// requests with the app-vs-wire comparison of their latency distribution).
    func report(_ a: WireAnalysis, interface: String, frontPort: Int, appSamples: [Sample],
                load: (result: LoadResult, started: Date, ended: Date)?, scenario: String, ctx: ScenarioContext) {
        guard let frontIP = IPAddress(front.address) else { return }
        var names: [String: String] = [:]
        for (role, f, port) in services { names["\(f.address):\(port)"] = role }
        let (rows, ambiguous) = HopBreakdown.compute(a, front: frontIP, frontPort: UInt16(frontPort), services: names)
        // A row whose client port is an HTTP probe sample's `local_port` is that probe request.
        var probeTargets: [String: Sample] = [:]
        var serverTiming: [String: [Sample]] = [:] // seq → the calc probe's hopN_<service> samples
        for s in appSamples where (s.probe == "http" || s.probe == "calc") && s.phase == "first_byte" {
            if let p = s.labels["local_port"] { probeTargets[p] = s }
        }
        for s in appSamples where s.probe == "calc" && s.labels["source"] == "server-timing" {
            serverTiming[s.labels["seq"] ?? "", default: []].append(s)
        }
        let probeRows = rows.filter { probeTargets[String($0.request.clientPort)] != nil }
        let otherRows = rows.filter { probeTargets[String($0.request.clientPort)] == nil }
        let frontName = "\(front.address):\(frontPort)"
        HopBreakdown.samples(probeRows, runID: ctx.runID, scenario: scenario,
                             target: { probeTargets[String($0.request.clientPort)]?.target ?? frontName },
                             labels: ["interface": interface, "clock": "capture", "source": "http_probe"]).forEach(ctx.sink.record)
        HopBreakdown.samples(otherRows, runID: ctx.runID, scenario: scenario, target: { _ in "load " + frontName },
                             labels: ["interface": interface, "clock": "capture", "source": load == nil ? "other" : "load"]).forEach(ctx.sink.record)
        var md = HopBreakdown.markdown(probeRows, interface: interface, frontName: "\(frontName) (the probe's requests, one per connection)",
                                       ambiguousCalls: 0)
        md += "\nServices: " + services.map { "\($0.role) \($0.fixture.address):\($0.port) (\($0.fixture.name))" }.joined(separator: ", ")
        md += "; front end \(front.name).\n"
        if !serverTiming.isEmpty {
            md += "\n" + serverTimingVersusWire(probeRows, probeSamples: probeTargets, serverTiming: serverTiming, interface: interface,
                                                 scenario: scenario, ctx: ctx)
        }
        if !otherRows.isEmpty {
            md += "\n" + HopBreakdown.markdown(otherRows, interface: interface,
                                               frontName: "\(frontName) (\(load == nil ? "other requests" : "requests of the fixed-rate load"))",
                                               ambiguousCalls: ambiguous, maxRows: 0)
        }
        if let load {
            let h = load.result.uncorrected
            let wire = otherRows.compactMap(\.request.responseNs).sorted()
            func q(_ p: Double) -> String {
                wire.isEmpty ? "—" : Format.fixed(Double(wire[min(wire.count - 1, Int((p * Double(wire.count - 1)).rounded()))]) / 1e6, 3)
            }
            func app(_ p: Double) -> String { h.totalCount > 0 ? Format.fixed(Double(h.valueAtPercentile(p * 100)) / 1e6, 3) : "—" }
            md += "\n### Load: application vs wire (\(interface))\n\n"
            md += "Application: the load generator's uncorrected latency (request handed to the socket → last response byte, warm-up "
            md += "excluded). Wire: client → front end, request's first byte → response's last byte, every request of the load seen on "
            md += "\(interface). Distributions, not pairs (the load records histograms).\n\n"
            md += "| | requests | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|---:|\n"
            md += "| application (load) | \(h.totalCount) | \(app(0.5)) | \(app(0.9)) | \(app(0.99)) |\n"
            md += "| wire | \(wire.count) | \(q(0.5)) | \(q(0.9)) | \(q(0.99)) |\n"
        }
        ctx.addSection(md)
    }
}
