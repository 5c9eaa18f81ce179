import EdgeMeterCore
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

/// One instance being measured: each method is one phase and returns when the engine says it is done.
public protocol StartupInstance: AnyObject, Sendable {
    var name: String { get }
    func start() async throws
    func waitRunning(until deadline: ContinuousClock.Instant, stop: StopFlag) async throws
    func waitReady(_ check: ReadyCheck, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws
    func stop() async throws
    func remove() async throws
    /// Labels learned during the attempt (engine event cross-check, addresses), read after `remove`.
    var labels: [String: String] { get }
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
}

extension StartupBackend {
    public func prepare(for ready: ReadyCheck, stop: StopFlag) async throws {
        try await prepare(stop: stop)
    }
}

/// What the runner does: RUNS attempts, every phase recorded for each.
public struct StartupPlan: Sendable {
    public var scenario: String
    public var runs: Int
    public var ready: ReadyCheck
    /// Limit for create+start+running+ready of one attempt; the phase in progress gets `.timeout`.
    public var readyTimeout: Duration
    public init(scenario: String, runs: Int, ready: ReadyCheck, readyTimeout: Duration = .seconds(60)) {
        self.scenario = scenario
        self.runs = runs
        self.ready = ready
        self.readyTimeout = readyTimeout
    }
}

/// One attempt's outcome, for tables and tests.
public struct StartupAttempt: Sendable {
    public var index: Int
    /// Milliseconds per phase; nil when the phase failed or was not reached.
    public var phases: [StartupPhase: Double]
    public var failure: String?
    public init(index: Int, phases: [StartupPhase: Double], failure: String? = nil) {
        self.index = index
        self.phases = phases
        self.failure = failure
    }
}

public enum StartupRunner {
    /// Runs `plan.runs` attempts on `backend`, recording every phase of every attempt to `sink`.
    /// Durations come from `ContinuousClock` (CLOCK_MONOTONIC) on the client side. Always calls
    /// `backend.cleanup()` before returning, also when stopped or when an attempt fails.
    @discardableResult
    public static func run(backend: StartupBackend, plan: StartupPlan, runID: String, sink: SampleSink, stop: StopFlag,
                           progress: @Sendable (String) -> Void = { _ in }) async throws -> [StartupAttempt] {
        do {
            try await backend.prepare(for: plan.ready, stop: stop)
        } catch {
            await backend.cleanup()
            throw error
        }
        var attempts: [StartupAttempt] = []
        for index in 0..<plan.runs {
            if stop.isStopped { break }
            let attempt = await runOne(backend: backend, plan: plan, index: index, runID: runID, sink: sink, stop: stop)
            attempts.append(attempt)
            if let f = attempt.failure {
                progress("\(backend.name) run \(index + 1)/\(plan.runs) failed: \(f)")
            } else {
                progress("\(backend.name) run \(index + 1)/\(plan.runs): ready after \(String(format: "%.1f", attempt.phases[.total] ?? 0)) ms")
            }
        }
        await backend.cleanup()
        return attempts
    }

    static func runOne(backend: StartupBackend, plan: StartupPlan, index: Int, runID: String, sink: SampleSink,
                       stop: StopFlag) async -> StartupAttempt {
        let clock = ContinuousClock()
        let wall = Date()
        var results: [StartupPhase: Result<Double, StartupError>] = [:]
        var instance: StartupInstance?
        var failure: String?
        let began = clock.now
        let deadline = began.advanced(by: plan.readyTimeout)

        func timed(_ phase: StartupPhase, _ body: () async throws -> Void) async -> Bool {
            let t0 = clock.now
            do {
                try await body()
                results[phase] = .success(Self.ms(clock.now - t0))
                return true
            } catch {
                let e = Self.classify(error, phase: phase, stop: stop, deadline: deadline, clock: clock)
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
            return await timed(.ready, { try await inst.waitReady(plan.ready, until: deadline, stop: stop) })
        }()
        if upToReady { results[.total] = .success(Self.ms(clock.now - began)) }
        if let inst = instance {
            // Stop and remove are measured even after a failed ready: they still free the instance.
            _ = await timed(.stop, { try await inst.stop() })
            _ = await timed(.remove, { try await inst.remove() })
        }
        let firstFailed = StartupPhase.allCases.first { if case .failure = results[$0] { return true }; return false }
        var labels = backend.labels
        labels["backend"] = backend.name
        labels["ready"] = plan.ready.kind
        labels["run"] = String(index + 1)
        labels["clock"] = "monotonic"
        if let inst = instance {
            labels["instance"] = inst.name
            labels.merge(inst.labels) { _, new in new }
        }
        var values: [StartupPhase: Double] = [:]
        for phase in StartupPhase.allCases {
            let value: Double?
            let status: SampleStatus
            let reason: String
            switch results[phase] {
            case .success(let v)?:
                value = v; status = .ok; reason = ""
                values[phase] = v
            case .failure(let e)?:
                value = nil; status = e.status; reason = e.message
            case nil:
                value = nil; status = .error
                if phase == .total, let f = failure {
                    reason = "not ready: \(f)"
                } else if let f = firstFailed {
                    reason = "not reached: \(f.rawValue) failed"
                } else {
                    reason = "not reached"
                }
            }
            sink.record(Sample(runID: runID, scenario: plan.scenario, probe: "startup", target: backend.name, metric: "startup",
                               phase: phase.rawValue, value: value, unit: "ms", timestamp: wall, status: status,
                               reason: reason, labels: labels))
        }
        return StartupAttempt(index: index, phases: values, failure: failure)
    }

    static func classify(_ error: Error, phase: StartupPhase, stop: StopFlag, deadline: ContinuousClock.Instant,
                         clock: ContinuousClock) -> StartupError {
        if let e = error as? StartupError { return e }
        if stop.isStopped { return StartupError("interrupted (\(stop.reason ?? "stop requested")) during \(phase.rawValue)") }
        if clock.now >= deadline { return StartupError("\(phase.rawValue) did not finish before the deadline", status: .timeout) }
        return StartupError("\(error)")
    }

    static func ms(_ d: Duration) -> Double { Double(d.nanoseconds) / 1e6 }
}

/// Polls `condition` every `interval` until it returns true, the deadline passes (`.timeout`) or a
/// stop is requested. `what` names the awaited state in the error ("container running").
func poll(_ what: String, until deadline: ContinuousClock.Instant, stop: StopFlag, interval: Duration = .milliseconds(5),
          _ condition: () async throws -> Bool) async throws {
    while true {
        if try await condition() { return }
        if stop.isStopped { throw StartupError("interrupted (\(stop.reason ?? "stop requested")) while waiting for \(what)") }
        if ContinuousClock.now >= deadline { throw StartupError("no \(what) before the timeout", status: .timeout) }
        try await Task.sleep(for: interval)
    }
}

/// A short, name-safe tag for instance names (`edgemeter-<tag>-<n>`): 10 hex digits of a FNV-1a
/// hash of the run ID (unique per run directory), so concurrent runs never share names.
public func instanceTag(_ runID: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in runID.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(String(h, radix: 16).suffix(10))
}
