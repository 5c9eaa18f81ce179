import XCTest
@testable import EdgeMeterCore

/// `compare`'s statistics on distributions whose answer is known.
final class CompareTests: XCTestCase {
    func lognormal(_ n: Int, mu: Double = 0, sigma: Double = 0.25, scale: Double = 1, seed: UInt64) -> [Double] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in scale * exp(mu + sigma * rng.standardNormal()) }
    }

    func series(_ values: [Double], metric: String = "rtt", phase: String = "echo", unit: String = "ms") -> CompareSeries {
        CompareSeries(scenario: "ping", probe: "ping", target: "127.0.0.1", metric: metric, phase: phase, unit: unit,
                      values: values, attempts: values.count)
    }

    func compare(_ a: [Double], _ b: [Double], metric: String = "rtt", unit: String = "ms") -> CompareRow {
        let r = Compare.run(a: [series(a, metric: metric, unit: unit)], b: [series(b, metric: metric, unit: unit)], labelA: "A", labelB: "B")
        return r.rows[0]
    }

    // MARK: Mann–Whitney and Cliff's delta

    func testMannWhitneyMatchesTheNormalApproximationBySciPy() throws {
        // Disjoint samples of 25 (beyond the exact limit): U = 625; p from scipy.stats.mannwhitneyu
        // (method="asymptotic", continuity correction).
        let mw = try XCTUnwrap(CompareStatistics.mannWhitney(Array(1...25).map(Double.init), Array(26...50).map(Double.init)))
        XCTAssertEqual(mw.uB, 625)
        XCTAssertEqual(mw.p, 1.4156562248495537e-09, accuracy: 1e-15)
        XCTAssertEqual(mw.cliffsDelta, 1)
        // Small samples without ties: exact p, as scipy's method="exact".
        XCTAssertEqual(CompareStatistics.mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])!.p, 0.007936507936507936, accuracy: 1e-12)
        let small = try XCTUnwrap(CompareStatistics.mannWhitney([1, 3, 4, 6, 7, 8, 10], [2, 5, 9, 11, 12, 14]))
        XCTAssertEqual(small.uB, 31)
        XCTAssertEqual(small.p, 0.18065268065268064, accuracy: 1e-12)
        // Ties: scipy.stats.mannwhitneyu(b, a, method="asymptotic") gives U = 81.5, p = 0.06472847251264197.
        let a: [Double] = [1, 2, 2, 3, 3, 3, 4, 5, 5, 9], b: [Double] = [2, 3, 4, 4, 5, 6, 6, 6, 7, 8, 8]
        let t = try XCTUnwrap(CompareStatistics.mannWhitney(a, b))
        XCTAssertEqual(t.uB, 81.5)
        XCTAssertEqual(t.p, 0.06472847251264197, accuracy: 1e-9)
        XCTAssertEqual(t.cliffsDelta, 2 * 81.5 / 110 - 1, accuracy: 1e-12)
        // All tied: no evidence at all.
        let same = try XCTUnwrap(CompareStatistics.mannWhitney([3, 3, 3], [3, 3]))
        XCTAssertEqual(same.p, 1)
        XCTAssertEqual(same.cliffsDelta, 0)
        XCTAssertNil(CompareStatistics.mannWhitney([], [1]))
    }

    // MARK: Known distributions

    func testFivePercentShiftOfA1000SampleLognormalIsDetected() {
        // Latency: 5% slower is worse, 5% faster is better, in nearly every draw (σ = 0.25 in log space).
        var worse = 0, better = 0
        for seed in UInt64(1)...20 {
            let a = lognormal(1000, seed: seed), b = lognormal(1000, scale: 1.05, seed: seed + 1000)
            if compare(a, b).verdict == .worse { worse += 1 }
            let c = lognormal(1000, scale: 1 / 1.05, seed: seed + 2000)
            if compare(a, c).verdict == .better { better += 1 }
        }
        XCTAssertGreaterThanOrEqual(worse, 18, "a 5% latency increase detected as worse in \(worse)/20 draws")
        XCTAssertGreaterThanOrEqual(better, 18, "a 5% latency decrease detected as better in \(better)/20 draws")
        // Polarity: the same 5% increase on a throughput is better.
        let a = lognormal(1000, seed: 7), b = lognormal(1000, scale: 1.05, seed: 8)
        XCTAssertEqual(compare(a, b, metric: "throughput", unit: "req/s").verdict, .better)
        let row = compare(a, b)
        XCTAssertEqual(row.verdict, .worse)
        XCTAssertLessThan(row.pValue!, 0.05)
        XCTAssertGreaterThan(row.ratioCI!.lowerBound, 1)
        XCTAssertGreaterThan(row.cliffsDelta!, 0)
        let r = Compare.run(a: [series(a)], b: [series(b)], labelA: "A", labelB: "B")
        XCTAssertEqual(r.exitStatus, 2)
    }

    func testIdenticalDistributionsAreNotAChange() {
        var flagged = 0
        for seed in UInt64(1)...20 {
            let a = lognormal(1000, seed: seed), b = lognormal(1000, seed: seed + 500)
            let v = compare(a, b).verdict
            if v == .worse || v == .better { flagged += 1 }
        }
        XCTAssertLessThanOrEqual(flagged, 1, "two draws of one distribution judged a change in \(flagged)/20")
        let a = lognormal(1000, seed: 3)
        let same = compare(a, a)
        XCTAssertEqual(same.verdict, .noChange)
        XCTAssertEqual(same.ratio, 1)
        let r = Compare.run(a: [series(a)], b: [series(a)], labelA: "A", labelB: "B")
        XCTAssertEqual(r.exitStatus, 0)
        XCTAssertTrue(CompareRender.verdictLine(r).contains("exit status 0"))
    }

    func testAACheckFlagsABimodalBaselineThatDrifts() {
        // A machine that switches between a fast and a slow state (×1.5): in the first half of the
        // baseline 80% of samples are fast, in the second half 20%. B is 5% slower than the fast state.
        var rng = SeededRandom(seed: 42)
        var a: [Double] = []
        for i in 0..<1000 {
            let slowShare = i < 500 ? 0.2 : 0.8
            let slow = rng.unit() < slowShare
            a.append((slow ? 1.5 : 1.0) * exp(0.1 * rng.standardNormal()))
        }
        let b = lognormal(1000, sigma: 0.1, scale: 1.05, seed: 43)
        let row = compare(a, b)
        XCTAssertTrue(row.aaFlagged, row.reason)
        XCTAssertLessThan(row.aaPValue!, 0.05)
        XCTAssertEqual(row.verdict, .tooNoisy, row.reason)
        let r = Compare.run(a: [series(a)], b: [series(b)], labelA: "A", labelB: "B")
        XCTAssertEqual(r.exitStatus, 0, "too noisy to tell never gates")
        XCTAssertTrue(CompareRender.aaLine(r).contains("differ on 1 of 1"), CompareRender.aaLine(r))
        // A change far larger than the drift (3×) is still judged.
        let tripled = compare(a, a.map { $0 * 3 })
        XCTAssertTrue(tripled.aaFlagged)
        XCTAssertEqual(tripled.verdict, .worse, tripled.reason)
        XCTAssertTrue(tripled.reason.contains("beyond A's own drift"), tripled.reason)
        // The same bimodal states mixed evenly over time (no drift) pass the A/A check.
        var even: [Double] = []
        for _ in 0..<1000 { even.append((rng.unit() < 0.5 ? 1.5 : 1.0) * exp(0.1 * rng.standardNormal())) }
        XCTAssertFalse(compare(even, b).aaFlagged)
    }

    func testTooFewSamplesAreNotTested() {
        let row = compare([1, 2], [3, 4, 5, 6, 7, 8])
        XCTAssertEqual(row.verdict, .tooFewSamples)
        XCTAssertNil(row.pValue)
    }

    // MARK: Bootstrap

    func testBetaDrawnBootstrapMedianMatchesPlainResampling() {
        // The order-statistic shortcut and materialised resamples give the same distribution of medians.
        let data = lognormal(101, sigma: 0.5, seed: 9).sorted()
        var rng = SeededRandom(seed: 1)
        var fast: [Double] = [], slow: [Double] = []
        for _ in 0..<4000 {
            fast.append(CompareStatistics.bootstrapMedian(sorted: data, &rng))
            let resample = (0..<data.count).map { _ in data[Int(rng.next() % UInt64(data.count))] }.sorted()
            slow.append(CompareStatistics.median(sorted: resample)!)
        }
        fast.sort(); slow.sort()
        for q in [0.025, 0.25, 0.5, 0.75, 0.975] {
            let i = Int(q * 3999)
            XCTAssertEqual(fast[i], slow[i], accuracy: (data[60] - data[40]) / 10, "quantile \(q)")
        }
    }

    func testBootstrapCICoversTheTrueRatioAboutNinetyFivePercentOfTheTime() {
        // True median ratio 1.1 (B = 1.1 × the same lognormal): a 95% interval should contain it
        // in roughly 95% of 200 independent experiments (binomial spread: 88%...99%).
        var covered = 0
        let trials = 200
        for t in 0..<trials {
            let a = lognormal(300, sigma: 0.5, seed: UInt64(10_000 + t)).sorted()
            let b = lognormal(300, sigma: 0.5, scale: 1.1, seed: UInt64(20_000 + t)).sorted()
            if let ci = CompareStatistics.bootstrapRatioCI(sortedA: a, sortedB: b, resamples: 1000, seed: UInt64(t)), ci.contains(1.1) {
                covered += 1
            }
        }
        let share = Double(covered) / Double(trials)
        XCTAssertGreaterThanOrEqual(share, 0.88, "coverage \(share)")
        XCTAssertLessThanOrEqual(share, 0.99, "coverage \(share)")
    }

    func testBootstrapIsReproducibleForASeed() {
        let a = lognormal(200, seed: 1).sorted(), b = lognormal(200, seed: 2).sorted()
        XCTAssertEqual(CompareStatistics.bootstrapRatioCI(sortedA: a, sortedB: b, seed: 5),
                       CompareStatistics.bootstrapRatioCI(sortedA: a, sortedB: b, seed: 5))
    }

    // MARK: Thresholds and polarity

    func testThresholdsParseMergeAndApplyMostSpecific() throws {
        XCTAssertEqual(try CompareThreshold.parse("rtt:p50=5%"), CompareThreshold(scope: "rtt", percentile: 50, relativePercent: 5))
        XCTAssertEqual(try CompareThreshold.parse("latency/total:p99=0.5"), CompareThreshold(scope: "latency/total", percentile: 99, absolute: 0.5))
        XCTAssertThrowsError(try CompareThreshold.parse("rtt=5%")) { XCTAssertTrue("\($0)".contains("SCOPE:pNN=VALUE"), "\($0)") }
        XCTAssertThrowsError(try CompareThreshold.parse("rtt:q50=5%")) { XCTAssertTrue("\($0)".contains("percentile \"q50\""), "\($0)") }
        XCTAssertThrowsError(try CompareThreshold.parse("rtt:p50=-1")) { XCTAssertTrue("\($0)".contains("non-negative"), "\($0)") }
        let all = CompareThreshold.merged([try .parse("rtt:p50=10%"), try .parse("rtt:p50=0.1")])
        let rtt = CompareThreshold.applicable(all, metric: "rtt", phase: "echo")
        XCTAssertEqual(rtt.map(\.percentile), [50, 90])
        XCTAssertEqual(rtt[0], CompareThreshold(scope: "rtt", percentile: 50, relativePercent: 10, absolute: 0.1))
        XCTAssertEqual(rtt[1].scope, "*")
        // Both parts must be exceeded: +20% but only 0.01 ms is within an absolute 0.1 ms.
        XCTAssertFalse(rtt[0].exceeded(a: 0.05, b: 0.06))
        XCTAssertTrue(rtt[0].exceeded(a: 1, b: 1.2))
        XCTAssertFalse(rtt[0].exceeded(a: 1, b: 1.05))
        // A loose tolerance hides a real 5% shift.
        var options = CompareOptions()
        options.thresholds = CompareThreshold.merged([try .parse("*:p50=20%"), try .parse("*:p90=20%")])
        let a = lognormal(1000, seed: 1), b = lognormal(1000, scale: 1.05, seed: 2)
        let r = Compare.run(a: [series(a)], b: [series(b)], labelA: "A", labelB: "B", options: options)
        XCTAssertEqual(r.rows[0].verdict, .noChange, r.rows[0].reason)
    }

    func testPolarityIsDeclaredPerMetric() {
        XCTAssertEqual(MetricPolarity.declared(metric: "rtt", phase: "echo", unit: "ms"), .lowerIsBetter)
        XCTAssertEqual(MetricPolarity.declared(metric: "latency", phase: "total", unit: "ms"), .lowerIsBetter)
        XCTAssertEqual(MetricPolarity.declared(metric: "throughput", phase: "achieved", unit: "req/s"), .higherIsBetter)
        XCTAssertEqual(MetricPolarity.declared(metric: "throughput", phase: "requested", unit: "req/s"), MetricPolarity.none)
        XCTAssertEqual(MetricPolarity.declared(metric: "errors", phase: "timeout", unit: "count"), .lowerIsBetter)
        XCTAssertEqual(MetricPolarity.declared(metric: "responses", phase: "status_200", unit: "count"), MetricPolarity.none)
        // No polarity: a significant move is "changed" and never gates.
        let a = lognormal(1000, seed: 1), b = lognormal(1000, scale: 1.2, seed: 2)
        let r = Compare.run(a: [series(a, metric: "packets", unit: "count")], b: [series(b, metric: "packets", unit: "count")], labelA: "A", labelB: "B")
        XCTAssertEqual(r.rows[0].verdict, .changed)
        XCTAssertEqual(r.exitStatus, 0)
    }

    // MARK: Grouping and rendering

    func testSeriesGroupingKeepsFailedAttemptsAsLossAndRendersBothFormats() {
        let t = Date(timeIntervalSince1970: 0)
        func s(_ target: String, _ v: Double?, _ status: SampleStatus = .ok) -> Sample {
            Sample(runID: "r", scenario: "ping", probe: "ping", target: target, metric: "rtt", phase: "echo", value: v, unit: "ms",
                   timestamp: t, status: status)
        }
        var samples: [Sample] = []
        // Values without drift over time (the A/A halves agree): a permutation of 0...19.
        for i in 0..<20 { let j = Double((i * 7) % 20); samples.append(s("a", 1 + j / 100)); samples.append(s("b", 2 + j / 100)) }
        samples.append(s("b", nil, .timeout))
        let byTarget = CompareSeries.group(samples)
        XCTAssertEqual(byTarget.count, 2)
        let a = CompareSeries.group(samples.filter { $0.target == "a" }, dropping: "target")
        let b = CompareSeries.group(samples.filter { $0.target == "b" }, dropping: "target")
        XCTAssertEqual(b[0].attempts, 21)
        XCTAssertEqual(b[0].values.count, 20)
        let r = Compare.run(a: a, b: b, labelA: "target=a", labelB: "target=b")
        XCTAssertEqual(r.rows.count, 1)
        XCTAssertEqual(r.rows[0].lossPercentB, 100.0 / 21, accuracy: 1e-9)
        XCTAssertEqual(r.rows[0].verdict, .worse)
        let md = CompareRender.markdown(r, options: CompareOptions())
        XCTAssertTrue(md.contains("| ping |  | rtt/echo | ms | 20 | 20 |"), md)
        XCTAssertTrue(md.contains("**worse**"), md)
        XCTAssertTrue(md.contains("A/A check:"), md)
        let csv = CompareRender.csv(r)
        let rows = try! CSV.parse(csv)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0], CompareRender.csvHeader)
        XCTAssertEqual(rows[1][rows[0].firstIndex(of: "verdict")!], "worse")
    }
}
