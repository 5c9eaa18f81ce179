import XCTest
@testable import EdgeMeterCore

/// `ExactSum` (order-independent, correctly rounded sums) and the merges that let a samples.csv be
/// summarised in parts: `SummaryAccumulator.merge`, `Summarizer.merge`, the CDF curves' sampling.
final class ExactSumTests: XCTestCase {
    func sum(_ values: [Double]) -> Double {
        var s = ExactSum()
        values.forEach { s.add($0) }
        return s.value
    }

    func testSumsAreCorrectlyRounded() {
        XCTAssertEqual(sum(Array(repeating: 0.1, count: 10)), 1.0, "a running sum gives 0.9999999999999999")
        XCTAssertNotEqual(Array(repeating: 0.1, count: 10).reduce(0, +), 1.0)
        XCTAssertEqual(sum([1e100, 1.0, -1e100]), 1.0)
        XCTAssertEqual(sum([1e16, 1.0, 1.0]), 1.0000000000000002e16)
        XCTAssertEqual(sum([]), 0)
        // Round half to even in the last place: 2^53 + 1 is halfway; the rest decides.
        XCTAssertEqual(sum([9007199254740992.0, 1.0, 1e-5]), 9007199254740994.0)
        XCTAssertEqual(sum([9007199254740992.0, 1.0, -1e-5]), 9007199254740992.0)
        XCTAssertEqual(sum([Double.greatestFiniteMagnitude, Double.greatestFiniteMagnitude]), .infinity)
    }

    func testOrderAndPartsDoNotChangeTheBits() {
        var g = SystemRandomNumberGenerator()
        let values = (0..<20_000).map { i in Double.random(in: 0.001...5, using: &g) * (i % 7 == 0 ? -1 : 1) * pow(10, Double(i % 9) - 4) }
        let whole = sum(values)
        for _ in 0..<5 {
            XCTAssertEqual(sum(values.shuffled()).bitPattern, whole.bitPattern)
            let cut = Int.random(in: 0...values.count)
            var a = ExactSum(), b = ExactSum()
            values[..<cut].forEach { a.add($0) }
            values[cut...].forEach { b.add($0) }
            a.add(b)
            XCTAssertEqual(a.value.bitPattern, whole.bitPattern, "merged at \(cut)")
        }
    }

    func testSummarizerMergedInPartsEqualsOneFedEverything() {
        let samples = (0..<12_000).map { SampleFixture(shape: .mixed, seed: 11).sample($0) }
        var whole = Summarizer()
        samples.forEach { whole.add($0) }
        for cut in [0, 1, 5_000, 11_999, 12_000] {
            var a = Summarizer(), b = Summarizer()
            samples[..<cut].forEach { a.add($0) }
            samples[cut...].forEach { b.add($0) }
            a.merge(b)
            XCTAssertEqual(a.summaries, whole.summaries, "cut at \(cut)")
            XCTAssertEqual(a.summaries.map { $0.mean?.bitPattern }, whole.summaries.map { $0.mean?.bitPattern })
            XCTAssertEqual(a.summaries.map { $0.mdev?.bitPattern }, whole.summaries.map { $0.mdev?.bitPattern })
            XCTAssertEqual(SummaryCSV.render(a.summaries), SummaryCSV.render(whole.summaries))
        }
    }

    /// A curve over its cap keeps the values of the smallest priorities, in one pass or in parts.
    func testCurveSamplingKeepsTheSameValuesInParts() {
        let cap = 100
        let n = 1_000
        let priorities = (0..<n).map { ReportCollector.priority(UInt64($0 * 37)) }
        func kept(_ c: ReportCollector.Curve) -> [Double] { c.values.sorted() }
        var whole = ReportCollector.Curve()
        for i in 0..<n { whole.add(Double(i), priority: priorities[i], cap: cap) }
        XCTAssertEqual(whole.seen, n)
        XCTAssertEqual(whole.values.count, cap)
        let smallest = (0..<n).sorted { priorities[$0] < priorities[$1] }.prefix(cap).map(Double.init).sorted()
        XCTAssertEqual(kept(whole), smallest, "the cap smallest priorities")
        for cut in [0, 40, 100, 101, 500, 999, 1_000] {
            var a = ReportCollector.Curve(), b = ReportCollector.Curve()
            for i in 0..<cut { a.add(Double(i), priority: priorities[i], cap: cap) }
            for i in cut..<n { b.add(Double(i), priority: priorities[i], cap: cap) }
            a.merge(b, cap: cap)
            XCTAssertEqual(a.seen, n)
            XCTAssertEqual(kept(a), smallest, "cut at \(cut)")
            // Still a heap: more values after the merge keep the right ones.
            for i in n..<(n + 300) {
                a.add(Double(i), priority: ReportCollector.priority(UInt64(i * 37)), cap: cap)
            }
            let all = (0..<(n + 300)).map { ReportCollector.priority(UInt64($0 * 37)) }
            let expected = (0..<(n + 300)).sorted { all[$0] < all[$1] }.prefix(cap).map(Double.init).sorted()
            XCTAssertEqual(kept(a), expected, "cut at \(cut), then 300 more")
        }
        // Under the cap, parts keep every value in order.
        var a = ReportCollector.Curve(), b = ReportCollector.Curve()
        for i in 0..<30 { a.add(Double(i), priority: priorities[i], cap: cap) }
        for i in 30..<60 { b.add(Double(i), priority: priorities[i], cap: cap) }
        a.merge(b, cap: cap)
        XCTAssertEqual(a.values, (0..<60).map(Double.init))
    }
}
