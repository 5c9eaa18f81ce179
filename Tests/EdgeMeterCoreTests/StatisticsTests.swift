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

    /// Resident set size of this process, from /proc/self/statm (second field, in pages).
    func residentBytes() throws -> Int {
        let text = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let fields = text.split(separator: " ")
        let pages = try XCTUnwrap(Int(fields[1]), "unexpected /proc/self/statm: \(text)")
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testMemoryStaysBoundedOverTenMillionValues() throws {
        // Storing the values would take 80 MB (8 bytes each); the histograms take a few hundred KiB
        // whatever the count. Values span 1 µs ... 1000 s and both signs so the histograms resize.
        var acc = SummaryAccumulator(key: key)
        for i in 0..<10_000 { acc.addValue(Double(i)) } // warm up allocator and histograms
        let before = try residentBytes()
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<10_000_000 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            let magnitude = Double(x % 1_000_000_000) / 1e6 // 0 ... 1000 ms
            acc.addValue(i % 4 == 0 ? -magnitude : magnitude)
        }
        let grown = try residentBytes() - before
        let s = acc.summary
        XCTAssertEqual(s.received, 10_010_000)
        XCTAssertLessThan(grown, 8 << 20, "resident memory grew by \(grown) bytes over 10M values: the summary must not keep the values")
    }

    /// `got` is within the histogram's precision above `want`: want ≤ got ≤ want + 0.1% of |want|.
    func assertPercentile(_ got: Double?, _ want: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let got else { return XCTFail("\(what): no value", file: file, line: line) }
        XCTAssertGreaterThanOrEqual(got, want - 1e-12, what, file: file, line: line)
        XCTAssertLessThanOrEqual(got, want + abs(want) * 0.001 + 1e-12, what, file: file, line: line)
    }

    func testNegativeValuesKeepTheirPercentiles() {
        // app − wire differences can be negative. Sorted: -40 -30 -20 -10; nearest rank ⌈p·n⌉.
        var acc = SummaryAccumulator(key: key)
        for v in [-10.0, -40, -20, -30] { acc.addValue(v) }
        let s = acc.summary
        XCTAssertEqual(s.min, -40)
        XCTAssertEqual(s.max, -10)
        XCTAssertEqual(s.mean!, -25, accuracy: 1e-12)
        assertPercentile(s.p50, -30, "p50 = rank 2")
        assertPercentile(s.p90, -10, "p90 = rank 4")
        assertPercentile(s.p99, -10, "p99 = rank 4")
    }

    func testMixedSignPercentilesAndMedianCI() {
        // Sorted: -5 -3 -1 0 2 4 6 8 10 12 (n = 10).
        var acc = SummaryAccumulator(key: key)
        for v in [4.0, -1, 12, 0, -5, 8, 2, -3, 10, 6] { acc.add(sample(v)) }
        let s = acc.summary
        XCTAssertEqual(s.min, -5)
        XCTAssertEqual(s.max, 12)
        XCTAssertEqual(s.mean!, 3.3, accuracy: 1e-12)
        XCTAssertEqual(s.sum!, 33, accuracy: 1e-12)
        assertPercentile(s.p50, 2, "p50 = rank 5")
        assertPercentile(s.p90, 10, "p90 = rank 9")
        assertPercentile(s.p99, 12, "p99 = rank 10")
        // CI ranks: floor(5 − 3.099) = 1 and min(10, ceil(6 + 3.099)) = 10.
        let ci = s.medianCI95!
        assertPercentile(ci.lowerBound, -5, "CI low = rank 1")
        assertPercentile(ci.upperBound, 12, "CI high = rank 10")

        // A negative median with sub-millisecond values (µs resolution in the histogram).
        var small = SummaryAccumulator(key: key)
        for v in [0.3, -0.125, 0.01, -0.25, -0.05] { small.addValue(v) }
        assertPercentile(small.summary.p50, -0.05, "p50 = rank 3 of -0.25 -0.125 -0.05 0.01 0.3")
        assertPercentile(small.summary.p90, 0.3, "p90 = rank 5")
        // 4 of 10 values below zero: p40 would be the last negative; p50 is the first of the rest.
        var edge = SummaryAccumulator(key: key)
        for v in [-4.0, -3, -2, -1, 1, 2, 3, 4, 5, 6] { edge.addValue(v) }
        assertPercentile(edge.summary.p50, 1, "p50 = rank 5, the first positive value")
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
