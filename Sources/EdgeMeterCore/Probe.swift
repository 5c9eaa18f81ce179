import Foundation

/// The run and scenario a probe's samples belong to (the first two columns of every sample).
public struct SampleScope: Sendable, Equatable {
    public var runID: String
    public var scenario: String
    public init(runID: String, scenario: String) { (self.runID, self.scenario) = (runID, scenario) }
}

/// Per-target counts of one probe run, for the closing lines a command prints (ping's
/// "N packets transmitted, M received", tcping's "N attempts, M connected, ..."). Counted on the
/// decisive phase of each attempt (`echo`, `connect`, `total`), one count per attempt.
public struct ProbeTotals: Sendable, Equatable {
    /// The target's name as in the samples.
    public var name: String
    /// The address it resolved to (`127.0.0.1`, `[::1]:80`, a URL).
    public var address: String
    /// Attempts made (echoes sent, connects tried, requests sent), failed ones included.
    public var attempts = 0
    /// Attempts by the status of their decisive phase.
    public var statuses: [SampleStatus: Int] = [:]
    /// Wall-clock time of the first and last attempt (`Sample.timestamp`).
    public var firstAttemptAt: Date?
    public var lastAttemptAt: Date?

    public init(name: String, address: String) { (self.name, self.address) = (name, address) }

    /// Attempts whose decisive phase ended with `status`.
    public func count(_ status: SampleStatus) -> Int { statuses[status] ?? 0 }
    /// Attempts that succeeded.
    public var succeeded: Int { count(.ok) }

    /// Counts one attempt started at `at` whose decisive phase ended with `status`.
    public mutating func add(_ status: SampleStatus, at: Date) {
        attempts += 1
        statuses[status, default: 0] += 1
        if firstAttemptAt == nil { firstAttemptAt = at }
        lastAttemptAt = at
    }
}

/// The one shape of a probe, as blackbox_exporter's `ProbeFn`: configured first (targets or
/// backends, options, the run and scenario its samples belong to, the terminal line callback), then
/// run against a schedule on a clock. It emits its samples into `sink` as it measures them, failed
/// attempts included, so an interrupted run keeps all it measured. The probe declares how the wire
/// analysis finds its exchanges (`WireMatchable`).
///
/// What the schedule means for each of the six:
///
/// | probe | type (module) | `count` | `interval` | `deadline` |
/// |---|---|---|---|---|
/// | ping | `ICMPProbe` (Probes) | echoes per target | between echo sends | no echo sent after it (replies drained) |
/// | tcping | `TCPConnectProbe` (Probes) | connects per target | between connect starts | no connect started after it |
/// | http | `HTTPProbe` (Probes) | requests (new connection each) | between request starts | no request started after it |
/// | calc | `CalcProbe` (Probes) | expression requests | between request starts | no request started after it |
/// | load | `LoadProbe` (Probes) | measured requests (`-n`) | 1 s / rate, open loop (`-R`); `.zero`: closed loop | measured duration (`-d`) |
/// | startup | `StartupProbe` (Startup) | iterations per backend | between iteration starts; `.zero`: back to back | no iteration started after it |
///
/// All but `load` run their attempts through `runSchedule` (no drift, one at a time); `load` hands
/// the schedule to its generator, which paces each connection on the event loops and emits
/// aggregate samples once at the end.
///
/// A blocking probe (ICMP, TCP: `poll()` on the calling thread) satisfies `run` with a synchronous
/// method, which callers that know the type call without `await`.
public protocol Probe: WireMatchable {
    /// Runs every round of `schedule` (one attempt per target per round) until the count, the
    /// deadline or `stop`; durations and timestamps come from `clock` (`load` times requests on
    /// CLOCK_MONOTONIC on its event loops and takes only the timestamp from `clock`). Returns
    /// per-target totals (per backend for startup), in target order.
    func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) async -> [ProbeTotals]
}
