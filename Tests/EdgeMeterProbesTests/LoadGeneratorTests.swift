import Foundation
import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP

final class LoadGeneratorTests: XCTestCase {
    /// Real loopback sanity check of the open loop (the schedule's exact timing is tested on
    /// virtual time in `LoadPacerTests`): 400 requests/s over 4 connections for 2 s after a 0.5 s
    /// warm-up reach the server at about that rate, without errors, with live figures once a second.
    func testOpenLoopOnLoopbackMeetsItsRate() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 4, rate: 400, duration: .seconds(2),
                            warmup: .milliseconds(500))
        o.threads = 2
        let lines = Lines()
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag(), live: { lines.add(String($0.responsesPerSecond)) })
        await server.stop()
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(try XCTUnwrap(r.measuredRate), 400, accuracy: 40, "achieved \(String(describing: r.measuredRate)) req/s of 400")
        // Every measured slot (400/s × 2 s) is accounted for: answered, failed, or unsent. Unsent
        // requests are those whose slot came due while their connection still waited for its last
        // response when the window ended; the pacer leaks none otherwise. So there are at most, per
        // connection, as many as that response's time spans slots (each connection's slots are
        // connections/rate = 10 ms apart), judged on the slowest response of this same run; on an
        // idle host that is 0, on a busy one (CI: 1 once) a few.
        let slots = 400 * 2
        XCTAssertEqual(r.responses + r.totalErrors + r.unsent, slots, accuracy: o.connections,
                       "answered \(r.responses) + failed \(r.totalErrors) + unsent \(r.unsent) must account for the \(slots) measured slots")
        let slowestMs = Double(r.uncorrected.max) / 1e6
        let perConnectionIntervalMs = 1000.0 * Double(o.connections) / 400
        let unsentBound = o.connections * Int((slowestMs / perConnectionIntervalMs).rounded(.up))
        print("open loop: \(r.responses) answered, \(r.unsent) unsent (bound \(unsentBound) from the slowest response, \(slowestMs) ms)")
        XCTAssertLessThanOrEqual(r.unsent, unsentBound, "unsent requests beyond what the slowest response (\(slowestMs) ms) could hold back")
        XCTAssertEqual(Int(server.state.requests), r.responses + r.warmupRequests, "every request the server answered is counted once")
        let live = lines.all.compactMap(Double.init)
        XCTAssertTrue((2...3).contains(live.count), "\(live)")
        XCTAssertTrue(live.allSatisfy { abs($0 - 400) < 100 }, "\(live)")
        XCTAssertEqual(r.statusCounts[200], r.responses)
        XCTAssertEqual(r.warmupRequests, 200, accuracy: 20)
        XCTAssertEqual(r.perSecond.count, 2)
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
        // The schedule catches up after the stall: the requested rate is still met, nothing is left unsent.
        XCTAssertEqual(try XCTUnwrap(r.measuredRate), 100, accuracy: 5)
        XCTAssertEqual(r.unsent, 0)
    }

    /// The same kind of stall (600 ms) just before the end of a 2 s window at 100 requests/s on one
    /// connection: the ~55 requests due during the stall are never sent before the end. They must
    /// still show: counted as unsent and recorded in the corrected latency at end − intended, so
    /// corrected p99 shows the stall as it does mid-window (without them it would read ~3 ms).
    func testStallAtTheEndOfTheWindowShowsInTheCorrectedLatency() async throws {
        // Request 145 is due at 1.44 s; its answer comes 600 ms later, after the 2 s end.
        let server = try await HTTPTestServer.start(stallAt: 145, stallMilliseconds: 600)
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/stall-once")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/stall-once"), connections: 1, rate: 100, duration: .seconds(2))
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        let correctedP99 = Double(r.corrected.valueAtPercentile(99)) / 1e6
        print(String(format: "end-stall test: %d responses, %d unsent; corrected p50 %.3f p99 %.3f max %.3f ms",
                     r.responses, r.unsent, Double(r.corrected.valueAtPercentile(50)) / 1e6, correctedP99, Double(r.corrected.max) / 1e6))
        XCTAssertEqual(r.warmupRequests, 0, "--warmup 0 hides nothing")
        XCTAssertEqual(r.responses, 145, "requests 1-145 were sent and answered (the last after the end)")
        XCTAssertEqual(r.unsent, 55, "requests 146-200 were due before the end and never sent")
        XCTAssertEqual(r.corrected.totalCount, 200, "every scheduled request is in the corrected histogram")
        XCTAssertGreaterThanOrEqual(correctedP99, 400, "corrected p99 \(correctedP99) ms must show the 600 ms stall")
        XCTAssertLessThanOrEqual(Double(r.corrected.max) / 1e6, 700)
        let text = LoadReport.text(r)
        XCTAssertTrue(text.contains("Unsent: 55 requests were due before the end but not sent"), text)
        let rows = LoadReport.samples(r, runID: "t", scenario: "s", timestamp: Date())
        XCTAssertEqual(rows.first { $0.metric == "latency" && $0.phase == "unsent" }?.value, 55)
    }

    /// Timed-out requests are in both histograms at the timeout value (wrk2), and their count is
    /// printed and recorded beside the percentiles.
    func testTimeoutsAreRecordedAtTheTimeout() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/slow") // answers after 300 ms
        var o = LoadOptions(request: HTTPRequestSpec(path: "/slow"), connections: 1, rate: 5, duration: .seconds(1),
                            timeout: .milliseconds(100))
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        let timeouts = r.errors[.timeout] ?? 0
        XCTAssertEqual(timeouts, 5, "\(r.errors)")
        XCTAssertEqual(r.responses, 0)
        XCTAssertEqual(r.uncorrected.totalCount, 5)
        XCTAssertEqual(r.corrected.totalCount, 5)
        // HDR histogram with 3 significant digits: 100 ms is stored within 0.1 %.
        XCTAssertEqual(Double(r.uncorrected.max) / 1e6, 100, accuracy: 0.2)
        XCTAssertEqual(Double(r.uncorrected.valueAtPercentile(50)) / 1e6, 100, accuracy: 0.2)
        XCTAssertGreaterThanOrEqual(Double(r.corrected.valueAtPercentile(50)) / 1e6, 99.8)
        let text = LoadReport.text(r)
        XCTAssertTrue(text.contains("Timeouts: 5 requests without a complete response within 100.00ms; recorded in the latency at 100.00ms"), text)
        let rows = LoadReport.samples(r, runID: "t", scenario: "s", timestamp: Date())
        XCTAssertEqual(rows.first { $0.metric == "latency" && $0.phase == "timeouts" }?.value, 5)
        XCTAssertEqual(rows.first { $0.phase == "uncorrected_p50" }.flatMap(\.value) ?? 0, 100, accuracy: 0.2)
    }

    /// `--warmup 0`: no request is hidden as warm-up (the connections' 20 ms lead-in sends nothing).
    func testZeroWarmupHidesNoRequests() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 2, duration: .milliseconds(500))
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        await server.stop()
        XCTAssertGreaterThan(r.responses, 50)
        XCTAssertEqual(r.warmupRequests, 0)
        XCTAssertEqual(Int(server.state.requests), r.responses, "every request the server answered is counted")
        XCTAssertFalse(LoadReport.text(r).contains("warm-up requests"), LoadReport.text(r))
        XCTAssertTrue(LoadReport.text(r).hasPrefix("Ran 0.50s (measured, no warm-up)"), LoadReport.text(r))
    }

    /// A run stopped during the warm-up has no measured window: no rate or transfer figure, a
    /// failed sample with the reason instead of 0 req/s.
    func testNoMeasuredWindowIsReportedAsSuch() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 1, duration: .seconds(5), warmup: .seconds(10))
        o.threads = 1
        let stop = StopFlag()
        Task { try await Task.sleep(for: .milliseconds(300)); stop.stop(reason: "SIGINT") }
        let r = try await LoadGenerator.run(target: target, options: o, stop: stop)
        await server.stop()
        XCTAssertEqual(r.measuredSeconds, 0)
        XCTAssertNil(r.measuredRate)
        XCTAssertGreaterThan(r.warmupRequests, 0)
        let rows = LoadReport.samples(r, runID: "t", scenario: "s", timestamp: Date())
        for phase in ["achieved", "read"] {
            let row = try XCTUnwrap(rows.first { $0.phase == phase })
            XCTAssertNil(row.value, phase)
            XCTAssertEqual(row.status, .error, phase)
            XCTAssertTrue(row.reason.contains("no measured window"), row.reason)
        }
        let text = LoadReport.text(r)
        XCTAssertTrue(text.contains("Requests/sec:        n/a (no measured window: the run stopped before it began (SIGINT))"), text)
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
        let notices = Lines()
        let r = try await LoadGenerator.run(target: target, options: o, stop: stop, progress: { notices.add($0) })
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(3), "the stop flag ends a 30 s run promptly")
        XCTAssertEqual(r.responses, 0)
        XCTAssertGreaterThan(r.errors[.connect] ?? 0, 5)
        XCTAssertEqual(r.stopReason, "test")
        XCTAssertEqual(r.unsent, 0, "a slot that never connected records no unsent requests")
        // The first connect failure is said at once (within the 300 ms run), once, with the reason.
        XCTAssertEqual(notices.all.count, 1, "\(notices.all)")
        XCTAssertTrue(notices.all.first?.contains("first connect failure: connection refused by 127.0.0.1:\(port)") == true, "\(notices.all)")
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

/// Collects lines from callbacks on other threads.
final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
