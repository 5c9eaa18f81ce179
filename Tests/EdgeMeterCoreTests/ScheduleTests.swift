import XCTest
@testable import EdgeMeterCore

/// The attempt schedule on a virtual clock: every figure is exact, nothing sleeps.
final class ScheduleTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testRoundsAreDueAtStartPlusKIntervals() {
        let clock = ManualClock(start: 5_000 * ms)
        var rounds: [ScheduleRound] = []
        let end = runSchedule(Schedule(count: 4, interval: .milliseconds(100)), clock: clock, stop: StopFlag()) { rounds.append($0) }
        XCTAssertEqual(end, .count)
        XCTAssertEqual(rounds.map(\.due), [5_000, 5_100, 5_200, 5_300].map { $0 * ms })
        XCTAssertEqual(rounds.map(\.started), rounds.map(\.due), "on time when the body takes no time")
        XCTAssertEqual(rounds.map(\.sequence), [1, 2, 3, 4])
        // The loop slept to each due time after the first, and not after the last round.
        XCTAssertEqual(clock.sleeps, [5_100, 5_200, 5_300].map { $0 * ms })
        XCTAssertEqual(clock.monotonicNanoseconds(), 5_300 * ms)
    }

    func testALateRoundDoesNotShiftLaterOnes() {
        let clock = ManualClock(start: 0)
        var rounds: [ScheduleRound] = []
        runSchedule(Schedule(count: 5, interval: .milliseconds(100)), clock: clock, stop: StopFlag()) { r in
            rounds.append(r)
            if r.index == 1 { clock.advance(by: 130 * ms) }   // round 1 runs 130 ms: round 2 starts 30 ms late
        }
        XCTAssertEqual(rounds.map(\.due), [0, 100, 200, 300, 400].map { $0 * ms })
        XCTAssertEqual(rounds.map(\.started), [0, 100, 230, 300, 400].map { $0 * ms }, "round 3 is back on the grid: no drift")
        XCTAssertEqual(rounds.map(\.lateNanoseconds), [0, 0, 30 * ms, 0, 0])
    }

    /// Attempts longer than the interval: rounds run back to back (never overlapping), each one
    /// starting when the previous ended, and the grid is kept for when they get faster.
    func testAttemptsLongerThanTheIntervalRunBackToBack() {
        let clock = ManualClock(start: 0)
        var spans: [(start: Int64, end: Int64, due: Int64)] = []
        runSchedule(Schedule(count: 4, interval: .milliseconds(100)), clock: clock, stop: StopFlag()) { r in
            let t0 = clock.monotonicNanoseconds()
            clock.advance(by: (r.index < 2 ? 250 : 10) * ms)
            spans.append((t0, clock.monotonicNanoseconds(), r.due))
        }
        XCTAssertEqual(spans.map(\.start), [0, 250, 500, 510].map { $0 * ms })
        XCTAssertEqual(spans.map(\.due), [0, 100, 200, 300].map { $0 * ms })
        for k in 1..<spans.count { XCTAssertGreaterThanOrEqual(spans[k].start, spans[k - 1].end, "attempts overlap") }
        XCTAssertEqual(clock.sleeps, [], "behind schedule the whole time: never slept")
    }

    func testDeadlineEndsTheRunAndNoRoundStartsAtOrAfterIt() {
        let clock = ManualClock(start: 0)
        var rounds: [ScheduleRound] = []
        let end = runSchedule(Schedule(count: nil, interval: .milliseconds(100), deadline: .milliseconds(350)), clock: clock,
                              stop: StopFlag()) { rounds.append($0) }
        XCTAssertEqual(end, .deadline)
        XCTAssertEqual(rounds.map(\.due), [0, 100, 200, 300].map { $0 * ms })
        XCTAssertEqual(clock.monotonicNanoseconds(), 350 * ms, "the last wait ends at the deadline, not at the next due time")
        XCTAssertEqual(clock.sleeps.last, 350 * ms)

        // A deadline on a due time: that round does not start.
        var cursor = ScheduleCursor(Schedule(count: 10, interval: .milliseconds(100), deadline: .milliseconds(200)), start: 0)
        XCTAssertEqual(cursor.next(now: 0, stopped: false), .run(ScheduleRound(index: 0, due: 0, started: 0)))
        XCTAssertEqual(cursor.next(now: 0, stopped: false), .wait(until: 100 * ms, beforeRound: true))
        XCTAssertEqual(cursor.next(now: 100 * ms, stopped: false), .run(ScheduleRound(index: 1, due: 100 * ms, started: 100 * ms)))
        XCTAssertEqual(cursor.next(now: 100 * ms, stopped: false), .wait(until: 200 * ms, beforeRound: false))
        XCTAssertEqual(cursor.next(now: 200 * ms, stopped: false), .end(.deadline))
    }

    func testCountEndsBeforeTheDeadline() {
        let clock = ManualClock(start: 0)
        var n = 0
        let end = runSchedule(Schedule(count: 3, interval: .milliseconds(10), deadline: .seconds(5)), clock: clock, stop: StopFlag()) { _ in n += 1 }
        XCTAssertEqual(end, .count)
        XCTAssertEqual(n, 3)
        XCTAssertEqual(clock.monotonicNanoseconds(), 20 * ms, "does not wait for the deadline once the count is done")
    }

    /// The SIGINT path: a stop set at virtual time T (from the clock's sleep hook, as the signal
    /// handler would) ends the run at the next check; every round that started before T ran to
    /// its end, and none started after.
    func testStopSetDuringAWaitEndsTheRunAtTheNextCheck() {
        let clock = ManualClock(start: 0)
        let stop = StopFlag()
        clock.onSleep = { t in if t >= 250 * 1_000_000 { stop.stop(reason: "SIGINT") } }
        var started: [Int64] = []
        var finished: [Int64] = []
        let end = runSchedule(Schedule(count: 100, interval: .milliseconds(100)), clock: clock, stop: stop) { r in
            started.append(clock.monotonicNanoseconds())
            clock.advance(by: 5 * ms)
            finished.append(r.due)
        }
        XCTAssertEqual(end, .stopped)
        XCTAssertEqual(started, [0, 100, 200].map { $0 * ms })
        XCTAssertEqual(finished.count, started.count, "every round started was completed")
        XCTAssertEqual(clock.monotonicNanoseconds(), 300 * ms, "the sleep that saw the stop was the last")
        XCTAssertEqual(stop.reason, "SIGINT")
    }

    func testStopBeforeTheFirstRoundRunsNothing() {
        let stop = StopFlag()
        stop.stop(reason: "early")
        var n = 0
        XCTAssertEqual(runSchedule(Schedule(count: 3), clock: ManualClock(), stop: stop) { _ in n += 1 }, .stopped)
        XCTAssertEqual(n, 0)
    }

    func testAsyncLoopKeepsTheSameGrid() async {
        let clock = ManualClock(start: 0)
        let stop = StopFlag()
        clock.onSleep = { t in if t >= 420 * 1_000_000 { stop.stop(reason: "SIGINT") } }
        let box = Rounds()
        let end = await runSchedule(Schedule(count: 10, interval: .milliseconds(100)), clock: clock, stop: stop) { r in
            await box.add(r)
            if r.index == 0 { clock.advance(by: 170 * 1_000_000) }   // late by 70 ms for round 1
        }
        let rounds = await box.rounds
        XCTAssertEqual(end, .stopped)
        XCTAssertEqual(rounds.map(\.due), [0, 100, 200, 300, 400].map { $0 * ms })
        XCTAssertEqual(rounds.map(\.started), [0, 170, 200, 300, 400].map { $0 * ms })
        XCTAssertEqual(clock.monotonicNanoseconds(), 500 * ms)
    }

    /// Spin-before-send: on a real clock the last `spinNanoseconds` are spent in `idle`; on a
    /// virtual clock there is no spin (it would never end) and the loop waits to the due time.
    func testSpinOnlyOnAClockThatMovesByItself() {
        let manual = ManualClock(start: 0)
        var idles = 0
        var waits: [Int64] = []
        runSchedule(Schedule(count: 3, interval: .milliseconds(10)), clock: manual, stop: StopFlag(), spinNanoseconds: ms,
                    idle: { idles += 1 }, wait: { waits.append($0); manual.sleep(untilNanoseconds: $0, stop: { false }) }) { _ in }
        XCTAssertEqual(idles, 0)
        XCTAssertEqual(waits, [10 * ms, 20 * ms])

        // A clock that advances by itself: 100 µs per reading.
        let ticking = TickingClock(step: 100_000)
        var idleTimes: [Int64] = []
        var waitsTo: [Int64] = []
        var rounds: [ScheduleRound] = []
        runSchedule(Schedule(count: 2, interval: .milliseconds(10)), clock: ticking, stop: StopFlag(), spinNanoseconds: ms,
                    idle: { idleTimes.append(ticking.peek) }, wait: { waitsTo.append($0); ticking.jump(to: $0) }) { rounds.append($0) }
        XCTAssertEqual(waitsTo, [rounds[0].due + 9 * ms], "slept until 1 ms before the due time")
        XCTAssertFalse(idleTimes.isEmpty)
        XCTAssertTrue(idleTimes.allSatisfy { $0 >= rounds[1].due - ms && $0 <= rounds[1].due }, "spun only in the last millisecond: \(idleTimes)")
        XCTAssertLessThan(rounds[1].lateNanoseconds, 300_000)
    }

    func testAttemptBudget() {
        let b = AttemptBudget(start: 1_000 * ms, timeoutNanoseconds: 120 * ms)
        XCTAssertEqual(b.deadline, 1_120 * ms)
        XCTAssertEqual(b.pollMilliseconds(at: 1_000 * ms), 50, "waits in slices of at most 50 ms")
        XCTAssertEqual(b.pollMilliseconds(at: 1_100 * ms), 20)
        XCTAssertEqual(b.pollMilliseconds(at: 1_119 * ms + 1), 1, "rounded up, so the wait never ends early")
        XCTAssertFalse(b.isSpent(at: 1_120 * ms - 1))
        XCTAssertTrue(b.isSpent(at: 1_120 * ms))
        XCTAssertEqual(b.remaining(at: 2_000 * ms), 0)
        XCTAssertEqual(AttemptBudget(start: 0, timeoutNanoseconds: 0).timeoutNanoseconds, 1, "a zero timeout is 1 ns, never negative")
    }
}

private actor Rounds {
    var rounds: [ScheduleRound] = []
    func add(_ r: ScheduleRound) { rounds.append(r) }
}

/// A clock that moves `step` nanoseconds each time it is read, as a real one moves while code runs.
private final class TickingClock: MeasurementClock, @unchecked Sendable {
    private var now: Int64 = 0
    let step: Int64
    init(step: Int64) { self.step = step }
    var peek: Int64 { now }
    func jump(to t: Int64) { now = max(now, t) }
    func monotonicNanoseconds() -> Int64 { now += step; return now }
    func wallNow() -> Date { Date(timeIntervalSince1970: Double(now) / 1e9) }
    func sleep(untilNanoseconds deadline: Int64, stop: () -> Bool) -> Bool { jump(to: deadline); return true }
    func sleep(untilNanoseconds deadline: Int64, stop: @Sendable () -> Bool) async -> Bool { jump(to: deadline); return true }
}
