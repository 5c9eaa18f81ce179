import Foundation
import XCTest
@testable import EdgeMeterController

/// The cmd executor with real programs (touch, test, rm, false, sleep) on files of a temporary directory.
final class CommandExecutorTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-cmdexec-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "\(dir)/app-node_1.running", contents: nil)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "\(dir)/\(name)") }

    func executor(switchPath: [String]? = nil, ready: [String]? = nil, rollback: [[String]]? = nil) throws -> CommandExecutor {
        try CommandExecutor(start: ["touch", "\(dir)/{service}-{to}.running"],
                            ready: ready ?? ["test", "-f", "\(dir)/{service}-{to}.running"],
                            switchPath: switchPath ?? ["touch", "\(dir)/path-{from}-to-{to}"],
                            stop: ["rm", "\(dir)/{service}-{from}.running"],
                            rollback: rollback ?? [["rm", "-f", "\(dir)/{service}-{to}.running"]])
    }

    func testMigrationRunsEveryStepInOrderWithPlaceholders() async throws {
        let r = try await executor().migrate(service: "app", from: "node_1", to: "node_2")
        XCTAssertEqual(r.outcome, .completed)
        XCTAssertEqual(r.phases.map(\.name), ["start_target", "wait_ready", "switch", "stop_old"])
        XCTAssertTrue(r.phases.allSatisfy { $0.outcome == .ok })
        XCTAssertEqual(r.phases[0].detail, "touch \(dir)/app-node_2.running")
        XCTAssertTrue(exists("app-node_2.running"))
        XCTAssertTrue(exists("path-node_1-to-node_2"))
        XCTAssertFalse(exists("app-node_1.running"))
        // Phases follow one another on one clock.
        for (p, q) in zip(r.phases, r.phases.dropFirst()) { XCTAssertLessThanOrEqual(p.endNanoseconds, q.startNanoseconds) }
        XCTAssertTrue(r.rollback.isEmpty)
    }

    func testReadyIsPolledUntilItPasses() async throws {
        var e = try executor(ready: ["test", "-f", "\(dir)/ready-{to}"])
        e.readyPollInterval = .milliseconds(20)
        let path = "\(dir)/ready-node_2"
        Task {
            try await Task.sleep(for: .milliseconds(400))
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        let r = try await e.migrate(service: "app", from: "node_1", to: "node_2")
        XCTAssertGreaterThanOrEqual(r.step(.waitReady)!.milliseconds, 300)
    }

    func testFailedSwitchRunsTheRollbackAndKeepsTheOldInstance() async throws {
        do {
            _ = try await executor(switchPath: ["false"]).migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("a failing switch must throw")
        } catch let e as ControllerError {
            XCTAssertTrue(e.description.contains("failed in switch"), e.description)
            XCTAssertTrue(e.description.contains("`false` exited with status 1"), e.description)
            XCTAssertTrue(e.description.contains("still runs on node_1"), e.description)
            let r = try XCTUnwrap(e.migration)
            XCTAssertEqual(r.outcome, .rolledBack)
            XCTAssertEqual(r.phases.map(\.name), ["start_target", "wait_ready", "switch"])
            XCTAssertEqual(r.phases[2].outcome, .failed)
            XCTAssertEqual(r.rollback.map(\.name), ["rollback_1"])
        }
        XCTAssertFalse(exists("app-node_2.running"), "the rollback removed what start created")
        XCTAssertTrue(exists("app-node_1.running"), "the old instance was not stopped")
    }

    func testStepTimeoutKillsTheCommand() async throws {
        var e = try CommandExecutor(start: ["sleep", "10"], ready: nil, switchPath: ["true"], stop: ["true"],
                                    rollback: [["touch", "\(dir)/rolled-back-{to}"]])
        e.stepTimeout = .milliseconds(300)
        let t0 = Date()
        do {
            _ = try await e.migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("must time out")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("`sleep 10` ran longer than"), err.description)
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        XCTAssertTrue(exists("rolled-back-node_2"))
    }

    func testReadyTimeoutAndFailedRollbackAreReported() async throws {
        var e = try executor(ready: ["false"], rollback: [["false"]])
        e.readyTimeout = .milliseconds(300)
        do {
            _ = try await e.migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("must time out")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("not ready within"), err.description)
            XCTAssertTrue(err.description.contains("the rollback failed too"), err.description)
            XCTAssertEqual(err.migration?.outcome, .rollbackFailed)
        }
    }

    func testFailedStopIsALeftoverNotARollback() async throws {
        let e = try CommandExecutor(start: ["touch", "\(dir)/{service}-{to}.running"], ready: nil,
                                    switchPath: ["true"], stop: ["rm", "\(dir)/{service}-{from}.missing"],
                                    rollback: [["rm", "-f", "\(dir)/{service}-{to}.running"]])
        let r = try await e.migrate(service: "app", from: "node_1", to: "node_2")
        XCTAssertEqual(r.outcome, .completedWithLeftover)
        XCTAssertEqual(r.activeNodeAfter, "node_2")
        XCTAssertEqual(r.step(.stopOld)?.outcome, .failed)
        XCTAssertTrue(r.error?.contains("node_1 still runs a copy") ?? false, r.error ?? "")
        XCTAssertTrue(r.rollback.isEmpty)
        XCTAssertTrue(exists("app-node_2.running"), "the target is kept: it serves")
    }

    func testMissingProgramAndEmptyCommand() async throws {
        XCTAssertThrowsError(try CommandExecutor(start: [], ready: nil, switchPath: ["true"], stop: ["true"])) {
            XCTAssertTrue("\($0)".contains("start command is empty"), "\($0)")
        }
        let e = try CommandExecutor(start: ["/nonexistent/edgemeter-start"], ready: nil, switchPath: ["true"], stop: ["true"])
        do {
            _ = try await e.migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("must fail")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("could not start"), err.description)
        }
    }
}
