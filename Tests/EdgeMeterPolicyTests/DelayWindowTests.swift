import XCTest
import EdgeMeterCore
@testable import EdgeMeterPolicy

final class DelayWindowTests: XCTestCase {
    let s: Int64 = 1_000_000_000

    func testPercentilesAreNearestRankOverReceivedSamples() throws {
        let clock = ManualClock(start: 0)
        var w = try DelayWindow(node: "node_1", length: .seconds(30), clock: clock)
        for v in [7.0, 3, 10, 1, 5, 9, 2, 8, 4, 6] {
            try w.add(milliseconds: v)
            clock.advance(by: .milliseconds(100))
        }
        try w.add(milliseconds: nil)
        try w.add(milliseconds: nil)
        let o = w.observe()
        XCTAssertEqual(o.sent, 12)
        XCTAssertEqual(o.received, 10)
        XCTAssertEqual(o.lossPercent, 2.0 / 12 * 100, accuracy: 1e-12)
        // ranks ⌈0.5·10⌉ = 5, ⌈0.9·10⌉ = 9, ⌈0.99·10⌉ = 10
        XCTAssertEqual(o.p50Milliseconds, 5)
        XCTAssertEqual(o.p90Milliseconds, 9)
        XCTAssertEqual(o.p99Milliseconds, 10)
        XCTAssertEqual(o.newestMilliseconds, 6, "the newest received sample, not a lost one")
        XCTAssertEqual(o.newestAgeNanoseconds, 0, "the lost samples were taken now")
    }

    func testPercentilesAgreeWithTheSummaryStatistics() throws {
        let clock = ManualClock(start: 0)
        var w = try DelayWindow(node: "n", length: .seconds(100), clock: clock)
        var acc = SummaryAccumulator(key: SummaryKey(scenario: "s", probe: "p", target: "t", metric: "rtt", phase: "total", unit: "ms"))
        var rng = SeededRandom(seed: 42)
        for _ in 0..<257 {
            let v = 10 + 5 * rng.symmetricUnit()
            try w.add(milliseconds: v)
            acc.addValue(v)
            clock.advance(by: .milliseconds(10))
        }
        let o = w.observe()
        let summary = acc.summary
        // The summary reads an HDR histogram (3 significant digits): equal within 0.1 %.
        XCTAssertEqual(o.p50Milliseconds!, summary.p50!, accuracy: summary.p50! * 0.001)
        XCTAssertEqual(o.p90Milliseconds!, summary.p90!, accuracy: summary.p90! * 0.001)
        XCTAssertEqual(o.p99Milliseconds!, summary.p99!, accuracy: summary.p99! * 0.001)
    }

    func testSamplesLeaveTheWindowExactlyAtItsLength() throws {
        let clock = ManualClock(start: 5 * s)
        var w = try DelayWindow(node: "node_1", length: .seconds(10), clock: clock)
        try w.add(milliseconds: 40)          // at 5 s
        clock.advance(by: .seconds(1))
        try w.add(milliseconds: 20)          // at 6 s
        XCTAssertEqual(w.observe(nowNanoseconds: 15 * s - 1).received, 2, "the 5 s sample is 1 ns short of 10 s old")
        let o = w.observe(nowNanoseconds: 15 * s)
        XCTAssertEqual(o.received, 1, "a sample exactly 10 s old has left the window")
        XCTAssertEqual(o.p99Milliseconds, 20)
        XCTAssertEqual(o.newestAgeNanoseconds, 9 * s)
        let empty = w.observe(nowNanoseconds: 16 * s)
        XCTAssertEqual(empty.sent, 0)
        XCTAssertNil(empty.p90Milliseconds)
        XCTAssertNil(empty.newestAgeNanoseconds)
        XCTAssertEqual(empty.lossPercent, 0)
    }

    func testSamplesStampedOnTheInjectedClockAndKeptInTimeOrder() throws {
        let clock = ManualClock(start: 100)
        var w = try DelayWindow(node: "n", length: .seconds(1), clock: clock)
        try w.add(milliseconds: 1)
        clock.advance(by: 50)
        try w.add(milliseconds: 3)
        try w.add(milliseconds: 2, atNanoseconds: 120)
        XCTAssertEqual(w.entries.map(\.atNanoseconds), [100, 120, 150])
        XCTAssertEqual(w.observe().newestMilliseconds, 3)
        // A sample stamped after the observation time is not in that observation.
        try w.add(milliseconds: 99, atNanoseconds: 1_000)
        XCTAssertEqual(w.observe(nowNanoseconds: 150).received, 3)
        XCTAssertEqual(w.observe(nowNanoseconds: 1_000).received, 4)
    }

    func testBadSamplesAndLengthsAreRefusedWithTheNextStep() throws {
        let clock = ManualClock()
        XCTAssertThrowsError(try DelayWindow(node: "node_1", length: .zero, clock: clock)) {
            XCTAssertEqual("\($0)", "the delay window of node_1 must be longer than 0 s; give a length such as 30s")
        }
        var w = try DelayWindow(node: "node_1", length: .seconds(1), clock: clock)
        XCTAssertThrowsError(try w.add(milliseconds: -1)) {
            XCTAssertEqual("\($0)", "a delay sample of node_1 is -1.0 ms; delays must be finite and ≥ 0 ms (record a lost sample as no value)")
        }
        XCTAssertThrowsError(try w.add(milliseconds: .nan))
        XCTAssertThrowsError(try w.add(milliseconds: .infinity))
        XCTAssertEqual(w.entries.count, 0, "nothing refused was kept")
    }

    func testRequirementParsing() throws {
        XCTAssertEqual(try DelayRequirement(parsing: "20ms@p90"), DelayRequirement(percentile: .p90, maxMilliseconds: 20))
        XCTAssertEqual(try DelayRequirement(parsing: "0.5s@p99"), DelayRequirement(percentile: .p99, maxMilliseconds: 500))
        XCTAssertEqual(try DelayRequirement(parsing: "15@P50"), DelayRequirement(percentile: .p50, maxMilliseconds: 15))
        XCTAssertThrowsError(try DelayRequirement(parsing: "20ms")) {
            XCTAssertEqual("\($0)", "requirement \"20ms\" has no @PERCENTILE; write it like 20ms@p90 (a delay, @, one of p50, p90, p99)")
        }
        XCTAssertThrowsError(try DelayRequirement(parsing: "20ms@p95")) {
            XCTAssertEqual("\($0)", "requirement \"20ms@p95\": \"p95\" is not a percentile; write it like 20ms@p90 (a delay, @, one of p50, p90, p99)")
        }
        XCTAssertThrowsError(try DelayRequirement(parsing: "0ms@p90"))
        XCTAssertThrowsError(try DelayRequirement(parsing: "fast@p90")) {
            XCTAssertEqual("\($0)", "requirement \"fast@p90\": \"fast\" is not a positive delay; write it like 20ms@p90 (a delay, @, one of p50, p90, p99)")
        }
    }
}
