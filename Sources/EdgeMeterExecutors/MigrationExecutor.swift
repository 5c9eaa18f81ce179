import Foundation
import EdgeMeterHTTP

/// Moves one service from one node to another, make-before-break: the service is started and
/// ready on the target before the client path is switched, and the old instance is stopped last.
///
/// Rollback contract: `migrate` either returns a report whose `outcome` is `.migrated` (the
/// service answers from `to`, the old instance is gone), or throws an `ExecutorError` after it
/// has rolled back: whatever it created on `to` is removed and the client path points to `from`
/// again, so the service still answers from `from`. The error's `report` lists the failed phase
/// and every rollback step with its timing.
public protocol MigrationExecutor: Sendable {
    /// `docker`, `kubernetes`, `cmd`.
    var kind: String { get }
    func migrate(service: String, from: String, to: String) async throws -> MigrationReport
}

/// One timed step of a migration or of its rollback. Times are CLOCK_MONOTONIC nanoseconds
/// (`monotonicNanos`) counted from the report's `startedAt`.
public struct PhaseTiming: Sendable, Codable, Equatable {
    /// `start`, `ready`, `switch`, `drain`, `stop` (docker); `create`, `available`, `switch`,
    /// `delete` (kubernetes); `rollback: ...` for rollback steps.
    public var name: String
    public var startNanoseconds: Int64
    public var endNanoseconds: Int64
    public var ok: Bool
    /// What was done (`POST /containers/create`, `kubectl` argv, ...) or why it failed.
    public var detail: String

    /// From the step's first action until it succeeded or failed.
    public var milliseconds: Double { Double(endNanoseconds - startNanoseconds) / 1e6 }
}

/// What one `migrate` call did, step by step, and how it ended.
public struct MigrationReport: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable { case migrated, rolledBack = "rolled_back", rollbackFailed = "rollback_failed" }
    public var executor: String
    public var service: String
    public var from: String
    public var to: String
    /// CLOCK_MONOTONIC nanoseconds when `migrate` began; phase times count from here.
    public var startedAt: UInt64
    public var phases: [PhaseTiming] = []
    public var rollback: [PhaseTiming] = []
    public var outcome: Outcome = .migrated

    public init(executor: String, service: String, from: String, to: String) {
        (self.executor, self.service, self.from, self.to) = (executor, service, from, to)
        startedAt = monotonicNanos()
    }

    /// From `migrate`'s start to the end of its last step (rollback included).
    public var totalMilliseconds: Double {
        let end = (phases + rollback).map(\.endNanoseconds).max() ?? 0
        return Double(end) / 1e6
    }

    /// The timing of the phase `name` (nil when it did not run).
    public func phase(_ name: String) -> PhaseTiming? { phases.first { $0.name == name } }

    /// One line per phase and rollback step: `switch 0.412 ms ok (proxy → node_2 172.17.0.5:8000)`.
    public var text: String {
        var out = "\(executor) migration of \(service) \(from) → \(to): \(outcome.rawValue), \(String(format: "%.1f", totalMilliseconds)) ms\n"
        for p in phases + rollback {
            out += "  \(p.name) \(String(format: "%.3f", p.milliseconds)) ms \(p.ok ? "ok" : "FAILED") (\(p.detail))\n"
        }
        return out
    }

    /// Runs `body` as the phase `name`, timing it; a thrown error marks the phase failed and is rethrown.
    @discardableResult
    mutating func run<T>(_ name: String, rollbackStep: Bool = false, _ detail: String,
                         _ body: () async throws -> T) async throws -> T {
        let t0 = Int64(monotonicNanos() - startedAt)
        do {
            let v = try await body()
            append(PhaseTiming(name: name, startNanoseconds: t0, endNanoseconds: Int64(monotonicNanos() - startedAt), ok: true, detail: detail), rollbackStep)
            return v
        } catch {
            append(PhaseTiming(name: name, startNanoseconds: t0, endNanoseconds: Int64(monotonicNanos() - startedAt), ok: false,
                               detail: "\(detail): \(error)"), rollbackStep)
            throw error
        }
    }

    private mutating func append(_ p: PhaseTiming, _ rollbackStep: Bool) {
        if rollbackStep { rollback.append(p) } else { phases.append(p) }
    }
}

/// The one error type of the executors: what failed, what was rolled back, and what to do next.
public struct ExecutorError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The report of the migration that failed (phases and rollback steps), when one had begun.
    public var report: MigrationReport?

    public init(_ message: String, report: MigrationReport? = nil) {
        self.message = message
        self.report = report
    }

    public var description: String { message }
}

/// Replaces `{service}`, `{from}` and `{to}` in `text`.
public func substitutePlaceholders(_ text: String, service: String, from: String, to: String) -> String {
    text.replacingOccurrences(of: "{service}", with: service)
        .replacingOccurrences(of: "{from}", with: from)
        .replacingOccurrences(of: "{to}", with: to)
}
