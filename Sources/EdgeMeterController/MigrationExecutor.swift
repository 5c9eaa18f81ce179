import Foundation
import EdgeMeterCore

/// The steps of a make-before-break move, in the order an executor runs them.
public enum MigrationPhase: String, Codable, Sendable, CaseIterable {
    /// Start the service on the target node (container started, Deployment created, command run).
    case startTarget = "start_target"
    /// Wait until the target answers as the service (HTTP 200, `availableReplicas` ≥ 1, ready command).
    case waitReady = "wait_ready"
    /// Switch the client path to the target (proxy backend, Service selector, route). The commit
    /// point: before it ends the old node serves, after it the new one does.
    case switchPath = "switch"
    /// Stop the service on the old node.
    case stopOld = "stop_old"
}

/// One phase or rollback step as it ran. Times are monotonic nanoseconds of the executor's clock
/// (`SystemClock`: CLOCK_MONOTONIC; `ManualClock` in tests), taken just before the step's first
/// action and just after its last.
public struct MigrationStep: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable { case ok, failed }
    /// A `MigrationPhase` raw value for phases; a free name for rollback steps ("stop_target",
    /// "switch_back", "delete_deployment").
    public var name: String
    public var startNanoseconds: Int64
    public var endNanoseconds: Int64
    public var outcome: Outcome
    /// What was done (container id, HTTP request, command line) or, when failed, why.
    public var detail: String?

    public init(name: String, startNanoseconds: Int64, endNanoseconds: Int64, outcome: Outcome, detail: String? = nil) {
        self.name = name
        self.startNanoseconds = startNanoseconds
        self.endNanoseconds = endNanoseconds
        self.outcome = outcome
        self.detail = detail
    }

    /// From the step's start to its end, in milliseconds.
    public var milliseconds: Double { Double(endNanoseconds - startNanoseconds) / 1e6 }
}

/// What one migration did: each phase with its timing, the rollback steps if any, and the result.
public struct MigrationReport: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// All four phases succeeded: the service runs on `to` only.
        case completed
        /// Switched to `to`, but stopping the old node failed: the service runs on `to`, `from`
        /// still runs a copy (named in the failed `stop_old` step) that needs removing.
        case completedWithLeftover = "completed_with_leftover"
        /// A phase before the switch's end failed and every rollback step succeeded: the service
        /// runs on `from` as before.
        case rolledBack = "rolled_back"
        /// A phase failed and a rollback step failed too: where the service runs is unknown.
        case rollbackFailed = "rollback_failed"
    }

    /// The executor's name ("docker", "kubernetes", "cmd", "dry-run").
    public var executor: String
    public var service: String
    public var from: String
    public var to: String
    /// Wall-clock time (CLOCK_REALTIME) when the first phase began, for logs and timelines.
    public var startedAt: Date
    /// The phases that ran, in order; a failed one is the last.
    public var phases: [MigrationStep]
    /// The rollback steps that ran after a failed phase, in order.
    public var rollback: [MigrationStep]
    public var outcome: Outcome
    /// The failure that ended the migration early (or the leftover's reason), nil when completed.
    public var error: String?

    public init(executor: String, service: String, from: String, to: String, startedAt: Date, phases: [MigrationStep] = [],
                rollback: [MigrationStep] = [], outcome: Outcome = .completed, error: String? = nil) {
        self.executor = executor
        self.service = service
        self.from = from
        self.to = to
        self.startedAt = startedAt
        self.phases = phases
        self.rollback = rollback
        self.outcome = outcome
        self.error = error
    }

    /// The phase's record, nil when it did not run.
    public func step(_ phase: MigrationPhase) -> MigrationStep? { phases.first { $0.name == phase.rawValue } }

    /// From the first phase's start to the last step's end (rollback included), in milliseconds.
    public var totalMilliseconds: Double {
        guard let first = phases.first else { return 0 }
        let end = (rollback.last ?? phases.last!).endNanoseconds
        return Double(end - first.startNanoseconds) / 1e6
    }

    /// The node the service runs on after this migration: `to` when completed (with or without a
    /// leftover), `from` when rolled back, nil when unknown.
    public var activeNodeAfter: String? {
        switch outcome {
        case .completed, .completedWithLeftover: return to
        case .rolledBack: return from
        case .rollbackFailed: return nil
        }
    }
}

/// Carries out a move the policy decided: make-before-break, in the four `MigrationPhase`s.
///
/// The contract every executor keeps (the controller relies on it):
/// 1. Phases run in order: `start_target`, `wait_ready`, `switch`, `stop_old`. Each is timed on
///    the executor's clock and recorded, also when it fails (`MigrationPhaseRecorder` does this).
/// 2. Until `switch` has ended, the old node keeps serving. If `start_target`, `wait_ready` or
///    `switch` fails (or the task is cancelled), the executor undoes what it did, newest first
///    (switch back if the switch was partly applied, stop and remove the target's copy), records
///    each undo step in `rollback`, and THROWS a `ControllerError` whose `migration` is the report
///    with outcome `rolled_back` (the service runs on `from`) or `rollback_failed` (unknown; the
///    controller stops deciding for the service until it is initialised again).
/// 3. If only `stop_old` fails, nothing is undone (the new node serves): `migrate` RETURNS the
///    report with outcome `completed_with_leftover` and the failed step naming the leftover.
/// 4. A target left over by an earlier failed attempt must not make `start_target` fail: replace
///    or reuse it.
/// 5. Every wait has a bound (the executor's own timeout options); nothing waits forever.
public protocol MigrationExecutor: Sendable {
    /// Short name for reports and logs: "docker", "kubernetes", "cmd", "dry-run".
    var name: String { get }
    /// Moves `service` from node `from` to node `to` (node names as the controller knows them).
    func migrate(service: String, from: String, to: String) async throws -> MigrationReport
}

/// Runs and times an executor's phases and rollback steps, and builds the report and the error
/// the contract asks for. Use one per `migrate` call:
///
///     var r = MigrationPhaseRecorder(executor: name, service: s, from: a, to: b, clock: clock)
///     do {
///         let id = try await r.run(.startTarget) { try await start(b) }
///         try await r.run(.waitReady) { try await waitReady(id) }
///         try await r.run(.switchPath) { try await proxy.switch(to: b) }
///     } catch {
///         await r.undo("stop_target") { try await stop(b) }
///         throw r.failure(error)
///     }
///     await r.finishing(.stopOld) { try await stop(a) }
///     return r.report
public struct MigrationPhaseRecorder: Sendable {
    public let clock: any MeasurementClock
    public private(set) var report: MigrationReport

    public init(executor: String, service: String, from: String, to: String, clock: any MeasurementClock) {
        self.clock = clock
        report = MigrationReport(executor: executor, service: service, from: from, to: to, startedAt: clock.wallNow())
    }

    /// Runs one phase and records it (ok with `detail`, or failed with the error's description),
    /// rethrowing its error.
    @discardableResult
    public mutating func run<T: Sendable>(_ phase: MigrationPhase, detail: String? = nil,
                                          _ body: () async throws -> T) async throws -> T {
        let start = clock.monotonicNanoseconds()
        do {
            let value = try await body()
            report.phases.append(MigrationStep(name: phase.rawValue, startNanoseconds: start,
                                               endNanoseconds: clock.monotonicNanoseconds(), outcome: .ok, detail: detail))
            return value
        } catch {
            report.phases.append(MigrationStep(name: phase.rawValue, startNanoseconds: start,
                                               endNanoseconds: clock.monotonicNanoseconds(), outcome: .failed,
                                               detail: "\(error)"))
            throw error
        }
    }

    /// Runs one rollback step and records it; never throws (a failed step makes the outcome
    /// `rollback_failed`). Returns whether it succeeded.
    @discardableResult
    public mutating func undo(_ step: String, detail: String? = nil, _ body: () async throws -> Void) async -> Bool {
        let start = clock.monotonicNanoseconds()
        do {
            try await body()
            report.rollback.append(MigrationStep(name: step, startNanoseconds: start, endNanoseconds: clock.monotonicNanoseconds(),
                                                 outcome: .ok, detail: detail))
            return true
        } catch {
            report.rollback.append(MigrationStep(name: step, startNanoseconds: start, endNanoseconds: clock.monotonicNanoseconds(),
                                                 outcome: .failed, detail: "\(error)"))
            return false
        }
    }

    /// Runs `stop_old`, the phase after the commit point: a failure is recorded and makes the
    /// outcome `completed_with_leftover`; nothing is thrown.
    public mutating func finishing(_ phase: MigrationPhase = .stopOld, detail: String? = nil,
                                   _ body: () async throws -> Void) async {
        do {
            try await run(phase, detail: detail, body)
        } catch {
            report.outcome = .completedWithLeftover
            report.error = "\(phase.rawValue) failed, \(report.from) still runs a copy of \(report.service) to remove: \(error)"
        }
    }

    /// The error to throw after a failed phase and its rollback: outcome `rolled_back` when every
    /// undo step succeeded, `rollback_failed` otherwise.
    public mutating func failure(_ error: Error) -> ControllerError {
        let clean = report.rollback.allSatisfy { $0.outcome == .ok }
        report.outcome = clean ? .rolledBack : .rollbackFailed
        let failed = report.phases.last { $0.outcome == .failed }?.name ?? "a phase"
        report.error = "\(error)"
        let next = clean
            ? "it was rolled back and \(report.service) still runs on \(report.from); fix the cause and the next decision retries"
            : "the rollback failed too (see its steps), so where \(report.service) runs is unknown; check \(report.from) and \(report.to) "
                + "by hand, then POST /service_init again"
        return ControllerError("moving \(report.service) from \(report.from) to \(report.to) with the \(report.executor) executor failed in "
                               + "\(failed): \(error); \(next)", status: 500, migration: report)
    }
}

/// An executor that only records: each phase takes `phaseDuration` on its clock (a `ManualClock`
/// jumps, a real clock sleeps) and does nothing else. `failAt` makes that phase fail, to test the
/// rollback path of its callers; `failRollback` makes the rollback fail as well.
public final class DryRunExecutor: MigrationExecutor, @unchecked Sendable {
    public let name = "dry-run"
    public let clock: any MeasurementClock
    public let phaseDuration: Duration
    private let lock = NSLock()
    private var _failAt: MigrationPhase?
    private var _failRollback = false
    private var _calls: [(service: String, from: String, to: String)] = []

    public init(clock: any MeasurementClock, phaseDuration: Duration = .milliseconds(10), failAt: MigrationPhase? = nil,
                failRollback: Bool = false) {
        self.clock = clock
        self.phaseDuration = phaseDuration
        _failAt = failAt
        _failRollback = failRollback
    }

    /// Every `migrate` call so far, in order.
    public var calls: [(service: String, from: String, to: String)] { lock.lock(); defer { lock.unlock() }; return _calls }

    /// Changes the failure injection for the next calls.
    public func setFailure(at phase: MigrationPhase?, rollbackFails: Bool = false) {
        lock.lock(); defer { lock.unlock() }
        _failAt = phase
        _failRollback = rollbackFails
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        let (failAt, failRollback): (MigrationPhase?, Bool) = {
            lock.lock(); defer { lock.unlock() }
            _calls.append((service, from, to))
            return (_failAt, _failRollback)
        }()
        let clock = self.clock
        let step = phaseDuration.nanoseconds
        @Sendable func pass(_ phase: MigrationPhase) async throws {
            await clock.sleep(untilNanoseconds: clock.monotonicNanoseconds() + step, stop: { false })
            if phase == failAt { throw ControllerError("dry-run: \(phase.rawValue) was told to fail", status: 500) }
        }
        var r = MigrationPhaseRecorder(executor: name, service: service, from: from, to: to, clock: clock)
        do {
            try await r.run(.startTarget, detail: "would start \(service) on \(to)") { try await pass(.startTarget) }
            try await r.run(.waitReady, detail: "would wait until \(service) on \(to) answers") { try await pass(.waitReady) }
            try await r.run(.switchPath, detail: "would switch the client path to \(to)") { try await pass(.switchPath) }
        } catch {
            if r.report.step(.switchPath) != nil {
                await r.undo("switch_back", detail: "would switch the client path back to \(from)") {
                    if failRollback { throw ControllerError("dry-run: switch_back was told to fail", status: 500) }
                }
            }
            await r.undo("stop_target", detail: "would stop \(service) on \(to)") {
                if failRollback { throw ControllerError("dry-run: stop_target was told to fail", status: 500) }
            }
            throw r.failure(error)
        }
        await r.finishing(detail: "would stop \(service) on \(from)") { try await pass(.stopOld) }
        return r.report
    }
}
