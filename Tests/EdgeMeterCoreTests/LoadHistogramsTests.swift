import XCTest
import Histogram
@testable import EdgeMeterCore

/// load-histograms.json: a histogram written and read back reports the same figures.
final class LoadHistogramsTests: XCTestCase {
    func histogram(_ values: [UInt64]) -> Histogram<UInt64> {
        var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
        h.autoResize = true
        for v in values { _ = h.record(v) }
        return h
    }

    func record(_ h: Histogram<UInt64>) -> LoadRecord {
        LoadRecord(scenario: "api", target: "http://127.0.0.1:8080/", openLoop: true, requestedRate: 1000, connections: 4, threads: 2,
                   measuredSeconds: 3, warmupSeconds: 1, responses: Int(h.totalCount), bytesRead: 123_456, unsent: 0,
                   timeoutNanoseconds: 2_000_000_000, perSecond: [990, 1004, 1001], statusCounts: ["200": 2990, "503": 5],
                   errors: ["connect": 0, "timeout": 1, "reset": 0, "status": 5, "body": 0],
                   latency: [LatencySeries(series: "corrected", histogram: h), LatencySeries(series: "uncorrected", histogram: h)])
    }

    func testHistogramRoundTripKeepsEveryPercentileMeanAndMax() throws {
        var seed: UInt64 = 9
        var values: [UInt64] = []
        for _ in 0..<20_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            // 50 µs to ~2 s, skewed: most near the bottom, a long tail.
            let u = Double(seed >> 11) / Double(1 << 53)
            values.append(UInt64(50_000 * exp(u * u * 10.6)))
        }
        let h = histogram(values)
        let doc = LoadHistogramsDocument(loads: [record(h)])
        let back = try LoadHistogramsDocument.parse(Data(doc.json().utf8))
        XCTAssertEqual(back, doc)
        let series = try XCTUnwrap(back.loads.first?.series("uncorrected"))
        let again = series.histogram
        XCTAssertEqual(again.totalCount, h.totalCount)
        XCTAssertEqual(series.buckets.map { $0[1] }.reduce(0, +), 20_000)
        for p in [0.0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100] {
            XCTAssertEqual(again.valueAtPercentile(p), h.valueAtPercentile(p), "p\(p)")
            XCTAssertEqual(series.value(atPercentile: p), h.valueAtPercentile(p))
        }
        XCTAssertEqual(again.max, h.max)
        XCTAssertEqual(again.min, h.min)
        XCTAssertEqual(again.mean, h.mean, accuracy: h.mean * 1e-12)
        XCTAssertEqual(series.max, h.maxRecorded)
        XCTAssertEqual(series.min, h.min)
        XCTAssertLessThan(series.buckets.count, 20_000, "sparse: only non-empty buckets are written")
    }

    /// CI saw `uncorrected p999` read back as 5.189631 ms against 5.188232 ms: the top bucket held
    /// several values and the copies recorded at the bucket's highest value raised the max, which
    /// HdrHistogram clamps every percentile to.
    func testATopBucketOfSeveralValuesKeepsTheExactMaxAndItsPercentiles() throws {
        let top: [UInt64] = [5_186_000, 5_187_000, 5_188_232]   // one bucket: 5 185 536 ... 5 189 631 ns
        let h = histogram(Array(repeating: 1_000_000, count: 1_000) + top)
        let series = LatencySeries(series: "uncorrected", histogram: h)
        XCTAssertEqual(series.buckets.last, [5_189_631, 3])
        XCTAssertEqual(h.valueAtPercentile(99.9), 5_188_232, "the clamp to the recorded max")
        for p in [50.0, 99, 99.9, 99.99, 100] {
            XCTAssertEqual(series.value(atPercentile: p), h.valueAtPercentile(p), "p\(p)")
        }
        XCTAssertEqual(series.histogram.maxRecorded, 5_188_232)
        XCTAssertEqual(series.histogram.totalCount, 1_003)
    }

    func testAddingReplacesTheSameScenarioAndTarget() {
        let a = record(histogram([1_000, 2_000]))
        var b = a
        b.responses = 7
        var c = a
        c.scenario = "other"
        let doc = LoadHistogramsDocument().adding(a).adding(c).adding(b)
        XCTAssertEqual(doc.loads.map(\.scenario), ["api", "other"])
        XCTAssertEqual(doc.loads[0].responses, 7)
    }

    func testEmptySeriesAndBadFilesAreNamed() throws {
        let empty = LatencySeries(series: "uncorrected", histogram: histogram([]))
        XCTAssertEqual(empty.count, 0)
        XCTAssertNil(empty.value(atPercentile: 50))
        XCTAssertThrowsError(try LoadHistogramsDocument.parse(Data("{}".utf8), file: "x.json")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.json is not an edgemeter load-histograms file"), "\(e)")
        }
        var doc = LoadHistogramsDocument(loads: [record(histogram([5]))])
        doc.format = "other"
        XCTAssertThrowsError(try LoadHistogramsDocument.parse(Data(doc.json().utf8), file: "x.json")) { e in
            XCTAssertEqual("\(e)", "x.json: format is \"other\", expected \"edgemeter-load-histograms\"")
        }
        doc.format = LoadHistogramsDocument.formatName
        doc.loads[0].latency[0].buckets = [[1, 2, 3]]
        XCTAssertThrowsError(try LoadHistogramsDocument.parse(Data(doc.json().utf8), file: "x.json")) { e in
            XCTAssertEqual("\(e)", "x.json: api corrected: every bucket must be [value_ns, count]")
        }
    }
}
