import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
@testable import EdgeMeterController

final class ControllerServerTests: XCTestCase {
    func testMutatingCallsNeedTheBearerToken() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        for (method, path) in [("POST", "/service_init"), ("POST", "/update_delay"), ("GET", "/migrate"), ("POST", "/delays")] {
            let none = try await c.call(method, path, json: TestController.labService(), token: nil)
            XCTAssertEqual(none.status, 401, "\(method) \(path): \(none.text)")
            XCTAssertEqual(none.json["field"] as? String, "Authorization")
            let wrong = try await c.call(method, path, json: TestController.labService(), token: "guess")
            XCTAssertEqual(wrong.status, 401, "\(method) \(path)")
            XCTAssertFalse(wrong.text.contains(testToken), "the token must never be echoed")
        }
        let v4 = try await c.call("GET", "/status", token: nil).status
        XCTAssertEqual(v4, 200)
        let v5 = try await c.call("GET", "/decisions", token: nil).status
        XCTAssertEqual(v5, 200)
        // Nothing was declared by the refused calls.
        let v6 = await c.controller.serviceNames
        XCTAssertEqual(v6, [])
    }

    func testTheLabsEndpointsAnswerWithTheLabsMessages() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        let initAnswer = try await c.call("POST", "/service_init", json: TestController.labService())
        XCTAssertEqual(initAnswer.status, 200, initAnswer.text)
        XCTAssertEqual(initAnswer.json["message"] as? String, "all services deployed")

        let v7 = try await c.postSamples(["node_1": 5, "node_2": 30, "node_3": 80]).status
        XCTAssertEqual(v7, 200)
        let m = try await c.call("GET", "/migrate")
        XCTAssertEqual(m.status, 200, m.text)
        XCTAssertEqual(m.json["decision"] as? String, "migrate")
        XCTAssertEqual(m.json["message"] as? String, "service migrated to node_1")
        XCTAssertEqual(m.json["active_node"] as? String, "node_1")
        XCTAssertEqual(m.json["previous_node"] as? String, "node_2")
        let nodes = try XCTUnwrap(m.json["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.map { $0["observed_delay"] as? Double }, [5, 30, 80])
        XCTAssertEqual(nodes.map { $0["expected_delay"] as? Double }, [20, 20, 20])
        XCTAssertEqual(nodes.map { $0["active_node"] as? String }, ["node_2", "node_2", "node_2"])
        let phases = (m.json["migration"] as? [String: Any])?["phases"] as? [[String: Any]]
        XCTAssertEqual(phases?.map { $0["name"] as? String }, ["start_target", "wait_ready", "switch", "stop_old"])
        XCTAssertEqual(c.executor.calls.map { "\($0.from)->\($0.to)" }, ["node_2->node_1"])

        // A looser requirement: requirement met, no move.
        let u = try await c.call("POST", "/update_delay", json: ["service": "edge-app", "delay": 100])
        XCTAssertEqual(u.status, 200, u.text)
        XCTAssertEqual(u.json["message"] as? String, "delay requirement updated")
        let v8 = try await c.call("GET", "/migrate").json["decision"] as? String
        XCTAssertEqual(v8, "stay_requirement_met")

        // Tighter than any node: the best node is the active one, the lab's message.
        let v9 = try await c.call("POST", "/update_delay", json: ["requirement": "3ms@p90"]).status
        XCTAssertEqual(v9, 200)
        let best = try await c.call("GET", "/migrate?service=edge-app")
        XCTAssertEqual(best.json["decision"] as? String, "stay_best_is_active", best.text)
        XCTAssertEqual(best.json["message"] as? String, "can't migrate service! Best node is the one active node_1")
        XCTAssertTrue(c.logLines.contains { $0.contains("can't migrate service! Best node is the one active node_1") }, "\(c.logLines)")
        XCTAssertEqual(c.executor.calls.count, 1)

        // The audit trail, newest first, with inputs and timings.
        let d = try await c.call("GET", "/decisions?service=edge-app")
        let list = try XCTUnwrap(d.json["decisions"] as? [[String: Any]])
        XCTAssertEqual(list.map { ($0["decision"] as? [String: Any])?["kind"] as? String },
                       ["stay_best_is_active", "stay_requirement_met", "migrate"])
        let first = try XCTUnwrap(list.last)
        XCTAssertEqual(first["trigger"] as? String, "GET /migrate")
        XCTAssertNotNil((first["decision"] as? [String: Any])?["input"])
        XCTAssertEqual((first["migration"] as? [String: Any])?["outcome"] as? String, "completed")
        XCTAssertEqual(first["active_after"] as? String, "node_1")
    }

    func testBadInputGetsA4xxNamingTheField() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        func expect(_ method: String, _ path: String, json: Any? = nil, raw: String? = nil, status: Int, field: String,
                    line: UInt = #line) async throws {
            let a = try await c.call(method, path, json: json, raw: raw)
            XCTAssertEqual(a.status, status, a.text, line: line)
            XCTAssertEqual(a.json["field"] as? String, field, a.text, line: line)
            XCTAssertFalse((a.json["error"] as? String ?? "").isEmpty, line: line)
        }
        try await expect("GET", "/migrate", status: 409, field: "service")   // nothing declared yet
        try await expect("POST", "/service_init", raw: "{not json", status: 400, field: "body")
        var s = TestController.labService()
        s.removeValue(forKey: "active_node")
        try await expect("POST", "/service_init", json: s, status: 400, field: "active_node")
        try await expect("POST", "/service_init", json: TestController.labService(active: "node_9"), status: 404, field: "active_node")
        try await expect("POST", "/service_init", json: TestController.labService(extra: ["requirement": "-5ms@p90"]), status: 400,
                         field: "requirement")
        try await expect("POST", "/service_init", json: TestController.labService(targets: ["node_1": "ftp://x"]), status: 400,
                         field: "nodes[0].target")
        try await expect("POST", "/service_init", json: ["services": [TestController.labService(extra: ["window_s": -1])]], status: 400,
                         field: "services[0].window_s")
        let v10 = try await c.call("POST", "/service_init", json: TestController.labService()).status
        XCTAssertEqual(v10, 200)

        try await expect("GET", "/migrate?service=nope", status: 404, field: "service")
        try await expect("POST", "/update_delay", json: ["service": "nope", "delay": 20], status: 404, field: "service")
        try await expect("POST", "/update_delay", json: ["delay": -1], status: 400, field: "delay")
        try await expect("POST", "/update_delay", json: ["delay": "fast"], status: 400, field: "delay")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_9", "metric": "http_total", "samples_ms": [1]]]],
                         status: 404, field: "delays[0].node")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "http_total", "samples_ms": [1, -2]]]],
                         status: 400, field: "delays[0].samples_ms[1]")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "http_total", "samples_ms": [5_000_000]]]],
                         status: 400, field: "delays[0].samples_ms[0]")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "tcp_connect", "samples_ms": [1]]]],
                         status: 400, field: "delays[0].metric")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "http_total", "p50_ms": 9, "p90_ms": 5,
                                                               "p99_ms": 10, "samples": 10]]], status: 400, field: "delays[0].p90_ms")
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "http_total", "samples_ms": [1],
                                                               "timestamps": ["2099-01-01T00:00:00Z"]]]], status: 400,
                         field: "delays[0].timestamps[0]")
        try await expect("GET", "/decisions?limit=0", status: 400, field: "limit")
        // A refused row adds nothing, not even the valid rows before it.
        try await expect("POST", "/delays", json: ["delays": [["node": "node_1", "metric": "http_total", "samples_ms": [1]],
                                                              ["node": "node_9", "metric": "http_total", "samples_ms": [1]]]],
                         status: 404, field: "delays[1].node")
        let obs = await c.controller.observations("edge-app")
        XCTAssertEqual(obs.map(\.sent), [0, 0, 0])
    }

    func testStateSurvivesARestartOnTheSameFile() async throws {
        let c = try await TestController()
        let v11 = try await c.call("POST", "/service_init", json: TestController.labService()).status
        XCTAssertEqual(v11, 200)
        let v12 = try await c.call("POST", "/update_delay", json: ["delay": 25, "percentile": "p99"]).status
        XCTAssertEqual(v12, 200)
        let v13 = try await c.postSamples(["node_1": 5, "node_2": 30, "node_3": 80]).status
        XCTAssertEqual(v13, 200)
        let v14 = try await c.call("GET", "/migrate").json["active_node"] as? String
        XCTAssertEqual(v14, "node_1")
        await c.stop()

        try await c.start()   // a new store and controller on the same file
        defer { Task { await c.stop() } }
        let st = try await c.call("GET", "/status")
        let svc = try XCTUnwrap((st.json["services"] as? [[String: Any]])?.first)
        XCTAssertEqual(svc["active_node"] as? String, "node_1")
        XCTAssertEqual(svc["requirement"] as? String, "25 ms at p99")
        XCTAssertNotNil((svc["policy_state"] as? [String: Any])?["last_move_to"])
        let d = try await c.call("GET", "/decisions")
        let list = try XCTUnwrap(d.json["decisions"] as? [[String: Any]])
        XCTAssertEqual(list.count, 1)
        XCTAssertEqual((list[0]["decision"] as? [String: Any])?["kind"] as? String, "migrate")
        XCTAssertEqual(list[0]["id"] as? Int, 1)
        // The windows start empty after a restart: no decision from stale samples.
        let v15 = try await c.call("GET", "/migrate").json["decision"] as? String
        XCTAssertEqual(v15, "stay_insufficient_data")
    }

    func testAFailedMoveRollsBackKeepsTheNodeAndStartsNoCooldown() async throws {
        let clock = ManualClock()
        let c = try await TestController(clock: clock, executor: DryRunExecutor(clock: clock, failAt: .waitReady))
        defer { Task { await c.stop() } }
        let v16 = try await c.call("POST", "/service_init", json: TestController.labService(extra: ["cooldown_s": 30])).status
        XCTAssertEqual(v16, 200)
        let v17 = try await c.postSamples(["node_1": 5, "node_2": 30, "node_3": 80]).status
        XCTAssertEqual(v17, 200)
        let m = try await c.call("GET", "/migrate")
        XCTAssertEqual(m.json["decision"] as? String, "migrate", m.text)
        XCTAssertEqual(m.json["active_node"] as? String, "node_2")
        XCTAssertEqual((m.json["migration"] as? [String: Any])?["outcome"] as? String, "rolled_back")
        XCTAssertTrue((m.json["message"] as? String ?? "").hasPrefix("migration to node_1 failed"), m.text)
        // The executor works again: the next decision moves at once (no cooldown from the failed move).
        c.executor.setFailure(at: nil)
        let again = try await c.call("GET", "/migrate")
        XCTAssertEqual(again.json["decision"] as? String, "migrate", again.text)
        XCTAssertEqual(again.json["active_node"] as? String, "node_1")
    }

    func testMetricsIsValidPrometheusText() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        let v18 = try await c.call("POST", "/service_init", json: TestController.labService()).status
        XCTAssertEqual(v18, 200)
        let v19 = try await c.postSamples(["node_1": 5, "node_2": 30, "node_3": 80]).status
        XCTAssertEqual(v19, 200)
        _ = try await c.call("GET", "/migrate")
        let m = try await c.call("GET", "/metrics", token: nil)
        XCTAssertEqual(m.status, 200)
        XCTAssertTrue(m.text.contains("edgemeter_controller_node_delay_seconds{service=\"edge-app\",node=\"node_2\",percentile=\"p90\"} 0.03\n"), m.text)
        XCTAssertTrue(m.text.contains("edgemeter_controller_active_node{service=\"edge-app\",node=\"node_1\"} 1\n"), m.text)
        XCTAssertTrue(m.text.contains("edgemeter_controller_decisions_total{service=\"edge-app\",kind=\"migrate\"} 1\n"), m.text)
        XCTAssertTrue(m.text.contains("edgemeter_controller_migrations_total{service=\"edge-app\",outcome=\"completed\"} 1\n"), m.text)
        guard let promtool = which("promtool") else {
            throw XCTSkip("promtool not installed: run scripts/setup.sh (Debian package prometheus) to check the format with it")
        }
        let file = c.dir.appendingPathComponent("metrics.txt")
        try m.text.write(to: file, atomically: true, encoding: .utf8)
        let r = try runCommand("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file.path], timeout: 30)
        XCTAssertEqual(r.status, 0, "promtool: \(r.stdout) \(r.stderr)")
        // The check can fail: a broken exposition is refused.
        try (m.text + "edgemeter_bad{x=\"1\" 2\n").write(to: file, atomically: true, encoding: .utf8)
        let bad = try runCommand("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file.path], timeout: 30)
        XCTAssertNotEqual(bad.status, 0)
    }
}
