import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterRun
import EdgeMeterHistory

/// Where a command writes its run directory and how it prints the summary: the part of `RunOptions`
/// for commands that are themselves a capture (`capture`, `analyze`), which have no `--capture`.
struct OutputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Write the run directory here (default: reports/<UTC timestamp>-<name>/).", valueName: "DIR"))
    var out: String?

    @Flag(name: .long, help: "Print the summary as JSON on stdout (for scripts) instead of the human summary.")
    var json = false

    @Flag(name: .customLong("print-config"), help: .hidden)
    var printConfig = false

    @Option(name: .long, help: ArgumentHelp("Record the run in this history database (default: $EDGEMETER_DB, else $XDG_DATA_HOME/edgemeter/history.sqlite, else ~/.local/share/edgemeter/history.sqlite).", valueName: "PATH"))
    var db: String?

    @Flag(name: .customLong("no-history"), help: "Do not record the run in the history database (the run directory is written as usual).")
    var noHistory = false

    /// The same choices as `RunOptions`, with no capture around the command.
    var runOptions: RunOptions {
        var r = RunOptions()
        r.output = self
        r.capture = nil
        r.captureFilter = nil
        return r
    }
}

/// Options every measuring command shares: `OutputOptions` and a capture around the command.
struct RunOptions: ParsableArguments {
    @OptionGroup var output: OutputOptions

    // Wire-level timing beside any measuring command; see CaptureHook.swift.
    @Option(name: .long, help: ArgumentHelp("Capture on IFACE while measuring; records wire timings and application − wire differences beside the samples (needs root or CAP_NET_RAW+CAP_NET_ADMIN; see `edgemeter capture --list`).", valueName: "IFACE"))
    var capture: String?

    @Option(name: .customLong("capture-filter"), help: ArgumentHelp("BPF filter for --capture, in tcpdump syntax (e.g. \"icmp or tcp port 50000\").", valueName: "BPF"))
    var captureFilter: String?

    var out: String? { get { output.out } set { output.out = newValue } }
    var json: Bool { get { output.json } set { output.json = newValue } }
    /// Print the configuration the flags resolve to and measure nothing (see `printConfigs`).
    var printConfig: Bool { get { output.printConfig } set { output.printConfig = newValue } }
    var db: String? { get { output.db } set { output.db = newValue } }
    var noHistory: Bool { get { output.noHistory } set { output.noHistory = newValue } }
}

/// Prints to stderr (progress and diagnostics never mix with --json output on stdout).
func note(_ text: String) {
    fputs(text + "\n", stderr)
}

/// A usage or set-up error: `edgemeter: MESSAGE` on stderr, then exit status 2 (`throw usageError(...)`).
func usageError(_ message: String) -> ExitCode {
    note("edgemeter: " + message)
    return ExitCode(2)
}

/// Runs `body`; an `E` it throws (a module's error, which names the next step) becomes a usage or
/// set-up error, exit status 2. Other errors pass through.
func failingWithUsageError<E: Error, T>(on _: E.Type, _ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as E { throw usageError("\(e)") }
}

/// Plans the run directory, traps SIGINT/SIGTERM, runs `body`, writes the summary files and says
/// where they are. A stop request makes `body`'s probes return early; the run is then marked
/// incomplete but every sample measured is kept.
///
/// The directory is created only when measuring starts (the first sample or section, or an explicit
/// `RunDirectory.begin()`; with --capture and for suites just before `body`, since the pcap file
/// goes there). A run that ends with no measured sample and no section (validation, name
/// resolution, image or BPF set-up failed) leaves nothing behind: what it created is removed, never a
/// directory that existed before. A suite keeps its directory even then: its scenario notes are the report.
/// A sample that cannot be written to samples.csv stops the run with that error (exit status 1).
func runMeasured(name: String, options: RunOptions, suiteFile: String? = nil, showProgress: Bool = false,
                 body: (ScenarioContext, RunDirectory) async throws -> Void) async throws -> (summaries: [Summary], complete: Bool, directory: RunDirectory) {
    let dir: RunDirectory
    do {
        dir = try RunDirectory(out: options.out, name: name, suiteFile: suiteFile)
        if options.capture != nil || suiteFile != nil { try dir.begin() }
    } catch {
        throw usageError("\(error)")
    }
    let stop = StopFlag()
    SignalTrap.install(stop)
    dir.onWriteFailure = { stop.stop(reason: $0) }
    // The run history records the same samples beside the directory (HistoryHook.swift).
    let history = HistoryHook.start(options: options, directory: dir, name: name, suiteFile: suiteFile)
    let ctx = ScenarioContext(runID: dir.runID, sink: history.map { TeeSink([dir, $0]) } ?? dir, stop: stop, directory: dir.url,
                              suiteDirectory: suiteFile.map { URL(fileURLWithPath: $0).deletingLastPathComponent() },
                              progress: { note($0) }, addSection: { dir.addSection($0) })
    // Runs whose per-result lines are silenced (-q, --json) still say they are alive every 5 s.
    let started = ContinuousClock.now
    let ticker: Task<Void, Never>? = showProgress ? Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            if Task.isCancelled { break }
            note("edgemeter: \(dir.sampleCount) samples so far, \(Int((ContinuousClock.now - started).seconds)) s")
        }
    } : nil
    var failure: Error?
    do {
        // With --capture, the body runs inside a capture (a no-op without it).
        try await withCapture(interface: options.capture, filter: options.captureFilter, scenario: name, ctx: ctx) { inner in
            try await body(inner, dir)
        }
    } catch {
        failure = error
    }
    ticker?.cancel()
    if suiteFile == nil && dir.discard() {
        // Nothing was measured: no run directory is kept, and no history row.
        history?.discard()
        if let failure { throw failure }
        // Only set-up failed (the names did not resolve): a set-up error, exit status 2.
        note("edgemeter: nothing was measured (set-up failed, see above); no run directory was kept")
        if options.json { print(SummaryJSON.render([], complete: false)) }
        throw ExitCode(2)
    }
    let complete = !stop.isStopped && failure == nil
    HistoryHook.finish(history, directory: dir, complete: complete && dir.writeFailure == nil, stopReason: stop.reason ?? failure.map { "\($0)" })
    let summaries: [Summary]
    do {
        summaries = try dir.finish(complete: complete, stopReason: stop.reason ?? failure.map { "\($0)" })
    } catch {
        if let stopped = dir.writeFailure { note("edgemeter: \(stopped)") }
        note("edgemeter: \(error)")
        throw ExitCode(1)
    }
    if options.json {
        print(SummaryJSON.render(summaries, runDirectory: dir.url.path, complete: complete && dir.writeFailure == nil))
    }
    if let stopped = dir.writeFailure {
        note("edgemeter: \(stopped)")
        reportLine(dir, complete: false)
        throw ExitCode(1)
    }
    if let failure {
        // The error, then the report line (always the last line), then exit 1 (or the status the
        // body chose, having said why).
        if let code = failure as? ExitCode {
            reportLine(dir, complete: false)
            throw code
        }
        note("edgemeter: \(failure)")
        reportLine(dir, complete: false)
        throw ExitCode(1)
    }
    return (summaries, complete, dir)
}

/// The line that says where the run's files are; every measuring command prints it last (stderr).
func reportLine(_ dir: RunDirectory, complete: Bool) {
    fflush(nil) // the closing lines on stdout come first, also when both streams go to one file
    note("report: \(dir.url.path)/ (samples.csv, summary.csv, summary.md, run.json, report.html)\(complete ? "" : " — incomplete run")")
}

/// Ends a measuring command the same way everywhere, after its own closing lines: names what never
/// succeeded, prints the report line (always the last line), then exits with the status the
/// README's table gives:
/// 130 when the run was stopped by SIGINT/SIGTERM (what was measured is kept), 1 when a target never
/// succeeded or a scenario failed or did not run (each printed), 0 otherwise.
func conclude(_ result: (summaries: [Summary], complete: Bool, directory: RunDirectory),
              failures: [RunOutcome.Failure]? = nil) throws {
    let failed = result.complete ? (failures ?? RunOutcome.failures(summaries: result.summaries)) : []
    for f in failed { fflush(nil); note("edgemeter: \(f)") }
    reportLine(result.directory, complete: result.complete)
    if !result.complete { throw ExitCode(130) }
    if !failed.isEmpty { throw ExitCode(1) }
}

/// `conclude` for commands that take names (ping, tcping), with fping's rule for the ones that could
/// not be resolved: each gets its own closing block ("--- NAME ping statistics ---" and why), the
/// others were measured as usual, and the exit status is 2.
func conclude(_ result: (summaries: [Summary], complete: Bool, directory: RunDirectory),
              unresolved: FailedSampleWatch, block: String, printBlocks: Bool) throws {
    let names = unresolved.failures
    if printBlocks {
        for (name, reason) in names { print("\n--- \(name) \(block) ---\nnot measured: \(reason)") }
    }
    if result.complete && !names.isEmpty {
        fflush(nil)
        note("edgemeter: \(names.count) target(s) could not be resolved: \(names.map(\.name).joined(separator: ", ")); check the names (exit status 2, as fping)")
        reportLine(result.directory, complete: true)
        throw ExitCode(2)
    }
    try conclude(result)
}

/// A sink in front of the run directory that remembers the targets whose `phase` failed (e.g. name
/// resolution), with the reason, so a command can report them in its closing lines.
final class FailedSampleWatch: SampleSink, @unchecked Sendable {
    let phase: String
    private let lock = NSLock()
    private var inner: SampleSink?
    private var seen: [(name: String, reason: String)] = []
    init(phase: String) { self.phase = phase }

    func watching(_ ctx: ScenarioContext) -> ScenarioContext {
        lock.lock(); inner = ctx.sink; lock.unlock()
        return ScenarioContext(runID: ctx.runID, sink: self, stop: ctx.stop, directory: ctx.directory,
                               suiteDirectory: ctx.suiteDirectory, progress: ctx.progress, addSection: ctx.addSection)
    }
    func record(_ sample: Sample) {
        lock.lock()
        if sample.phase == phase && sample.status != .ok { seen.append((sample.target, sample.reason)) }
        let sink = inner
        lock.unlock()
        sink?.record(sample)
    }
    var failures: [(name: String, reason: String)] { lock.lock(); defer { lock.unlock() }; return seen }
}
