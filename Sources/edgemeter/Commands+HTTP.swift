import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterRun
import Calculator

struct ServeCalculatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calculator",
        abstract: "The lab's 2-tier calculator: a front end calling sum/sub/mul/div services over HTTP (Hummingbird 2).",
        discussion: """
        The front end answers POST /calculate with the expression as plain text, (5+6)*2, or as JSON, \
        {"expression": "(5+6)*2"}. It calls the matching operation service once per binary operation \
        (GET /sum?a=5&b=6 → 11, over keep-alive connection pools) and answers JSON with the result and \
        per-call timings, plus a Server-Timing header with one entry per call. Errors: 400 malformed \
        (with the position), 405 wrong method, 413 body over 4 KiB, 422 division by zero, 502 an \
        operation service down (named), 504 an operation service slower than --downstream-timeout. \
        Every service answers GET /healthz. Stops on Ctrl-C or SIGTERM.

        Operation service addresses: --sum/--sub/--mul/--div HOST:PORT, else the environment variables \
        EDGEMETER_CALC_SUM, _SUB, _MUL, _DIV, else 127.0.0.1:50001-50004.

        Examples:
          edgemeter serve calculator --role all
          edgemeter serve calculator --role sum --host 0.0.0.0
          EDGEMETER_CALC_SUM=10.0.0.11:50001 edgemeter serve calculator --role front
          edgemeter serve calculator --role front --sum 10.0.0.11:50001
          curl -s -d '(5+6)*2' http://127.0.0.1:50000/calculate
        """
    )

    @Option(help: "front, sum, sub, mul, div, or all (the five services in this process).")
    var role: String = "all"

    @Option(help: "Address to listen on (0.0.0.0 to accept connections from other hosts).")
    var host: String = "127.0.0.1"

    @Option(help: "Port (default: 50000 for front and all, 50001-50004 for sum, sub, mul, div). With --role all, the operation services take the next four ports; 0 picks free ports.")
    var port: Int?

    @Option(help: ArgumentHelp("The sum service's HOST:PORT (front end).", valueName: "HOST:PORT")) var sum: String?
    @Option(help: ArgumentHelp("The sub service's HOST:PORT (front end).", valueName: "HOST:PORT")) var sub: String?
    @Option(help: ArgumentHelp("The mul service's HOST:PORT (front end).", valueName: "HOST:PORT")) var mul: String?
    @Option(help: ArgumentHelp("The div service's HOST:PORT (front end).", valueName: "HOST:PORT")) var div: String?

    @Option(name: .long, help: ArgumentHelp("Longest wait for one operation service call before answering 504.", valueName: "DURATION"))
    var downstreamTimeout: String = "2s"

    @Option(name: .long, help: ArgumentHelp("Extra time each operation service spends per request (emulates a slower service).", valueName: "DURATION"))
    var operationDelay: String = "0"

    func validate() throws {
        guard let r = CalculatorRole(rawValue: role) else {
            throw ValidationError("--role must be one of front, sum, sub, mul, div, all; got \"\(role)\"")
        }
        if let p = port, !(0...65535).contains(p) { throw ValidationError("--port must be 0-65535, got \(p)") }
        if r == .all, let p = port, p != 0, p > 65531 { throw ValidationError("--role all needs --port and the next four ports; \(p) is too high") }
        _ = try durationArgument(downstreamTimeout, flag: "--downstream-timeout")
        _ = try durationArgument(operationDelay, flag: "--operation-delay")
    }

    func run() async throws {
        let r = CalculatorRole(rawValue: role)!
        var config = CalculatorConfig()
        do {
            config.endpoints = try CalculatorConfig.endpoints(flags: [.sum: sum, .sub: sub, .mul: mul, .div: div].compactMapValues { $0 })
        } catch {
            throw usageError("\(error)")
        }
        config.downstreamTimeout = try durationArgument(downstreamTimeout, flag: "--downstream-timeout")
        config.operationDelay = try durationArgument(operationDelay, flag: "--operation-delay")
        var services: [RunningCalculatorService]
        do {
            if r == .all {
                let base = port ?? 50000
                var ops: [CalcOperation: Int] = [:]
                for (i, op) in CalcOperation.allCases.enumerated() { ops[op] = base == 0 ? 0 : base + 1 + i }
                services = try await CalculatorServer.startAll(host: host, frontPort: base, operationPorts: ops, config: config)
            } else {
                services = [try await CalculatorServer.start(role: r, host: host, port: port ?? r.defaultPort, config: config)]
            }
        } catch {
            throw usageError("\(error)")
        }
        for s in services {
            var line = "calculator \(s.role.rawValue) listening on http://\(s.endpoint)"
            if s.role == .front {
                line += "/calculate (operations: " + CalcOperation.allCases.map { op in
                    "\(op.rawValue) \(r == .all ? services.first { $0.role.rawValue == op.rawValue }!.endpoint : config.endpoints[op]!)"
                }.joined(separator: ", ") + ")"
            }
            print(line)
        }
        fflush(nil)
        let (signals, trap) = SignalTrap.stream()
        for await name in signals {
            note("edgemeter: \(name) received, stopping the calculator")
            break
        }
        for s in services { await s.stop() }
        trap.cancel()
    }
}

private let http = HTTPScenario.declaration
private let load = LoadScenario.declaration
private let calc = CalcScenario.declaration

/// Request options shared by `http` and `load` (one declaration: `HTTPRequestConfig.parameters`).
struct HTTPRequestOptions: ParsableArguments {
    @Option(http, "method") var method: String?
    @Option(http, "headers") var header: [String] = []
    @Option(http, "body") var body: String?
    @Option(http, "expect_status") var expectStatus: [String] = []
    @Option(http, "expect_body") var expectBody: String?

    func parameters(url: String?) -> RawParameters {
        var r = RawParameters()
        r.set(["url": url, "method": method, "body": body, "expect_body": expectBody])
        r.list("headers", header)
        r.list("expect_status", expectStatus)
        return r
    }
}

func parseTarget(_ url: String?) throws -> HTTPTarget {
    do { return try HTTPTarget(url: url ?? "") } catch { throw ValidationError("\(error)") }
}

struct HTTPCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(http,
        abstract: "HTTP request latency split into resolve, connect, first_byte and total (one request at a time).",
        discussion: """
        Each attempt opens a new connection (as blackbox_exporter does), so connect is measured every \
        time. Phases: resolve (getaddrinfo), connect (connect() until established), first_byte (request \
        handed to the socket until the first response byte), total (start of resolve until the last \
        body byte). A status or body that does not match the expectations is a failed sample with \
        the reason. Exit status: 0 when at least one attempt succeeded, 1 when none did, 2 for usage errors, 130 after Ctrl-C.

        Examples:
          edgemeter http -c 10 http://127.0.0.1:50000/healthz
          edgemeter http -c 20 --body '(5+6)*2' http://127.0.0.1:50000/calculate
          edgemeter http --expect-body '"result":22' -c 5 --body '(5+6)*2' URL
        """
    )

    @Argument(help: http.help("url"))
    var url: String

    @OptionGroup var attempts: AttemptOptions

    @OptionGroup var request: HTTPRequestOptions
    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { http }

    var parameters: RawParameters { attempts.add(to: request.parameters(url: url)) }

    static func resolve(_ s: ValidatedScenario) -> HTTPConfig { HTTPConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        let target = try parseTarget(c.request.url)
        let options = c.options(target: target)
        try await measureAttempts("http", target: target, verbose: attempts.verbose, run: run, title: "\(target)", width: 10,
                                  phases: { s in HTTPProbe.phases.compactMap { phase in s.first { $0.key.phase == phase } } }) { ctx, progress, fullBody in
            try await ScenarioRounds.run(c.rounds, ctx: ctx) { ctx in
                _ = await HTTPProbe.run(target: target, options: options, runID: ctx.runID, scenario: "http", sink: ctx.sink,
                                        stop: ctx.stop, progress: progress, fullBody: fullBody)
            }
        }
    }
}

struct LoadCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(load,
        abstract: "HTTP load with HDR latency histograms: closed loop (wrk) or fixed rate with coordinated-omission correction (wrk2).",
        discussion: """
        Closed loop (default): each of --connections keep-alive connections sends its next request when \
        the last one completed. Open loop (--rate R): requests go out on a fixed schedule of R per \
        second spread over the connections, and latency is measured from each request's intended send \
        time (wrk2's correction), so a stalled server shows in the percentiles; the uncorrected figures \
        (from the actual send time) are printed too. Requests whose (intended) send time falls in \
        --warmup are not recorded. Errors are counted by kind: connect, timeout, reset, status, body.

        The run directory gets aggregate samples (percentiles, mean, max, req/s per second, status and \
        error counts) and the percentile spectra as CSV: memory and rows do not grow with the request \
        count. Exit status: 0 when a response met the expectations, 1 when none did, 2 for usage errors, 130 after Ctrl-C.

        Examples:
          edgemeter load -c 32 -d 10s http://127.0.0.1:8080/
          edgemeter load -c 8 -R 2000 -d 30s --warmup 5s --body '5+6' URL
          edgemeter load -c 4 -n 100000 --expect-status 200 URL
        """
    )

    @Argument(help: load.help("url"))
    var url: String

    @Option(load, "connections", parsing: .unconditional) var connections: String?
    @Option(load, "duration", parsing: .unconditional) var duration: String?
    @Option(load, "requests", parsing: .unconditional) var requests: String?
    @Option(load, "rate", parsing: .unconditional) var rate: String?
    @Option(load, "warmup", parsing: .unconditional) var warmup: String?
    @Option(load, "threads", parsing: .unconditional) var threads: String?
    @Option(load, "timeout", parsing: .unconditional) var timeout: String?

    @Flag(name: .long, help: "Leave out the detailed percentile spectrum from the printed report.")
    var noSpectrum = false

    @OptionGroup var request: HTTPRequestOptions
    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { load }

    var parameters: RawParameters {
        request.parameters(url: url).setting(["connections": connections, "duration": duration, "requests": requests, "rate": rate,
                                              "warmup": warmup, "threads": threads, "timeout": timeout])
    }

    static func resolve(_ s: ValidatedScenario) -> LoadConfig { LoadConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        let target = try parseTarget(c.request.url)
        let o = c.options(target: target)
        let json = run.json
        let spectrum = !noSpectrum
        // One line a second on stderr while the load runs (not with --json).
        var live: (@Sendable (LoadLiveFigures) -> Void)?
        if !json { live = { @Sendable f in note(liveLine(f)) } }
        let showLive = live
        let result = try await runMeasured(name: "load", options: run) { ctx, _ in
            let mode = o.rate.map { String(format: "at %g requests/s", $0) } ?? "closed loop"
            let bound = o.duration.map { "\(String(format: "%g s", $0.seconds))" + (duration == nil && requests == nil ? " (the default; -d or -n to change)" : "") }
                ?? "\(o.requestCount ?? 0) requests"
            note("load \(target): \(o.connections) connections, \(o.threads) threads, \(mode), \(bound)" +
                 (o.warmup > .zero ? " after \(String(format: "%g s", o.warmup.seconds)) warm-up" : ""))
            let r: LoadResult
            do {
                r = try await LoadScenario.record(target: target, options: o, scenario: "load", ctx: ctx, live: showLive)
            } catch let e as HTTPClientError {
                throw usageError("\(e)")
            }
            if !json { print(LoadReport.text(r, spectrum: spectrum)); fflush(nil) }
            if r.succeeded == 0 { note(Self.nothingSucceeded(r, o)) }
        }
        try conclude(result)
    }

    /// Why a load run exits 1: no response at all, or none that met the expectations.
    static func nothingSucceeded(_ r: LoadResult, _ o: LoadOptions) -> String {
        if r.responses == 0 {
            return "edgemeter: no response was received" + (r.stopReason.map { ": \($0)" } ?? "")
        }
        let statuses: String = o.expectedStatuses.map { $0.map { String($0) }.joined(separator: " or ") } ?? "2xx or 3xx"
        let body: String = o.expectedBody.map { ", body containing \"\($0)\"" } ?? ""
        return "edgemeter: none of the \(r.responses) responses met the expectations (status \(statuses)\(body))"
    }
}

struct CalcCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(calc,
        abstract: "Calculator preset: POST an expression, check the numeric answer, record per-hop timings from Server-Timing.",
        discussion: """
        Phases: resolve, connect, first_byte, total (as `edgemeter http`), and one phase per downstream \
        call, hop1_sum, hop2_mul, ..., from the front end's Server-Timing header (its own measurement of \
        each operation service call). The expected answer is computed locally unless --expect is given.

        Examples:
          edgemeter serve calculator --role all &
          edgemeter calc --expr '(5+6)*2' -c 20 -i 100ms
          edgemeter calc http://10.0.0.10:50000/calculate --expr '1.5*-4' --expect -6
        """
    )

    @Argument(help: calc.help("url"))
    var url: String?

    @Option(calc, "expression") var expr: String?
    @Option(calc, "expect", parsing: .unconditional) var expect: String?

    @OptionGroup var attempts: AttemptOptions

    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { calc }

    var parameters: RawParameters { attempts.add(to: RawParameters().setting(["url": url, "expression": expr, "expect": expect])) }

    static func resolve(_ s: ValidatedScenario) -> CalcConfig { CalcConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        let target = try parseTarget(c.url)
        let options: CalcProbeOptions
        do {
            options = try c.options()
        } catch {
            throw usageError("\(error)")
        }
        let title = "\(c.expression) at \(target) (expected \(options.expected.map { "\($0)" } ?? "?"))"
        try await measureAttempts("calc", target: target, verbose: attempts.verbose, run: run, title: title, width: 12,
                                  phases: { $0 }) { ctx, progress, fullBody in
            try await ScenarioRounds.run(c.rounds, ctx: ctx) { ctx in
                _ = await CalcProbe.run(target: target, options: options, runID: ctx.runID, scenario: "calc", sink: ctx.sink,
                                        stop: ctx.stop, progress: progress, fullBody: fullBody)
            }
        }
    }
}


/// The attempt options `http` and `calc` share: how many, how often, how long to wait, how much to print.
struct AttemptOptions: ParsableArguments {
    @OptionGroup var timing: TimingOptions<HTTPCommand>

    @Flag(name: .shortAndLong, help: "Print the whole response body of a failed attempt.")
    var verbose = false

    func add(to r: RawParameters) -> RawParameters { timing.add(to: r) }
}

/// Runs `http` or `calc`: a line per attempt on stdout (not with --json), then `--- TITLE ---` and
/// the phase lines of the summaries `phases` picks, then the exit status.
func measureAttempts(_ name: String, target: HTTPTarget, verbose: Bool, run: RunOptions, title: String, width: Int,
                     phases: ([Summary]) -> [Summary],
                     probe: (ScenarioContext, (@Sendable (String) -> Void)?, Bool) async throws -> Void) async throws {
    let printLines = !run.json
    let progress = printLines ? linePrinter(prefix: target.description) : nil
    let result = try await runMeasured(name: name, options: run) { ctx, _ in
        try await probe(ctx, progress, verbose)
    }
    if printLines {
        print("\n--- \(title) ---")
        printPhaseLines(phases(result.summaries), width: width)
    }
    try conclude(result)
}

/// The closing lines of `http` and `calc`: one line per phase, `ok N/M` and its figures in ms.
func printPhaseLines(_ summaries: [Summary], width: Int) {
    for s in summaries {
        let name = s.key.phase.padding(toLength: width, withPad: " ", startingAt: 0)
        if s.received == 0 { print("\(name) ok 0/\(s.sent)"); continue }
        print("\(name) ok \(s.received)/\(s.sent)  min/avg/max = \(f3(s.min))/\(f3(s.mean))/\(f3(s.max)) ms  p50/p99 = \(f3(s.p50))/\(f3(s.p99)) ms")
    }
}

/// Prints each progress line as `PREFIX: line` on stdout, flushed at once (for pipes).
func linePrinter(prefix: String) -> @Sendable (String) -> Void {
    { line in
        Swift.print(prefix + ": " + line)
        fflush(nil)
    }
}


/// `load:   3 s     9817.0 req/s  2 errors (connect 2)`: the once-a-second progress line of `load`.
func liveLine(_ f: LoadLiveFigures) -> String {
    var errors = "\(f.errors) errors"
    if f.errors > 0 {
        let kinds: [String] = f.errorsByKind.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
        errors += " (" + kinds.joined(separator: ", ") + ")"
    }
    let head = String(format: "load: %3.0f s  %9.1f req/s  ", f.elapsedSeconds, f.responsesPerSecond)
    return head + errors + (f.inWarmup ? "  (warm-up)" : "")
}
