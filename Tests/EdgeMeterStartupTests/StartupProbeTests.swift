import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// `StartupProbe` on a `ManualClock` with `FakeBackend` (every iteration takes 650 virtual ms:
/// create 100, start 200, running 50, ready 250, stop 30, remove 20): the schedule's count,
/// interval and deadline decide when iterations start, to the nanosecond.
final class StartupProbeTests: XCTestCase {
    let marker = ReadyCheck.marker(ReadyCheck.defaultMarker)
    let ms: Int64 = 1_000_000

    func probe(_ backends: [FakeBackend], progress: @escaping @Sendable (String) -> Void = { _ in }) -> StartupProbe {
        StartupProbe(backends: backends, scope: SampleScope(runID: "r", scenario: "probe"), ready: marker, readyTimeout: .seconds(2),
                     progress: progress)
    }

    /// Virtual times (ms since the clock's start) at which each iteration called `create`.
    func createTimes(_ backend: FakeBackend) -> [Int64] {
        backend.instances.map { ($0.calledAt[.create] ?? -1) / ms - 1_000 }
    }

    func testIntervalSpacesIterationStartsWithoutDrift() async {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        let sink = MemorySink()
        let totals = await probe([backend]).run(schedule: Schedule(count: 3, interval: .seconds(2)), clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(createTimes(backend), [0, 2_000, 4_000], "iteration k starts at k·interval, not k·(interval + 650 ms)")
        XCTAssertEqual(sink.samples.count, 3 * StartupPhase.allCases.count)
        XCTAssertEqual(sink.samples.filter { $0.phase == "total" }.map(\.value), [600, 600, 600])
        XCTAssertEqual(totals, [{
            var t = ProbeTotals(name: "fake", address: "fake")
            for k in 0..<3 { t.add(.ok, at: Date(timeIntervalSince1970: 1_800_000_000 + 2 * Double(k))) }
            return t
        }()])
        XCTAssertEqual(backend.cleanups, 1)
    }

    func testLateIterationStartsAtOnceAndLaterOnesKeepTheirSlots() async {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        backend.durations[.start] = .milliseconds(800)   // first iteration: 1250 ms, past its 1 s slot
        let sink = MemorySink()
        _ = await probe([backend]).run(schedule: Schedule(count: 3, interval: .seconds(1)), clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(createTimes(backend), [0, 1_250, 2_500], "each runs 1250 ms: back to back, never waiting for a slot already past")
        let clock2 = ManualClock()
        let quick = FakeBackend(clock: clock2)
        _ = await probe([quick]).run(schedule: Schedule(count: 4, interval: .milliseconds(700)), clock: clock2, stop: StopFlag(), sink: MemorySink())
        XCTAssertEqual(createTimes(quick), [0, 700, 1_400, 2_100])
    }

    func testClosedLoopRunsIterationsBackToBack() async {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        let totals = await probe([backend]).run(schedule: .closedLoop(count: 3), clock: clock, stop: StopFlag(), sink: MemorySink())
        XCTAssertEqual(createTimes(backend), [0, 650, 1_300])
        XCTAssertEqual(totals.map(\.attempts), [3])
    }

    func testDeadlineStopsStartingIterations() async {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        let sink = MemorySink()
        // Due at 0, 1, 2, 3 s; the deadline at 2.5 s lets the one due at 2 s start (it ends at 2.65 s).
        let totals = await probe([backend]).run(schedule: Schedule(interval: .seconds(1), deadline: .milliseconds(2_500)),
                                                clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(createTimes(backend), [0, 1_000, 2_000])
        XCTAssertEqual(totals.map(\.attempts), [3])
        XCTAssertEqual(Set(sink.samples.compactMap { $0.labels["run"] }), ["1", "2", "3"])
        // Closed loop: 0, 0.65, 1.3 s start before a 1.5 s deadline, 1.95 s does not.
        let clock2 = ManualClock()
        let b2 = FakeBackend(clock: clock2)
        _ = await probe([b2]).run(schedule: .closedLoop(count: 10, deadline: .milliseconds(1_500)), clock: clock2, stop: StopFlag(), sink: MemorySink())
        XCTAssertEqual(createTimes(b2), [0, 650, 1_300])
    }

    /// A stop request during the second iteration's ready check: the first iteration's samples are
    /// all there and ok, the second still stops and removes its instance and records every phase
    /// (ready interrupted), no third starts, and the totals count one ok and one failed.
    func testStopMidRunKeepsFinishedIterations() async {
        let clock = ManualClock()
        let stop = StopFlag()
        clock.onSleep = { now in if now >= 1_000_000_000 + 1_400_000_000 { stop.stop(reason: "test stop") } }
        let backend = FakeBackend(clock: clock)
        let sink = MemorySink()
        let totals = await probe([backend]).run(schedule: Schedule(count: 5, interval: .seconds(1)), clock: clock, stop: stop, sink: sink)
        XCTAssertEqual(createTimes(backend), [0, 1_000])
        let first = sink.samples.filter { $0.labels["run"] == "1" }
        XCTAssertEqual(first.count, StartupPhase.allCases.count)
        XCTAssertTrue(first.allSatisfy { $0.status == .ok })
        let second = Dictionary(uniqueKeysWithValues: sink.samples.filter { $0.labels["run"] == "2" }.map { ($0.phase, $0) })
        XCTAssertEqual(second.count, StartupPhase.allCases.count)
        XCTAssertEqual(second["ready"]?.status, .error)
        XCTAssertTrue(second["ready"]?.reason.contains("interrupted (test stop)") ?? false, "\(String(describing: second["ready"]?.reason))")
        XCTAssertEqual(second["stop"]?.status, .ok, "the instance is still stopped")
        XCTAssertEqual(second["remove"]?.status, .ok, "and removed")
        XCTAssertEqual(totals.first?.attempts, 2)
        XCTAssertEqual(totals.first?.count(.ok), 1)
        XCTAssertEqual(totals.first?.count(.error), 1)
        XCTAssertEqual(backend.cleanups, 1)
    }

    /// One `ProbeTotals` per backend, in order, each on its own schedule from its first iteration.
    func testTotalsPerBackend() async {
        let clock = ManualClock()
        let good = FakeBackend(clock: clock)
        let bad = FakeBackend(clock: clock)
        bad.failing = .start
        let lines = LineBox()
        let sink = MemorySink()
        let totals = await probe([good, bad], progress: { lines.add($0) }).run(schedule: .closedLoop(count: 2), clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(totals.map(\.attempts), [2, 2])
        XCTAssertEqual(totals.map { $0.count(.ok) }, [2, 0])
        XCTAssertEqual(totals.map { $0.count(.error) }, [0, 2], "a failed attempt counts by its total phase")
        XCTAssertEqual(sink.samples.count, 4 * StartupPhase.allCases.count)
        XCTAssertEqual(createTimes(bad), [1_300, 1_650], "the second backend starts after the first; a failed iteration still stops and removes (350 ms)")
        XCTAssertEqual(lines.all.filter { $0.hasPrefix("fake run ") }.count, 4)
        XCTAssertTrue(lines.all.contains("fake run 2/2 failed: start: start refused by the fake engine"), "\(lines.all)")
        XCTAssertEqual([good.cleanups, bad.cleanups], [1, 1])
    }

    /// `StartupRunner.run` is the probe's loop with a closed-loop schedule of `plan.runs`.
    func testRunnerIsTheProbeWithAClosedLoop() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        let attempts = try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "x", runs: 2, ready: marker), runID: "r",
                                                   sink: MemorySink(), stop: StopFlag(), clock: clock)
        XCTAssertEqual(attempts.map(\.status), [.ok, .ok])
        let starts = attempts.compactMap(\.startedAt)
        XCTAssertEqual(starts.first, Date(timeIntervalSince1970: 1_800_000_000))
        XCTAssertEqual(starts[1].timeIntervalSince(starts[0]), 0.65, accuracy: 1e-6)
        XCTAssertEqual(createTimes(backend), [0, 650])
    }
}

final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
