import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// Migrates a service with programs of your own, one argument list per step (never a shell):
/// `start` (start_target: start the service on the target), `ready` (wait_ready: exit 0 once it is
/// ready; run again every `readyPollInterval` until `readyTimeout`), `switch` (switch: move the
/// client path), `stop` (stop_old: stop the old instance). `{service}`, `{from}` and `{to}` are
/// replaced in every argument. Each run has a timeout after which the program's whole process group
/// is killed. A failing start, ready or switch runs the `rollback` commands in order (each with
/// `stepTimeout`) and throws; a failing stop is not rolled back (the target serves): the report's
/// outcome is `completed_with_leftover`. Leftovers of an earlier failed attempt are the start
/// command's to replace (the executor contract, rule 4).
public struct CommandExecutor: MigrationExecutor {
    public let name = "cmd"
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
    public var clock: any MeasurementClock = SystemClock()

    public init(start: [String], ready: [String]?, switchPath: [String], stop: [String], rollback: [[String]] = []) throws {
        var steps: [(String, [String])] = [("start", start), ("switch", switchPath), ("stop", stop)]
        if let ready { steps.append(("ready", ready)) }
        for r in rollback { steps.append(("rollback", r)) }
        for (name, argv) in steps where argv.isEmpty || argv[0].isEmpty {
            throw ControllerError("the cmd executor's \(name) command is empty: give a program and its arguments, such as [\"docker\", \"start\", \"{service}-{to}\"]")
        }
        (self.start, self.ready, self.switchPath, self.stop, self.rollback) = (start, ready, switchPath, stop, rollback)
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        var r = MigrationPhaseRecorder(executor: name, service: service, from: from, to: to, clock: clock)
        func argv(_ a: [String]) -> [String] { a.map { substitutePlaceholders($0, service: service, from: from, to: to) } }
        do {
            try await r.run(.startTarget, detail: argv(start).joined(separator: " ")) { try await runStep("start", argv(start), timeout: stepTimeout) }
            if let ready {
                try await r.run(.waitReady, detail: argv(ready).joined(separator: " ")) { try await waitReady(argv(ready)) }
            }
            try await r.run(.switchPath, detail: argv(switchPath).joined(separator: " ")) { try await runStep("switch", argv(switchPath), timeout: stepTimeout) }
        } catch {
            for (i, cmd) in rollback.enumerated() {
                await r.undo("rollback_\(i + 1)", detail: argv(cmd).joined(separator: " ")) {
                    try await runStep("rollback \(i + 1)", argv(cmd), timeout: stepTimeout)
                }
            }
            throw r.failure(error)
        }
        await r.finishing(detail: argv(stop).joined(separator: " ")) { try await runStep("stop", argv(stop), timeout: stepTimeout) }
        return r.report
    }

    private func runStep(_ name: String, _ argv: [String], timeout: Duration) async throws {
        let r: CommandResult
        do {
            r = try await Command.run(argv, timeout: timeout, maxOutputBytes: 64 << 10)
        } catch {
            throw ControllerError("the \(name) command `\(argv.joined(separator: " "))` could not start: \(error)", status: 500)
        }
        if r.timedOut { throw ControllerError("the \(name) command `\(argv.joined(separator: " "))` ran longer than \(timeout) and was killed", status: 500) }
        if r.status != 0 {
            throw ControllerError("the \(name) command `\(argv.joined(separator: " "))` exited with status \(r.status)\(r.combined.isEmpty ? "" : ": \(r.combined.prefix(300))")", status: 500)
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
            } catch let e as ControllerError {
                last = e.description
                if e.description.contains("could not start") { throw e }
            }
            if clock.now >= deadline {
                throw ControllerError("not ready within \(readyTimeout): \(last)", status: 500)
            }
            try await Task.sleep(for: readyPollInterval)
        }
    }
}
