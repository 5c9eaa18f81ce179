import XCTest
@testable import EdgeMeterCore

final class StatisticsTests: XCTestCase {
    let key = SummaryKey(scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", unit: "ms")

    func sample(_ v: Double?, _ status: SampleStatus = .ok) -> Sample {
        Sample(runID: "r", scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", value: v, unit: "ms",
               timestamp: Date(timeIntervalSince1970: 0), status: status, reason: status == .ok ? "" : "x")
    }

    func testOneToHundredExactFigures() {
        var acc = SummaryAccumulator(key: key)
        for v in 1...100 { acc.add(sample(Double(v))) }
        let s = acc.summary
        XCTAssertEqual(s.sent, 100)
        XCTAssertEqual(s.received, 100)
        XCTAssertEqual(s.lossPercent, 0)
        XCTAssertEqual(s.min, 1)
        XCTAssertEqual(s.max, 100)
        XCTAssertEqual(s.mean!, 50.5, accuracy: 1e-12)
        // population sd: sqrt(338350/100 - 50.5^2) = sqrt(833.25)
        XCTAssertEqual(s.mdev!, 833.25.squareRoot(), accuracy: 1e-9)
    }

    func testPercentilesOfKnownSetWithinHistogramPrecision() {
        var acc = SummaryAccumulator(key: key)
        for v in 1...100 { acc.add(sample(Double(v))) }
        let s = acc.summary
        // HDR with 3 significant digits: reported value is within 0.1% above the true order statistic.
        for (got, want) in [(s.p50!, 50.0), (s.p90!, 90.0), (s.p99!, 99.0), (s.p999!, 100.0)] {
            XCTAssertGreaterThanOrEqual(got, want)
            XCTAssertLessThanOrEqual(got, want * 1.001)
        }
    }

    func testMedianConfidenceIntervalUsesOrderStatistics() {
        var acc = SummaryAccumulator(key: key)
        for v in 1...100 { acc.add(sample(Double(v))) }
        // n=100: ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61
        let ci = acc.summary.medianCI95!
        XCTAssertEqual(ci.lowerBound, 40, accuracy: 0.05)
        XCTAssertEqual(ci.upperBound, 61, accuracy: 0.07)
        var small = SummaryAccumulator(key: key)
        for v in 1...5 { small.add(sample(Double(v))) }
        XCTAssertNil(small.summary.medianCI95, "fewer than 6 values give no CI")
    }

    func testLossCountsEveryFailedAttempt() {
        var acc = SummaryAccumulator(key: key)
        for v in [1.0, 2, 3, 4, 5, 6, 7] { acc.add(sample(v)) }
        acc.add(sample(nil, .timeout))
        acc.add(sample(nil, .timeout))
        acc.add(sample(nil, .unreachable))
        let s = acc.summary
        XCTAssertEqual(s.sent, 10)
        XCTAssertEqual(s.received, 7)
        XCTAssertEqual(s.lossPercent, 30, accuracy: 1e-12)
        XCTAssertEqual(s.statusCounts[.timeout], 2)
        XCTAssertEqual(s.statusCounts[.unreachable], 1)
        XCTAssertEqual(s.mean!, 4, accuracy: 1e-12)
    }

    func testMdevIsPingsFormula() {
        // iputils: tmdev = sqrt(tsum2/n - (tsum/n)^2). For 1,2,3,4 ms: sqrt(7.5 - 6.25).
        var acc = SummaryAccumulator(key: key)
        for v in [1.0, 2, 3, 4] { acc.add(sample(v)) }
        XCTAssertEqual(acc.summary.mdev!, 1.25.squareRoot(), accuracy: 1e-12)
        // iputils' own integer-microsecond arithmetic on values where it is exact agrees too.
        let micros: [Int64] = [45, 61, 32, 50, 52]
        let n = Int64(micros.count)
        let tsum = micros.reduce(0, +), tsum2 = micros.map { $0 * $0 }.reduce(0, +)
        let tmvar = Double(tsum2) / Double(n) - pow(Double(tsum) / Double(n), 2)
        var acc2 = SummaryAccumulator(key: key)
        for m in micros { acc2.add(sample(Double(m) / 1000)) }
        XCTAssertEqual(acc2.summary.mdev! * 1000, tmvar.squareRoot(), accuracy: 1e-9)
    }

    func testAllFailedGivesNoFigures() {
        var acc = SummaryAccumulator(key: key)
        acc.add(sample(nil, .refused))
        let s = acc.summary
        XCTAssertEqual(s.lossPercent, 100)
        XCTAssertNil(s.min)
        XCTAssertNil(s.p50)
        XCTAssertNil(s.mdev)
    }

    func testMemoryStaysBoundedByHistogram() {
        var acc = SummaryAccumulator(key: key)
        for i in 0..<200_000 { acc.addValue(Double(i % 5000) / 100) }
        XCTAssertEqual(acc.summary.received, 200_000)
        XCTAssertLessThan(MemoryLayout<SummaryAccumulator>.size, 1024)
    }

    func testSummarizerKeepsFirstSeenOrder() {
        var s = Summarizer()
        for t in ["b", "a", "c"] {
            s.add(Sample(runID: "r", scenario: "x", probe: "ping", target: t, metric: "rtt", phase: "echo", value: 1, unit: "ms",
                         timestamp: Date(), status: .ok))
        }
        XCTAssertEqual(s.summaries.map(\.key.target), ["b", "a", "c"])
    }
}
