import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterSystem
import Calculator

/// Starts the calculator all-in-one (front end + four operation services) on 127.0.0.1 with free
/// ports for the length of one scenario (`calculator: true` in a suite), and resolves the
/// scenario's URL against it: no `url` means `/calculate` on the front end, a `url` that is only a
/// path (`/healthz`) is taken on the front end.
enum ScenarioCalculator {
    static func withTarget<T>(_ s: ValidatedScenario, ctx: ScenarioContext,
                              body: (HTTPTarget) async throws -> T) async throws -> T {
        if s.bool("calculator") == true, let from = ctx.lab?.from {
            throw ScenarioNotRun("`calculator: true` starts the calculator on the host's loopback, which node \(from) cannot reach: "
                                 + "give a `url` of a workload in the topology (e.g. http://front:50000/calculate), or remove `from`")
        }
        guard s.bool("calculator") == true else {
            guard let url = s.string("url") else { throw ScenarioNotRun("no `url` (and `calculator` is not true)") }
            return try await body(try HTTPTarget(url: url))
        }
        let zero = Dictionary(uniqueKeysWithValues: CalcOperation.allCases.map { ($0, 0) })
        let services = try await CalculatorServer.startAll(host: "127.0.0.1", frontPort: 0, operationPorts: zero)
        let front = services[0]
        ctx.progress("calculator all-in-one on 127.0.0.1: front \(front.port), " +
                     services.dropFirst().map { "\($0.role.rawValue) \($0.port)" }.joined(separator: ", "))
        let path = s.string("url").flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/calculate"
        do {
            let r = try await body(HTTPTarget(host: "127.0.0.1", port: front.port, path: path))
            for svc in services { await svc.stop() }
            return r
        } catch {
            for svc in services { await svc.stop() }
            throw error
        }
    }

    static func checkURL(_ s: ValidatedScenario) -> (key: String, message: String)? {
        if let url = s.string("url") {
            if s.bool("calculator") == true && url.hasPrefix("/") { return nil }
            do { _ = try HTTPTarget(url: url) } catch { return ("url", "\(error)") }
        } else if s.bool("calculator") != true {
            return ("url", "give {url} (http://HOST:PORT/PATH) or set {calculator: true} to start the calculator on loopback")
        }
        return nil
    }
}

/// One request header, `Name: value`.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    /// Parses `Name: value` (spaces around either trimmed); nil without a name and a colon.
    public init?(line: String) {
        guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { return nil }
        name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
    }
}

/// The request `http` and `load` send (and where to), from a suite scenario or the flags alike.
public struct HTTPRequestConfig: Sendable, Equatable {
    /// http://HOST:PORT/PATH, or a path on the calculator's front end, or nil (`/calculate`).
    public var url: String?
    /// Start the calculator all-in-one on loopback for the scenario (suites only).
    public var calculator: Bool
    public var method: String
    public var headers: [HTTPHeader]
    public var body: String
    /// nil: any 2xx or 3xx.
    public var expectedStatuses: [Int]?
    public var expectedBody: String?
    public var timeout: Duration

    /// `calculatorBody`: what a POST to the calculator sends when no `body` is given.
    public init(_ s: ValidatedScenario, calculatorBody: String) {
        url = s.string("url")
        calculator = s.bool("calculator") ?? false
        let bodyText = s.string("body")
        method = s.string("method")?.uppercased() ?? (bodyText != nil || (calculator && url == nil) ? "POST" : "GET")
        headers = (s.strings("headers") ?? []).compactMap(HTTPHeader.init(line:))
        body = bodyText ?? (method == "POST" && calculator ? calculatorBody : "")
        expectedStatuses = s.integers("expect_status")
        expectedBody = s.string("expect_body")
        timeout = s.duration("timeout") ?? .seconds(5)
    }

    public func spec(path: String) -> HTTPRequestSpec {
        HTTPRequestSpec(method: method, path: path, headers: headers.map { ($0.name, $0.value) }, body: Array(body.utf8))
    }

    /// `url`, `calculator`, `method`, `headers`, `body`, `expect_status`, `expect_body`, `timeout`.
    static func parameters(timeout: Duration, timeoutHelp: String) -> [ParameterSpec] {
        request + [timeoutParameter(timeout, help: timeoutHelp)]
    }

    static func timeoutParameter(_ value: Duration, help: String) -> ParameterSpec {
        ParameterSpec("timeout", cli: "-W/--timeout", .duration, default: .duration(value), help: help, valueName: "DURATION",
                      validate: ValueCheck.positive)
    }

    /// `count`, `interval` and `timeout` of `http` and `calc`: one attempt at a time.
    static let attempts: [ParameterSpec] = [
        ParameterSpec("count", cli: "-c/--count", .positiveInteger, cliDefault: .integer(5),
                      differBecause: "a suite scenario says how many attempts it measures; the command line tries 5",
                      help: "Attempts."),
        ParameterSpec("interval", cli: "-i/--interval", .duration, default: .duration(.milliseconds(100)),
                      cliDefault: .duration(.seconds(1)), differBecause: attemptIntervals,
                      help: "Interval between attempt starts (default: 1s; 100ms in a suite).", valueName: "DURATION"),
        timeoutParameter(.seconds(5), help: "Limit for the connect, and for the exchange after it."),
    ]

    static var request: [ParameterSpec] {
        [
            ParameterSpec("url", cli: "URL", .string, help: "The URL (http:// only)."),
            ParameterSpec("calculator", cli: nil, .bool, default: .bool(false),
                          help: "Start the calculator all-in-one on loopback for the scenario (the command line probes a running server: `edgemeter serve calculator`)."),
            ParameterSpec("method", cli: "-X/--method", .string, help: "HTTP method (default: GET, or POST with a body).", validate: { v in
                guard case .string(let m) = v, !m.allSatisfy({ $0.isLetter }) else { return nil }
                return "{} \"\(m)\" is not an HTTP method such as GET or POST"
            }),
            ParameterSpec("headers", cli: "-H/--header", .stringList, help: "A request header, `Name: value` (repeatable).", valueName: "HEADER",
                          validate: { v in
                guard case .strings(let lines) = v, let bad = lines.first(where: { HTTPHeader(line: $0) == nil }) else { return nil }
                return "{} \"\(bad)\" is not `Name: value`; write it like 'Content-Type: application/json'"
            }),
            ParameterSpec("body", cli: "--body", .string, help: "Request body (sets POST unless a method is given)."),
            ParameterSpec("expect_status", cli: "--expect-status", .positiveIntegerList,
                          help: "Status that counts as success (repeatable; default: any 2xx or 3xx).", valueName: "CODE", validate: { v in
                guard case .integers(let codes) = v, let bad = codes.first(where: { !(100...599).contains($0) }) else { return nil }
                return "{} must be an HTTP status 100-599, got \(bad)"
            }),
            ParameterSpec("expect_body", cli: "--expect-body", .string, help: "Text the response body must contain.", valueName: "TEXT"),
        ]
    }

    /// `count` attempts, `interval` apart: the values of `attempts`, as the `http` and `calc`
    /// probes run them.
    static func schedule(_ s: ValidatedScenario) -> Schedule {
        Schedule(count: s.int("count") ?? 5, interval: s.duration("interval") ?? .seconds(1))
    }

    static let attemptIntervals = """
        the command line paces as ping does (1 s between attempts); a suite scenario is a measurement, \
        so it samples ten times faster
        """

    static let check: KindDeclaration.Check = { s in ScenarioCalculator.checkURL(s) }
}

/// What one `http` scenario measures, from a suite scenario or `edgemeter http` flags alike.
public struct HTTPConfig: Sendable, Equatable {
    public var request: HTTPRequestConfig
    /// `count` attempts, `interval` apart.
    public var schedule: Schedule
    /// `--rounds N --every D` (nil: once).
    public var rounds: RoundsConfig?

    public init(_ s: ValidatedScenario) {
        rounds = RoundsConfig(s)
        request = HTTPRequestConfig(s, calculatorBody: "(5+6)*2")
        schedule = HTTPRequestConfig.schedule(s)
    }

    public func options(target: HTTPTarget) -> HTTPProbeOptions {
        HTTPProbeOptions(request: request.spec(path: target.path), schedule: schedule, timeout: request.timeout,
                         expectedStatuses: request.expectedStatuses, expectedBody: request.expectedBody)
    }
}

/// What one `load` scenario runs, from a suite scenario or `edgemeter load` flags alike.
public struct LoadConfig: Sendable, Equatable {
    public var request: HTTPRequestConfig
    public var connections: Int
    public var rate: Double?
    public var duration: Duration?
    public var requests: Int?
    public var warmup: Duration
    public var threads: Int

    /// wrk's default when `edgemeter load` is given neither -d nor -n (a suite must say which).
    public static let defaultDuration: Duration = .seconds(10)

    public init(_ s: ValidatedScenario) {
        request = HTTPRequestConfig(s, calculatorBody: "5+6")
        connections = s.int("connections") ?? 10
        rate = s.number("rate")
        requests = s.int("requests")
        // The command line gave neither a duration nor a request count: 10 s, as wrk (a suite must say).
        duration = s.duration("duration") ?? (requests == nil ? Self.defaultDuration : nil)
        warmup = s.duration("warmup") ?? .zero
        threads = s.int("threads") ?? 2
    }

    public func options(target: HTTPTarget) -> LoadOptions {
        var o = LoadOptions(request: request.spec(path: target.path), connections: connections, rate: rate, duration: duration,
                            requestCount: requests, warmup: warmup, timeout: request.timeout)
        o.threads = threads
        o.expectedStatuses = request.expectedStatuses
        o.expectedBody = request.expectedBody
        return o
    }
}

/// What one `calc` scenario measures, from a suite scenario or `edgemeter calc` flags alike.
public struct CalcConfig: Sendable, Equatable {
    public var url: String?
    public var calculator: Bool
    public var expression: String
    /// nil: the value of `expression` evaluated locally.
    public var expect: Double?
    /// `count` attempts, `interval` apart.
    public var schedule: Schedule
    public var timeout: Duration
    /// `--rounds N --every D` (nil: once).
    public var rounds: RoundsConfig?

    public init(_ s: ValidatedScenario) {
        rounds = RoundsConfig(s)
        url = s.string("url")
        calculator = s.bool("calculator") ?? false
        expression = s.string("expression") ?? ""
        expect = s.number("expect")
        schedule = HTTPRequestConfig.schedule(s)
        timeout = s.duration("timeout") ?? .seconds(5)
    }

    public func options() throws -> CalcProbeOptions {
        try CalcScenario.options(expression: expression, expect: expect, schedule: schedule, timeout: timeout)
    }
}

/// Suite kind `http`: `edgemeter http` as a scenario (one request at a time, new connection each).
public enum HTTPScenario {
    public static let declaration = KindDeclaration(
        kind: "http",
        measures: { _ in "HTTP request" },
        parameters: HTTPRequestConfig.request + HTTPRequestConfig.attempts + RoundsConfig.parameters,
        required: ["count"],
        checks: [HTTPRequestConfig.check, RoundsConfig.check])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { HTTPConfig($0) }, runsInNode: true) { s, ctx in
        let c = HTTPConfig(s)
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            try await ScenarioRounds.run(c.rounds, ctx: ctx) { ctx in
                let r = try await ScenarioLab.withHTTPSource(ctx.lab) {
                    await HTTPProbe.run(target: target, options: c.options(target: target), runID: ctx.runID, scenario: s.name,
                                        sink: ctx.sink, stop: ctx.stop)
                }
                ctx.progress("\(r.succeeded)/\(r.attempts) requests succeeded")
            }
        }
    }
}

/// Suite kind `load`: `edgemeter load` as a scenario. Writes aggregate samples (see
/// `LoadReport.samples`), the wrk2-style report as a summary.md section, the percentile
/// spectra as `<scenario>-latency-corrected.csv` / `-uncorrected.csv` and the whole histograms in
/// `load-histograms.json` (`LoadData`) in the run directory.
public enum LoadScenario {
    public static let declaration = KindDeclaration(
        kind: "load",
        measures: { _ in "fixed-rate load latency" },
        parameters: HTTPRequestConfig.parameters(timeout: .seconds(2), timeoutHelp: "A request without a complete response within this is a timeout error.") + [
            ParameterSpec("connections", cli: "-c/--connections", .positiveInteger, default: .integer(10),
                          help: "Keep-alive connections (each with one request in flight).", validate: { v in
                guard case .integer(let n) = v, n > 10_000 else { return nil }
                return "{} is limited to 10000, got \(n)"
            }),
            ParameterSpec("duration", cli: "-d/--duration", .duration,
                          help: "Measured duration, after the warm-up (default 10s unless -n is given).", valueName: "DURATION", validate: { v in
                guard case .duration(let d) = v else { return nil }
                if d <= .zero { return "{} must be more than 0" }
                return d > .seconds(3600) ? "{} is limited to 1h" : nil
            }),
            ParameterSpec("requests", cli: "-n/--requests", .positiveInteger,
                          help: "Measured requests (after the warm-up); with --duration, whichever comes first."),
            ParameterSpec("rate", cli: "-R/--rate", .positiveNumber, unit: "requests/s",
                          help: "Open loop: requests per second on a fixed schedule (wrk2 -R)."),
            ParameterSpec("warmup", cli: "--warmup", .duration, default: .duration(.zero),
                          help: "Warm-up before measuring (sent, not recorded).", valueName: "DURATION"),
            ParameterSpec("threads", cli: "-t/--threads", .positiveInteger, default: .integer(min(2, ProcessInfo.processInfo.activeProcessorCount)),
                          help: "Event-loop threads of the generator."),
        ],
        checks: [{ s in
            // `edgemeter load` without -d or -n runs 10 s, as wrk; a suite scenario says how it ends.
            if s.origin == .suite && s.duration("duration") == nil && s.int("requests") == nil {
                return ("duration", "give {duration} or {requests} so the load is bounded")
            }
            return nil
        }, HTTPRequestConfig.check])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { LoadConfig($0) }) { s, ctx in
        let c = LoadConfig(s)
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            let r = try await record(target: target, options: c.options(target: target), scenario: s.name, ctx: ctx)
            ctx.progress("\(r.responses) responses, " + (r.measuredRate.map { String(format: "%.1f req/s", $0) } ?? r.noWindowReason ?? "n/a")
                         + ", \(r.totalErrors) errors, \(r.errors[.timeout] ?? 0) timeouts" + (r.openLoop ? ", \(r.unsent) unsent" : ""))
        }
    }

    /// Runs the load as a `LoadProbe` (its samples go to `ctx.sink`; `options`' rate, duration and
    /// request count are the schedule, `LoadProbe.schedule(for:)`) and records the report section and
    /// spectrum files (shared with the CLI and the capture scenario). Notices (the first connect
    /// failure) go to `ctx.progress`; `live` gets the figures once a second.
    public static func record(target: HTTPTarget, options: LoadOptions, scenario: String, ctx: ScenarioContext,
                              live: (@Sendable (LoadLiveFigures) -> Void)? = nil) async throws -> LoadResult {
        let progress = ctx.progress
        let probe = LoadProbe(target: target, options: options, scope: SampleScope(runID: ctx.runID, scenario: scenario),
                              progress: { progress($0) }, live: live)
        let r = try await probe.runReturningResult(schedule: LoadProbe.schedule(for: options), clock: SystemClock(), stop: ctx.stop,
                                                   sink: ctx.sink).result
        let safe = FileName.safe(scenario)
        var files: [String] = []
        for (name, h) in (r.openLoop ? [("corrected", r.corrected)] : []) + [("uncorrected", r.uncorrected)] {
            let file = "\(safe)-latency-\(name).csv"
            try? LoadReport.spectrumCSV(h).write(to: ctx.directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
            files.append(file)
        }
        var histograms = ""
        do {
            try LoadData.add(LoadReport.record(r, scenario: scenario), in: ctx.directory)
            histograms = " Whole distributions, per-second throughput, statuses and errors: \(LoadHistogramsDocument.fileName)."
        } catch {
            ctx.progress("\(error)")
        }
        ctx.addSection("## Load: \(scenario)\n\n```\n\(LoadReport.text(r, spectrum: false))```\n\nPercentile spectra (HdrHistogram CSV, ms): \(files.joined(separator: ", ")).\(histograms)\n")
        return r
    }
}

/// Suite kind `calc`: `edgemeter calc` as a scenario.
public enum CalcScenario {
    public static let declaration = KindDeclaration(
        kind: "calc",
        measures: { _ in "calculator request, hops" },
        parameters: [
            ParameterSpec("url", cli: "URL", .string, cliDefault: .string("http://127.0.0.1:50000/calculate"),
                          differBecause: "a suite scenario names its front end or starts one (`calculator: true`); the command line assumes `edgemeter serve calculator` on this host",
                          help: "The front end's /calculate URL."),
            ParameterSpec("calculator", cli: nil, .bool, default: .bool(false),
                          help: "Start the calculator all-in-one on loopback for the scenario (the command line probes a running one)."),
            ParameterSpec("expression", cli: "--expr", .string, help: "The expression.", validate: { v in
                guard case .string(let e) = v else { return nil }
                do { _ = try CalcParser.parse(e) } catch { return "{}: \(error)" }
                return nil
            }),
            ParameterSpec("expect", cli: "--expect", .number, help: "The answer to expect (default: evaluated locally)."),
        ] + HTTPRequestConfig.attempts + RoundsConfig.parameters,
        required: ["expression", "count"],
        checks: [HTTPRequestConfig.check, RoundsConfig.check])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { CalcConfig($0) }, runsInNode: true) { s, ctx in
        let c = CalcConfig(s)
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            let options = try c.options()
            try await ScenarioRounds.run(c.rounds, ctx: ctx) { ctx in
                let r = try await ScenarioLab.withHTTPSource(ctx.lab) {
                    await CalcProbe.run(target: target, options: options, runID: ctx.runID, scenario: s.name, sink: ctx.sink, stop: ctx.stop)
                }
                ctx.progress("\(r.succeeded)/\(r.attempts) answers correct")
            }
        }
    }

    /// Probe options for an expression: the expected answer (unless given) and the hop names come
    /// from evaluating the expression locally with the calculator's own parser.
    public static func options(expression: String, expect: Double?, schedule: Schedule, timeout: Duration) throws -> CalcProbeOptions {
        let tree = try CalcParser.parse(expression)
        var expected = expect
        if expected == nil {
            do { expected = try tree.evaluateLocally() } catch {
                throw CalculatorSetupError("\(expression) has no value (\(error)); the calc probe checks a numeric answer, so pick an expression that has one")
            }
        }
        var options = CalcProbeOptions(expression: expression, expected: expected, hops: tree.operations.map(\.rawValue), timeout: timeout)
        options.schedule = schedule
        return options
    }
}
