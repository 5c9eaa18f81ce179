import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun

/// Options every measuring command shares.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Write the run directory here (default: reports/<UTC timestamp>-<name>/).", valueName: "DIR"))
    var out: String?

    @Flag(name: .long, help: "Print the summary as JSON on stdout (for scripts) instead of the human summary.")
    var json = false

    // issue 5 (capture): wire-level timing beside any measuring command; see CaptureHook.swift.
    @Option(name: .long, help: ArgumentHelp("Capture on IFACE while measuring; records wire timings and application − wire differences beside the samples (needs root or CAP_NET_RAW+CAP_NET_ADMIN; see `edgemeter capture --list`).", valueName: "IFACE"))
    var capture: String?

    @Option(name: .customLong("capture-filter"), help: ArgumentHelp("BPF filter for --capture, in tcpdump syntax (e.g. \"icmp or tcp port 50000\").", valueName: "BPF"))
    var captureFilter: String?
}

/// Prints to stderr (progress and diagnostics never mix with --json output on stdout).
func note(_ text: String) {
    fputs(text + "\n", stderr)
}

/// Creates the run directory, traps SIGINT/SIGTERM, runs `body`, writes the summary files and says
/// where they are. A stop request makes `body`'s probes return early; the run is then marked
/// incomplete but every sample measured is kept.
func runMeasured(name: String, options: RunOptions, suiteFile: String? = nil, showProgress: Bool = false,
                 body: (ScenarioContext, RunDirectory) async throws -> Void) async throws -> (summaries: [Summary], complete: Bool, directory: RunDirectory) {
    let dir: RunDirectory
    do {
        dir = try RunDirectory(out: options.out, name: name, suiteFile: suiteFile)
    } catch {
        note("edgemeter: \(error)")
        throw ExitCode(2)
    }
    let stop = StopFlag()
    SignalTrap.install(stop)
    let ctx = ScenarioContext(runID: dir.runID, sink: dir, stop: stop, directory: dir.url,
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
        // issue 5 (capture): with --capture, the body runs inside a capture (a no-op without it).
        try await withCapture(interface: options.capture, filter: options.captureFilter, scenario: name, ctx: ctx) { inner in
            try await body(inner, dir)
        }
    } catch {
        failure = error
    }
    ticker?.cancel()
    let complete = !stop.isStopped && failure == nil
    let summaries = try dir.finish(complete: complete, stopReason: stop.reason ?? failure.map { "\($0)" })
    if options.json {
        print(SummaryJSON.render(summaries, runDirectory: dir.url.path, complete: complete))
    }
    note("report: \(dir.url.path)/ (samples.csv, summary.csv, summary.md, run.json)\(complete ? "" : " — incomplete run")")
    if let failure { throw failure }
    return (summaries, complete, dir)
}
