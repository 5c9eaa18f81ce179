import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun

struct RunSuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a suite of named scenarios (YAML) into one run directory.",
        discussion: """
        The whole suite is validated before anything runs; errors read `file:line: what is wrong`. \
        A scenario whose engine is missing is reported as "not run" with its reason; the others run.

        Exit status: 0 when every target of every scenario succeeded at least once, 1 when a target \
        never did or a scenario failed or was not run (each one is named on stderr), 2 for an invalid \
        suite (every problem is listed), 130 when stopped by Ctrl-C or SIGTERM.

        The summary ends with a verdict table: per scenario what it measured, its key figure and \
        ok, failed or not run with the reason; the counts and the wall time; the suite's \
        comparisons (`compare:`, written as compare-NAME.csv). The run is recorded in the history \
        (`edgemeter runs list`) unless --no-history.

        Examples:
          edgemeter run benchmarks/suites/lab.yaml
          edgemeter run my-suite.yaml --out /tmp/run1 --json
          edgemeter run benchmarks/suites/lab.yaml --check     # validate only
        """
    )

    @Argument(help: "The suite file (YAML).")
    var suite: String

    @Flag(name: .long, help: "Validate the suite and list its scenarios, then exit without measuring.")
    var check = false

    @OptionGroup var run: RunOptions

    func run() async throws {
        let started = ContinuousClock.now
        let text: String
        do {
            text = try String(contentsOfFile: suite, encoding: .utf8)
        } catch {
            throw usageError("cannot read the suite file \(suite): \(fileProblem(suite)); check the path (the lab's suite is benchmarks/suites/lab.yaml)")
        }
        let parsed: Suite
        do {
            parsed = try SuiteTopologies.load(yaml: text, file: suite)
        } catch let e as SuiteErrors {
            note("\(e)")
            note("\(suite): \(e.problems.count == 1 ? "1 problem" : "\(e.problems.count) problems"); nothing was run. Fix \(e.problems.count == 1 ? "it" : "them") and run again (--check validates only).")
            throw ExitCode(2)
        } catch {
            note("\(error)")
            throw ExitCode(2)
        }
        if check {
            print("\(suite): valid suite \"\(parsed.name)\" with \(parsed.scenarios.count) scenarios")
            for s in parsed.scenarios { print("  \(s.name) (\(s.kind), line \(s.line))") }
            return
        }
        if run.printConfig {
            let kinds = Dictionary(ScenarioKinds.all.map { ($0.declaration.kind, $0) }, uniquingKeysWith: { a, _ in a })
            do {
                return printConfigs(try parsed.scenarios.compactMap { s in try kinds[s.kind]?.configuration(s) })
            } catch {
                throw usageError("\(error)")
            }
        }
        // The capture is per scenario (SuiteRunner), not around the whole suite.
        var options = run
        options.capture = nil
        options.captureFilter = nil
        let result = try await runMeasured(name: parsed.name, options: options, suiteFile: suite) { ctx, dir in
            await SuiteRunner(labBinary: runningBinaryPath()).run(parsed, in: dir, stop: ctx.stop, captureInterface: run.capture,
                                    captureFilter: run.captureFilter, sink: ctx.sink, progress: { note($0) })
        }
        if !run.json {
            print(try String(contentsOf: result.directory.url.appendingPathComponent("summary.md"), encoding: .utf8))
        }
        // The short verdict table last (Commands+RunVerdict.swift): stdout, or stderr beside --json.
        let table = RunVerdict.table(suite: parsed, summaries: result.summaries, directory: result.directory,
                                     wallSeconds: (ContinuousClock.now - started).seconds)
        if run.json { note(table) } else { print(table, terminator: "") }
        try conclude(result, failures: RunOutcome.failures(summaries: result.summaries, notes: result.directory.scenarioNotes))
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Re-render summary.csv and summary.md of a run directory and print the summary.",
        discussion: """
        Rebuilds the tables from samples.csv, the scenario notes from run.json and the sections added \
        at run time (load reports, startup comparisons, wire reports) from sections.json, writes \
        summary.csv and summary.md, and prints summary.md on stdout. Without a directory it uses \
        reports/latest, the newest run under reports/. A section that cannot be reproduced is named \
        in a warning on stderr, and the existing summary.md is then kept as it is. It also rewrites \
        report.html (one self-contained file: inline SVG charts and CSS, opens offline), report.md \
        and the charts in plots/ (latency CDFs, startup box plots, smoke graphs of --rounds runs, \
        reach matrices, a migration timeline from the vehicle's CSV, compare*.csv tables).

        Examples:
          edgemeter report
          edgemeter report reports/20261129T014000Z-lab
          edgemeter report --json /tmp/run1
        """
    )

    @Argument(help: "A run directory holding samples.csv (default: reports/latest).")
    var directory: String?

    @Flag(name: .long, help: "Print the summary as JSON on stdout instead of summary.md.")
    var json = false

    /// The pre-streaming reader (whole file in memory), for benchmarks and cross-checks.
    @Flag(name: .long, help: .hidden)
    var wholeFile = false

    func run() throws {
        let path = directory ?? "reports/latest"
        if directory == nil && !FileManager.default.fileExists(atPath: path) {
            throw usageError("no run to report: \(FileManager.default.currentDirectoryPath)/reports/latest does not exist; run a measurement first (e.g. `edgemeter ping -c 5 127.0.0.1`) or give a run directory")
        }
        let dir = URL(fileURLWithPath: path)
        let r: RunReport.Rendered
        do { r = try RunReport.rerender(directory: dir, wholeFile: wholeFile) } catch {
            throw usageError("\(error)")
        }
        for w in r.warnings { note("warning: \(w)") }
        let keepMarkdown = r.warnings.contains { $0.hasPrefix("summary.md:") }
        do {
            try r.summaryCSV.write(to: dir.appendingPathComponent("summary.csv"), atomically: true, encoding: .utf8)
            if !keepMarkdown {
                try r.summaryMarkdown.write(to: dir.appendingPathComponent("summary.md"), atomically: true, encoding: .utf8)
            }
        } catch {
            throw usageError("cannot write the summary into \(dir.path): \(error.localizedDescription); check the directory's permissions and free space")
        }
        if json {
            print(SummaryJSON.render(r.summaries, runDirectory: dir.path, complete: r.complete))
        } else {
            // When sections would be lost, the kept summary.md is the complete one: print that.
            let kept = keepMarkdown ? try? String(contentsOf: dir.appendingPathComponent("summary.md"), encoding: .utf8) : nil
            print(kept ?? r.summaryMarkdown, terminator: "")
        }
        note("re-rendered \(dir.path)/summary.csv\(keepMarkdown ? "" : " and summary.md") from \(r.sampleCount) samples")
        do {
            let w = try HTMLReport.write(dir: dir, collector: r.collector)
            note("re-rendered \(dir.path)/report.html and report.md (\(w.charts) charts in plots/)")
        } catch { note("warning: report.html not written: \(error)") }
    }
}

/// Why a file cannot be read, in words (not Foundation's "The file doesn't exist.").
func fileProblem(_ path: String) -> String {
    var isDir: ObjCBool = false
    if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) { return "no such file" }
    if isDir.boolValue { return "it is a directory, not a file" }
    if let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType, type != .typeRegular {
        return "it is not a regular file"
    }
    if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
    return "it is not UTF-8 text"
}
