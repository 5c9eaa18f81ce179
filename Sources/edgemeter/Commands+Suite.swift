import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun

struct RunSuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a suite of named scenarios (YAML) into one run directory.",
        discussion: """
        The whole suite is validated before anything runs; errors read `file:line: what is wrong`.
        A scenario whose engine is missing is reported as "not run" with its reason; the others run.

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
        let text: String
        do {
            text = try String(contentsOfFile: suite, encoding: .utf8)
        } catch {
            note("edgemeter: cannot read suite \(suite): \(readProblem(error)); check the path")
            throw ExitCode(2)
        }
        let parsed: Suite
        do {
            parsed = try SuiteLoader.load(yaml: text, file: suite, schemas: ScenarioKinds.schemas)
        } catch {
            note("\(error)")
            throw ExitCode(2)
        }
        if check {
            print("\(suite): valid suite \"\(parsed.name)\" with \(parsed.scenarios.count) scenarios")
            for s in parsed.scenarios { print("  \(s.name) (\(s.kind), line \(s.line))") }
            return
        }
        // The capture is per scenario (SuiteRunner), not around the whole suite.
        var options = run
        options.capture = nil
        options.captureFilter = nil
        let result = try await runMeasured(name: parsed.name, options: options, suiteFile: suite) { ctx, dir in
            await SuiteRunner().run(parsed, in: dir, stop: ctx.stop, captureInterface: run.capture,
                                    captureFilter: run.captureFilter, progress: { note($0) })
        }
        if !run.json {
            print(try String(contentsOf: result.directory.url.appendingPathComponent("summary.md"), encoding: .utf8))
        }
        if !result.complete { throw ExitCode(130) }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Re-render summary.csv and summary.md of a run directory from its samples.csv alone.",
        discussion: """
        Example:
          edgemeter report reports/20261129T014000Z-lab
        """
    )

    @Argument(help: "A run directory holding samples.csv.")
    var directory: String

    @Flag(name: .long, help: "Print the summary as JSON on stdout.")
    var json = false

    func run() throws {
        let dir = URL(fileURLWithPath: directory)
        let samplesURL = dir.appendingPathComponent("samples.csv")
        guard let text = try? String(contentsOf: samplesURL, encoding: .utf8) else {
            note("edgemeter: \(samplesURL.path) not found or unreadable: give the run directory that holds samples.csv")
            throw ExitCode(2)
        }
        let samples: [Sample]
        do { samples = try SampleCSV.parse(text, file: samplesURL.path) } catch {
            note("edgemeter: \(error)")
            throw ExitCode(2)
        }
        var summarizer = Summarizer()
        for s in samples { summarizer.add(s) }
        let summaries = summarizer.summaries
        var notes: [ScenarioNote] = []
        var complete = true
        var runID = dir.lastPathComponent
        if let data = try? Data(contentsOf: dir.appendingPathComponent("run.json")),
           let info = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            complete = info["complete"] as? Bool ?? true
            runID = info["run_id"] as? String ?? runID
            for n in info["scenario_notes"] as? [[String: Any]] ?? [] {
                notes.append(ScenarioNote(scenario: n["scenario"] as? String ?? "", status: n["status"] as? String ?? "",
                                          reason: n["reason"] as? String ?? ""))
            }
        }
        do {
            try SummaryCSV.render(summaries).write(to: dir.appendingPathComponent("summary.csv"), atomically: true, encoding: .utf8)
            try SummaryMarkdown.render(title: "edgemeter run \(runID)", summaries: summaries, notes: notes, complete: complete)
                .write(to: dir.appendingPathComponent("summary.md"), atomically: true, encoding: .utf8)
        } catch {
            note("edgemeter: cannot write the summary into \(dir.path): \(error.localizedDescription)")
            throw ExitCode(2)
        }
        if json {
            print(SummaryJSON.render(summaries, runDirectory: dir.path, complete: complete))
        } else {
            note("re-rendered \(dir.path)/summary.csv and summary.md from \(samples.count) samples")
        }
    }
}
