import Foundation
import XCTest
import EdgeMeterPolicy
@testable import EdgeMeterController

/// The controller acting on an alert that moves (`when_none_meets`, issue 13's end to end with
/// posted delays): node_1 at 120 ms, node_2 at 60 ms, node_3 at 160 ms, 20 ms required.
final class ControllerNoneMeetsTests: XCTestCase {
    func testAnAlertThatMovesRunsTheExecutorThenTheBestIsActive() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        let a1 = try await c.call("POST", "/service_init", json: TestController.labService())
        XCTAssertEqual(a1.status, 200)
        _ = try await c.postSamples(["node_1": 5, "node_2": 30, "node_3": 80])
        let a2 = try await c.call("GET", "/migrate")
        XCTAssertEqual(a2.json["decision"] as? String, "migrate")
        // node_1's link raised: its window is now mostly 120 ms.
        _ = try await c.postSamples(["node_1": 120, "node_2": 60, "node_3": 160], count: 40)
        let m = try await c.call("GET", "/migrate")
        XCTAssertEqual(m.json["decision"] as? String, "alert", m.text)
        XCTAssertEqual(m.json["target"] as? String, "node_2")
        XCTAssertEqual(m.json["message"] as? String, "service migrated to node_2")
        XCTAssertEqual(m.json["reason"] as? String, "alert: no node meets 20 ms at p90; moving to node_2, the best: p90 60 ms "
                       + "against the active's 120 ms, expected interruption 300 ms")
        XCTAssertEqual(m.json["active_node"] as? String, "node_2")
        XCTAssertEqual(c.executor.calls.map { "\($0.from)->\($0.to)" }, ["node_2->node_1", "node_1->node_2"])
        let best = try await c.call("GET", "/migrate")
        XCTAssertEqual(best.json["decision"] as? String, "stay_best_is_active")
        XCTAssertEqual(best.json["message"] as? String, "can't migrate service! Best node is the one active node_2")
        XCTAssertTrue(c.logLines.contains { $0.contains("alert: no node meets 20 ms at p90; moving to node_2") }, "\(c.logLines)")
        // Loosened: met, no move.
        let a3 = try await c.call("POST", "/update_delay", json: ["delay": 100])
        XCTAssertEqual(a3.status, 200)
        let a4 = try await c.call("GET", "/migrate")
        XCTAssertEqual(a4.json["decision"] as? String, "stay_requirement_met")
        XCTAssertEqual(c.executor.calls.count, 2)
        let status = try await c.call("GET", "/status")
        XCTAssertTrue(status.text.contains("\"when_none_meets\":\"move-to-best\""), status.text)
    }

    func testAlertOnlyStaysAndABadValueIsRefusedNamingTheField() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        let bad = try await c.call("POST", "/service_init", json: TestController.labService(extra: ["when_none_meets": "sometimes"]))
        XCTAssertEqual(bad.status, 400, bad.text)
        XCTAssertEqual(bad.json["field"] as? String, "when_none_meets")
        XCTAssertTrue((bad.json["error"] as? String ?? "").contains("move-to-best, alert-only"), bad.text)
        let a5 = try await c.call("POST", "/service_init", json: TestController.labService(active: "node_1", extra: ["when_none_meets": "alert-only"]))
        XCTAssertEqual(a5.status, 200)
        _ = try await c.postSamples(["node_1": 120, "node_2": 60, "node_3": 160], count: 40)
        let m = try await c.call("GET", "/migrate")
        XCTAssertEqual(m.json["decision"] as? String, "alert", m.text)
        XCTAssertNil(m.json["target"])
        XCTAssertEqual(m.json["active_node"] as? String, "node_1")
        XCTAssertEqual(c.executor.calls.count, 0)
        // The controller's default (--when-none-meets) applies when service_init does not say.
        let records = try ServiceParsing.serviceInit(JSONFields(TestController.labService(), path: ""), whenNoneMeets: .alertOnly)
        XCTAssertEqual(records.map(\.hysteresis.whenNoneMeets), [.alertOnly])
    }
}
