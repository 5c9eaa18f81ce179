import Foundation
import EdgeMeterSystem

/// Migrates a service with programs of your own, one argument list per step (never a shell):
/// `start` (start the service on the target), `ready` (exit 0 once it is ready; run again every
/// `readyPollInterval` until `readyTimeout`), `switch` (move the client path), `stop` (stop the old
/// instance). `{service}`, `{from}` and `{to}` are replaced in every argument. Each step has its
/// own timeout (the program's whole process group is killed when it passes). A failing step runs
/// the `rollback` commands in order (each with `stepTimeout`) and `migrate` throws; a failing
/// `stop` is rolled back too, so a thrown error always means the rollback commands ran.
public struct CommandExecutor: MigrationExecutor {
    public let kind = "cmd"
    public var start: [String]
    public var ready: [String]?
    public var switchPath: [String]
    public var stop: [String]
    public var rollback: [[String]]
    /// Longest run of start, switch, stop and each rollback command.
    public var stepTimeout: Duration = .seconds(60)
    /// Longest wait for `ready` to exit 0 (over all its runs).
    public var readyTimeout: Duration = .seconds(60)
    public var readyPollInterval: Duration = .milliseconds(100)

    public init(start: [String], ready: [String]?, switchPath: [String], stop: [String], rollback: [[String]] = []) throws {
        var steps: [(String, [String])] = [("start", start), ("switch", switchPath), ("stop", stop)]
        if let ready { steps.append(("ready", ready)) }
        for r in rollback { steps.append(("rollback", r)) }
        for (name, argv) in steps where argv.isEmpty || argv[0].isEmpty {
            throw ExecutorError("the cmd executor's \(name) command is empty: give a program and its arguments, such as [\"docker\", \"start\", \"{service}-{to}\"]")
        }
        (self.start, self.ready, self.switchPath, self.stop, self.rollback) = (start, ready, switchPath, stop, rollback)
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        var report = MigrationReport(executor: kind, service: service, from: from, to: to)
        func argv(_ a: [String]) -> [String] { a.map { substitutePlaceholders($0, service: service, from: from, to: to) } }
        do {
            try await report.run("start", argv(start).joined(separator: " ")) { try await runStep("start", argv(start), timeout: stepTimeout) }
            if let ready {
                try await report.run("ready", argv(ready).joined(separator: " ")) { try await waitReady(argv(ready)) }
            }
            try await report.run("switch", argv(switchPath).joined(separator: " ")) { try await runStep("switch", argv(switchPath), timeout: stepTimeout) }
            try await report.run("stop", argv(stop).joined(separator: " ")) { try await runStep("stop", argv(stop), timeout: stepTimeout) }
            return report
        } catch {
            var ok = true
            for (i, cmd) in rollback.enumerated() {
                do {
                    try await report.run("rollback: \(i + 1)", rollbackStep: true, argv(cmd).joined(separator: " ")) {
                        try await runStep("rollback \(i + 1)", argv(cmd), timeout: stepTimeout)
                    }
                } catch { ok = false }
            }
            report.outcome = ok ? .rolledBack : .rollbackFailed
            throw ExecutorError("migrating \(service) from \(from) to \(to) failed at \(report.phases.last?.name ?? "start"): \(error); "
                                + (rollback.isEmpty ? "no rollback commands were given" : ok ? "the \(rollback.count) rollback commands ran"
                                   : "a rollback command failed too (see the report)"), report: report)
        }
    }

    private func runStep(_ name: String, _ argv: [String], timeout: Duration) async throws {
        let r: CommandResult
        do {
            r = try await Command.run(argv, timeout: timeout, maxOutputBytes: 64 << 10)
        } catch {
            throw ExecutorError("the \(name) command `\(argv.joined(separator: " "))` could not start: \(error)")
        }
        if r.timedOut { throw ExecutorError("the \(name) command `\(argv.joined(separator: " "))` ran longer than \(timeout) and was killed") }
        if r.status != 0 {
            throw ExecutorError("the \(name) command `\(argv.joined(separator: " "))` exited with status \(r.status)\(r.combined.isEmpty ? "" : ": \(r.combined.prefix(300))")")
        }
    }

    private func waitReady(_ argv: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + readyTimeout
        var last = ""
        while true {
            let left = deadline - clock.now
            do {
                try await runStep("ready", argv, timeout: max(left, .milliseconds(10)))
                return
            } catch let e as ExecutorError {
                last = e.message
                if e.message.contains("could not start") { throw e }
            }
            if clock.now >= deadline {
                throw ExecutorError("not ready within \(readyTimeout): \(last)")
            }
            try await Task.sleep(for: readyPollInterval)
        }
    }
}
