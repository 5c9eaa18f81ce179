import Foundation
import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterSystem

/// `LoadProbe` against a real swift-nio server on 127.0.0.1 (bounded: ≤ 1 s, a few hundred
/// requests per test): the schedule's count, interval and deadline become the load's request
/// count, rate and duration; the samples are `LoadReport.samples` of the run.
final class LoadProbeTests: XCTestCase {
    let scope = SampleScope(runID: "r1", scenario: "load-probe")

    func probe(_ server: HTTPTestServer, connections: Int = 4, progress: (@Sendable (String) -> Void)? = nil) throws -> LoadProbe {
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: connections)
        o.threads = 1
        return LoadProbe(target: target, options: o, scope: scope, progress: progress)
    }

    /// count = 300, closed loop: exactly 300 requests reach the server, all counted as attempts.
    func testCountIsTheExactNumberOfRequests() async throws {
        let server = try await HTTPTestServer.start()
        let sink = MemorySink()
        let (r, totals) = try await probe(server).runReturningResult(schedule: .closedLoop(count: 300), clock: SystemClock(),
                                                                     stop: StopFlag(), sink: sink)
        await server.stop()
        XCTAssertEqual(server.state.requests, 300, "the server saw exactly the scheduled count")
        XCTAssertFalse(r.openLoop)
        XCTAssertEqual(r.responses, 300)
        XCTAssertEqual(totals.attempts, 300)
        XCTAssertEqual(totals.succeeded, 300)
        XCTAssertEqual(totals.name, r.target)
        XCTAssertEqual(sink.samples.first?.labels["loop"], "closed")
        XCTAssertEqual(sink.samples.first { $0.phase == "status_200" }?.value, 300)
    }

    /// interval = 5 ms with a 1 s deadline: open loop at 200 requests/s over 2 connections.
    func testIntervalIsTheOpenLoopRate() async throws {
        let server = try await HTTPTestServer.start()
        let sink = MemorySink()
        let totals = try await probe(server, connections: 2).run(schedule: Schedule(interval: .milliseconds(5), deadline: .seconds(1)),
                                                             clock: SystemClock(), stop: StopFlag(), sink: sink)
        await server.stop()
        XCTAssertEqual(totals.count, 1)
        XCTAssertEqual(Double(totals[0].attempts), 200, accuracy: 25, "\(totals[0])")
        XCTAssertEqual(Double(server.state.requests), 200, accuracy: 25)
        let requested = try XCTUnwrap(sink.samples.first { $0.metric == "throughput" && $0.phase == "requested" })
        XCTAssertEqual(requested.value, 200, "rate = 1 s / interval")
        XCTAssertEqual(requested.labels["loop"], "open")
        let achieved = try XCTUnwrap(sink.samples.first { $0.phase == "achieved" }?.value)
        XCTAssertEqual(achieved, 200, accuracy: 25)
        XCTAssertTrue(sink.samples.contains { $0.phase == "corrected_p50" }, "open loop records the corrected latency")
    }

    /// The probe emits exactly `LoadReport.samples` of its result (what the load scenario wrote
    /// before it used the probe), dated at the run's start on the injected clock's wall time.
    func testSamplesAreTheLoadReportSamples() async throws {
        let server = try await HTTPTestServer.start()
        let sink = MemorySink()
        let clock = SystemClock()
        let before = clock.wallNow()
        let (r, _) = try await probe(server).runReturningResult(schedule: .closedLoop(count: 100, deadline: .seconds(1)), clock: clock,
                                                                stop: StopFlag(), sink: sink)
        await server.stop()
        let stamp = try XCTUnwrap(sink.samples.first?.timestamp)
        XCTAssertGreaterThanOrEqual(stamp, before)
        XCTAssertEqual(sink.samples, LoadReport.samples(r, runID: "r1", scenario: "load-probe", timestamp: stamp))
        XCTAssertTrue(sink.samples.allSatisfy { $0.probe == "load" && $0.runID == "r1" && $0.scenario == "load-probe" })
        let fixed = sink.samples.filter { $0.phase != "interval" && !$0.phase.hasPrefix("status_") }.map { "\($0.metric)/\($0.phase)" }
        XCTAssertEqual(fixed, ["p50", "p75", "p90", "p99", "p999", "p9999", "p99999", "max", "mean", "stddev"].map { "latency/uncorrected_\($0)" }
                       + ["latency/timeouts", "throughput/achieved", "transfer/read"] + LoadErrorKind.allCases.map { "errors/\($0.rawValue)" })
    }

    /// The mapping both ways, and a typed rate kept as typed.
    func testScheduleMapsOntoTheOptions() {
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: 3, rate: 3, duration: .seconds(7), requestCount: 50)
        let s = LoadProbe.schedule(for: o)
        XCTAssertEqual(s, Schedule(count: 50, interval: .nanoseconds(333_333_333), deadline: .seconds(7)))
        let back = LoadProbe.options(o, schedule: s)
        XCTAssertEqual(back.rate, 3, "1 s / 333333333 ns is not exactly 3; the rate the user gave stays")
        XCTAssertEqual(back.requestCount, 50)
        XCTAssertEqual(back.duration, .seconds(7))
        XCTAssertEqual(LoadProbe.options(o, schedule: Schedule(count: 9, interval: .milliseconds(4))).rate, 250)
        o.rate = nil
        XCTAssertTrue(LoadProbe.schedule(for: o).isClosedLoop)
        let closed = LoadProbe.options(LoadOptions(request: HTTPRequestSpec(path: "/"), rate: 100), schedule: .closedLoop(deadline: .seconds(2)))
        XCTAssertNil(closed.rate, "interval 0 is a closed loop")
        XCTAssertNil(closed.requestCount)
        XCTAssertEqual(closed.duration, .seconds(2))
    }

    /// A schedule without count or deadline is refused: no request, no sample, the reason in progress.
    func testUnboundedScheduleIsRefusedWithAReason() async throws {
        let server = try await HTTPTestServer.start()
        let notes = Lines()
        let sink = MemorySink()
        let totals = try await probe(server, progress: { notes.add($0) }).run(schedule: .closedLoop(), clock: SystemClock(), stop: StopFlag(), sink: sink)
        await server.stop()
        XCTAssertEqual(totals.map(\.attempts), [0])
        XCTAssertTrue(sink.samples.isEmpty)
        XCTAssertEqual(server.state.requests, 0)
        XCTAssertTrue(notes.all.contains { $0.contains("needs a duration or a request count") }, "\(notes.all)")
    }
}
