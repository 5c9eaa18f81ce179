import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterCapture

/// Suite kind `capture`: captures on `interface` while pinging `ping` targets, connecting to
/// `tcping` targets and/or requesting `http` URLs (one request per connection, in that order; or,
/// with none, for `duration`), then records the wire samples (probe `wire`), the capture's drop
/// counters and the app − wire differences (see `withCapture`).
///
/// With `container_image`, the scenario first starts a container of that image (through the
/// startup module's Docker client, `DockerBackend`; `container_command` as its command) on the
/// default bridge, waits until the first `http` URL's port accepts a connection (when there is
/// one), and a target whose host is exactly `container` (`ping: [container]`, `container:8080`,
/// `http://container:50000/...`) goes to its address; the container is removed at the end.
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
/// (so `edgemeter cleanup` finds leftovers) and `edgemeter.run=<instanceTag("<run>/<scenario>")>`, and removed
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
        measures: { _ in "app vs wire timings" },
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
            do { _ = try CalcScenario.options(expression: e, expect: nil, schedule: Schedule(count: 1), timeout: .seconds(1)) } catch {
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

    public static let kind = ScenarioKind(declaration: declaration, configuration: { CaptureConfig($0) }, capturesItself: true) { s, ctx in
        try await run(s, ctx: ctx)
    }

    /// Starts the containers the scenario asks for, measures while capturing, removes them.
    static func run(_ s: ValidatedScenario, ctx: ScenarioContext) async throws {
        let calculator = s.bool("calculator_containers") == true
        guard calculator || s.string("container_image") != nil else {
            return try await measure(s, ctx: ctx, targets: ContainerTargets(address: nil), deployment: nil)
        }
        let group = try await ContainerGroup.connect(runID: ctx.runID, scenario: s.name)
        do {
            if calculator {
                let deployment = try await CalculatorDeployment.start(image: s.string("container_image") ?? "edgemeter-base:latest",
                                                                      group: group, ctx: ctx)
                try await measure(s, ctx: ctx, targets: ContainerTargets(address: deployment.front.address), deployment: deployment)
            } else if let image = s.string("container_image") {
                let f = try await group.start(image: image, command: s.strings("container_command"))
                ctx.progress("container \(f.name) (\(image)) at \(f.address)")
                let targets = ContainerTargets(address: f.address)
                // Wait until the workload answers before measuring (at most 20 s).
                if let first = try (s.strings("http") ?? []).first.map(targets.http) {
                    try await f.waitForTCP(port: first.port, stop: ctx.stop)
                }
                try await measure(s, ctx: ctx, targets: targets, deployment: nil)
            }
        } catch {
            await group.removeAll()
            throw error
        }
        await group.removeAll()
    }

    /// The request every `http` URL (and the load) gets: `calc_expression` POSTed as text, else
    /// `http_method` with `http_body`.
    static func request(_ s: ValidatedScenario, path: String) -> HTTPRequestSpec {
        let expression = s.string("calc_expression")
        let bodyText = expression ?? s.string("http_body")
        return HTTPRequestSpec(method: expression != nil ? "POST" : s.string("http_method") ?? "GET", path: path,
                               headers: bodyText == nil ? [] : [("Content-Type", "text/plain")], body: Array((bodyText ?? "").utf8))
    }

    /// The probes of a capture scenario as scenarios of their own kinds (same name, so their samples
    /// are the capture scenario's), run through those kinds' runners: ping, tcping, then each `http`
    /// URL with the http kind (or the calc kind with `calc_expression`).
    static func probeScenarios(_ s: ValidatedScenario, targets: ContainerTargets) throws -> [(ScenarioKind, ValidatedScenario)] {
        let common: [String: ParameterValue] = [
            "count": .integer(s.int("count") ?? 10), "interval": .duration(s.duration("interval") ?? .milliseconds(100)),
            "timeout": .duration(s.duration("timeout") ?? .seconds(1)),
        ]
        func scenario(_ kind: ScenarioKind, _ parameters: [String: ParameterValue]) -> (ScenarioKind, ValidatedScenario) {
            (kind, ValidatedScenario(name: s.name, kind: kind.schema.kind, line: s.line, parameters: common.merging(parameters) { _, b in b }))
        }
        var out: [(ScenarioKind, ValidatedScenario)] = []
        if let ping = s.strings("ping"), !ping.isEmpty {
            out.append(scenario(PingScenario.kind, ["targets": .strings(ping.map(targets.ping))]))
        }
        if let tcping = s.strings("tcping"), !tcping.isEmpty {
            out.append(scenario(TCPingScenario.kind, ["targets": .strings(try tcping.map(targets.tcping))]))
        }
        for url in s.strings("http") ?? [] {
            let t = try targets.http(url)
            if let e = s.string("calc_expression") {
                out.append(scenario(CalcScenario.kind, ["url": .string(t.description), "expression": .string(e)]))
                continue
            }
            let r = request(s, path: t.path)
            var p: [String: ParameterValue] = ["url": .string(t.description), "method": .string(r.method)]
            if !r.headers.isEmpty { p["headers"] = .strings(r.headers.map { "\($0.0): \($0.1)" }) }
            if !r.body.isEmpty { p["body"] = .string(String(decoding: r.body, as: UTF8.self)) }
            out.append(scenario(HTTPScenario.kind, p))
        }
        return out
    }

    static func measure(_ s: ValidatedScenario, ctx: ScenarioContext, targets: ContainerTargets, deployment: CalculatorDeployment?) async throws {
        let capture = CaptureConfig(s)
        let interface = capture.interface
        let timeout = s.duration("timeout") ?? .seconds(1)
        let httpTargets = try (s.strings("http") ?? []).map(targets.http)
        let probes = try probeScenarios(s, targets: targets)
        var filter = capture.filter
        if let deployment {
            // One request (not recorded) before capturing: the front end answers 200 and has its
            // keep-alive connections to the services open.
            try await deployment.warmUp(httpTargets[0], request: request(s, path: httpTargets[0].path), stop: ctx.stop)
            if filter == nil { filter = deployment.all.map { "host \($0.address)" }.joined(separator: " or ") }
        }
        let loadResult = LoadBox()
        let promiscuous = capture.promiscuous ?? (deployment != nil)
        do {
            try await withCapture(interface: interface, filter: filter, snapLength: Int32(capture.snapLength),
                                  bufferSize: capture.bufferKiB.map { Int32($0 * 1024) }, promiscuous: promiscuous, scenario: s.name,
                                  filePrefix: SuiteRunner.capturePrefix(s.name), ctx: ctx,
                                  onAnalysis: { analysis, appSamples in
                                      guard let deployment, let front = httpTargets.first else { return }
                                      deployment.report(analysis, interface: interface, frontPort: front.port, appSamples: appSamples,
                                                        load: loadResult.value, scenario: s.name, ctx: ctx)
                                  }) { inner in
                for (kind, probe) in probes where !inner.stop.isStopped {
                    try await kind.run(probe, inner)
                }
                if let rate = s.number("load_rate"), let d = s.duration("load_duration"), let t = httpTargets.first, !inner.stop.isStopped {
                    var o = LoadOptions(request: request(s, path: t.path), connections: s.int("load_connections") ?? 4, rate: rate, duration: d,
                                        timeout: timeout)
                    o.threads = 1
                    let started = Date()
                    let r = try await LoadScenario.record(target: t, options: o, scenario: s.name, ctx: inner)
                    loadResult.value = (r, started, Date())
                    inner.progress(String(format: "load on %@: %d responses, %.1f req/s, %d errors", t.description, r.responses, r.achievedRate, r.totalErrors))
                }
                if probes.isEmpty, let d = s.duration("duration") {
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

/// The result of a load run inside a capture, handed to the report after the capture.
final class LoadBox: @unchecked Sendable {
    var value: (result: LoadResult, started: Date, ended: Date)?
}
