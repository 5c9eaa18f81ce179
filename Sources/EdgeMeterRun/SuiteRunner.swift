import Foundation
import EdgeMeterCore

/// Runs a validated suite's scenarios in order into one run directory. A scenario that cannot run
/// is noted with its reason and the others still run; a stop request (Ctrl-C, SIGTERM) ends the
/// current scenario at its next check and marks the rest "not run".
public struct SuiteRunner {
    public var kinds: [ScenarioKind]
    public init(kinds: [ScenarioKind] = ScenarioKinds.all) { self.kinds = kinds }

    /// The file name prefix of a scenario's capture files: `capture-<scenario>` (then `-<iface>.pcap`).
    static func capturePrefix(_ scenario: String) -> String { "capture-" + FileName.safe(scenario) }

    /// `captureInterface`/`captureFilter` (from `edgemeter run --capture`) apply to every scenario
    /// that does not name its own `capture`; each scenario gets its own capture and wire samples.
    /// A `capture` scenario already captures on its `interface`: neither applies to it (one pcap,
    /// wire samples once).
    public func run(_ suite: Suite, in dir: RunDirectory, stop: StopFlag, captureInterface: String? = nil,
                    captureFilter: String? = nil, progress: @escaping @Sendable (String) -> Void) async {
        let byKind = Dictionary(kinds.map { ($0.schema.kind, $0) }, uniquingKeysWith: { a, _ in a })
        let suiteDir = URL(fileURLWithPath: suite.path).deletingLastPathComponent()
        for (i, scenario) in suite.scenarios.enumerated() {
            if stop.isStopped {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: "run stopped (\(stop.reason ?? "stop requested")) before this scenario"))
                continue
            }
            guard let kind = byKind[scenario.kind] else {
                dir.addNote(ScenarioNote(scenario: scenario.name, status: "not run", reason: "no runner for kind \(scenario.kind)"))
                continue
            }
            let label = "[\(i + 1)/\(suite.scenarios.count) \(scenario.name)]"
            progress("\(label) \(scenario.kind) starting")
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
            let ctx = ScenarioContext(runID: dir.runID, sink: dir, stop: stop, directory: dir.url, suiteDirectory: suiteDir,
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
                try await withCapture(interface: iface, filter: filter, scenario: scenario.name, filePrefix: Self.capturePrefix(scenario.name),
                                      ctx: ctx) { inner in
                    try await kind.run(scenario, inner)
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
    }
}
