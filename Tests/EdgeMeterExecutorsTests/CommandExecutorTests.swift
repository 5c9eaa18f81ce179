import Foundation
import XCTest
@testable import EdgeMeterExecutors

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
        XCTAssertEqual(r.outcome, .migrated)
        XCTAssertEqual(r.phases.map(\.name), ["start", "ready", "switch", "stop"])
        XCTAssertTrue(r.phases.allSatisfy(\.ok))
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
        XCTAssertGreaterThanOrEqual(r.phase("ready")!.milliseconds, 300)
    }

    func testFailedSwitchRunsTheRollbackAndKeepsTheOldInstance() async throws {
        do {
            _ = try await executor(switchPath: ["false"]).migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("a failing switch must throw")
        } catch let e as ExecutorError {
            XCTAssertTrue(e.message.contains("failed at switch"), e.message)
            XCTAssertTrue(e.message.contains("`false` exited with status 1"), e.message)
            let r = try XCTUnwrap(e.report)
            XCTAssertEqual(r.outcome, .rolledBack)
            XCTAssertEqual(r.phases.map(\.name), ["start", "ready", "switch"])
            XCTAssertFalse(r.phases[2].ok)
            XCTAssertEqual(r.rollback.map(\.name), ["rollback: 1"])
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
        } catch let err as ExecutorError {
            XCTAssertTrue(err.message.contains("`sleep 10` ran longer than"), err.message)
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
        } catch let err as ExecutorError {
            XCTAssertTrue(err.message.contains("not ready within"), err.message)
            XCTAssertTrue(err.message.contains("a rollback command failed too"), err.message)
            XCTAssertEqual(err.report?.outcome, .rollbackFailed)
        }
    }

    func testMissingProgramAndEmptyCommand() async throws {
        XCTAssertThrowsError(try CommandExecutor(start: [], ready: nil, switchPath: ["true"], stop: ["true"])) {
            XCTAssertTrue("\($0)".contains("start command is empty"), "\($0)")
        }
        let e = try CommandExecutor(start: ["/nonexistent/edgemeter-start"], ready: nil, switchPath: ["true"], stop: ["true"])
        do {
            _ = try await e.migrate(service: "app", from: "node_1", to: "node_2")
            XCTFail("must fail")
        } catch let err as ExecutorError {
            XCTAssertTrue(err.message.contains("could not start"), err.message)
        }
    }
}
