import Foundation
import XCTest
import EdgeMeterCore
@testable import EdgeMeterController

final class ProbeLoopTests: XCTestCase {
    /// Two loopback servers, one answering at once and one after 40 ms: the loop's own
    /// measurements (real HTTP on loopback) move the service from the slow node to the fast one.
    func testTheProbeLoopFeedsThePolicyFromRealMeasurements() async throws {
        let fast = try await SlowServer(delay: .zero)
        let slow = try await SlowServer(delay: .milliseconds(40))
        let c = try await TestController()
        defer { Task { await c.stop(); await fast.stop(); await slow.stop() } }
        let service: [String: Any] = [
            "name": "edge-app", "active_node": "slow", "requirement": "20ms@p90", "dwell_s": 0, "cooldown_s": 0, "min_samples": 5,
            "nodes": [["name": "fast", "target": "http://127.0.0.1:\(fast.port)/healthz"],
                      ["name": "slow", "target": "http://127.0.0.1:\(slow.port)/healthz"]],
        ]
        let a = try await c.call("POST", "/service_init", json: service)
        XCTAssertEqual(a.status, 200, a.text)
        let loop = ProbeLoop(controller: c.controller, interval: .milliseconds(100), timeout: .seconds(2))
        for _ in 0..<6 {
            await loop.round()
            c.clock.advance(by: .milliseconds(100))
        }
        let obs = await c.controller.observations("edge-app")
        let fastP90 = try XCTUnwrap(obs.first { $0.node == "fast" }?.p90Milliseconds)
        let slowP90 = try XCTUnwrap(obs.first { $0.node == "slow" }?.p90Milliseconds)
        XCTAssertEqual(obs.map(\.received), [6, 6])
        XCTAssertLessThan(fastP90, 20, "loopback answer without delay")
        XCTAssertGreaterThanOrEqual(slowP90, 40, "the server sleeps 40 ms before answering")
        let v2 = await c.controller.service("edge-app")?.metric
        XCTAssertEqual(v2, "http_total")

        let d = try await c.controller.decide(service: nil, trigger: "test")
        XCTAssertEqual(d.decision.kind, .migrate, d.decision.reason)
        XCTAssertEqual(d.decision.target, "fast")
        XCTAssertEqual(d.activeAfter, "fast")
    }

    func testAnUnreachableTargetIsALostSample() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        // A port nobody listens on (bound and closed by a listener of our own first).
        let gone = try await SlowServer(delay: .zero)
        let port = gone.port
        await gone.stop()
        let service: [String: Any] = ["name": "s", "active_node": "a", "requirement": "20ms@p90",
                                      "nodes": [["name": "a", "target": "tcp://127.0.0.1:\(port)"]]]
        let v3 = try await c.call("POST", "/service_init", json: service).status
        XCTAssertEqual(v3, 200)
        let loop = ProbeLoop(controller: c.controller, timeout: .milliseconds(500))
        await loop.round()
        let all = await c.controller.observations("s")
        let o = try XCTUnwrap(all.first)
        XCTAssertEqual(o.sent, 1)
        XCTAssertEqual(o.received, 0)
        XCTAssertEqual(o.lossPercent, 100)
    }

    func testTheTCPTargetMeasuresTheHandshake() async throws {
        let srv = try await SlowServer(delay: .milliseconds(200))
        defer { Task { await srv.stop() } }
        let tcp = await ProbeLoop.measure("tcp://127.0.0.1:\(srv.port)", timeout: .seconds(1))
        let ms = try XCTUnwrap(tcp)
        XCTAssertLessThan(ms, 50, "a handshake on loopback does not wait for the 200 ms handler")
        let h = await ProbeLoop.measure("http://127.0.0.1:\(srv.port)/healthz", timeout: .seconds(2))
        let http = try XCTUnwrap(h)
        XCTAssertGreaterThanOrEqual(http, 200)
    }
}

final class ClosedLoopTests: XCTestCase {
    /// The loop started as `edgemeter controller` starts it: it measures and decides by itself,
    /// nobody posts delays or calls /migrate, and the service ends on the fast node.
    func testTheStartedLoopMeasuresDecidesAndMovesByItself() async throws {
        let fast = try await SlowServer(delay: .zero)
        let slow = try await SlowServer(delay: .milliseconds(40))
        let c = try await TestController()
        defer { Task { await c.stop(); await fast.stop(); await slow.stop() } }
        let service: [String: Any] = [
            "name": "edge-app", "active_node": "slow", "requirement": "20ms@p90", "dwell_s": 0.2, "cooldown_s": 60, "min_samples": 5,
            "nodes": [["name": "fast", "target": "http://127.0.0.1:\(fast.port)/healthz"],
                      ["name": "slow", "target": "http://127.0.0.1:\(slow.port)/healthz"]],
        ]
        let a = try await c.call("POST", "/service_init", json: service)
        XCTAssertEqual(a.status, 200, a.text)
        // On the manual clock each round moves the time by the interval; the measurements are real.
        let loop = ProbeLoop(controller: c.controller, interval: .milliseconds(100), timeout: .seconds(2), decideEvery: 2)
        loop.start()
        let deadline = Date().addingTimeInterval(20)
        var moved = false
        while Date() < deadline {
            if await c.controller.service("edge-app")?.activeNode == "fast" { moved = true; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        await loop.stop()
        XCTAssertTrue(moved, "the loop did not move the service within 20 s")
        let decisions = try await c.controller.decisions(service: "edge-app", limit: 1000)
        XCTAssertTrue(decisions.allSatisfy { $0.trigger == "probe loop" })
        // One decision moved the service: a `migrate`, or, when under load the fast node missed the
        // target too, an `alert` that moves to the best node (`whenNoneMeets: move-to-best`).
        XCTAssertEqual(decisions.filter(\.decision.movesService).count, 1, "\(decisions.map(\.decision.kind))")
        // The dwell ran first: the move is not the first decision that saw the slow node at risk.
        // (Under load the fast node can miss 18 ms at first: the slow one is then at risk in `alert`
        // decisions, and the dwell runs during those; either way it started before the move.)
        let kinds = decisions.reversed().map(\.decision.kind)
        let move = try XCTUnwrap(decisions.first { $0.decision.movesService }, "\(kinds)")
        let since = try XCTUnwrap(move.decision.stateBefore.atRiskSinceNanoseconds, "\(kinds)")
        XCTAssertGreaterThanOrEqual(move.decision.nowNanoseconds - since, 200_000_000, "the 0.2 s dwell ran before the move: \(kinds)")
        let beforeMove = decisions.reversed().prefix { !$0.decision.movesService }.map(\.decision.kind)
        XCTAssertTrue(beforeMove.contains { $0 == .stayHysteresis || $0 == .alert }, "\(kinds)")
        XCTAssertEqual(c.executor.calls.map { "\($0.from)->\($0.to)" }, ["slow->fast"])
    }
}
