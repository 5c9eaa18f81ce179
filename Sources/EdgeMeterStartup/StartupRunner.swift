import EdgeMeterCore
import EdgeMeterSystem
import Foundation

/// The one error type of this module. Its text says what failed and what to do next.
public struct StartupError: Error, CustomStringConvertible, Equatable {
    public var message: String
    /// The sample status a phase failing with this error gets.
    public var status: SampleStatus
    public init(_ message: String, status: SampleStatus = .error) {
        self.message = message
        self.status = status
    }
    public var description: String { message }

    static func dockerUnreachable(_ endpoint: DockerEndpoint, detail: String) -> StartupError {
        StartupError("cannot reach dockerd at \(endpoint) [\(detail)]: start it with `scripts/setup-engines.sh` "
            + "(or `dockerd >/var/log/dockerd.log 2>&1 &`), or point DOCKER_HOST at a running daemon")
    }

    /// `ready=exit` saw the workload end with a nonzero status (every backend words it the same).
    static func workloadExited(status: Int, detail: String = "") -> StartupError {
        StartupError("the workload exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)"))
    }

    /// A wait ended by a stop request (Ctrl-C, SIGTERM).
    static func interrupted(_ stop: StopFlag, waitingFor what: String) -> StartupError {
        StartupError("interrupted (\(stop.reason ?? "stop requested")) while waiting for \(what)")
    }
}

/// The phases of one startup attempt, all emitted for every attempt (failed ones with a status and a
/// reason, value nil) so CSV columns stay stable.
public enum StartupPhase: String, CaseIterable, Sendable {
    /// The engine created the instance (container created / VM process up and paused, QMP answering).
    case create
    /// The engine said it started it (API/command returned).
    case start
    /// The engine first reports the instance running (inspect/lxc-info/QMP query-status).
    case running
    /// The workload is ready by the chosen `ReadyCheck`, measured from the end of `running`.
    case ready
    /// Stop request until the engine reports it stopped.
    case stop
    /// Removal (container deleted, VM files gone) until the engine returns.
    case remove
    /// From the start of `create` to the end of `ready` (what a user waits for).
    case total
}

/// How an attempt decides the workload is ready.
public enum ReadyCheck: Sendable, Equatable, CustomStringConvertible {
    /// The workload process exited with status 0. A nonzero status fails `ready` with the reason
    /// "the workload exited with status N"; a status that could not be learned fails it too.
    case exit
    /// This line appeared on the log (container stdout / LXC workload log / VM serial console).
    case marker(String)
    /// A TCP connection to this guest port succeeded (through QEMU's host forward: and the guest's
    /// banner line arrived, because QEMU's user-mode NAT accepts on the host before the guest does).
    case tcp(port: Int)
    /// `GET path` on this guest port answered 200.
    case http(port: Int, path: String)
    /// An ICMP echo to the instance's address was answered (raw socket, needs root).
    case icmp

    public var kind: String {
        switch self {
        case .exit: return "exit"
        case .marker: return "marker"
        case .tcp: return "tcp"
        case .http: return "http"
        case .icmp: return "icmp"
        }
    }

    public var description: String {
        switch self {
        case .exit: return "exit"
        case .marker(let m): return "marker \"\(m)\""
        case .tcp(let p): return "tcp port \(p)"
        case .http(let p, let path): return "http GET :\(p)\(path) = 200"
        case .icmp: return "icmp echo"
        }
    }

    /// The default marker line every edgemeter-built workload prints when it is up.
    public static let defaultMarker = "EDGEMETER-READY"
}

/// A point on a `MeasurementClock` by which a wait must end: the runner's attempt deadline, passed
/// to every wait of that attempt so that all of them read the same clock.
public struct Deadline: Sendable {
    public let clock: any MeasurementClock
    /// On `clock.monotonicNanoseconds()`.
    public let nanoseconds: Int64

    public init(clock: any MeasurementClock, nanoseconds: Int64) {
        self.clock = clock
        self.nanoseconds = nanoseconds
    }

    /// `duration` from now on `clock`.
    public static func after(_ duration: Duration, on clock: any MeasurementClock = SystemClock()) -> Deadline {
        Deadline(clock: clock, nanoseconds: clock.monotonicNanoseconds() + duration.nanoseconds)
    }

    public var hasPassed: Bool { clock.monotonicNanoseconds() >= nanoseconds }
    /// What is left (zero once passed).
    public var remaining: Duration { .nanoseconds(max(0, nanoseconds - clock.monotonicNanoseconds())) }
}

/// How the workload of an instance is doing, for `ReadyCheck.exit` (and to notice a workload that
/// ended before printing its marker).
public enum WorkloadState: Sendable, Equatable {
    case running
    /// It ended with this status (the workload's own, not the engine's).
    case exited(status: Int)
    /// It ended, but how cannot be known; the text says why and what to check.
    case unknown(String)
}

/// Where tcp/http/icmp ready checks reach an instance's workload.
public struct InstanceAddress: Sendable, Equatable {
    public var host: String
    /// Behind NAT (QEMU user-mode networking): the host port forwarded to the workload's port; nil
    /// when `host` is the workload's own address and the check's port is used as given.
    public var forwardedPort: Int?
    /// The NAT accepts on the host side before the guest listens, so a TCP check must also get
    /// the guest's banner; and no ICMP echo reaches the guest.
    public var behindNAT: Bool { forwardedPort != nil }

    public init(host: String, forwardedPort: Int? = nil) {
        self.host = host
        self.forwardedPort = forwardedPort
    }
}

/// One instance being measured: each of `start`, `waitRunning`, `stop` and `remove` is one phase and
/// returns when the engine says it is done. The `ready` phase is the runner's (`ReadyProbes.wait`):
/// it reads what the instance exposes here (its address, its workload's state, its log), so every
/// backend's ready check is the same code.
public protocol StartupInstance: AnyObject, Sendable {
    var name: String { get }
    func start() async throws
    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws
    /// Where tcp/http/icmp checks connect. May wait (a container whose address is not known yet);
    /// throws a `StartupError` when the instance has no network reachable from the host.
    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress
    /// Whether the workload still runs and, once it ended, its exit status.
    func workloadState() async throws -> WorkloadState
    /// What the workload printed so far (container log, LXC workload log, serial console, output).
    func log() async throws -> String
    func stop() async throws
    func remove() async throws
    /// Labels learned during the attempt (engine event cross-check, addresses), read after `remove`.
    var labels: [String: String] { get }
    /// A backend's own readiness test that replaces the plan's `ReadyCheck` (the cmd backend's
    /// `ready` command); nil (the default) for the plan's.
    var ownReadyCheck: (@Sendable (Deadline, StopFlag) async throws -> Void)? { get }
}

extension StartupInstance {
    public var ownReadyCheck: (@Sendable (Deadline, StopFlag) async throws -> Void)? { nil }
}

/// A one-off step a backend takes before its attempts so that they start from a snapshot (docker
/// commit of a running container, QEMU state saved to a file); timed on the client's monotonic clock.
public struct SnapshotStep: Sendable, Equatable {
    /// The sample phase: `commit` or `save`.
    public var phase: String
    /// What was timed, for the report ("docker commit (paused) of a running container").
    public var what: String
    public var milliseconds: Double
}

/// A startup backend (docker, lxc, qemu, cmd): creates instances; everything it creates is named
/// with the `edgemeter-` prefix so `cleanup` can find leftovers.
public protocol StartupBackend: AnyObject, Sendable {
    /// `docker`, `lxc`, `qemu`, `cmd`.
    var name: String { get }
    /// Provenance recorded on every sample (e.g. `accel=tcg`, `image=...`).
    var labels: [String: String] { get }
    /// Checks the engine is usable; throws a `StartupError` naming the fix when it is not.
    func prepare(stop: StopFlag) async throws
    /// `prepare(stop:)` plus whatever depends on the ready check (QEMU builds the guest initramfs
    /// for it here), so no attempt's timed phases include that one-off work. The runner calls this
    /// one; the default forwards to `prepare(stop:)`.
    func prepare(for ready: ReadyCheck, stop: StopFlag) async throws
    func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance
    /// Removes whatever this run created that is still there (called at the end, on failure and on stop).
    func cleanup() async
    /// Backends whose instances start from a snapshot: the snapshot step once it was taken (by
    /// `prepare`, or by the first `create`); nil (the default) for a cold start.
    var snapshotStep: SnapshotStep? { get }
}

extension StartupBackend {
    public func prepare(for ready: ReadyCheck, stop: StopFlag) async throws {
        try await prepare(stop: stop)
    }
    public var snapshotStep: SnapshotStep? { nil }
}

/// What the runner does: RUNS attempts, every phase recorded for each.
public struct StartupPlan: Sendable {
    public var scenario: String
    public var runs: Int
    public var ready: ReadyCheck
    /// Limit for create+start+running+ready of one attempt; the phase in progress gets `.timeout`.
    public var readyTimeout: Duration
    public init(scenario: String, runs: Int, ready: ReadyCheck, readyTimeout: Duration = .seconds(60)) {
        (self.scenario, self.runs, self.ready, self.readyTimeout) = (scenario, runs, ready, readyTimeout)
    }
}

/// One attempt's outcome, for tables and tests.
public struct StartupAttempt: Sendable {
    public var index: Int
    /// Milliseconds per phase; nil when the phase failed or was not reached.
    public var phases: [StartupPhase: Double]
    public var failure: String?
    /// The status of the attempt's `total` sample (`.ok` when it got ready).
    public var status: SampleStatus
    /// Wall-clock time the attempt began (the `timestamp` of its samples); nil when not known.
    public var startedAt: Date?
    public init(index: Int, phases: [StartupPhase: Double], failure: String? = nil, status: SampleStatus? = nil, startedAt: Date? = nil) {
        self.index = index
        self.phases = phases
        self.failure = failure
        self.status = status ?? (failure == nil ? .ok : .error)
        self.startedAt = startedAt
    }
}

public enum StartupRunner {
    /// Runs `plan.runs` attempts on `backend`, back to back, recording every phase of every attempt
    /// to `sink`: `StartupProbe.attempts(on:schedule:...)` with `Schedule.closedLoop(count: plan.runs)`
    /// (see there for the timing and the cleanup guarantees).
    @discardableResult
    public static func run(backend: StartupBackend, plan: StartupPlan, runID: String, sink: SampleSink, stop: StopFlag,
                           clock: any MeasurementClock = SystemClock(),
                           progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> [StartupAttempt] {
        try await StartupProbe(backends: [backend], plan: plan, runID: runID, progress: progress)
            .attempts(on: backend, schedule: .closedLoop(count: plan.runs), clock: clock, stop: stop, sink: sink)
    }

    static func runOne(backend: StartupBackend, plan: StartupPlan, index: Int, runID: String, sink: SampleSink,
                       stop: StopFlag, clock: any MeasurementClock) async -> StartupAttempt {
        let wall = clock.wallNow()
        var results: [StartupPhase: Result<Double, StartupError>] = [:]
        var instance: StartupInstance?
        var failure: String?
        var readyLabels: [String: String] = [:]
        let began = clock.monotonicNanoseconds()
        let deadline = Deadline(clock: clock, nanoseconds: began + plan.readyTimeout.nanoseconds)

        func timed(_ phase: StartupPhase, _ body: () async throws -> Void) async -> Bool {
            let t0 = clock.monotonicNanoseconds()
            do {
                try await body()
                results[phase] = .success(Self.ms(clock.monotonicNanoseconds() - t0))
                return true
            } catch {
                let e = Self.classify(error, phase: phase, stop: stop, deadline: deadline)
                results[phase] = .failure(e)
                if failure == nil { failure = "\(phase.rawValue): \(e.message)" }
                return false
            }
        }

        let upToReady: Bool = await {
            guard await timed(.create, { instance = try await backend.create(index: index, ready: plan.ready) }),
                  let inst = instance else { return false }
            guard await timed(.start, { try await inst.start() }) else { return false }
            guard await timed(.running, { try await inst.waitRunning(until: deadline, stop: stop) }) else { return false }
            return await timed(.ready, {
                readyLabels = try await ReadyProbes.wait(for: plan.ready, on: inst, until: deadline, stop: stop)
            })
        }()
        if upToReady { results[.total] = .success(Self.ms(clock.monotonicNanoseconds() - began)) }
        if let inst = instance {
            // Stop and remove are measured even after a failed ready: they still free the instance.
            _ = await timed(.stop, { try await inst.stop() })
            _ = await timed(.remove, { try await inst.remove() })
        }
        var labels = backend.labels
        labels["backend"] = backend.name
        labels["ready"] = plan.ready.kind
        labels["run"] = String(index + 1)
        labels["clock"] = "monotonic"
        if let inst = instance {
            labels["instance"] = inst.name
            labels.merge(inst.labels) { _, new in new }
        }
        labels.merge(readyLabels) { _, new in new }
        var values: [StartupPhase: Double] = [:]
        var totalStatus = SampleStatus.error
        for (phase, sample) in samples(results, failure: failure) {
            if let v = sample.value { values[phase] = v }
            if phase == .total { totalStatus = sample.status }
            sink.record(Sample(runID: runID, scenario: plan.scenario, probe: "startup", target: backend.name, metric: "startup",
                               phase: phase.rawValue, value: sample.value, unit: "ms", timestamp: wall, status: sample.status,
                               reason: sample.reason, labels: labels))
        }
        return StartupAttempt(index: index, phases: values, failure: failure, status: totalStatus, startedAt: wall)
    }

    /// One row per phase, in `StartupPhase.allCases` order, whatever happened: a phase that was not
    /// reached says which one failed, `total` of a failed attempt says why it never got ready.
    static func samples(_ results: [StartupPhase: Result<Double, StartupError>], failure: String?)
        -> [(StartupPhase, (value: Double?, status: SampleStatus, reason: String))] {
        let firstFailed = StartupPhase.allCases.first { if case .failure = results[$0] { return true }; return false }
        return StartupPhase.allCases.map { phase in
            switch results[phase] {
            case .success(let v)?:
                return (phase, (v, .ok, ""))
            case .failure(let e)?:
                return (phase, (nil, e.status, e.message))
            case nil:
                if phase == .total, let f = failure { return (phase, (nil, .error, "not ready: \(f)")) }
                if let f = firstFailed { return (phase, (nil, .error, "not reached: \(f.rawValue) failed")) }
                return (phase, (nil, .error, "not reached"))
            }
        }
    }

    static func classify(_ error: Error, phase: StartupPhase, stop: StopFlag, deadline: Deadline) -> StartupError {
        if let e = error as? StartupError { return e }
        if stop.isStopped { return StartupError("interrupted (\(stop.reason ?? "stop requested")) during \(phase.rawValue)") }
        if deadline.hasPassed { return StartupError("\(phase.rawValue) did not finish before the deadline", status: .timeout) }
        return StartupError("\(error)")
    }

    static func ms(_ nanoseconds: Int64) -> Double { Double(nanoseconds) / 1e6 }
}

/// Polls `condition` every `interval` (on the deadline's clock) until it returns true, the deadline
/// passes (`.timeout`) or a stop is requested. `what` names the awaited state in the error
/// ("container running").
func poll(_ what: String, until deadline: Deadline, stop: StopFlag, interval: Duration = .milliseconds(5),
          _ condition: () async throws -> Bool) async throws {
    let clock = deadline.clock
    while true {
        if try await condition() { return }
        if stop.isStopped { throw StartupError.interrupted(stop, waitingFor: what) }
        if deadline.hasPassed { throw StartupError("no \(what) before the timeout", status: .timeout) }
        let next = min(clock.monotonicNanoseconds() + interval.nanoseconds, deadline.nanoseconds)
        await clock.sleep(untilNanoseconds: next, stop: { stop.isStopped })
    }
}

/// A short, name-safe tag for instance names (`edgemeter-<tag>-<n>`): 10 hex digits of a FNV-1a
/// hash of the run ID (unique per run directory), so concurrent runs never share names.
public func instanceTag(_ runID: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in runID.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(String(h, radix: 16).suffix(10))
}
