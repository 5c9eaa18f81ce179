import XCTest
import EdgeMeterCore
@testable import EdgeMeterController

final class MigrationExecutorTests: XCTestCase {
    func testDryRunRecordsEveryPhaseInOrderWithTimings() async throws {
        let clock = ManualClock()
        let x = DryRunExecutor(clock: clock, phaseDuration: .milliseconds(25))
        let r = try await x.migrate(service: "edge-app", from: "node_2", to: "node_1")
        XCTAssertEqual(r.phases.map(\.name), MigrationPhase.allCases.map(\.rawValue))
        XCTAssertEqual(r.phases.map(\.milliseconds), [25, 25, 25, 25])
        XCTAssertEqual(r.outcome, .completed)
        XCTAssertEqual(r.activeNodeAfter, "node_1")
        XCTAssertEqual(r.totalMilliseconds, 100)
        XCTAssertEqual(x.calls.map(\.to), ["node_1"])
    }

    func testFailureBeforeTheSwitchRollsBackAndThrowsTheReport() async throws {
        let x = DryRunExecutor(clock: ManualClock(), failAt: .waitReady)
        do {
            _ = try await x.migrate(service: "edge-app", from: "node_2", to: "node_1")
            XCTFail("expected a failure")
        } catch let e as ControllerError {
            let r = try XCTUnwrap(e.migration)
            XCTAssertEqual(r.outcome, .rolledBack)
            XCTAssertEqual(r.activeNodeAfter, "node_2")
            XCTAssertEqual(r.phases.map(\.name), ["start_target", "wait_ready"])
            XCTAssertEqual(r.phases.last?.outcome, .failed)
            XCTAssertEqual(r.rollback.map(\.name), ["stop_target"])
            XCTAssertTrue(e.description.contains("wait_ready"), e.description)
            XCTAssertTrue(e.description.contains("still runs on node_2"), e.description)
        }
    }

    func testFailedRollbackLeavesTheNodeUnknown() async throws {
        let x = DryRunExecutor(clock: ManualClock(), failAt: .switchPath, failRollback: true)
        do {
            _ = try await x.migrate(service: "s", from: "a", to: "b")
            XCTFail("expected a failure")
        } catch let e as ControllerError {
            XCTAssertEqual(e.migration?.outcome, .rollbackFailed)
            XCTAssertNil(e.migration?.activeNodeAfter)
            XCTAssertEqual(e.migration?.rollback.map(\.name), ["switch_back", "stop_target"])
            XCTAssertTrue(e.description.contains("POST /service_init"), e.description)
        }
    }

    func testStopOldFailureKeepsTheMoveAndNamesTheLeftover() async throws {
        let x = DryRunExecutor(clock: ManualClock(), failAt: .stopOld)
        let r = try await x.migrate(service: "s", from: "a", to: "b")
        XCTAssertEqual(r.outcome, .completedWithLeftover)
        XCTAssertEqual(r.activeNodeAfter, "b")
        XCTAssertTrue(r.error?.contains("a still runs a copy of s") ?? false, r.error ?? "")
    }
}
