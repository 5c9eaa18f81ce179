import Foundation
import XCTest
import EdgeMeterHTTP
@testable import EdgeApp

/// The vehicle client against real edge apps on loopback.
final class VehicleProbeTests: XCTestCase {
    func testFixedRateEveryAnswerWithItsNode() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_7", cloud: HTTPTarget(host: "127.0.0.1", port: db.port, path: "/status"))
        let o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: edge.port, path: "/drive"), rate: 100, duration: .milliseconds(500))
        XCTAssertNil(o.problem)
        let started = Date()
        let records = await VehicleProbe.run(o)
        let wall = Date().timeIntervalSince(started)
        XCTAssertEqual(records.count, 50)
        XCTAssertEqual(records.map(\.sequence), Array(0..<50))
        XCTAssertEqual(records.filter(\.ok).count, 50, records.compactMap(\.failure).joined(separator: "; "))
        XCTAssertEqual(Set(records.compactMap(\.node)), ["node_7"])
        XCTAssertEqual(records[10].dueNanoseconds, 100_000_000, "request k is due at k / rate")
        XCTAssertTrue(records.allSatisfy { $0.delayMilliseconds > 0 && $0.sentNanoseconds! >= $0.dueNanoseconds })
        XCTAssertGreaterThanOrEqual(wall, 0.49, "the schedule is paced, not a burst")
        let summary = VehicleProbe.summary(records, options: o)
        XCTAssertTrue(summary.contains("50 requests at 100.0/s, 50 ok, 0 failed"), summary)
        XCTAssertTrue(summary.contains("answered by: node_7 50"), summary)
        XCTAssertEqual(VehicleProbe.csv(records).split(separator: "\n").count, 51)
        await edge.stop()
        await db.stop()
    }

    func testFailuresAreRecordedNotLost() async throws {
        // Nothing listens on this port any more: every request fails, and each is recorded.
        let gone = try await EdgeAppServer.startCloudDB(port: 0)
        let port = gone.port
        await gone.stop()
        let o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: port, path: "/drive"), rate: 50, duration: .milliseconds(100))
        let records = await VehicleProbe.run(o)
        XCTAssertEqual(records.count, 5)
        XCTAssertTrue(records.allSatisfy { !$0.ok && $0.status == nil && $0.sentNanoseconds == nil }, "\(records)")
        XCTAssertTrue(VehicleProbe.summary(records, options: o).contains("0 ok, 5 failed"))
        // With one connection, each failed connect frees the slot for the next request: none hangs.
        var one = o
        one.connections = 1
        let serial = await VehicleProbe.run(one)
        XCTAssertEqual(serial.count, 5)
        XCTAssertTrue(serial.allSatisfy { !$0.ok }, "\(serial)")

        // An answer other than 200 is a failure with its status, and still names the node.
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_2", cloud: HTTPTarget(host: "127.0.0.1", port: port, path: "/status"))
        let r503 = await VehicleProbe.run(VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: edge.port, path: "/drive"), rate: 50, duration: .milliseconds(40)))
        XCTAssertEqual(r503.map(\.status), [503, 503])
        XCTAssertEqual(r503.map(\.node), ["node_2", "node_2"])
        XCTAssertTrue(r503[0].failure?.hasPrefix("HTTP 503") ?? false, "\(r503)")
        await edge.stop()
    }

    func testOptionsProblemsNameTheFlag() {
        let t = HTTPTarget(host: "127.0.0.1", port: 1, path: "/drive")
        XCTAssertEqual(VehicleOptions(target: t, rate: 0, duration: .seconds(1)).problem, "--rate must be from above 0 to 10000 requests/s, such as 50; got 0.0")
        XCTAssertEqual(VehicleOptions(target: t, rate: 10, duration: .seconds(7200)).problem, "--duration must be above 0 s and at most 1 h, such as 10s")
        XCTAssertEqual(VehicleOptions(target: t, rate: 10_000, duration: .seconds(101)).problem,
                       "--rate × --duration is 1010000 requests; at most 1000000 are recorded in one run: lower --rate or --duration")
        XCTAssertNil(VehicleOptions(target: t, rate: 10_000, duration: .seconds(100)).problem)
        XCTAssertEqual(VehicleOptions(target: t, rate: 3, duration: .seconds(1)).requestCount, 3)
        XCTAssertEqual(VehicleOptions(target: t, rate: 2.5, duration: .seconds(1)).requestCount, 3, "slots at 0, 0.4, 0.8 s")
    }
}

/// Coordinated omission: with one connection and a server slower than the schedule, requests
/// queue; their delay counts from the due time, not from when they could be sent.
final class VehicleCoordinatedOmissionTests: XCTestCase {
    func testQueuedRequestsCountTheirWaitFromTheDueTime() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "slow", cloud: HTTPTarget(host: "127.0.0.1", port: db.port, path: "/status"),
                                                        processingDelay: .milliseconds(100))
        var o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: edge.port, path: "/drive"), rate: 20, duration: .milliseconds(300))
        o.connections = 1
        o.timeout = .seconds(5)
        let records = await VehicleProbe.run(o)
        XCTAssertEqual(records.count, 6)
        XCTAssertTrue(records.allSatisfy(\.ok), "\(records)")
        // One at a time at ≥ 100 ms each while one is due every 50 ms: request k waits ≥ k · 50 ms
        // before it is sent, and its corrected delay holds that wait.
        for r in records {
            let wait = Double(r.sentNanoseconds! - r.dueNanoseconds) / 1e6
            XCTAssertGreaterThanOrEqual(wait, Double(r.sequence) * 50 - 5, "request \(r.sequence)")
            XCTAssertGreaterThanOrEqual(r.uncorrectedMilliseconds!, 99, "request \(r.sequence)")
            XCTAssertEqual(r.delayMilliseconds, wait + r.uncorrectedMilliseconds!, accuracy: 0.001)
        }
        XCTAssertGreaterThanOrEqual(records[5].delayMilliseconds, 350, "the last one waited about 250 ms and took 100 ms")
        await edge.stop()
        await db.stop()
    }
}
