import XCTest
@testable import EdgeMeterCore

/// `Schedule.closedLoop`: interval zero means no pacing; every round is due at the start, so a
/// round starts as soon as the previous one ended and the loop never waits (only a deadline ends it).
final class ScheduleClosedLoopTests: XCTestCase {
    func testClosedLoopRoundsAreDueAtTheStart() {
        let s = Schedule.closedLoop(count: 3, deadline: .seconds(1))
        XCTAssertTrue(s.isClosedLoop)
        XCTAssertFalse(Schedule(count: 3, interval: .nanoseconds(1)).isClosedLoop)
        XCTAssertEqual(s.due(round: 5, start: 100), 100)
        var cursor = ScheduleCursor(s, start: 0)
        XCTAssertEqual(cursor.next(now: 0, stopped: false), .run(ScheduleRound(index: 0, due: 0, started: 0)))
        XCTAssertEqual(cursor.next(now: 7, stopped: false), .run(ScheduleRound(index: 1, due: 0, started: 7)))
        XCTAssertEqual(cursor.next(now: 1_000_000_000, stopped: false), .end(.deadline))
    }

    func testClosedLoopNeverSleeps() {
        let clock = ManualClock()
        var n = 0
        let end = runSchedule(.closedLoop(count: 4), clock: clock, stop: StopFlag()) { _ in n += 1 }
        XCTAssertEqual(end, .count)
        XCTAssertEqual(n, 4)
        XCTAssertEqual(clock.sleeps, [], "a closed loop has nothing to wait for")
    }
}
