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

    func testOutageAfterTheCallReturnedIsStillFound() {
        // The old instance keeps answering for 50 ms after the restart is issued at 100 ms, then
        // nothing answers until 400 ms: the gap is 350 ms (not the 10 ms around the call).
        var recs: [RestartProbeRecord] = []
        for i in 0..<60 {
            let sent = UInt64(i * 10) * ms
            let ok = sent < 150 * ms || sent >= 400 * ms
            recs.append(.init(sentNanoseconds: sent, doneNanoseconds: sent + (ok ? ms : ms / 10), ok: ok))
        }
        let d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms, returnedNanoseconds: 350 * ms)
        XCTAssertEqual(d.gapMilliseconds ?? -1, 401 - 141, accuracy: 1e-9)
        XCTAssertEqual(d.firstGoodMilliseconds ?? -1, 301, accuracy: 1e-9)
        XCTAssertEqual(d.failed, 25)
    }

    func testNoAnswerBeforeTheRestart() {
        let recs = [RestartProbeRecord(sentNanoseconds: 95 * ms, doneNanoseconds: 105 * ms, ok: true),
                    RestartProbeRecord(sentNanoseconds: 110 * ms, doneNanoseconds: 111 * ms, ok: true)]
        let d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms)
        XCTAssertNil(d.gapMilliseconds, "no good answer had arrived before the restart was issued")
        XCTAssertEqual(d.problem, "no good answer before the restart: the service was not up")
    }

    func testLateAnswersCountAsFailedAndTheCallMustBeFollowedByAnAnswer() {
        // Good until 100 ms; a request sent at 120 ms is answered 3 s later (SYN retransmitted):
        // it does not end the gap; the first prompt answer comes at 500 ms.
        var recs = [RestartProbeRecord(sentNanoseconds: 90 * ms, doneNanoseconds: 91 * ms, ok: true),
                    RestartProbeRecord(sentNanoseconds: 120 * ms, doneNanoseconds: 3120 * ms, ok: true),
                    RestartProbeRecord(sentNanoseconds: 500 * ms, doneNanoseconds: 501 * ms, ok: true)]
        var d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms, returnedNanoseconds: 400 * ms)
        XCTAssertEqual(d.gapMilliseconds ?? -1, 410, accuracy: 1e-9)
        XCTAssertEqual(d.failed, 1)
        // Answers only from the old instance, to requests sent before the call returned: not back.
        recs = [RestartProbeRecord(sentNanoseconds: 90 * ms, doneNanoseconds: 91 * ms, ok: true),
                RestartProbeRecord(sentNanoseconds: 101 * ms, doneNanoseconds: 102 * ms, ok: true),
                RestartProbeRecord(sentNanoseconds: 500 * ms, doneNanoseconds: 501 * ms, ok: false)]
        d = RestartDowntime.analyse(recs, restartIssuedNanoseconds: 100 * ms, returnedNanoseconds: 400 * ms)
        XCTAssertNil(d.gapMilliseconds)
        XCTAssertEqual(d.problem, "no good answer after the restart within the window: the service did not come back")
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
