import EdgeMeterCore
import EdgeMeterSystem
import Foundation

/// Startup as a `Probe`: configured with the backend(s), the ready check and its timeout, the run
/// and scenario its samples belong to; run against a schedule whose rounds are iterations (one
/// instance created, started, checked ready, stopped and removed per round and backend).
///
/// - `count`: iterations per backend (nil: until the deadline or a stop request).
/// - `interval`: between the starts of successive iterations, fixed at the start of a backend's
///   run (no drift: an iteration that runs past its slot makes the next start at once, not move
///   later ones). `.zero` (`Schedule.closedLoop`): back to back, as `edgemeter startup` runs them.
/// - `deadline`: from the start of a backend's iterations (after its `prepare`); no iteration
///   starts at or after it. The iteration in progress runs to its end (stop and remove included).
///
/// Backends run one after the other, each on its own schedule from its first iteration. Every
/// iteration emits one sample per `StartupPhase` (see `StartupRunner`), failed ones included, so a
/// stopped run keeps every finished iteration's samples. The phases are timed on `clock`.
///
/// Samples carry no local ports (an engine creates instances; nothing on the wire is one of the
/// probe's exchanges): `wireKeys` is empty.
public struct StartupProbe: Probe {
    public static let probeName = "startup"
    public static let wireKeys: [WireKey] = []

    public var backends: [StartupBackend]
    /// `runID` and `scenario` of every sample.
    public var scope: SampleScope
    public var ready: ReadyCheck
    /// Limit for create+start+running+ready of one iteration; the phase in progress gets `.timeout`.
    public var readyTimeout: Duration
    /// One line per iteration ("docker run 2/5: ready after 412.3 ms"), and a backend that could not
    /// be prepared (in `run(schedule:...)`, which cannot throw).
    public var progress: @Sendable (String) -> Void

    public init(backends: [StartupBackend], scope: SampleScope, ready: ReadyCheck, readyTimeout: Duration = .seconds(60),
                progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.backends = backends
        self.scope = scope
        self.ready = ready
        self.readyTimeout = readyTimeout
        self.progress = progress
    }

    /// The probe for a plan: its scenario, ready check and timeout (`plan.runs` is the schedule's
    /// `count`, not part of the probe).
    public init(backends: [StartupBackend], plan: StartupPlan, runID: String, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.init(backends: backends, scope: SampleScope(runID: runID, scenario: plan.scenario), ready: plan.ready,
                  readyTimeout: plan.readyTimeout, progress: progress)
    }

    /// Runs every backend's iterations on `schedule`. Returns one `ProbeTotals` per backend, in
    /// order: attempts = iterations started, counted by the status of their `total` sample. A
    /// backend that cannot be prepared (engine missing) makes no attempt; its error goes to
    /// `progress`. Backends not reached because of a stop request have 0 attempts.
    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) async -> [ProbeTotals] {
        var all: [ProbeTotals] = []
        for backend in backends {
            var totals = ProbeTotals(name: backend.name, address: backend.name)
            if !stop.isStopped {
                do {
                    for a in try await attempts(on: backend, schedule: schedule, clock: clock, stop: stop, sink: sink) {
                        totals.add(a.status, at: a.startedAt ?? clock.wallNow())
                    }
                } catch {
                    progress("\(backend.name): \(error)")
                }
            }
            all.append(totals)
        }
        return all
    }

    /// One backend's iterations on `schedule`, with their outcomes (the startup scenario's phase
    /// tables). Prepares the backend first (`prepare(for:stop:)`: one-off work such as building a
    /// guest initramfs is in no iteration) and throws its error when that fails. Each phase is timed
    /// on `clock` (`SystemClock`: CLOCK_MONOTONIC, client side) from the call that starts it until it
    /// returns; `ready` is the plan's check (`ReadyProbes.wait`) from the end of `running`. Always
    /// calls `backend.cleanup()` before returning, also when stopped or when an iteration fails. A
    /// stop request ends the phase in progress at its next check and starts no further iteration;
    /// the iteration in progress still stops and removes its instance.
    public func attempts(on backend: StartupBackend, schedule: Schedule, clock: any MeasurementClock, stop: StopFlag,
                         sink: SampleSink) async throws -> [StartupAttempt] {
        do {
            try await backend.prepare(for: ready, stop: stop)
        } catch {
            await backend.cleanup()
            throw error
        }
        let plan = StartupPlan(scenario: scope.scenario, runs: schedule.count ?? 0, ready: ready, readyTimeout: readyTimeout)
        let of = schedule.count.map { "/\($0)" } ?? ""
        var attempts: [StartupAttempt] = []
        await runSchedule(schedule, clock: clock, stop: stop) { round in
            let attempt = await StartupRunner.runOne(backend: backend, plan: plan, index: round.index, runID: scope.runID, sink: sink,
                                                     stop: stop, clock: clock)
            attempts.append(attempt)
            if let f = attempt.failure {
                progress("\(backend.name) run \(round.sequence)\(of) failed: \(f)")
            } else {
                progress("\(backend.name) run \(round.sequence)\(of): ready after \(String(format: "%.1f", attempt.phases[.total] ?? 0)) ms")
            }
        }
        await backend.cleanup()
        return attempts
    }
}
