import Foundation
import EdgeMeterCore

/// Runs a validated suite's scenarios in order into one run directory. A scenario that cannot run
/// is noted with its reason and the others still run; a stop request (Ctrl-C, SIGTERM) ends the
/// current scenario at its next check and marks the rest "not run".
///
/// Scenarios with a `topology` (their own or the suite's) run in that lab topology: `SuiteLab`
/// brings it up before the first of them, shares it with the next ones naming the same topology,
/// and takes it down before a scenario naming another one (or none) and at the end of the suite,
/// after failures and stop requests too. Node names in targets and URLs are resolved to addresses
/// and each target's route is checked first (`LabScenario`); `from: NODE` runs the probe inside it.
public struct SuiteRunner {
    public var kinds: [ScenarioKind]
    /// The binary a topology's workloads run as (`edgemeter` in a workload): this program by default.
    public var labBinary: String
    public init(kinds: [ScenarioKind] = ScenarioKinds.all, labBinary: String? = nil) {
        self.kinds = kinds
        self.labBinary = labBinary ?? SuiteRunner.currentExecutable()
    }

    static func currentExecutable() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    /// The file name prefix of a scenario's capture files: `capture-<scenario>` (then `-<iface>.pcap`).
    static func capturePrefix(_ scenario: String) -> String { "capture-" + FileName.safe(scenario) }

    /// `captureInterface`/`captureFilter` (from `edgemeter run --capture`) apply to every scenario
    /// that does not name its own `capture`; each scenario gets its own capture and wire samples.
    /// A `capture` scenario already captures on its `interface`: neither applies to it (one pcap,
    /// wire samples once).
    /// `sink`, when given, receives every sample instead of `dir` (a tee that forwards to `dir`,
    /// e.g. the run history's); `dir` still keeps notes, sections and counts.
    public func run(_ suite: Suite, in dir: RunDirectory, stop: StopFlag, captureInterface: String? = nil,
                    captureFilter: String? = nil, sink: SampleSink? = nil, progress: @escaping @Sendable (String) -> Void) async {
        // The suite's `compare:` section sees the samples of the scenarios it names (SuiteComparisons.swift).
        let comparing = suite.comparisons.isEmpty ? nil : ComparisonSink(sink ?? dir, comparisons: suite.comparisons)
        let samplesTo: SampleSink = comparing ?? sink ?? dir
        let byKind = Dictionary(kinds.map { ($0.schema.kind, $0) }, uniquingKeysWith: { a, _ in a })
        let suiteDir = URL(fileURLWithPath: suite.path).deletingLastPathComponent()
        let lab = SuiteLab(binary: labBinary, dir: dir, progress: progress)
        for (i, original) in suite.scenarios.enumerated() {
            var scenario = original
            if stop.isStopped {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: "run stopped (\(stop.reason ?? "stop requested")) before this scenario"))
                continue
            }
            guard let kind = byKind[scenario.kind] else {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: "no runner for kind \(scenario.kind)"))
                continue
            }
            let label = "[\(i + 1)/\(suite.scenarios.count) \(scenario.name)]"
            // The scenario's topology: up (shared with the previous scenario when it is the same), or
            // the previous one down.
            var labScenario: LabScenario?
            if let reference = suite.topology(of: scenario) {
                do {
                    let (topology, state, provenance) = try await lab.ensure(reference, suiteDirectory: suiteDir.path, scenario: scenario.name, stop: stop)
                    dir.addNote(ScenarioNote(scenario: scenario.name, status: "lab",
                                             reason: provenance + "; runs from \(scenario.string("from").map { "node \($0)" } ?? "the host")"))
                    let prepared = try LabScenario(scenario, topology: topology, state: state)
                    for n in prepared.notProbed {
                        samplesTo.record(Sample(runID: dir.runID, scenario: scenario.name, probe: scenario.kind, target: n.name, metric: "latency",
                                          phase: "route", value: nil, unit: "ms", timestamp: Date(), status: .error, reason: n.reason,
                                          labels: prepared.commonLabels))
                        progress("\(label) \(n.name): \(n.reason)")
                    }
                    let hasTargets = scenario.strings("targets") != nil || scenario.string("url") != nil
                    if hasTargets && prepared.remaining == 0 {
                        throw ScenarioNotRun(prepared.notProbed.map { "\($0.name): \($0.reason)" }.joined(separator: "; "))
                    }
                    scenario = prepared.scenario
                    labScenario = prepared
                } catch let e as ScenarioNotRun {
                    dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: e.reason))
                    progress("\(label) not run: \(e.reason)")
                    continue
                } catch {
                    dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: "\(error)"))
                    progress("\(label) not run: \(error)")
                    continue
                }
            } else {
                await lab.down()
            }
            progress("\(label) \(scenario.kind) starting" + (labScenario.map { " in \($0.lab.state.topology) from \($0.lab.from ?? "the host")" } ?? "")
                     + (scenario.string("description").map { ": \($0)" } ?? ""))
            let started = ContinuousClock.now
            let before = dir.sampleCount
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(5))
                    if Task.isCancelled { break }
                    let secs = (ContinuousClock.now - started).seconds
                    progress("\(label) \(dir.sampleCount - before) samples, \(String(format: "%.0f", secs)) s")
                }
            }
            let sink: SampleSink = labScenario.map { LabSink(samplesTo, $0) } ?? samplesTo
            let ctx = ScenarioContext(runID: dir.runID, sink: sink, stop: stop, directory: dir.url, suiteDirectory: suiteDir,
                                      progress: { progress("\(label) \($0)") }, addSection: { dir.addSection($0) })
            do {
                // A kind that captures by itself (`capture`) is never wrapped in a second capture:
                // its own interface, filter and pcap are the scenario's.
                let ownsCapture = kind.capturesItself
                let iface = ownsCapture ? nil : scenario.string("capture") ?? captureInterface
                let filter = scenario.string("capture") != nil ? scenario.string("capture_filter") : captureFilter
                if ownsCapture, let outer = scenario.string("capture") ?? captureInterface {
                    ctx.progress("captures on its own interface \(scenario.string("interface") ?? "?"); capture on \(outer) not added")
                }
                let run = scenario
                try await ScenarioLab.$current.withValue(labScenario?.lab) {
                    try await withCapture(interface: iface, filter: filter, scenario: run.name, filePrefix: Self.capturePrefix(run.name),
                                          ctx: ctx) { inner in
                        try await kind.run(run, inner)
                    }
                }
                if stop.isStopped {
                    dir.addNote(ScenarioNote(scenario: scenario.name, status: "interrupted", reason: "stopped by \(stop.reason ?? "request") after \(dir.sampleCount - before) samples"))
                }
            } catch let e as ScenarioNotRun {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: e.reason))
                progress("\(label) not run: \(e.reason)")
            } catch {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "failed", reason: "\(error)"))
                progress("\(label) failed: \(error)")
            }
            ticker.cancel()
            let secs = (ContinuousClock.now - started).seconds
            progress("\(label) done: \(dir.sampleCount - before) samples in \(String(format: "%.1f", secs)) s")
        }
        // Also after a failure or a stop request: nothing of the lab stays up.
        await lab.down()
        comparing?.finish(in: dir, progress: progress)
    }
}
