import Foundation
import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes

final class LoadGeneratorTests: XCTestCase {
    func testFixedRateIsAchievedWithinFivePercent() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 4, rate: 400, duration: .seconds(3),
                            warmup: .milliseconds(500))
        o.threads = 2
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(r.achievedRate, 400, accuracy: 20, "achieved \(r.achievedRate) req/s of 400")
        XCTAssertEqual(r.statusCounts[200], r.responses)
        XCTAssertGreaterThan(r.warmupRequests, 150)
        XCTAssertEqual(r.perSecond.count, 3)
        let text = LoadReport.text(r)
        XCTAssertTrue(text.contains("Requests/sec:"), text)
        XCTAssertTrue(text.contains("Detailed Percentile spectrum"), text)
    }

    /// Coordinated omission: one response stalls 500 ms at 100 requests/s on one connection. The
    /// ~50 requests that should have gone out during the stall wait behind it; measured from their
    /// intended send times they show the stall (corrected p99 ≥ 250 ms), measured from their actual
    /// send times only one request is slow and p99 stays small.
    func testCoordinatedOmissionCorrectionShowsTheStall() async throws {
        let server = try await HTTPTestServer.start(stallAt: 150, stallMilliseconds: 500)
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/stall-once")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/stall-once"), connections: 1, rate: 100, duration: .seconds(4),
                            warmup: .milliseconds(500))
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        let correctedP99 = Double(r.corrected.valueAtPercentile(99)) / 1e6
        let uncorrectedP99 = Double(r.uncorrected.valueAtPercentile(99)) / 1e6
        let uncorrectedMax = Double(r.uncorrected.max) / 1e6
        print(String(format: "CO test: %d responses at %.1f req/s; corrected p50 %.3f p99 %.3f max %.3f ms; uncorrected p50 %.3f p99 %.3f max %.3f ms",
                     r.responses, r.achievedRate, Double(r.corrected.valueAtPercentile(50)) / 1e6, correctedP99, Double(r.corrected.max) / 1e6,
                     Double(r.uncorrected.valueAtPercentile(50)) / 1e6, uncorrectedP99, uncorrectedMax))
        XCTAssertGreaterThanOrEqual(correctedP99, 250, "corrected p99 \(correctedP99) ms must show the 500 ms stall")
        XCTAssertLessThan(uncorrectedP99, 100, "uncorrected p99 \(uncorrectedP99) ms hides the stall")
        XCTAssertGreaterThanOrEqual(uncorrectedMax, 490, "the stalled request itself took 500 ms")
        // The schedule catches up after the stall: the requested rate is still met.
        XCTAssertEqual(r.achievedRate, 100, accuracy: 5)
    }

    func testClosedLoopByRequestCountCountsStatusErrors() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/status/503")
        var o = LoadOptions(request: HTTPRequestSpec(path: target.path), connections: 3, requestCount: 300)
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        XCTAssertEqual(r.responses, 300)
        XCTAssertEqual(r.statusCounts[503], 300)
        XCTAssertEqual(r.errors[.status], 300)
        XCTAssertFalse(r.openLoop)
        let rows = LoadReport.samples(r, runID: "t", scenario: "s", timestamp: Date())
        XCTAssertEqual(rows.first { $0.metric == "errors" && $0.phase == "status" }?.value, 300)
        XCTAssertEqual(rows.first { $0.metric == "responses" && $0.phase == "status_503" }?.value, 300)
        XCTAssertNotNil(rows.first { $0.phase == "uncorrected_p99" }?.value)
        XCTAssertNil(rows.first { $0.phase == "corrected_p99" }, "closed loop has no corrected figures")
    }

    func testConnectErrorsAndStopFlagEndTheRun() async throws {
        let server = try await HTTPTestServer.start()
        let port = server.port
        await server.stop()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 2, duration: .seconds(30))
        o.threads = 1
        let stop = StopFlag()
        Task { try await Task.sleep(for: .milliseconds(300)); stop.stop(reason: "test") }
        let started = ContinuousClock.now
        let r = try await LoadGenerator.run(target: target, options: o, stop: stop)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(3), "the stop flag ends a 30 s run promptly")
        XCTAssertEqual(r.responses, 0)
        XCTAssertGreaterThan(r.errors[.connect] ?? 0, 5)
        XCTAssertEqual(r.stopReason, "test")
    }

    /// The generator frames responses itself: chunked bodies (matched across chunk borders) and
    /// `Connection: close` (reconnect, no error) must both work.
    func testChunkedAndConnectionCloseResponses() async throws {
        let server = try await HTTPTestServer.start()
        for (path, body) in [("/chunked", "hello chunked edgemeter"), ("/close", "hello edgemeter")] {
            let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)\(path)")
            var o = LoadOptions(request: HTTPRequestSpec(path: path), connections: 2, requestCount: 100)
            o.threads = 1
            o.expectedBody = body
            let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
            XCTAssertEqual(r.responses, 100, path)
            XCTAssertEqual(r.statusCounts[200], 100, path)
            XCTAssertEqual(r.totalErrors, 0, "\(path): \(r.errors)")
            o.expectedBody = "absent text"
            let bad = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
            XCTAssertEqual(bad.errors[.body], 100, path)
        }
        await server.stop()
    }

    /// A request-count run against a port nobody listens on ends after the give-up time (5 s)
    /// with a reason, instead of counting connect errors for the 10-minute bound.
    func testDeadTargetEndsTheRunWithAReason() async throws {
        let server = try await HTTPTestServer.start()
        let port = server.port
        await server.stop()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 2, requestCount: 1000)
        o.threads = 1
        let started = ContinuousClock.now
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(9))
        XCTAssertEqual(r.responses, 0)
        let reason = r.stopReason ?? ""
        XCTAssertTrue(reason.contains("no connection to 127.0.0.1:\(port) could be opened in 5 s"), reason)
        XCTAssertTrue(reason.contains("connection refused"), reason)
    }

    func testOptionsProblems() {
        XCTAssertNotNil(LoadOptions(request: HTTPRequestSpec(path: "/")).problem)
        XCTAssertNotNil(LoadOptions(request: HTTPRequestSpec(path: "/"), rate: -1, duration: .seconds(1)).problem)
        XCTAssertNil(LoadOptions(request: HTTPRequestSpec(path: "/"), duration: .seconds(1)).problem)
    }
}
