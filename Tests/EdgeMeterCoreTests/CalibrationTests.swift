import XCTest
@testable import EdgeMeterCore

final class CalibrationTests: XCTestCase {
    // MARK: Kolmogorov–Smirnov

    func testKSOfAPerfectUniformGridIsHalfAStep() {
        // x_i = (i − ½)/n: the empirical CDF steps exactly half a step either side of F(x) = x.
        let n = 1000
        let grid = (1...n).map { (Double($0) - 0.5) / Double(n) }
        let d = CalibrationStatistics.ksDistance(grid, cdf: DeclaredDistribution.uniform(low: 0, high: 1).cdf)!
        XCTAssertEqual(d, 0.5 / Double(n), accuracy: 1e-12)
    }

    func testKSOfAShiftedGridGrowsByTheShift() {
        // The same grid + 0.1: D = ½n⁻¹ + 0.1 (the point at 0.9995 has F − (i−1)/n = 0.9995 − 0.899).
        let n = 1000
        let grid = (1...n).map { (Double($0) - 0.5) / Double(n) + 0.1 }
        let d = CalibrationStatistics.ksDistance(grid, cdf: DeclaredDistribution.uniform(low: 0, high: 1).cdf)!
        XCTAssertEqual(d, 0.1005, accuracy: 1e-12)
        XCTAssertGreaterThan(d, CalibrationRule.maxKS)
    }

    func testKSOfASingleValueAndOfNothing() {
        // One value at the median of U(0,1): D = max(1 − ½, ½ − 0) = ½.
        XCTAssertEqual(CalibrationStatistics.ksDistance([0.5], cdf: DeclaredDistribution.uniform(low: 0, high: 1).cdf), 0.5)
        XCTAssertNil(CalibrationStatistics.ksDistance([], cdf: { _ in 0 }))
    }

    func testKSOfNormalQuantilesAgainstTheNormal() {
        // Quantiles Φ⁻¹((i − ½)/n) found by bisection on the CDF: D = ½n; against a σ twice as wide, far more.
        let dist = DeclaredDistribution.normal(mean: 0, sd: 5, low: -.infinity, high: .infinity)
        let n = 500
        let qs = (1...n).map { i -> Double in
            let target = (Double(i) - 0.5) / Double(n)
            var lo = -100.0, hi = 100.0
            for _ in 0..<200 { let m = (lo + hi) / 2; if dist.cdf(m) < target { lo = m } else { hi = m } }
            return (lo + hi) / 2
        }
        XCTAssertEqual(CalibrationStatistics.ksDistance(qs, cdf: dist.cdf)!, 0.5 / Double(n), accuracy: 1e-9)
        let wide = DeclaredDistribution.normal(mean: 0, sd: 10, low: -.infinity, high: .infinity)
        // At x = Φ⁻¹(0.25)·5 ≈ −3.372: F_n ≈ 0.25, the wide CDF gives Φ(−0.3372) ≈ 0.368.
        XCTAssertGreaterThan(CalibrationStatistics.ksDistance(qs, cdf: wide.cdf)!, 0.11)
    }

    // MARK: distributions

    func testNormalCDFKnownValuesAndTruncation() {
        XCTAssertEqual(DeclaredDistribution.phi(0), 0.5, accuracy: 1e-15)
        XCTAssertEqual(DeclaredDistribution.phi(1.959963984540054), 0.975, accuracy: 1e-12)
        XCTAssertEqual(DeclaredDistribution.phi(-1), 0.15865525393145707, accuracy: 1e-12)
        // Truncated to ±1σ: F(0) = ½, F(−1σ) = 0, F(+1σ) = 1, F(½σ) = (Φ(½) − Φ(−1))/(Φ(1) − Φ(−1)) = 0.78045.
        let t = DeclaredDistribution.normal(mean: 0, sd: 2, low: -2, high: 2)
        XCTAssertEqual(t.cdf(0), 0.5, accuracy: 1e-12)
        XCTAssertEqual(t.cdf(-2.0001), 0)
        XCTAssertEqual(t.cdf(2), 1)
        let expected = (DeclaredDistribution.phi(0.5) - DeclaredDistribution.phi(-1)) / (DeclaredDistribution.phi(1) - DeclaredDistribution.phi(-1))
        XCTAssertEqual(t.cdf(1), expected, accuracy: 1e-12)
        XCTAssertEqual(expected, 0.78045, accuracy: 1e-4)
    }

    func testMedians() {
        XCTAssertEqual(DeclaredDistribution.uniform(low: -5, high: 5).median, 0)
        XCTAssertEqual(DeclaredDistribution.uniform(low: 0, high: 5).median, 2.5)
        XCTAssertEqual(DeclaredDistribution.normal(mean: 1, sd: 5, low: -19, high: 21).median, 1, accuracy: 1e-9)
        // Truncated at −1σ only, the median moves right of 0 (to Φ⁻¹((1 + Φ(−1))/2) ≈ 0.20).
        let oneSided = DeclaredDistribution.normal(mean: 0, sd: 1, low: -1, high: .infinity)
        XCTAssertEqual(oneSided.cdf(oneSided.median), 0.5, accuracy: 1e-9)
        XCTAssertGreaterThan(oneSided.median, 0.19)
        XCTAssertEqual(CalibrationStatistics.median([3, 1, 2]), 2)
        XCTAssertEqual(CalibrationStatistics.median([4, 1, 3, 2]), 2) // nearest rank ⌈n/2⌉
        XCTAssertNil(CalibrationStatistics.median([]))
    }

    // MARK: binomial interval

    func testWilsonAgainstAHandComputation() {
        // 10/100, z = 1.959964, z² = 3.841459: centre = (0.1 + 0.019207)/1.038415 = 0.114796,
        // half = 1.959964/1.038415 · √(0.0009 + 0.0000960365) = 0.059568 → [0.05523, 0.17437].
        let ci = CalibrationStatistics.wilson95(successes: 10, trials: 100)!
        XCTAssertEqual(ci.lowerBound, 0.05523, accuracy: 1e-5)
        XCTAssertEqual(ci.upperBound, 0.17437, accuracy: 1e-5)
        // 0/50: lower bound 0, upper z²/(n + z²) = 3.841459/53.841459 = 0.071347.
        let zero = CalibrationStatistics.wilson95(successes: 0, trials: 50)!
        XCTAssertEqual(zero.lowerBound, 0, accuracy: 1e-12)
        XCTAssertEqual(zero.upperBound, 0.071347, accuracy: 1e-6)
        XCTAssertNil(CalibrationStatistics.wilson95(successes: 1, trials: 0))
        XCTAssertNil(CalibrationStatistics.wilson95(successes: 5, trials: 4))
    }

    func testRoundTripLoss() {
        XCTAssertEqual(CalibrationStatistics.roundTripLoss(perDirection: 0.01), 0.0199, accuracy: 1e-12)
        XCTAssertEqual(CalibrationStatistics.roundTripLoss(perDirection: 0.05), 0.0975, accuracy: 1e-12)
    }

    // MARK: predictions and the rule

    func testPredictionsPerProbeKind() {
        let c = CalibrationCase(name: "delay-20", delayMs: 20)
        XCTAssertEqual(c.predictedMs(.icmp), 40)
        XCTAssertEqual(c.predictedMs(.tcpConnect), 40)
        XCTAssertEqual(c.predictedMs(.httpKeepAlive), 40)
        XCTAssertEqual(c.predictedMs(.httpNewConnection), 80)
        XCTAssertEqual(c.predictedMs(.httpNewConnection, baselineMs: 0.3), 80.3, accuracy: 1e-12)
        // U(0, 4) each way: a round trip adds the sum of two draws, median 4.
        let skew = CalibrationCase(name: "j", delayMs: 10, jitter: .uniform(low: 0, high: 4))
        XCTAssertEqual(skew.predictedMs(.icmp), 24, accuracy: 1e-6)
        // New connection: SYN, SYN-ACK, then two crossings of two back-to-back frames each:
        // U + U + max(U, U) + max(U, U); its median from 400 000 simulated exchanges.
        var rng = SeededRandom(seed: 5)
        let sims = (0..<400_000).map { _ -> Double in
            let u = (0..<6).map { _ in rng.unit() * 4 }
            return u[0] + u[1] + max(u[2], u[3]) + max(u[4], u[5])
        }
        let simulatedMedian = CalibrationStatistics.median(sims)!
        XCTAssertEqual(skew.predictedMs(.httpNewConnection), 40 + simulatedMedian, accuracy: 0.01)
        XCTAssertGreaterThan(skew.predictedMs(.httpNewConnection), 48 + 1, "two max-of-two crossings add more than one draw's median")
        XCTAssertNil(c.predictedLoss(.icmp))
        let lossy = CalibrationCase(name: "loss-5", delayMs: 1, lossPerDirection: 0.05)
        XCTAssertEqual(lossy.predictedLoss(.icmp)!, 0.0975, accuracy: 1e-12)
        XCTAssertNil(lossy.predictedLoss(.tcpConnect))
    }

    func testToleranceIsHalfAMillisecondOrFivePercent() {
        XCTAssertEqual(CalibrationRule.p50Tolerance(predictedMs: 2), 0.5)
        XCTAssertEqual(CalibrationRule.p50Tolerance(predictedMs: 200), 10)
        let c = CalibrationCase(name: "delay-100", delayMs: 100)
        XCTAssertTrue(CalibrationRow.judge(case: c, probe: .icmp, valuesMs: [209.9], failed: 0).passed)
        let late = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: [210.1], failed: 0)
        XCTAssertFalse(late.passed)
        XCTAssertEqual(late.failures, ["p50 error 10.100 ms > 10.000 ms"])
        XCTAssertFalse(CalibrationRow.judge(case: c, probe: .icmp, valuesMs: [], failed: 3).passed)
    }

    /// Quantile of the triangular distribution on [−c, c] (the sum of two U(−c/2, c/2)).
    func triangularQuantile(_ p: Double, c: Double) -> Double {
        p < 0.5 ? -c + c * (2 * p).squareRoot() : c - c * (2 * (1 - p)).squareRoot()
    }

    func testSumOfTwoUniformsIsTheTriangle() {
        // U(−5, 5) + U(−5, 5): F(x) = (x + 10)²/200 for x ≤ 0, 1 − (10 − x)²/200 above.
        let s = DeclaredDistribution.sumOfTwo(.uniform(low: -5, high: 5))
        for x in [-10.0, -7.5, -2, 0, 1, 6, 9.9, 10] {
            let expected = x <= 0 ? (x + 10) * (x + 10) / 200 : 1 - (10 - x) * (10 - x) / 200
            XCTAssertEqual(s.cdf(x), expected, accuracy: 2e-5, "x = \(x)")
        }
        XCTAssertEqual(s.cdf(-11), 0)
        XCTAssertEqual(s.median, 0, accuracy: 1e-6)
    }

    func testSumOfTwoNormalsIsNormalWithRootTwoSigma() {
        // Untruncated N(0, 5) + N(0, 5) = N(0, 5√2): F(5√2) = Φ(1).
        let s = DeclaredDistribution.sumOfTwo(.normal(mean: 0, sd: 5, low: -.infinity, high: .infinity))
        XCTAssertEqual(s.cdf(5 * 2.0.squareRoot()), DeclaredDistribution.phi(1), accuracy: 1e-5)
        XCTAssertEqual(s.cdf(-3), DeclaredDistribution.phi(-3 / (5 * 2.0.squareRoot())), accuracy: 1e-5)
        // Truncated at ±3σ the sum is a little narrower: F(−7.07) below Φ(−1).
        let t = DeclaredDistribution.sumOfTwo(.normal(mean: 0, sd: 5, low: -15, high: 15))
        XCTAssertLessThan(t.cdf(-5 * 2.0.squareRoot()), DeclaredDistribution.phi(-1))
        XCTAssertEqual(t.cdf(0), 0.5, accuracy: 1e-6)
    }

    // MARK: the composition of per-frame draws (no reordering)

    func testMaxOfTwoUniformsIsFSquared() {
        // One crossing with two back-to-back frames, each U(d − j, d + j) around 0: F(x) = ((x + j)/2j)²,
        // median −j + 2j·√0.5.
        let j = 5.0
        let m = ExchangeJitter(frame: .uniform(low: -j, high: j), framesPerDirection: [2])
        XCTAssertLessThanOrEqual(m.stepMs, 0.01)
        for x in [-5.0, -4.2, -1, 0, 2.5, 4.99, 5] {
            let f = (x + j) / (2 * j)
            XCTAssertEqual(m.cdf(x), f * f, accuracy: 1e-6, "x = \(x)")
        }
        XCTAssertEqual(m.cdf(-6), 0)
        XCTAssertEqual(m.cdf(6), 1)
        XCTAssertEqual(m.median, -j + 2 * j * 0.5.squareRoot(), accuracy: 1e-5)
        // Three frames: F³, median −j + 2j·0.5^(1/3).
        let m3 = ExchangeJitter(frame: .uniform(low: -j, high: j), framesPerDirection: [3])
        XCTAssertEqual(m3.median, -j + 2 * j * pow(0.5, 1.0 / 3), accuracy: 1e-5)
    }

    func testOneFrameEachWayIsTheTriangleAndTheNormalConvolution() {
        let t = ExchangeJitter(frame: .uniform(low: -5, high: 5), framesPerDirection: [1, 1])
        for x in [-10.0, -7.5, -2, 0, 1, 6, 9.9, 10] {
            let expected = x <= 0 ? (x + 10) * (x + 10) / 200 : 1 - (10 - x) * (10 - x) / 200
            XCTAssertEqual(t.cdf(x), expected, accuracy: 2e-5, "x = \(x)")
        }
        XCTAssertEqual(t.median, 0, accuracy: 1e-6)
        let normal = DeclaredDistribution.normal(mean: 0, sd: 5, low: -15, high: 15)
        let n = ExchangeJitter(frame: normal, framesPerDirection: [1, 1])
        let simpson = DeclaredDistribution.sumOfTwo(normal)
        for x in [-20.0, -10, -7.07, -2, 0, 3, 12, 25] {
            XCTAssertEqual(n.cdf(x), simpson.cdf(x), accuracy: 5e-5, "x = \(x)")
        }
    }

    func testMaxOfTwoPlusOneAgainstItsClosedForm() {
        // max(U₁, U₂) + U₃ on U(0, 1): G(s) = s³/3 on [0, 1];
        // (s−1)² + s − 2/3 − s(s−1)² + 2(s−1)³/3 on [1, 2].
        let g = ExchangeJitter(frame: .uniform(low: 0, high: 1), framesPerDirection: [2, 1], maxStepMs: 0.001)
        func closed(_ s: Double) -> Double {
            s <= 1 ? s * s * s / 3 : (s - 1) * (s - 1) + s - 2.0 / 3 - s * (s - 1) * (s - 1) + 2 * pow(s - 1, 3) / 3
        }
        for s in [0.1, 0.5, 0.9, 1, 1.2, 1.5, 1.9] {
            XCTAssertEqual(g.cdf(s), closed(s), accuracy: 2e-5, "s = \(s)")
        }
        // Order of the crossings does not matter.
        let h = ExchangeJitter(frame: .uniform(low: 0, high: 1), framesPerDirection: [1, 2], maxStepMs: 0.001)
        XCTAssertEqual(h.cdf(1.3), g.cdf(1.3), accuracy: 1e-9)
    }

    func testNewConnectionRowPredictsTheComposition() {
        let c = CalibrationCase(name: "jitter-5-uniform", delayMs: 20, jitter: .uniform(low: -5, high: 5))
        let j = c.exchangeJitter(.httpNewConnection)!
        XCTAssertEqual(j.framesPerDirection, [1, 1, 2, 2])
        // Each max-of-two crossing has median-ish offset +2.07 ms; the whole sum's median ≈ +3.4 ms.
        XCTAssertEqual(c.predictedMs(.httpNewConnection, baselineMs: 2.5), 82.5 + j.median, accuracy: 1e-9)
        XCTAssertEqual(j.median, 3.41, accuracy: 0.05)
        XCTAssertEqual(c.predictedMs(.icmp, baselineMs: 0.1), 40.1, accuracy: 1e-5)
    }

    func testJitterRowUsesKSAndFailsOnTheWrongDistribution() {
        let c = CalibrationCase(name: "jitter-uniform", delayMs: 20, jitter: .uniform(low: -5, high: 5))
        let n = 1000
        // A round trip = 40 ms + the sum of two U(−5, 5) draws: the triangle on [−10, 10].
        let good: [Double] = (1...n).map { i -> Double in 40 + triangularQuantile((Double(i) - 0.5) / Double(n), c: 10) }
        let row = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: good, failed: 0)
        XCTAssertEqual(row.ks!, 0.0005, accuracy: 1e-4)
        XCTAssertTrue(row.passed, row.failures.joined())
        // Samples following ONE draw's distribution (U(−5, 5)) instead: too narrow, D = F_U(−5)... ≈ 0.125.
        let oneWay: [Double] = (1...n).map { i -> Double in
            let u: Double = (Double(i) - 0.5) / Double(n)
            return 30 + u * 10 + 5
        }
        let bad = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: oneWay, failed: 0)
        XCTAssertEqual(bad.ks!, 0.125, accuracy: 2e-3)
        XCTAssertFalse(bad.passed)
        XCTAssertEqual(bad.failures.count, 1)
        XCTAssertTrue(bad.failures[0].hasPrefix("KS D 0.12"), bad.failures[0])
        // No KS on the new-connection request (two round trips).
        XCTAssertNil(CalibrationRow.judge(case: c, probe: .httpNewConnection, valuesMs: good, failed: 0).ks)
    }

    func testPlans() {
        XCTAssertEqual(CalibrationPlan.full.map(\.name), ["delay-0", "delay-1", "delay-5", "delay-20", "delay-100",
                                                         "jitter-5-uniform", "jitter-5-normal", "loss-1", "loss-5"])
        for c in CalibrationPlan.full + CalibrationPlan.quick where c.jitter != nil {
            for p in [CalibrationProbe.icmp, .tcpConnect, .httpKeepAlive] { if let n = c.samples[p] { XCTAssertGreaterThanOrEqual(n, 1000, c.name) } }
            // The no-reorder rule holds reply i+1 back when (jitter of round trip i) − (of i+1) exceeds
            // the spacing: impossible for uniform at ≥ 2 × range, P < 1e-5 for normal at ≥ 4.5 σ of
            // that difference (2σ per direction's σ).
            switch c.jitter! {
            case .uniform(let a, let b): XCTAssertGreaterThanOrEqual(c.intervalMs, 2 * (b - a), c.name)
            case .normal(_, let sd, _, _): XCTAssertGreaterThanOrEqual(c.intervalMs, 4.5 * 2 * sd, c.name)
            default: XCTFail(c.name)
            }
        }
        XCTAssertEqual(CalibrationPlan.quick.first?.name, "delay-0")
    }

    func testLossRowPassesInsideAndFailsOutsideTheInterval() {
        let c = CalibrationCase(name: "loss-1", delayMs: 1, lossPerDirection: 0.01)
        // Predicted 1.99 %; 20/1000 lost → Wilson [1.30 %, 3.07 %]: pass.
        let ok = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: Array(repeating: 2.0, count: 980), failed: 20)
        XCTAssertTrue(ok.passed, ok.failures.joined())
        XCTAssertEqual(ok.lossInterval!.lowerBound, 0.01299, accuracy: 1e-4)
        // 60/1000 lost → [4.69 %, 7.66 %]: 1.99 % is outside.
        let bad = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: Array(repeating: 2.0, count: 940), failed: 60)
        XCTAssertFalse(bad.passed)
        XCTAssertEqual(bad.failures, ["predicted loss 1.99 % outside the measured 95 % interval"])
        // 0 lost: predicted 1.99 % is inside [0, 0.38 %]? No: upper bound 3.84/1003.84 = 0.38 %: fail.
        let none = CalibrationRow.judge(case: c, probe: .icmp, valuesMs: Array(repeating: 2.0, count: 1000), failed: 0)
        XCTAssertFalse(none.passed)
    }

    // MARK: rendering

    func testCSVAndMarkdown() throws {
        let rows = [
            CalibrationRow.judge(case: CalibrationCase(name: "delay-5", delayMs: 5), probe: .tcpConnect, valuesMs: [10.2, 10.1, 10.3], failed: 0),
            CalibrationRow.judge(case: CalibrationCase(name: "loss-5", delayMs: 1, lossPerDirection: 0.05), probe: .icmp,
                                 valuesMs: Array(repeating: 2.1, count: 90), failed: 10),
        ]
        let csv = CalibrationTable.csv(rows)
        let parsed = try CSV.parse(csv)
        XCTAssertEqual(parsed[0], CalibrationTable.columns)
        XCTAssertEqual(parsed[1], ["delay-5", "tcp-connect", "3", "10.000", "10.200", "0.200", "0.500", "", "", "", "", "", "pass"])
        XCTAssertEqual(parsed[2], ["loss-5", "icmp", "100", "2.000", "2.100", "0.100", "0.500", "", "10.00", "5.52", "17.44", "9.75", "pass"])
        let md = CalibrationTable.markdown(rows, provenance: CalibrationProvenance(
            kernel: "6.1.0-test", forwarder: "af_packet", clock: "CLOCK_MONOTONIC", date: Date(timeIntervalSince1970: 0)))
        XCTAssertTrue(md.contains("- kernel: 6.1.0-test\n- forwarder: af_packet\n- clock: CLOCK_MONOTONIC\n- date: 1970-01-01T00:00:00.000000Z"), md)
        XCTAssertTrue(md.contains("| delay-5 | tcp-connect | 3 | 10.000 | 10.200 | 0.200 |  |  | pass |"), md)
        XCTAssertTrue(md.contains("| loss-5 | icmp | 100 | 2.000 | 2.100 | 0.100 |  | 10.00 [5.52, 17.44] (9.75) | pass |"), md)
        XCTAssertTrue(md.hasSuffix("2 figures, 0 failed.\n"))
    }
}

/// The certificate's statistics applied to the impairment model itself, on injected time: what the
/// forwarder and the proxy would deliver with perfect timers.
final class CalibrationOfTheModelTests: XCTestCase {
    func oneWayDelaysMs(_ spec: ImpairmentSpec, n: Int, spacingMs: Double, seed: UInt64) -> [Double] {
        var imp = Impairer(spec: spec, seed: seed)
        return (0..<n).compactMap { i -> Double? in
            let t = Int64(Double(i) * spacingMs * 1e6)
            return imp.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds.map { Double($0 - t) / 1e6 }
        }
    }

    func testUniformJitterPassesKS() {
        let d = oneWayDelaysMs(ImpairmentSpec(delayNanoseconds: 20_000_000, jitterNanoseconds: 5_000_000, distribution: .uniform),
                               n: 2000, spacingMs: 25, seed: 11)
        let ks = CalibrationStatistics.ksDistance(d.map { $0 - 20 }, cdf: DeclaredDistribution.uniform(low: -5, high: 5).cdf)!
        XCTAssertLessThanOrEqual(ks, 0.05, "median \(CalibrationStatistics.median(d)!)")
        XCTAssertEqual(CalibrationStatistics.median(d)!, 20, accuracy: 0.5)
    }

    func testNormalJitterPassesKS() {
        let d = oneWayDelaysMs(ImpairmentSpec(delayNanoseconds: 20_000_000, jitterNanoseconds: 5_000_000, distribution: .normal),
                               n: 2000, spacingMs: 45, seed: 12)
        let ks = CalibrationStatistics.ksDistance(d.map { $0 - 20 }, cdf: DeclaredDistribution.normal(mean: 0, sd: 5, low: -15, high: 15).cdf)!
        XCTAssertLessThanOrEqual(ks, 0.05, "median \(CalibrationStatistics.median(d)!)")
    }

    func testTruncatedNormalMatchesTheReferenceClosely() {
        // 20 000 draws of the model's normal (σ 5 ms, redrawn outside ±3σ, at 20 ms so the clamp at
        // 0 never acts) against the truncated normal CDF the certificate uses: the 5 % critical KS
        // value for n = 20 000 is 0.0096; an untruncated reference would be off by the 0.27 % cut mass
        // spread over the tails, a ±1σ truncation by far more.
        let d = oneWayDelaysMs(ImpairmentSpec(delayNanoseconds: 20_000_000, jitterNanoseconds: 5_000_000, distribution: .normal),
                               n: 20_000, spacingMs: 45, seed: 21)
        let ks = CalibrationStatistics.ksDistance(d.map { $0 - 20 }, cdf: DeclaredDistribution.normal(mean: 0, sd: 5, low: -15, high: 15).cdf)!
        XCTAssertLessThanOrEqual(ks, 0.0096)
        let wrong = CalibrationStatistics.ksDistance(d.map { $0 - 20 }, cdf: DeclaredDistribution.normal(mean: 0, sd: 4, low: -12, high: 12).cdf)!
        XCTAssertGreaterThan(wrong, 0.03)
    }

    func testBackToBackFramesCompleteAtTheMaxOfTheirDraws() {
        // Pairs of frames 1 µs apart, 50 ms between pairs, uniform ±5 ms: without reordering the
        // second frame of each pair leaves at the later of the two draws.
        var imp = Impairer(spec: ImpairmentSpec(delayNanoseconds: 20_000_000, jitterNanoseconds: 5_000_000, distribution: .uniform), seed: 22)
        var second: [Double] = []
        for i in 0..<3000 {
            let t = Int64(i) * 50_000_000
            _ = imp.admit(bytes: 100, arrivalNanoseconds: t)
            let r = imp.admit(bytes: 100, arrivalNanoseconds: t + 1_000).releaseNanoseconds!
            second.append(Double(r - t) / 1e6 - 20)
        }
        let maxOfTwo = ExchangeJitter(frame: .uniform(low: -5, high: 5), framesPerDirection: [2])
        XCTAssertLessThanOrEqual(CalibrationStatistics.ksDistance(second, cdf: maxOfTwo.cdf)!, 0.03)
        XCTAssertGreaterThan(CalibrationStatistics.ksDistance(second, cdf: DeclaredDistribution.uniform(low: -5, high: 5).cdf)!, 0.2)
    }

    func testBernoulliLossInsideWilson() {
        var imp = Impairer(spec: ImpairmentSpec(loss: .bernoulli(percent: 5)), seed: 13)
        let lost = (0..<2000).filter { imp.admit(bytes: 100, arrivalNanoseconds: Int64($0) * 1_000_000).releaseNanoseconds == nil }.count
        XCTAssertTrue(CalibrationStatistics.wilson95(successes: lost, trials: 2000)!.contains(0.05), "\(lost)/2000")
    }
}
