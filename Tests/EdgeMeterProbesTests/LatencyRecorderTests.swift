import Foundation
import XCTest
import Histogram
@testable import EdgeMeterProbes

/// The load engines' fast latency recording (`LatencyRecorder`) against recording every value into
/// `Histogram<UInt64>` directly, configured as the engines configured theirs before: the same
/// histogram (counts, total, exact min and max), so the same percentiles, mean, deviation and spectrum.
final class LatencyRecorderTests: XCTestCase {
    /// The histogram the engines recorded into before (sized for an hour, growing past it).
    func direct(_ digits: SignificantDigits = .three, highest: UInt64 = 3_600_000_000_000) -> Histogram<UInt64> {
        var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: digits)
        h.autoResize = true
        return h
    }

    /// Deterministic values over every bucket size a load run meets: 0, the unit-resolution range,
    /// bucket edges, loopback µs, ms, s, up to and past the ≈ 73 min the array covers (its last
    /// bucket ends at 2^42 ns).
    func values(count: Int, seed: UInt64) -> [UInt64] {
        var state = seed
        func next() -> UInt64 { // SplitMix64
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        var out: [UInt64] = [0, 1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 2050, 4095, 4096, 4097, 8191, 8192,
                             999_999, 1_000_000, 1_000_001, 3_599_999_999_999, 3_600_000_000_000, 3_600_000_000_001]
        for _ in 0..<count {
            let r = next()
            switch r % 8 {
            case 0: out.append(r >> 53)                      // 0 ..< 2048: one count per value
            case 1, 2, 3: out.append(20_000 + (r >> 40) % 200_000)      // loopback: 20-220 µs
            case 4, 5: out.append((r >> 20) % 50_000_000)                // up to 50 ms
            case 6: out.append((r >> 10) % 10_000_000_000)               // up to 10 s
            default: out.append((r >> 2) % 10_000_000_000_000)           // up to 10 000 s, some past the array
            }
        }
        return out
    }

    /// `full`: also every derived figure (each walks the whole histogram; slow in a debug build at 4-5 digits).
    func assertSame(_ fast: Histogram<UInt64>, _ slow: Histogram<UInt64>, _ what: String, full: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(fast, slow, "\(what): counts, total, min, max", file: file, line: line)
        XCTAssertEqual(fast.totalCount, slow.totalCount, what, file: file, line: line)
        XCTAssertEqual(fast.maxRecorded, slow.maxRecorded, "\(what): exact largest value", file: file, line: line)
        XCTAssertEqual(fast.min, slow.min, "\(what): exact smallest value", file: file, line: line)
        XCTAssertEqual(fast.minNonZero, slow.minNonZero, what, file: file, line: line)
        XCTAssertEqual(fast.max, slow.max, what, file: file, line: line)
        XCTAssertEqual(fast.highestTrackableValue, slow.highestTrackableValue, "\(what): grown alike", file: file, line: line)
        guard full else { return }
        for p in [0.0, 0.001, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100] {
            XCTAssertEqual(fast.valueAtPercentile(p), slow.valueAtPercentile(p), "\(what): p\(p)", file: file, line: line)
        }
        XCTAssertEqual(fast.mean, slow.mean, what, file: file, line: line)
        XCTAssertEqual(fast.stdDeviation, slow.stdDeviation, what, file: file, line: line)
        var a = "", b = ""
        fast.outputPercentileDistribution(to: &a, outputValueUnitScalingRatio: 1e6, percentileTicksPerHalfDistance: 5)
        slow.outputPercentileDistribution(to: &b, outputValueUnitScalingRatio: 1e6, percentileTicksPerHalfDistance: 5)
        XCTAssertEqual(a, b, "\(what): the report's spectrum, footer (mean, max, buckets) included", file: file, line: line)
        XCTAssertEqual(LoadReport.spectrumCSV(fast), LoadReport.spectrumCSV(slow), what, file: file, line: line)
    }

    func testSameHistogramAsRecordingDirectly() {
        for seed: UInt64 in [1, 42, 2026] {
            let recorder = LatencyRecorder()
            var slow = direct()
            for v in values(count: 200_000, seed: seed) {
                recorder.record(v)
                slow.record(v)
            }
            XCTAssertGreaterThan(slow.highestTrackableValue, 1 << 42, "the values reach past the array, whose last bucket ends at 2^42 ns")
            assertSame(recorder.histogram, slow, "seed \(seed)")
            // Reading the histogram leaves the recorder as it was: a second read, after more values, still agrees.
            recorder.record(123_456)
            slow.record(123_456)
            assertSame(recorder.histogram, slow, "seed \(seed), read twice")
        }
    }

    /// The exact smallest and largest values survive when they share a bucket with others (one
    /// bucket at 1 ms spans 512 ns), alone in one bucket, or are the only value.
    func testExtremesSharingABucket() {
        let cases: [[UInt64]] = [
            [1_000_100, 1_000_001, 1_000_050, 1_000_200],   // all in one bucket
            [1_000_001, 1_000_200],                          // two in one bucket
            [1_000_001, 1_000_001],                          // one value twice
            [1_000_003],                                     // one value
            [0, 0, 0],                                       // zeros only (no non-zero minimum)
            [0, 5_000_001, 5_000_002, 9_000_001],            // a zero, then min and max in different buckets
            [2_048, 2_049],                                  // the first bucket with 2-unit steps
            [],
        ]
        for values in cases {
            let recorder = LatencyRecorder()
            var slow = direct()
            for v in values { recorder.record(v); slow.record(v) }
            assertSame(recorder.histogram, slow, "\(values)")
        }
    }

    /// The same layout as HdrHistogram's at every precision, and with a small array (values past it
    /// grow the histogram as they would have).
    func testOtherPrecisionsAndRanges() {
        for digits in [SignificantDigits.zero, .one, .two, .three, .four, .five] {
            for highest: UInt64 in [1_000, 3_600_000_000_000] {
                let recorder = LatencyRecorder(highestTrackableValue: highest, significantDigits: digits)
                var slow = direct(digits, highest: highest)
                for v in values(count: 5_000, seed: UInt64(digits.rawValue) &+ highest) {
                    recorder.record(v)
                    slow.record(v)
                }
                assertSame(recorder.histogram, slow, "digits \(digits), highest \(highest)", full: digits.rawValue <= 3)
                for v in values(count: 2_000, seed: 7) where recorder.index(v) < recorder.length {
                    XCTAssertEqual(recorder.value(at: recorder.index(v)), slow.lowestEquivalentForValue(v),
                                   "digits \(digits): the bucket of \(v)")
                }
            }
        }
    }

    /// What the engines report goes through the recorder: a pacer's recorded latencies, read back
    /// as the result's histogram, are the values recorded.
    func testLoopStatsRecordThroughTheRecorder() {
        let stats = LoopStats()
        var p = LoadPacer(t0: 0, measureStart: 0, end: 10_000_000_000, rate: nil, connections: 1, index: 0, quota: nil,
                          timeoutNanos: 2_000_000_000)
        var slow = direct()
        var now: UInt64 = 1_000
        for k in 0..<1_000 {
            guard case .send(let intended) = p.next(now: now) else { return XCTFail("closed loop: send at once") }
            p.sent(intended: intended, at: now)
            let latency = UInt64(30_000 + (k * 7_919) % 900_000)
            now += latency
            XCTAssertTrue(p.completed(at: now, status: 200, failure: nil, bytes: 100, into: stats))
            slow.record(latency)
            now += 1
        }
        XCTAssertEqual(stats.responses, 1_000)
        assertSame(stats.uncorrected, slow, "closed loop through LoopStats")
        XCTAssertEqual(stats.corrected.totalCount, 0, "closed loop: nothing recorded as corrected by the pacer")
    }
}
