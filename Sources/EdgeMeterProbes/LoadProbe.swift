import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem

/// HTTP load as a `Probe`: configured with the target, the `LoadOptions` that are not the schedule
/// (connections, threads, warm-up, timeout, request, expectations) and the run and scenario its
/// samples belong to; run against a schedule that says how much load and for how long:
///
/// - `count`: measured requests after the warm-up (`-n`), split evenly over the connections.
/// - `deadline`: the measured duration after the warm-up (`-d`). With both, whichever comes first;
///   with neither the run is refused (a load is always bounded).
/// - `interval`: open loop (wrk2 `-R`): one request every `interval` over all connections, on a
///   fixed schedule (rate = 1 s / interval; latency corrected for coordinated omission).
///   `.zero` (`Schedule.closedLoop`): closed loop (wrk), each connection sends its next request
///   when the previous response arrived.
///
/// The generator runs on its own event loops and times requests on CLOCK_MONOTONIC whatever
/// `clock` is given; `clock` only dates the samples (`wallNow()` at the start). The samples are
/// aggregates of the whole run (`LoadReport.samples`: percentiles, throughput, status and error
/// counts), emitted once when the run ends; they carry no local ports, so `wireKeys` is empty and
/// the wire analysis matches nothing to them.
public struct LoadProbe: Probe {
    public static let probeName = "load"
    public static let wireKeys: [WireKey] = []

    public var target: HTTPTarget
    /// Everything but the schedule: `rate`, `duration` and `requestCount` are replaced by the
    /// schedule's `interval`, `deadline` and `count` when the probe runs.
    public var options: LoadOptions
    public var scope: SampleScope
    /// Notices that matter at once (the first connect failure, with its reason); a run that could
    /// not start (in `run(schedule:...)`, which cannot throw).
    public var progress: (@Sendable (String) -> Void)?
    /// The live figures, once a second while the run goes on.
    public var live: (@Sendable (LoadLiveFigures) -> Void)?

    public init(target: HTTPTarget, options: LoadOptions, scope: SampleScope,
                progress: (@Sendable (String) -> Void)? = nil, live: (@Sendable (LoadLiveFigures) -> Void)? = nil) {
        self.target = target
        self.options = options
        self.scope = scope
        self.progress = progress
        self.live = live
    }

    /// The schedule that says what `options` say (`requestCount` → `count`, `duration` →
    /// `deadline`, `rate` → `interval` = 1 s / rate, no rate → closed loop).
    public static func schedule(for options: LoadOptions) -> Schedule {
        Schedule(count: options.requestCount, interval: options.rate.map(interval(rate:)) ?? .zero, deadline: options.duration)
    }

    /// 1 s / `rate`, to the nanosecond.
    public static func interval(rate: Double) -> Duration { .nanoseconds(Int64((1e9 / rate).rounded())) }

    /// `options` with the schedule's count, deadline and pacing. A rate in `options` that gives the
    /// same interval is kept as it was (1 s / interval rounded to whole nanoseconds is not always
    /// the rate a user typed; the report prints the requested rate).
    public static func options(_ options: LoadOptions, schedule: Schedule) -> LoadOptions {
        var o = options
        o.requestCount = schedule.count
        o.duration = schedule.deadline
        if schedule.isClosedLoop {
            o.rate = nil
        } else if let r = options.rate, interval(rate: r) == schedule.interval {
            o.rate = r
        } else {
            o.rate = 1e9 / Double(schedule.interval.nanoseconds)
        }
        return o
    }

    /// Runs the load, emits its samples into `sink` and returns the wrk-style result (for the CLI's
    /// report, the summary section, the spectrum files, the capture scenario's per-hop report) and
    /// the target's totals. Throws when the run cannot start (bad options, a name that does not
    /// resolve); nothing is emitted then.
    public func runReturningResult(schedule: Schedule, clock: any MeasurementClock = SystemClock(), stop: StopFlag,
                                   sink: SampleSink) async throws -> (result: LoadResult, totals: ProbeTotals) {
        let started = clock.wallNow()
        let r = try await LoadGenerator.run(target: target, options: Self.options(options, schedule: schedule), stop: stop,
                                            progress: progress, live: live)
        LoadReport.samples(r, runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, timestamp: started).forEach(sink.record)
        return (r, Self.totals(r, address: target.description, at: started))
    }

    /// Runs the load (see `runReturningResult`). A run that cannot start makes no attempt; its
    /// error goes to `progress`.
    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) async -> [ProbeTotals] {
        do {
            return [try await runReturningResult(schedule: schedule, clock: clock, stop: stop, sink: sink).totals]
        } catch {
            progress?("load on \(target): \(error)")
            return [ProbeTotals(name: target.description, address: target.description)]
        }
    }

    /// Totals of a load run: attempts = measured requests that were sent and ended (a response, a
    /// timeout or a reset); `.ok` the responses that met the expectations, `.error` those that did
    /// not (status, body) and the resets, `.timeout` the timeouts. Connect errors (no request was
    /// sent) and unsent requests are not attempts; they are in the samples (`errors` / `connect`,
    /// `latency` / `unsent`).
    public static func totals(_ r: LoadResult, address: String, at started: Date) -> ProbeTotals {
        var t = ProbeTotals(name: r.target, address: address)
        let timeouts = r.errors[.timeout] ?? 0
        let resets = r.errors[.reset] ?? 0
        t.attempts = r.responses + timeouts + resets
        t.statuses = [.ok: r.succeeded, .error: r.responses - r.succeeded + resets, .timeout: timeouts].filter { $0.value > 0 }
        if t.attempts > 0 { (t.firstAttemptAt, t.lastAttemptAt) = (started, started) }
        return t
    }
}
