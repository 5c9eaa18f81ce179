import XCTest
@testable import EdgeMeterCore

/// The impairment model on manual time: every figure here is exact or bounded by a stated interval.
final class ImpairmentModelTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testFixedDelayAddsExactlyTheDelay() {
        var q = Impairer(spec: ImpairmentSpec(delayNanoseconds: 30 * ms))
        XCTAssertEqual(q.admit(bytes: 100, arrivalNanoseconds: 0), .release(atNanoseconds: 30 * ms))
        XCTAssertEqual(q.admit(bytes: 100, arrivalNanoseconds: 1 * ms), .release(atNanoseconds: 31 * ms))
        XCTAssertEqual(q.admit(bytes: 1500, arrivalNanoseconds: 500 * ms), .release(atNanoseconds: 530 * ms))
        var none = Impairer(spec: .none)
        XCTAssertEqual(none.admit(bytes: 60, arrivalNanoseconds: 7), .release(atNanoseconds: 7))
    }

    func testUniformJitterStaysInItsIntervalAndIsReproducible() {
        let spec = ImpairmentSpec(delayNanoseconds: 20 * ms, jitterNanoseconds: 5 * ms, distribution: .uniform, reorder: true)
        var a = Impairer(spec: spec, seed: 42), b = Impairer(spec: spec, seed: 42), c = Impairer(spec: spec, seed: 43)
        var delays: [Int64] = [], other: [Int64] = []
        for k in 0..<20_000 {
            let t = Int64(k) * ms
            let d = a.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds! - t
            XCTAssertEqual(b.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds! - t, d)
            other.append(c.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds! - t)
            delays.append(d)
        }
        XCTAssertNotEqual(delays, other, "another seed must give other draws")
        XCTAssertGreaterThanOrEqual(delays.min()!, 15 * ms)
        XCTAssertLessThanOrEqual(delays.max()!, 25 * ms)
        // Uniform on [15, 25] ms: mean 20 ms, σ = 10/√12 ≈ 2.887 ms; with n = 20000 the mean's σ is 0.02 ms.
        let mean = Double(delays.reduce(0, +)) / Double(delays.count) / 1e6
        XCTAssertEqual(mean, 20, accuracy: 0.1)
        let sd = stddev(delays.map { Double($0) / 1e6 })
        XCTAssertEqual(sd, 10 / 12.0.squareRoot(), accuracy: 0.05)
        // Each tenth of the interval holds ≈ 10 %.
        for bin in 0..<10 {
            let lo = 15 * ms + Int64(bin) * ms, hi = lo + ms
            let share = Double(delays.filter { $0 >= lo && $0 < hi }.count) / Double(delays.count)
            XCTAssertEqual(share, 0.1, accuracy: 0.01, "bin \(bin)")
        }
    }

    func testNormalJitterIsTruncatedAtThreeSigmaWithTheDeclaredSigma() {
        let spec = ImpairmentSpec(delayNanoseconds: 50 * ms, jitterNanoseconds: 5 * ms, distribution: .normal, reorder: true)
        var q = Impairer(spec: spec, seed: 7)
        let delays = (0..<40_000).map { k -> Double in
            let t = Int64(k) * 10 * ms
            return Double(q.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds! - t) / 1e6
        }
        XCTAssertGreaterThanOrEqual(delays.min()!, 35)
        XCTAssertLessThanOrEqual(delays.max()!, 65)
        let mean = delays.reduce(0, +) / Double(delays.count)
        XCTAssertEqual(mean, 50, accuracy: 0.1)
        // A normal truncated at ±3σ has σ' = σ·√(1 − 6φ(3)/(2Φ(3)−1)) ≈ 0.9866σ.
        XCTAssertEqual(stddev(delays), 5 * 0.9866, accuracy: 0.08)
        // 68.3 % within ±1σ (renormalised: 0.6827/0.9973 = 0.6845).
        let within = Double(delays.filter { abs($0 - 50) <= 5 }.count) / Double(delays.count)
        XCTAssertEqual(within, 0.6845, accuracy: 0.01)
    }

    func testNormalJitterNeverGivesANegativeDelay() {
        var q = Impairer(spec: ImpairmentSpec(delayNanoseconds: 1 * ms, jitterNanoseconds: 2 * ms, distribution: .normal, reorder: true), seed: 3)
        var zeros = 0
        for k in 0..<5_000 {
            let t = Int64(k) * 10 * ms
            let d = q.admit(bytes: 60, arrivalNanoseconds: t).releaseNanoseconds! - t
            XCTAssertGreaterThanOrEqual(d, 0)
            if d == 0 { zeros += 1 }
        }
        XCTAssertGreaterThan(zeros, 0, "the clamp at 0 was never exercised")
    }

    func testNoReorderByDefaultAndReorderWhenAsked() {
        let spec = ImpairmentSpec(delayNanoseconds: 20 * ms, jitterNanoseconds: 10 * ms, distribution: .uniform)
        var fifo = Impairer(spec: spec, seed: 5)
        var free = Impairer(spec: { var s = spec; s.reorder = true; return s }(), seed: 5)
        var lastFifo = Int64.min, inversions = 0, lastFree = Int64.min, raised = 0
        for k in 0..<2_000 {
            let t = Int64(k) * ms / 2   // 0.5 ms apart, much less than the jitter
            let r = fifo.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds!
            XCTAssertGreaterThanOrEqual(r, lastFifo, "frame \(k) would leave before the one ahead of it")
            lastFifo = r
            let f = free.admit(bytes: 100, arrivalNanoseconds: t).releaseNanoseconds!
            if f < lastFree { inversions += 1 }
            if r > f { raised += 1 }
            lastFree = f
            XCTAssertLessThanOrEqual(r - t, 30 * ms)
        }
        XCTAssertGreaterThan(inversions, 100, "with reorder the same draws must reorder frames")
        XCTAssertGreaterThan(raised, 100, "the no-reorder floor was never applied")
    }

    func testBernoulliLossFallsInTheBinomialInterval() {
        for (pct, seed) in [(1.0, UInt64(11)), (5.0, 12), (20.0, 13)] {
            var q = Impairer(spec: ImpairmentSpec(loss: .bernoulli(percent: pct)), seed: seed)
            let n = 20_000
            var lost = 0
            for k in 0..<n where q.admit(bytes: 100, arrivalNanoseconds: Int64(k)) == .dropped(.loss) { lost += 1 }
            let p = pct / 100, mean = Double(n) * p, half = 1.96 * (Double(n) * p * (1 - p)).squareRoot()
            XCTAssert(Double(lost) >= mean - half && Double(lost) <= mean + half, "\(pct) %: \(lost) lost of \(n), 95 % interval \(mean - half)...\(mean + half)")
            XCTAssertEqual(q.droppedLoss, lost)
        }
        var all = Impairer(spec: ImpairmentSpec(loss: .bernoulli(percent: 100)))
        XCTAssertEqual(all.admit(bytes: 1, arrivalNanoseconds: 0), .dropped(.loss))
        var never = Impairer(spec: ImpairmentSpec(loss: .bernoulli(percent: 0)))
        XCTAssertEqual(never.admit(bytes: 1, arrivalNanoseconds: 0), .release(atNanoseconds: 0))
    }

    func testGilbertElliottBurstsHaveTheirMeanLengthAndLossRate() {
        // p = 1 %, r = 25 %, 1-h = 100 %, 1-k = 0: bursts are geometric with mean 1/r = 4 frames,
        // long-run loss p/(p+r) = 1/26.
        let model = LossModel.gilbertElliott(p: 1, r: 25, lossBad: 100, lossGood: 0)
        XCTAssertEqual(model.meanLossFraction, 1.0 / 26, accuracy: 1e-12)
        var q = Impairer(spec: ImpairmentSpec(loss: model), seed: 99)
        var bursts: [Int] = [], run = 0, lost = 0
        let n = 400_000
        for k in 0..<n {
            if q.admit(bytes: 100, arrivalNanoseconds: Int64(k)) == .dropped(.loss) { run += 1; lost += 1 } else if run > 0 { bursts.append(run); run = 0 }
        }
        let meanBurst = Double(bursts.reduce(0, +)) / Double(bursts.count)
        XCTAssertEqual(meanBurst, 4, accuracy: 0.15, "mean burst \(meanBurst) over \(bursts.count) bursts")
        XCTAssertEqual(Double(lost) / Double(n), 1.0 / 26, accuracy: 0.003)
        // Geometric: P(burst = 1) = r = 25 %.
        XCTAssertEqual(Double(bursts.filter { $0 == 1 }.count) / Double(bursts.count), 0.25, accuracy: 0.02)
        // Bernoulli with the same mean has bursts of mean 1/(1-0.0385) ≈ 1.04: the model matters.
        XCTAssertGreaterThan(meanBurst, 3)
    }

    func testLossParsing() {
        XCTAssertEqual(ImpairmentSpec.parseLoss("5%"), .bernoulli(percent: 5))
        XCTAssertEqual(ImpairmentSpec.parseLoss("0"), LossModel.none)
        XCTAssertEqual(ImpairmentSpec.parseLoss("gemodel 1% 25% 100% 0%"), .gilbertElliott(p: 1, r: 25, lossBad: 100, lossGood: 0))
        XCTAssertEqual(ImpairmentSpec.parseLoss("gemodel 2%"), .gilbertElliott(p: 2, r: 98, lossBad: 100, lossGood: 0))
        XCTAssertNil(ImpairmentSpec.parseLoss("150%"))
        XCTAssertNil(ImpairmentSpec.parseLoss("gemodel"))
        XCTAssertNil(ImpairmentSpec.parseLoss("lots"))
        XCTAssertEqual(ImpairmentSpec.parseRate("10mbit"), 10_000_000)
        XCTAssertNil(ImpairmentSpec.parseRate("10mb"))
    }

    func testTokenBucketSpacesFramesAtTheRate() {
        // 8 Mbit/s = 1 byte per µs: a 1000-byte frame takes exactly 1 ms of tokens. Bucket = one frame.
        var q = Impairer(spec: ImpairmentSpec(rateBitsPerSecond: 8_000_000, burstBytes: 1000))
        let releases = (0..<5).map { _ in q.admit(bytes: 1000, arrivalNanoseconds: 0).releaseNanoseconds! }
        XCTAssertEqual(releases, [0, 1 * ms, 2 * ms, 3 * ms, 4 * ms])
        // After 10 ms idle the bucket is full again (capped at one frame): the next leaves on arrival,
        // the one after 1 ms later.
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 20 * ms), .release(atNanoseconds: 20 * ms))
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 20 * ms), .release(atNanoseconds: 21 * ms))
        // Half-size frames take half the time.
        XCTAssertEqual(q.admit(bytes: 500, arrivalNanoseconds: 20 * ms), .release(atNanoseconds: 21 * ms + 500_000))
        // Rate then delay: a 10 ms delay shifts every release by 10 ms.
        var d = Impairer(spec: ImpairmentSpec(delayNanoseconds: 10 * ms, rateBitsPerSecond: 8_000_000, burstBytes: 1000))
        XCTAssertEqual((0..<3).map { _ in d.admit(bytes: 1000, arrivalNanoseconds: 0).releaseNanoseconds! }, [10 * ms, 11 * ms, 12 * ms])
    }

    func testTokenBucketBurstLetsABurstThroughThenPaces() {
        var q = Impairer(spec: ImpairmentSpec(rateBitsPerSecond: 8_000_000, burstBytes: 3000))
        let r = (0..<5).map { _ in q.admit(bytes: 1000, arrivalNanoseconds: 0).releaseNanoseconds! }
        XCTAssertEqual(r, [0, 0, 0, 1 * ms, 2 * ms])
    }

    func testQueueLimitDropsWhatDoesNotFit() {
        var q = Impairer(spec: ImpairmentSpec(rateBitsPerSecond: 8_000_000, burstBytes: 1000, queueLimitBytes: 3000))
        let r = (0..<6).map { _ in q.admit(bytes: 1000, arrivalNanoseconds: 0) }
        // The first leaves at once; three wait (3000 bytes); the fifth and sixth find the queue full.
        XCTAssertEqual(r, [.release(atNanoseconds: 0), .release(atNanoseconds: 1 * ms), .release(atNanoseconds: 2 * ms),
                           .release(atNanoseconds: 3 * ms), .dropped(.queueFull), .dropped(.queueFull)])
        XCTAssertEqual(q.droppedQueueFull, 2)
        // At 1.5 ms one waiting frame has left: room for one more, which leaves after the last (4 ms).
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 1_500_000), .release(atNanoseconds: 4 * ms))
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 1_500_000), .dropped(.queueFull))
    }

    func testRuntimeUpdateKeepsQueuedFramesAndOrder() {
        var q = Impairer(spec: ImpairmentSpec(delayNanoseconds: 80 * ms))
        let first = q.admit(bytes: 100, arrivalNanoseconds: 0)
        XCTAssertEqual(first, .release(atNanoseconds: 80 * ms))
        // Lower the delay: a frame arriving at 1 ms would be due at 6 ms, but it may not overtake the
        // queued one: it leaves at 80 ms, right after it. Nothing is dropped.
        q.update(ImpairmentSpec(delayNanoseconds: 5 * ms))
        XCTAssertEqual(q.admit(bytes: 100, arrivalNanoseconds: 1 * ms), .release(atNanoseconds: 80 * ms))
        // Once the old frames are gone the new delay applies exactly.
        XCTAssertEqual(q.admit(bytes: 100, arrivalNanoseconds: 100 * ms), .release(atNanoseconds: 105 * ms))
        // Raise it: new frames get 60 ms.
        q.update(ImpairmentSpec(delayNanoseconds: 60 * ms))
        XCTAssertEqual(q.admit(bytes: 100, arrivalNanoseconds: 101 * ms), .release(atNanoseconds: 161 * ms))
        XCTAssertEqual(q.spec.delayNanoseconds, 60 * ms)
        XCTAssertEqual(q.droppedLoss + q.droppedQueueFull, 0)
        // Adding a rate at runtime starts with a full bucket.
        q.update(ImpairmentSpec(delayNanoseconds: 0, rateBitsPerSecond: 8_000_000, burstBytes: 1000))
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 200 * ms), .release(atNanoseconds: 200 * ms))
        XCTAssertEqual(q.admit(bytes: 1000, arrivalNanoseconds: 200 * ms), .release(atNanoseconds: 201 * ms))
    }

    func testReseedRepeatsTheDraws() {
        let spec = ImpairmentSpec(delayNanoseconds: 10 * ms, jitterNanoseconds: 5 * ms, loss: .bernoulli(percent: 30), reorder: true)
        var a = Impairer(spec: spec, seed: 1)
        let first = (0..<200).map { a.admit(bytes: 100, arrivalNanoseconds: Int64($0) * 100 * ms) }
        _ = (0..<37).map { a.admit(bytes: 100, arrivalNanoseconds: 20_000 * ms + Int64($0)) }
        a.reseed(1)
        let again = (0..<200).map { a.admit(bytes: 100, arrivalNanoseconds: 30_000 * ms + Int64($0) * 100 * ms) }
        func shape(_ x: [Admission], from t0: Int64) -> [Int64?] { x.enumerated().map { k, r in r.releaseNanoseconds.map { $0 - t0 - Int64(k) * 100 * ms } } }
        XCTAssertEqual(shape(again, from: 30_000 * ms), shape(first, from: 0))
    }

    func testSpecProblems() {
        XCTAssertEqual(ImpairmentSpec(delayNanoseconds: 5 * ms).problems, [])
        XCTAssertEqual(ImpairmentSpec(loss: .bernoulli(percent: 120)).problems, ["loss must be a percentage 0-100, got 120.0"])
        XCTAssertEqual(ImpairmentSpec(rateBitsPerSecond: 10).problems, ["rate must be at least 8kbit, got 10 bit/s"])
    }

    private func stddev(_ x: [Double]) -> Double {
        let m = x.reduce(0, +) / Double(x.count)
        return (x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count - 1)).squareRoot()
    }
}
