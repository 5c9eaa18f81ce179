import XCTest
import Foundation
import EdgeMeterCore
import EdgeMeterTestSupport
@testable import EdgeMeterLab

/// `edgemeter matrix`'s collector: the rows of a `POST /delays` body (pure), and for real a
/// collector socket inside a private namespace (`ag3-mc-PID`) receiving the push of a real
/// `edgemeter agent --rounds` started in that namespace; a wrong token is refused (401) and the
/// agent exits 1.
final class MatrixCollectorTests: XCTestCase {
    func testPostedSummaryRowsBecomeDelayRowsOfTheSocketsOrigin() throws {
        let body = #"{"delays": [{"node": "b", "metric": "ping_rtt", "samples": 4, "received": 3, "loss_percent": 25, "from": "a", "target": "b", "p50_ms": 1.5, "p90_ms": 2.5, "p99_ms": 2.5, "window_start": "2026-12-02T04:00:00.000000Z", "window_end": "2026-12-02T04:00:01.000000Z"}]}"#
        let rows = try MatrixCollector.rows(Array(body.utf8), origin: "a", destinations: ["b", "c"])
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0].from, "a")
        XCTAssertEqual(rows[0].to, "b")
        XCTAssertEqual(rows[0].samples, 4)
        XCTAssertEqual(rows[0].received, 3)
        XCTAssertEqual(rows[0].p50Milliseconds, 1.5)
        XCTAssertEqual(rows[0].windowEnd, Format.parseTimestamp("2026-12-02T04:00:01.000000Z"))
        // A row claiming another origin, or naming a node that is not a destination, is refused.
        XCTAssertThrowsError(try MatrixCollector.rows(Array(body.utf8), origin: "c", destinations: ["b"])) { e in
            XCTAssertTrue("\(e)".contains("delays[0].from a arrived on c's socket"), "\(e)")
        }
        XCTAssertThrowsError(try MatrixCollector.rows(Array(body.utf8), origin: "a", destinations: ["c"])) { e in
            XCTAssertTrue("\(e)".contains("delays[0].node b is not a destination of a"), "\(e)")
        }
        XCTAssertThrowsError(try MatrixCollector.rows(Array("[]".utf8), origin: "a", destinations: ["b"]))
    }

    func testAnAgentInTheNamespacePushesToItsCollector() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        let ns = "ag3-mc-\(getpid())"
        _ = try runCommand("/usr/bin/env", ["ip", "netns", "del", ns])
        let add = try runCommand("/usr/bin/env", ["ip", "netns", "add", ns])
        XCTAssertEqual(add.status, 0, add.stderr)
        defer { _ = try? runCommand("/usr/bin/env", ["ip", "netns", "del", ns]) }
        XCTAssertEqual(try runCommand("/usr/bin/env", ["ip", "-n", ns, "link", "set", "lo", "up"]).status, 0)

        let collector = try MatrixCollector(origins: [(node: "a", namespace: ns, destinations: ["b"])], token: "s3cret-token")
        defer { collector.stop() }
        let port = collector.endpoints[0].port
        XCTAssertGreaterThan(port, 0)
        // Only inside the namespace: the host's own loopback has no such listener (unless by chance).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ag3-mc-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // b is the namespace's own loopback: a real echo path, answered by the kernel.
        let plan = MatrixRunner.NodePlan(node: "a", namespace: ns, targets: [(node: "b", address: "127.0.0.1")])
        let options = MatrixRunner.Options(binary: bin, count: 5, intervalMilliseconds: 20, directory: dir.path)
        let config = dir.appendingPathComponent("agent.yaml").path
        try MatrixRunner.agentConfig(plan, options: options, collector: collector.endpoints[0].url).write(toFile: config, atomically: true, encoding: .utf8)
        let argv = ["ip", "netns", "exec", ns, bin, "agent", "--config", config, "--rounds", "5"]

        var env = ProcessInfo.processInfo.environment
        env["EDGEMETER_CONTROLLER_TOKEN"] = "wrong"
        let bad = try runCommand("/usr/bin/env", argv, timeout: 60, environment: env)
        XCTAssertEqual(bad.status, 1, "a refused push must fail the agent: \(bad.stderr)")
        XCTAssertTrue(bad.stderr.contains("401"), bad.stderr)
        XCTAssertTrue(collector.rows.isEmpty)
        XCTAssertEqual(collector.refused.count, 1, "\(collector.refused)")

        env["EDGEMETER_CONTROLLER_TOKEN"] = "s3cret-token"
        let before = Date()
        let good = try runCommand("/usr/bin/env", argv, timeout: 60, environment: env)
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stderr.contains("5 rounds done; posted"), good.stderr)
        let rows = collector.rows
        XCTAssertEqual(rows.count, 1, "\(rows)")
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(row.from, "a")
        XCTAssertEqual(row.to, "b")
        XCTAssertEqual(row.metric, "ping_rtt")
        XCTAssertEqual(row.samples, 5, "--rounds 5: five echoes")
        XCTAssertEqual(row.received, 5)
        let p50 = try XCTUnwrap(row.p50Milliseconds)
        XCTAssertGreaterThan(p50, 0)
        XCTAssertLessThan(p50, 50, "a loopback echo")
        XCTAssertGreaterThanOrEqual(row.windowEnd.timeIntervalSince(before), 0)
        XCTAssertNotNil(collector.arrival(of: "a"))
    }
}
