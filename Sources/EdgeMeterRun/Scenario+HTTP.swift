import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterSystem
import Calculator

/// Starts the calculator all-in-one (front end + four operation services) on 127.0.0.1 with free
/// ports for the length of one scenario (`calculator: true` in a suite), and resolves the
/// scenario's URL against it: no `url` means `/calculate` on the front end, a `url` that is only a
/// path (`/healthz`) is taken on the front end.
enum ScenarioCalculator {
    static func withTarget<T>(_ s: ValidatedScenario, ctx: ScenarioContext,
                              body: (HTTPTarget) async throws -> T) async throws -> T {
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
            return ("url", "give `url` (http://HOST:PORT/PATH) or set `calculator: true` to start the calculator on loopback")
        }
        return nil
    }

    static func headers(_ list: [String]?) throws -> [(String, String)] {
        try (list ?? []).map { line in
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw HTTPClientError.other("header \"\(line)\" is not `Name: value`")
            }
            return (String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                    String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
    }

    static func checkHeaders(_ s: ValidatedScenario) -> (key: String, message: String)? {
        do { _ = try headers(s.strings("headers")) } catch { return ("headers", "\(error)") }
        return nil
    }

    static let common: [String: ParameterType] = [
        "url": .string, "calculator": .bool, "method": .string, "headers": .stringList, "body": .string,
        "expect_status": .positiveInteger, "expect_body": .string, "timeout": .duration,
    ]
}

/// Suite kind `http`: `edgemeter http` as a scenario (one request at a time, new connection each).
public enum HTTPScenario {
    public static let schema = ScenarioSchema(
        kind: "http",
        parameters: ScenarioCalculator.common.merging(["count": .positiveInteger, "interval": .duration]) { a, _ in a },
        required: ["count"],
        check: { s in ScenarioCalculator.checkURL(s) ?? ScenarioCalculator.checkHeaders(s) })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            let method = s.string("method") ?? (s.bool("calculator") == true && s.string("url") == nil ? "POST" : "GET")
            let body = s.string("body") ?? (method == "POST" && s.bool("calculator") == true ? "(5+6)*2" : "")
            let options = HTTPProbeOptions(
                request: HTTPRequestSpec(method: method, path: target.path, headers: try ScenarioCalculator.headers(s.strings("headers")),
                                         body: Array(body.utf8)),
                count: s.int("count") ?? 10, interval: s.duration("interval") ?? .milliseconds(100),
                timeout: s.duration("timeout") ?? .seconds(5), expectedStatuses: s.int("expect_status").map { [$0] },
                expectedBody: s.string("expect_body"))
            let probe = HTTPProbe(options: options, attempts: HTTPAttempts(target: target, scope: SampleScope(runID: ctx.runID, scenario: s.name)))
            let totals = await probe.run(schedule: options.schedule, clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
            ctx.progress("\(totals[0].succeeded)/\(totals[0].attempts) requests succeeded")
        }
    }
}

/// Suite kind `load`: `edgemeter load` as a scenario. Writes aggregate samples (see
/// `LoadReport.samples`), the wrk2-style report as a summary.md section and the percentile
/// spectra as `<scenario>-latency-corrected.csv` / `-uncorrected.csv` in the run directory.
public enum LoadScenario {
    public static let schema = ScenarioSchema(
        kind: "load",
        parameters: ScenarioCalculator.common.merging([
            "connections": .positiveInteger, "rate": .positiveNumber, "duration": .duration, "requests": .positiveInteger,
            "warmup": .duration, "threads": .positiveInteger,
        ]) { a, _ in a },
        check: { s in
            if s.duration("duration") == nil && s.int("requests") == nil {
                return ("duration", "give `duration` or `requests` so the load is bounded")
            }
            if let d = s.duration("duration"), d > .seconds(3600) { return ("duration", "`duration` is limited to 1h") }
            return ScenarioCalculator.checkURL(s) ?? ScenarioCalculator.checkHeaders(s)
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            let method = s.string("method") ?? (s.bool("calculator") == true && s.string("url") == nil ? "POST" : "GET")
            let body = s.string("body") ?? (method == "POST" && s.bool("calculator") == true ? "5+6" : "")
            var o = LoadOptions(request: HTTPRequestSpec(method: method, path: target.path,
                                                         headers: try ScenarioCalculator.headers(s.strings("headers")), body: Array(body.utf8)),
                                connections: s.int("connections") ?? 10, rate: s.number("rate"), duration: s.duration("duration"),
                                requestCount: s.int("requests"), warmup: s.duration("warmup") ?? .zero,
                                timeout: s.duration("timeout") ?? .seconds(2))
            o.threads = s.int("threads") ?? min(2, ProcessInfo.processInfo.activeProcessorCount)
            o.expectedStatuses = s.int("expect_status").map { [$0] }
            o.expectedBody = s.string("expect_body")
            let r = try await record(target: target, options: o, scenario: s.name, ctx: ctx)
            ctx.progress("\(r.responses) responses, " + (r.measuredRate.map { String(format: "%.1f req/s", $0) } ?? r.noWindowReason ?? "n/a")
                         + ", \(r.totalErrors) errors, \(r.errors[.timeout] ?? 0) timeouts" + (r.openLoop ? ", \(r.unsent) unsent" : ""))
        }
    }

    /// Runs the load and records its samples, report section and spectrum files (shared with the CLI).
    /// Notices (the first connect failure) go to `ctx.progress`; `live` gets the figures once a second.
    public static func record(target: HTTPTarget, options: LoadOptions, scenario: String, ctx: ScenarioContext,
                              live: (@Sendable (LoadLiveFigures) -> Void)? = nil) async throws -> LoadResult {
        let started = Date()
        let progress = ctx.progress
        let r = try await LoadGenerator.run(target: target, options: options, stop: ctx.stop, progress: { progress($0) }, live: live)
        LoadReport.samples(r, runID: ctx.runID, scenario: scenario, timestamp: started).forEach(ctx.sink.record)
        let safe = String(scenario.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        var files: [String] = []
        for (name, h) in (r.openLoop ? [("corrected", r.corrected)] : []) + [("uncorrected", r.uncorrected)] {
            let file = "\(safe)-latency-\(name).csv"
            try? LoadReport.spectrumCSV(h).write(to: ctx.directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
            files.append(file)
        }
        ctx.addSection("## Load: \(scenario)\n\n```\n\(LoadReport.text(r, spectrum: false))```\n\nPercentile spectra (HdrHistogram CSV, ms): \(files.joined(separator: ", ")).\n")
        return r
    }
}

/// Suite kind `calc`: `edgemeter calc` as a scenario.
public enum CalcScenario {
    public static let schema = ScenarioSchema(
        kind: "calc",
        parameters: ["url": .string, "calculator": .bool, "expression": .string, "expect": .string, "count": .positiveInteger,
                     "interval": .duration, "timeout": .duration],
        required: ["expression", "count"],
        check: { s in
            if let e = s.string("expression") {
                do { _ = try CalcParser.parse(e) } catch { return ("expression", "\(error)") }
            }
            if let x = s.string("expect"), Double(x) == nil { return ("expect", "`expect` must be a number, got \"\(x)\"") }
            return ScenarioCalculator.checkURL(s)
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        try await ScenarioCalculator.withTarget(s, ctx: ctx) { target in
            let options = try CalcScenario.options(expression: s.string("expression") ?? "", expect: s.string("expect").flatMap(Double.init),
                                                   count: s.int("count") ?? 10, interval: s.duration("interval") ?? .milliseconds(100),
                                                   timeout: s.duration("timeout") ?? .seconds(5))
            let probe = CalcProbe(options: options, attempts: HTTPAttempts(target: target, scope: SampleScope(runID: ctx.runID, scenario: s.name)))
            let totals = await probe.run(schedule: options.schedule, clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
            ctx.progress("\(totals[0].succeeded)/\(totals[0].attempts) answers correct")
        }
    }

    /// Probe options for an expression: the expected answer (unless given) and the hop names come
    /// from evaluating the expression locally with the calculator's own parser.
    public static func options(expression: String, expect: Double?, count: Int, interval: Duration, timeout: Duration) throws -> CalcProbeOptions {
        let tree = try CalcParser.parse(expression)
        var expected = expect
        if expected == nil {
            do { expected = try tree.evaluateLocally() } catch {
                throw CalculatorSetupError("\(expression) has no value (\(error)); the calc probe checks a numeric answer, so pick an expression that has one")
            }
        }
        return CalcProbeOptions(expression: expression, expected: expected, hops: tree.operations.map(\.rawValue), count: count,
                                interval: interval, timeout: timeout)
    }
}
