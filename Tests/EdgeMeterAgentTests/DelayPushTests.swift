import XCTest
import Logging
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterController
import EdgeMeterSystem
@testable import EdgeMeterAgent

/// The agent's pushes into a real controller (`edgemeter controller`'s server, in process).
final class DelayPushTests: XCTestCase {
    let token = "s3cret-token-for-agent-tests"

    func startController() async throws -> (ControllerServer.Running, MigrationController) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent-ctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let clock = SystemClock()
        let store = try ControllerStore(path: dir.appendingPathComponent("state.sqlite").path)
        let controller = try MigrationController(store: store, executor: DryRunExecutor(clock: clock), clock: clock, log: { _ in })
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try await ControllerServer.start(controller: controller, token: token, port: 0, logger: logger)
        return (server, controller)
    }

    func call(_ port: Int, _ method: String, _ path: String, json: Any) async throws -> (Int, String) {
        let body = Array(try JSONSerialization.data(withJSONObject: json))
        let addr = try await HTTPConnection.resolve(host: "127.0.0.1", port: port)
        let conn = try await HTTPConnection.connect(to: addr, targetName: "controller", timeout: .seconds(5))
        defer { conn.close() }
        let r = try await conn.send(HTTPRequestSpec(method: method, path: path, headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                                                    body: body), host: "127.0.0.1", keepAlive: false, timeout: .seconds(10))
        return (r.response.status, r.response.bodyText)
    }

    func testWindowsArePostedWithTheBearerTokenAndFeedTheController() async throws {
        let (server, _) = try await startController()
        defer { Task { await server.stop() } }
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let target = listener.address.hostPort
        let (s, t) = try await call(server.port, "POST", "/service_init", json: [
            "name": "edge-app", "metric": "tcp_connect", "nodes": [["name": "node_1"], ["name": "node_2"]],
            "active_node": "node_2", "requirement": "20ms@p90", "dwell_s": 0, "cooldown_s": 0, "min_samples": 1,
        ])
        XCTAssertEqual(s, 200, t)
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("agent-token-\(UUID().uuidString)").path
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            node: edge-1
            nodes: {node_1: 127.0.0.1}
            controller: {url: "\(server.url)", token_file: "\(tokenFile)", window: 1s}
            probes: [{name: conn, kind: tcping, targets: ["node_1:\(listener.address.port)"], interval: 50ms}]
            """)
        let lines = LockedLines()
        let agent = try Agent(config: c, log: { lines.append($0) })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(2300))
        await agent.stop()
        XCTAssertGreaterThanOrEqual(agent.pusher!.posted, 2, "two 1 s windows in 2.3 s: \(lines.all)")
        XCTAssertEqual(agent.pusher!.failed, 0, "\(lines.all)")
        let status = try await fetch(server.url + "/status")
        XCTAssertEqual(status.status, 200)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.body.utf8)) as? [String: Any])
        let svc = try XCTUnwrap((obj["services"] as? [[String: Any]])?.first)
        let nodes = try XCTUnwrap(svc["nodes"] as? [[String: Any]], "\(svc)")
        let node1 = try XCTUnwrap(nodes.first { $0["name"] as? String == "node_1" }?["window"] as? [String: Any], "\(nodes)")
        XCTAssertGreaterThanOrEqual(node1["received"] as? Int ?? 0, 20, "the pushed windows' samples are in node_1's window: \(node1)")
    }

    func testAWrongTokenFailsWithoutLoggingTheToken() async throws {
        let (server, _) = try await startController()
        defer { Task { await server.stop() } }
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        _ = try await call(server.port, "POST", "/service_init", json: [
            "name": "edge-app", "metric": "tcp_connect", "nodes": [["name": "node_1"], ["name": "node_2"]],
            "active_node": "node_2", "requirement": "20ms@p90", "min_samples": 1,
        ])
        let wrong = "not-the-token-0123456789"
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            nodes: {node_1: 127.0.0.1}
            controller: {url: "\(server.url)", window: 1s}
            probes: [{name: conn, kind: tcping, targets: ["node_1:\(listener.address.port)"], interval: 50ms}]
            """)
        let lines = LockedLines()
        let agent = try Agent(config: c, environment: ["EDGEMETER_CONTROLLER_TOKEN": wrong], log: { lines.append($0) })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(300))
        let r = await agent.pusher!.pushOnce()
        await agent.stop()
        guard case .failure(let e) = r else { return XCTFail("a wrong token was accepted") }
        XCTAssertTrue(e.description.contains("401"), e.description)
        XCTAssertFalse(lines.all.joined().contains(wrong), "the token must never be logged: \(lines.all)")
        XCTAssertFalse(e.description.contains(wrong))
    }

    func testAMissingTokenFileIsAClearError() throws {
        let c = try agentConfig("""
            controller: {url: "http://127.0.0.1:9", token_file: /nonexistent/token}
            probes: [{name: p, kind: tcping, targets: [127.0.0.1], listener: true}]
            """)
        XCTAssertThrowsError(try Agent(config: c, log: { _ in })) { e in
            XCTAssertEqual("\(e)", "controller.token_file /nonexistent/token cannot be read or is empty: write the controller's token into it (chmod 600)")
        }
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
