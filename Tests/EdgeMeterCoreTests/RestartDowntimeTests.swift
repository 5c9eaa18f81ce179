import XCTest
@testable import EdgeMeterCore

final class RestartDowntimeTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    func testGapFailedAndFirstGood() {
        // A request every 10 ms, answered in 1 ms; restart issued at 100 ms; requests sent at
        // 100..240 ms fail (refused after 0.1 ms); from 250 ms on they succeed.
        var recs: [RestartProbeRecord] = []
        for i in 0..<40 {
            let sent = UInt64(i * 10) * ms
            let ok = sent < 100 * ms || sent >= 250 * ms
            recs.append(.init(sentNanoseconds: sent, doneNanoseconds: sent + (ok ? ms : ms / 10), ok: ok))
        }
        let d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms)
        XCTAssertEqual(d.gapMilliseconds ?? -1, 251 - 91, accuracy: 1e-9)
        XCTAssertEqual(d.firstGoodMilliseconds ?? -1, 151, accuracy: 1e-9)
        XCTAssertEqual(d.failed, 15)
        XCTAssertEqual(d.sent, 40)
        XCTAssertEqual(d.good, 25)
        XCTAssertNil(d.problem)
    }

    func testAnswerInFlightAcrossTheRestartIsNotTheFirstAfter() {
        // Sent at 95 ms, answered at 105 ms (after the restart was issued at 100): it counts as
        // before; the first good answer after must come from a request sent after 100 ms.
        let recs = [RestartProbeRecord(sentNanoseconds: 95 * ms, doneNanoseconds: 105 * ms, ok: true),
                    RestartProbeRecord(sentNanoseconds: 110 * ms, doneNanoseconds: 111 * ms, ok: true)]
        let d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms)
        XCTAssertEqual(d.firstGoodMilliseconds ?? -1, 11, accuracy: 1e-9)
        XCTAssertNil(d.gapMilliseconds, "no good answer had arrived before the restart was issued")
        XCTAssertNotNil(d.problem)
    }

    func testNeverBack() {
        let recs = [RestartProbeRecord(sentNanoseconds: 0, doneNanoseconds: ms, ok: true),
                    RestartProbeRecord(sentNanoseconds: 200 * ms, doneNanoseconds: 201 * ms, ok: false)]
        let d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms)
        XCTAssertNil(d.gapMilliseconds)
        XCTAssertEqual(d.failed, 1)
        XCTAssertEqual(d.problem, "no good answer after the restart within the window: the service did not come back")
    }
}
