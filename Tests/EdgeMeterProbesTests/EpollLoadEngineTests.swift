import Foundation
import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP

/// The closed loop on raw epoll against real loopback servers: exact counts, reconnects, timeouts,
/// connect errors, the stop flag, live figures, and the same counts as the swift-nio engine.
final class EpollLoadEngineTests: XCTestCase {
    func options(_ path: String, connections: Int = 4, threads: Int = 2, count: Int? = nil,
                 duration: Duration? = nil, timeout: Duration = .seconds(2)) -> LoadOptions {
        var o = LoadOptions(request: HTTPRequestSpec(path: path), connections: connections, duration: duration,
                            requestCount: count, timeout: timeout)
        o.threads = threads
        return o
    }

    func testCountModeGivesExactlyNRequestsAndNLatencies() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        let r = try await LoadGenerator.run(target: target, options: options("/", connections: 5, count: 1003),
                                            stop: StopFlag(), engine: .epoll)
        await server.stop()
        XCTAssertEqual(r.responses, 1003)
        XCTAssertEqual(r.uncorrected.totalCount, 1003)
        XCTAssertEqual(r.corrected.totalCount, 1003, "closed loop: corrected is uncorrected")
        XCTAssertEqual(r.corrected.valueAtPercentile(50), r.uncorrected.valueAtPercentile(50))
        XCTAssertEqual(r.statusCounts, [200: 1003])
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(r.warmupRequests, 0)
        XCTAssertEqual(Int(server.state.requests), 1003, "the server saw exactly the requests counted")
        XCTAssertGreaterThan(r.bytesRead, 0)
        XCTAssertEqual(r.bytesRead % 1003, 0, "every response has the same size: \(r.bytesRead) bytes")
        XCTAssertGreaterThan(r.measuredSeconds, 0)
        XCTAssertGreaterThan(r.uncorrected.min, 0)
        XCTAssertLessThan(r.uncorrected.valueAtPercentile(50), 50_000_000, "a loopback request takes well under 50 ms")
    }

    /// `Connection: close` after every response: each request needs its own connection, and all N complete without errors.
    func testServerClosingEveryConnectionStillCompletesN() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/close")
        var o = options("/close", connections: 3, count: 300)
        o.expectedBody = "hello edgemeter"
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag(), engine: .epoll)
        await server.stop()
        XCTAssertEqual(r.responses, 300)
        XCTAssertEqual(r.statusCounts, [200: 300])
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(Int(server.state.requests), 300)
    }

    /// A listener that never accepts (connections complete in the kernel's queue, nothing is ever
    /// answered): a 1 s run with a 200 ms timeout on 2 connections sends 5 requests per
    /// connection (at about 0, 0.2, 0.4, 0.6, 0.8 s), each a timeout recorded at 200 ms, and ends
    /// in the grace period (the last one times out just after the end) without hanging.
    func testServerThatNeverAnswersGivesTimeoutsAndNoHang() async throws {
        let silent = try SilentServer(backlog: 64)
        defer { silent.close() }
        let port = Int(silent.address.port)
        let target = try HTTPTarget(url: "http://127.0.0.1:\(port)/")
        let started = ContinuousClock.now
        let notices = Lines()
        let r = try await LoadGenerator.run(target: target, options: options("/", connections: 2, duration: .seconds(1), timeout: .milliseconds(200)),
                                            stop: StopFlag(), engine: .epoll, progress: { notices.add($0) })
        XCTAssertEqual(notices.all, [], "every connect succeeds (the kernel completes them)")
        let elapsed = ContinuousClock.now - started
        XCTAssertLessThan(elapsed, .milliseconds(1800), "no hang: \(elapsed)")
        XCTAssertEqual(r.responses, 0)
        XCTAssertEqual(r.errors, [.timeout: 10], "5 timeouts per connection")
        XCTAssertEqual(r.uncorrected.totalCount, 10)
        XCTAssertEqual(Double(r.uncorrected.min) / 1e6, 200, accuracy: 0.3)
        XCTAssertEqual(Double(r.uncorrected.max) / 1e6, 200, accuracy: 0.3)
        XCTAssertEqual(r.timeoutNanoseconds, 200_000_000)
    }

    /// Nobody listens: connect errors every 10 ms per connection, reported once at once, and the
    /// run ends at its deadline (1 s), not at the 5 s give-up.
    func testRefusedPortGivesConnectErrorsAndEndsAtTheDeadline() async throws {
        let server = try await HTTPTestServer.start()
        let port = server.port
        await server.stop()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(port)/")
        let notices = Lines()
        let started = ContinuousClock.now
        let r = try await LoadGenerator.run(target: target, options: options("/", connections: 2, duration: .seconds(1)),
                                            stop: StopFlag(), engine: .epoll, progress: { notices.add($0) })
        let elapsed = ContinuousClock.now - started
        XCTAssertGreaterThanOrEqual(elapsed, .seconds(1))
        XCTAssertLessThan(elapsed, .milliseconds(1500), "ends at the deadline: \(elapsed)")
        XCTAssertEqual(r.responses, 0)
        let connect = r.errors[.connect] ?? 0
        // 2 connections retrying every 10 ms for 1 s: about 200 attempts.
        XCTAssertTrue((100...210).contains(connect), "connect errors: \(connect)")
        XCTAssertEqual(r.errors.count, 1, "\(r.errors)")
        XCTAssertNil(r.stopReason)
        XCTAssertEqual(notices.all.count, 1, "\(notices.all)")
        XCTAssertTrue(notices.all.first?.contains("first connect failure: connection refused by 127.0.0.1:\(port)") == true, "\(notices.all)")
    }

    /// A stop request 500 ms into a 30 s run ends it promptly and keeps what was measured: the
    /// measured window ends at the stop, every answered request is counted, live figures came.
    func testStopFlagMidRunKeepsWhatWasMeasured() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        let stop = StopFlag()
        Task { try await Task.sleep(for: .milliseconds(1300)); stop.stop(reason: "SIGINT") }
        let lines = Lines()
        let started = ContinuousClock.now
        let r = try await LoadGenerator.run(target: target, options: options("/", connections: 4, duration: .seconds(30)),
                                            stop: stop, engine: .epoll, live: { lines.add(String($0.responsesPerSecond)) })
        let elapsed = ContinuousClock.now - started
        await server.stop()
        XCTAssertLessThan(elapsed, .seconds(2), "the stop flag ends a 30 s run promptly: \(elapsed)")
        XCTAssertEqual(r.stopReason, "SIGINT")
        XCTAssertGreaterThan(r.responses, 100)
        XCTAssertEqual(r.uncorrected.totalCount, UInt64(r.responses))
        XCTAssertEqual(Int(server.state.requests), r.responses, "every request answered before the stop is counted")
        XCTAssertEqual(r.measuredSeconds, 1.28, accuracy: 0.06, "the window ends at the stop")
        XCTAssertEqual(r.perSecond.count, 1)
        let live = lines.all.compactMap(Double.init)
        XCTAssertEqual(live.count, 1, "one live line per second: \(live)")
        XCTAssertTrue(live.allSatisfy { $0 > 100 }, "\(live)")
    }

    /// The same bounded runs on both engines give the same counts: requests, statuses, errors by
    /// kind, bytes read, latencies recorded.
    func testSameCountsAsTheNIOEngine() async throws {
        let server = try await HTTPTestServer.start()
        var runs: [(String, LoadOptions)] = []
        runs.append(("/status/503", options("/status/503", connections: 3, count: 301)))
        var close = options("/close", connections: 2, count: 120)
        close.expectedBody = "absent text"
        runs.append(("/close", close))
        runs.append(("/chunked", options("/chunked", connections: 4, threads: 1, count: 200)))
        runs.append(("/html404", options("/html404", connections: 7, threads: 3, count: 50)))
        for (path, o) in runs {
            let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)\(path)")
            let e = try await LoadGenerator.run(target: target, options: o, stop: StopFlag(), engine: .epoll)
            let n = try await LoadGenerator.run(target: target, options: o, stop: StopFlag(), engine: .nio)
            XCTAssertEqual(e.responses, o.requestCount, path)
            XCTAssertEqual(e.responses, n.responses, path)
            XCTAssertEqual(e.statusCounts, n.statusCounts, path)
            XCTAssertEqual(e.errors, n.errors, path)
            XCTAssertEqual(e.bytesRead, n.bytesRead, path)
            XCTAssertEqual(e.uncorrected.totalCount, n.uncorrected.totalCount, path)
            XCTAssertEqual(e.warmupRequests, n.warmupRequests, path)
            XCTAssertEqual(e.threads, n.threads, path)
        }
        await server.stop()
        XCTAssertEqual(Int(server.state.requests), 2 * (301 + 120 + 200 + 50))
    }

    func testEngineChoice() throws {
        let closed = options("/", count: 1)
        var open = closed
        open.rate = 100
        XCTAssertEqual(try LoadGenerator.engine(for: closed, environment: nil), .epoll)
        XCTAssertEqual(try LoadGenerator.engine(for: closed, environment: ""), .epoll)
        XCTAssertEqual(try LoadGenerator.engine(for: closed, environment: "nio"), .nio)
        XCTAssertEqual(try LoadGenerator.engine(for: closed, environment: "epoll"), .epoll)
        XCTAssertEqual(try LoadGenerator.engine(for: open, environment: nil), .nio, "the open loop stays on swift-nio")
        XCTAssertEqual(try LoadGenerator.engine(for: open, environment: "epoll"), .nio)
        XCTAssertThrowsError(try LoadGenerator.engine(for: closed, environment: "uring")) { error in
            XCTAssertEqual("\(error)", "EDGEMETER_LOAD_ENGINE must be `epoll` or `nio`, got \"uring\"; "
                           + "unset it to use the default (epoll for the closed loop, swift-nio for a rate)")
        }
    }
}
