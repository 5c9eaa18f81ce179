import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// What one migration scenario runs: `edgemeter migrate-demo` with these options.
public struct MigrationConfig: Sendable, Equatable {
    /// The lab's name (prefixes every object it creates: `edgemeter-<name>-node_1`, ...).
    public var labName: String
    /// The lab's /24 as `10.X.Y` (the host is .254).
    public var subnet: String
    /// The vehicle client's requests per second through the client path (the interruption's resolution is 1/rate).
    public var rate: Double
    /// 0: the issue's scenario (two moves, an alert, best-is-active, requirement met); N: N swap moves.
    public var moves: Int
    public var whenNoneMeets: String
    /// The longest wait for one step (a move, an alert).
    public var stepTimeout: Duration
    /// The image built from this binary for the nodes and the app.
    public var image: String
    /// The longest the whole experiment may take (lab up to lab down) before it is killed.
    public var timeout: Duration

    public init(_ s: ValidatedScenario) {
        labName = s.string("lab_name") ?? "lab-mig"
        subnet = s.string("subnet") ?? "10.231.15"
        rate = s.number("rate") ?? 100
        moves = s.int("moves") ?? 0
        whenNoneMeets = s.string("when_none_meets") ?? "move-to-best"
        stepTimeout = s.duration("step_timeout") ?? .seconds(60)
        image = s.string("image") ?? "edgemeter-migdemo:latest"
        timeout = s.duration("timeout") ?? .seconds(300)
    }

    /// The `edgemeter migrate-demo` arguments (after the binary).
    public func arguments(out: String) -> [String] {
        ["migrate-demo", "--out", out, "--name", labName, "--subnet", subnet, "--rate", KindDeclaration.describe(.number(rate)),
         "--moves", "\(moves)", "--when-none-meets", whenNoneMeets, "--step-timeout", KindDeclaration.describe(.duration(stepTimeout)),
         "--image", image]
    }
}

/// The `migration` kind: the delay-driven migration experiment of `edgemeter migrate-demo`
/// (docs/migration.md "End to end") as a suite scenario. It runs this binary's `migrate-demo`
/// into `migration-<scenario>/` of the run directory (lab up with container nodes at 5/30/80 ms
/// each way, controller with the docker executor, the vehicle client through the switchable proxy,
/// the steps, lab down), then:
/// - copies the vehicle's per-request CSV to `timeline-<scenario>.csv`, which report.html and
///   report.md draw as the migration timeline;
/// - records samples: `migration/vehicle latency/request` (ms, from the request's due time to its
///   last byte, CO-corrected, one per request; failed requests as errors) and per move
///   `migration/<from>→<to> interruption/move` and `longest_silence/move` (ms, from moves.csv);
/// - adds migrate-demo's report (the per-move timeline table) to summary.md.
/// Sample timestamps are the scenario's start plus the request's due time (the demo keeps
/// monotonic times). Not run without root or dockerd; failed when a request failed or a step did
/// not happen (migrate-demo's exit status 1).
public enum MigrationScenario {
    static let labNamePattern = "^[a-z0-9][a-z0-9-]{0,11}$"

    public static let declaration = KindDeclaration(
        kind: "migration",
        measures: { _ in "migration: client delay, interruption" },
        parameters: [
            ParameterSpec("lab_name", cli: "--name", .string, default: .string("lab-mig"), cliDefault: .string("mig-ec"), differBecause: "the lab suite's experiment has its own lab name and /24, so it never meets a `migrate-demo` run with the defaults",
                          help: "The experiment's lab name (1-12 lowercase letters, digits or '-'; prefixes the containers and namespaces it creates).",
                          validate: { v in
                              guard case .string(let n) = v, n.range(of: labNamePattern, options: .regularExpression) == nil else { return nil }
                              return "{} must be 1-12 lowercase letters, digits or '-', got \"\(n)\""
                          }),
            ParameterSpec("subnet", cli: "--subnet", .string, default: .string("10.231.15"), cliDefault: .string("10.231.13"), differBecause: "the lab suite's experiment has its own lab name and /24, so it never meets a `migrate-demo` run with the defaults",
                          help: "The lab's /24 as 10.X.Y (a free /24 of 10/8; the host is .254).",
                          validate: { v in
                              guard case .string(let t) = v else { return nil }
                              let p = t.split(separator: ".", omittingEmptySubsequences: false)
                              if p.count == 3, p[0] == "10", p.dropFirst().allSatisfy({ Int($0).map { (0...255).contains($0) } ?? false }) { return nil }
                              return "{} must be 10.X.Y (a free /24 of 10/8), got \"\(t)\""
                          }),
            ParameterSpec("rate", cli: "--rate", .positiveNumber, default: .number(100), unit: "requests/s",
                          help: "The vehicle client's rate through the client path (10-2000; the interruption's resolution is 1/rate).",
                          validate: { v in
                              guard case .number(let r) = v, r < 10 || r > 2000 else { return nil }
                              return "{} must be 10-2000 requests/s, got \(KindDeclaration.describe(v))"
                          }),
            ParameterSpec("moves", cli: "--moves", .nonNegativeInteger, default: .integer(0),
                          help: "0: the end-to-end scenario (move, alert move, best is active, requirement met); N: N swap moves (at most 1000).",
                          validate: ValueCheck.atMost(1000, "")),
            ParameterSpec("when_none_meets", cli: "--when-none-meets", .oneOf(["move-to-best", "alert-only"]), default: .string("move-to-best"),
                          help: "No node meets the requirement: move to the best node, or only alert."),
            ParameterSpec("step_timeout", cli: "--step-timeout", .duration, default: .duration(.seconds(60)),
                          help: "The longest wait for one step (a move, an alert).", validate: ValueCheck.atLeast(.seconds(5))),
            ParameterSpec("image", cli: "--image", .string, default: .string("edgemeter-migdemo:latest"),
                          help: "The image built from this binary for the nodes and the app."),
            ParameterSpec("timeout", cli: nil, .duration, default: .duration(.seconds(300)),
                          help: "The longest the whole experiment may take before it is stopped (then failed).",
                          validate: ValueCheck.atLeast(.seconds(30))),
        ])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { MigrationConfig($0) }) { s, ctx in
        try await run(MigrationConfig(s), scenario: s.name, ctx: ctx)
    }

    /// The experiment's directory inside the run directory.
    public static func directoryName(_ scenario: String) -> String { "migration-" + FileName.safe(scenario) }
    /// The timeline CSV report.html draws (the vehicle's CSV, copied to the run directory's top).
    public static func timelineName(_ scenario: String) -> String { "timeline-" + FileName.safe(scenario) + ".csv" }

    static func run(_ c: MigrationConfig, scenario: String, ctx: ScenarioContext, binary: String = SuiteRunner.currentExecutable()) async throws {
        guard getuid() == 0 else {
            throw ScenarioNotRun("the migration experiment builds a lab and containers: run as root")
        }
        guard FileManager.default.fileExists(atPath: "/var/run/docker.sock") else {
            throw ScenarioNotRun("dockerd is not running (no /var/run/docker.sock): start it with scripts/setup-engines.sh")
        }
        let out = ctx.directory.appendingPathComponent(directoryName(scenario))
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let started = Date()
        ctx.progress("edgemeter \(c.arguments(out: out.path).joined(separator: " "))")
        let r = try await Command.run([binary] + c.arguments(out: out.path), timeout: c.timeout)
        try? (r.stdout + (r.stderr.isEmpty ? "" : "\n--- stderr ---\n" + r.stderr)).write(to: out.appendingPathComponent("migrate-demo.log"),
                                                                                     atomically: true, encoding: .utf8)
        let dirName = directoryName(scenario)
        let lastLine = r.stderr.split(separator: "\n").last.map(String.init) ?? r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        if r.status == 2 && !r.timedOut {
            // migrate-demo's set-up errors (dockerd, image, lab up) say what to do.
            throw ScenarioNotRun("migrate-demo could not set up: \(lastLine.replacingOccurrences(of: "edgemeter: ", with: "")) (\(dirName)/migrate-demo.log)")
        }
        let fm = FileManager.default
        let vehicle = out.appendingPathComponent("vehicle.csv")
        let movesURL = out.appendingPathComponent("moves.csv")
        guard fm.fileExists(atPath: vehicle.path), fm.fileExists(atPath: movesURL.path) else {
            throw MigrationFailure("migrate-demo exited \(r.status)\(r.timedOut ? " after the \(KindDeclaration.describe(.duration(c.timeout))) timeout" : "") without its timeline: \(lastLine) (see \(dirName)/migrate-demo.log and controller.log)")
        }
        let vehicleText = try String(contentsOf: vehicle, encoding: .utf8)
        try vehicleText.write(to: ctx.directory.appendingPathComponent(timelineName(scenario)), atomically: true, encoding: .utf8)
        let samples = try samplesFrom(vehicleCSV: vehicleText, movesCSV: String(contentsOf: movesURL, encoding: .utf8),
                                      runID: ctx.runID, scenario: scenario, start: started)
        for s in samples { ctx.sink.record(s) }
        if let report = try? String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8) {
            ctx.addSection(section(report, scenario: scenario, directory: dirName))
        }
        let requests = samples.filter { $0.metric == "latency" }
        let moves = samples.filter { $0.metric == "interruption" }
        ctx.progress("\(moves.count) move(s), \(requests.count) requests, \(requests.filter { $0.status != .ok }.count) failed; exit \(r.status)")
        if r.status != 0 {
            throw MigrationFailure("migrate-demo exited \(r.status)\(r.timedOut ? " (killed after the \(KindDeclaration.describe(.duration(c.timeout))) timeout)" : ""): a request failed or a step did not happen; see \(dirName)/controller.log and report.md")
        }
    }

    /// The samples of one experiment from migrate-demo's vehicle.csv and moves.csv.
    public static func samplesFrom(vehicleCSV: String, movesCSV: String, runID: String, scenario: String, start: Date) throws -> [Sample] {
        var out: [Sample] = []
        let vrows = try CSV.parse(vehicleCSV)
        guard let vh = vrows.first, let due = vh.firstIndex(of: "due_ms"), let delay = vh.firstIndex(of: "delay_ms"),
              let status = vh.firstIndex(of: "status"), let node = vh.firstIndex(of: "node"), let failure = vh.firstIndex(of: "failure") else {
            throw MigrationFailure("vehicle.csv has no header `sequence,due_ms,...,delay_ms,status,node,failure`")
        }
        for row in vrows.dropFirst() where row.count == vh.count {
            let t = start.addingTimeInterval((Double(row[due]) ?? 0) / 1000)
            let why = row[failure]
            let ok = why.isEmpty && !row[status].isEmpty
            var labels = ["node": row[node]]
            if !row[status].isEmpty { labels["http_status"] = row[status] }
            out.append(Sample(runID: runID, scenario: scenario, probe: "migration", target: "vehicle", metric: "latency", phase: "request",
                              value: Double(row[delay]), unit: "ms", timestamp: t, status: ok ? .ok : .error,
                              reason: ok ? "" : (why.isEmpty ? "no HTTP status" : why), labels: labels))
        }
        let mrows = try CSV.parse(movesCSV)
        guard let mh = mrows.first, let from = mh.firstIndex(of: "from"), let to = mh.firstIndex(of: "to"), let outcome = mh.firstIndex(of: "outcome"),
              let interruption = mh.firstIndex(of: "interruption_ms"), let silence = mh.firstIndex(of: "longest_silence_ms"),
              let kindIndex = mh.firstIndex(of: "decision_kind") else {
            throw MigrationFailure("moves.csv has no header `move,from,to,outcome,...,interruption_ms,longest_silence_ms,...`")
        }
        for row in mrows.dropFirst() where row.count == mh.count {
            let target = "\(row[from])→\(row[to])"
            for (metric, i) in [("interruption", interruption), ("longest_silence", silence)] {
                let v = Double(row[i])
                let ok = v != nil && row[outcome] == "completed"
                out.append(Sample(runID: runID, scenario: scenario, probe: "migration", target: target, metric: metric, phase: "move",
                                  value: v, unit: "ms", timestamp: Date(), status: ok ? .ok : .error,
                                  reason: ok ? "" : "move \(row[outcome])", labels: ["decision": row[kindIndex]]))
            }
        }
        return out
    }

    /// migrate-demo's report.md as a summary.md section (its title one level down).
    static func section(_ report: String, scenario: String, directory: String) -> String {
        var body = report
        if body.hasPrefix("# ") { body = String(body.drop { $0 != "\n" }).trimmingCharacters(in: .newlines) + "\n" }
        return "## Migration: \(scenario)\n\n" + body + "\nFiles: \(directory)/ (moves.csv, decisions.csv, delay-windows.csv, vehicle.csv, events.csv, controller.log); "
            + "the timeline chart in report.html is drawn from \(timelineName(scenario)).\n"
    }
}

/// The migration experiment ran but did not do what it must (exit 1 of migrate-demo, no timeline).
public struct MigrationFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
