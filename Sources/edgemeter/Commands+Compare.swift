import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterHistory

/// `edgemeter compare A B`: two runs, metric by metric, with honest statistics (Compare.swift).
///
/// Exit status, package-benchmark's convention so CI can gate on it: 0 no significant change,
/// 2 at least one regression, 4 improvements only; 64 (EX_USAGE) for a usage error — unlike other
/// edgemeter commands, which exit 2 for usage errors, since 2 means "regression" here; 1 when a
/// run cannot be read (damaged samples.csv, unreadable history).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two runs (or two groups of one run) metric by metric, with a verdict.",
        discussion: """
        A and B are run directories, run ids or baseline names from the history (`edgemeter runs \
        list`, `edgemeter baseline set`), or `latest`. For every metric and phase in both: the \
        medians, median(B)/median(A) with a bootstrap 95% CI, the Mann-Whitney U p-value, Cliff's \
        delta and a verdict that knows the metric's polarity (latency: lower is better; \
        throughput: higher). A change needs p < alpha, a ratio CI that excludes 1 and a move beyond \
        a tolerance (default: median 2%, p90 5%; set more with --threshold). Before judging, A is \
        split in time order into halves compared by the same rule (the A/A check): where A's own \
        halves differ, the verdict is "too noisy to tell".

        With --by LABEL, one run is split into two groups by a label (backend, node), or by target \
        or scenario, and the groups are compared.

        Exit status: 0 no significant change, 2 a regression, 4 improvements only, 64 usage error, \
        1 a run could not be read.

        Examples:
          edgemeter compare reports/run-a reports/run-b
          edgemeter compare nightly latest --threshold rtt:p50=5%
          edgemeter compare latest --by backend
          edgemeter compare A B --out cmp/ --threshold '*:p99=0.5'
        """
    )

    @Argument(help: "Run A (the baseline) and run B; with --by, one run.")
    var runs: [String] = []

    @Option(name: .long, help: ArgumentHelp("Compare two groups of one run: a label (backend, node, ...), target or scenario.", valueName: "LABEL"))
    var by: String?

    @Option(name: .long, help: ArgumentHelp("With --by: the two values to compare, A first (default: the only two the run has).", valueName: "A,B"))
    var groups: String?

    @Option(name: .long, help: ArgumentHelp("A tolerance SCOPE:pNN=VALUE: VALUE 5% relative or 0.2 absolute (metric's unit); SCOPE * / metric / metric/phase. Repeatable.", valueName: "SPEC"))
    var threshold: [String] = []

    @Option(name: .long, help: ArgumentHelp("Significance level of the tests.", valueName: "P"))
    var alpha: Double = 0.05

    @Option(name: .long, help: ArgumentHelp("Write compare.md and compare.csv into this directory.", valueName: "DIR"))
    var out: String?

    @Flag(name: .long, help: "Print CSV on stdout instead of Markdown.")
    var csv = false

    @Option(name: .long, help: ArgumentHelp("The history database that resolves run ids and baselines (default: see `edgemeter runs --help`).", valueName: "PATH"))
    var db: String?

    /// A usage error of compare: exit status 64, since 2 means "regression".
    static func usage(_ message: String) -> ExitCode {
        note("edgemeter: " + message)
        return ExitCode(64)
    }

    /// Whether this process runs `compare` (the root turns argument errors into 64 for it).
    static var isInvoked: Bool { CommandLine.arguments.dropFirst().first == "compare" }

    func run() throws {
        var options = CompareOptions()
        options.alpha = alpha
        guard alpha > 0 && alpha < 1 else { throw Self.usage("--alpha must be between 0 and 1 (e.g. 0.05), got \(alpha)") }
        do {
            options.thresholds = CompareThreshold.merged(try threshold.map(CompareThreshold.parse))
        } catch { throw Self.usage("\(error)") }

        let resolver = RunResolver(dbPath: HistoryHook.path(db))
        let result: CompareResult
        if let by {
            guard runs.count == 1 else {
                throw Self.usage("--by \(by) compares two groups inside one run: give exactly one run (got \(runs.count)), e.g. `edgemeter compare latest --by \(by)`")
            }
            let (label, samples) = try resolver.load(runs[0])
            result = try compareGroups(samples, runLabel: label, by: by, options: options)
        } else {
            guard runs.count == 2 else {
                throw Self.usage("give two runs, A (the baseline) then B (got \(runs.count)); or one run with --by LABEL")
            }
            if groups != nil { throw Self.usage("--groups goes with --by LABEL") }
            let (labelA, a) = try resolver.load(runs[0])
            let (labelB, b) = try resolver.load(runs[1])
            result = Compare.run(a: CompareSeries.group(a), b: CompareSeries.group(b), labelA: labelA, labelB: labelB, options: options)
        }
        let markdown = CompareRender.markdown(result, options: options)
        if let out {
            let dir = URL(fileURLWithPath: out)
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try markdown.write(to: dir.appendingPathComponent("compare.md"), atomically: true, encoding: .utf8)
                try CompareRender.csv(result).write(to: dir.appendingPathComponent("compare.csv"), atomically: true, encoding: .utf8)
            } catch {
                note("edgemeter: cannot write compare.md/compare.csv into \(dir.path): \(error.localizedDescription); choose a writable --out directory")
                throw ExitCode(1)
            }
        }
        print(csv ? CompareRender.csv(result) : markdown, terminator: "")
        fflush(nil)
        if out != nil { note("compare: \(out!)/compare.md, compare.csv") }
        if result.rows.isEmpty {
            note("edgemeter: no metric and phase is in both A and B: nothing was compared (see \"Only in A/B\" above)")
        }
        let status = result.exitStatus
        if status != 0 { throw ExitCode(status) }
    }

    /// Splits one run's samples into the two groups of `--by` and compares them.
    func compareGroups(_ samples: [Sample], runLabel: String, by: String, options: CompareOptions) throws -> CompareResult {
        let field: (Sample) -> String?
        switch by {
        case "target": field = { $0.target }
        case "scenario": field = { $0.scenario }
        case "probe": field = { $0.probe }
        default: field = { $0.labels[by] }
        }
        var values: [String] = []
        for s in samples { if let v = field(s), !values.contains(v) { values.append(v) } }
        let chosen: [String]
        if let groups {
            chosen = groups.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard chosen.count == 2, !chosen[0].isEmpty, !chosen[1].isEmpty else {
                throw Self.usage("--groups \"\(groups)\": give two values, A first, e.g. --groups docker,qemu")
            }
            for v in chosen where !values.contains(v) {
                throw Self.usage("\(runLabel) has no sample with \(by)=\(v); its values are: \(values.isEmpty ? "none" : values.joined(separator: ", "))")
            }
        } else {
            guard values.count == 2 else {
                if values.isEmpty {
                    throw Self.usage("no sample of \(runLabel) has the label \(by): use a label of its samples.csv (labels column), target or scenario")
                }
                throw Self.usage("\(runLabel) has \(values.count) values of \(by) (\(values.joined(separator: ", "))): choose two with --groups A,B")
            }
            chosen = values
        }
        let a = samples.filter { field($0) == chosen[0] }, b = samples.filter { field($0) == chosen[1] }
        // Group keys must line up across the groups: the field itself differs by construction, and
        // when the two groups share no target (startup: target = backend; node_1 at 10.0.0.1 vs
        // node_2 at 10.0.0.2) the target is what the label names, so it is not matched on.
        var dropping: String? = (by == "target" || by == "scenario") ? by : nil
        if dropping == nil && Set(a.map(\.target)).isDisjoint(with: Set(b.map(\.target))) { dropping = "target" }
        return Compare.run(a: CompareSeries.group(a, dropping: dropping), b: CompareSeries.group(b, dropping: dropping),
                           labelA: "\(runLabel) \(by)=\(chosen[0])", labelB: "\(runLabel) \(by)=\(chosen[1])", options: options)
    }
}

/// Finds a run's samples from what the user typed: a run directory, `reports/<id>`, or a run id,
/// baseline name or `latest` in the history.
struct RunResolver {
    let dbPath: String

    func load(_ ref: String) throws -> (label: String, samples: [Sample]) {
        for candidate in [ref, "reports/" + ref] where RunDirectoryReader.isRunDirectory(candidate) {
            do {
                return (URL(fileURLWithPath: candidate).standardizedFileURL.lastPathComponent,
                        try RunDirectoryReader.samples(directory: URL(fileURLWithPath: candidate)))
            } catch {
                note("edgemeter: \(error)")
                throw ExitCode(1)
            }
        }
        guard FileManager.default.fileExists(atPath: dbPath) else {
            throw CompareCommand.usage("\"\(ref)\" is not a run directory (no samples.csv) and there is no history at \(dbPath) to look it up: give a run directory, or --db PATH")
        }
        do {
            let store = try HistoryStore(path: dbPath)
            guard let id = try store.resolve(ref) else {
                throw CompareCommand.usage("\"\(ref)\" is neither a run directory nor a run id or baseline name in \(dbPath): see `edgemeter runs list` and `edgemeter baseline list`")
            }
            let samples = try store.samples(runID: id)
            return (ref == id ? id : "\(ref) (\(id))", samples)
        } catch let e as ExitCode {
            throw e
        } catch let e as HistoryError {
            if case .ambiguous = e { throw CompareCommand.usage("\(e)") }
            note("edgemeter: \(e)")
            throw ExitCode(1)
        }
    }
}
