import Foundation

/// Two-sample statistics for `compare`: distribution-free, on the raw values of one metric and phase
/// (no normality assumed; latencies are skewed and often multimodal). Pure functions, seeded.
public enum CompareStatistics {
    /// The nearest-rank median: the value at rank ⌈n/2⌉ of the sorted values (the lower median for an
    /// even n), the same definition as the summaries' p50, so the figures agree. nil when empty.
    public static func median(sorted: [Double]) -> Double? {
        guard !sorted.isEmpty else { return nil }
        return sorted[(sorted.count + 1) / 2 - 1]
    }

    /// Nearest-rank percentile `p` (0...100) of sorted values: the value at rank ⌈p/100 · n⌉ (at least 1).
    public static func percentile(sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let n = sorted.count
        let rank = Swift.min(n, Swift.max(1, Int((p / 100 * Double(n)).nextDown.rounded(.up))))
        return sorted[rank - 1]
    }

    /// The Mann–Whitney U test of `a` against `b` (two-sided).
    public struct MannWhitney: Sendable, Equatable {
        /// U of `b`: the number of pairs (a, b) with b > a, ties counting one half.
        public var uB: Double
        /// Standard score of `uB` under H0 with the tie-corrected variance and a continuity correction of 0.5.
        public var z: Double
        /// Two-sided p-value: exact for small samples without ties, else the normal approximation
        /// (1 when every value is tied).
        public var p: Double
        /// Cliff's delta, P(b > a) − P(b < a), in −1...1: the effect size (`(2·uB)/(nA·nB) − 1`).
        public var cliffsDelta: Double
    }

    /// Mann–Whitney U with average ranks for ties; the variance is corrected for ties
    /// (`nA·nB/12 · ((n+1) − Σ(t³−t)/(n(n−1)))`) and the p-value uses the normal approximation with a
    /// continuity correction; without ties and with at most `exactLimit` values per side, the exact
    /// permutation p instead. nil when a side is empty.
    public static func mannWhitney(_ a: [Double], _ b: [Double]) -> MannWhitney? {
        let nA = a.count, nB = b.count
        guard nA > 0, nB > 0 else { return nil }
        // (value, side) sorted; side 1 = b.
        var all: [(Double, UInt8)] = []
        all.reserveCapacity(nA + nB)
        for v in a { all.append((v, 0)) }
        for v in b { all.append((v, 1)) }
        all.sort { $0.0 < $1.0 }
        let n = all.count
        var rankSumB = 0.0
        var tieTerm = 0.0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n && all[j + 1].0 == all[i].0 { j += 1 }
            let t = Double(j - i + 1)
            let avgRank = Double(i + j + 2) / 2 // ranks are 1-based
            for k in i...j where all[k].1 == 1 { rankSumB += avgRank }
            if t > 1 { tieTerm += t * t * t - t }
            i = j + 1
        }
        let dA = Double(nA), dB = Double(nB), dN = Double(n)
        let uB = rankSumB - dB * (dB + 1) / 2
        let mean = dA * dB / 2
        var variance = dA * dB / 12 * ((dN + 1) - (n > 1 ? tieTerm / (dN * (dN - 1)) : 0))
        variance = Swift.max(0, variance)
        let delta = 2 * uB / (dA * dB) - 1
        guard variance > 0 else { return MannWhitney(uB: uB, z: 0, p: 1, cliffsDelta: delta) }
        let diff = uB - mean
        let corrected = Swift.max(0, abs(diff) - 0.5)
        let z = (diff < 0 ? -corrected : corrected) / variance.squareRoot()
        var p = Swift.min(1, erfc(abs(z) / 2.0.squareRoot()))
        // Small samples without ties: the exact permutation distribution instead.
        if tieTerm == 0 && nA <= exactLimit && nB <= exactLimit {
            p = exactTwoSidedP(u: Int(uB.rounded()), nA, nB)
        }
        return MannWhitney(uB: uB, z: z, p: p, cliffsDelta: delta)
    }

    /// Up to this many values per side (and no ties), `mannWhitney` gives the exact p.
    public static let exactLimit = 20

    /// Exact two-sided p of U = `u` for sizes m, n under H0: `min(1, 2·min(P(U ≤ u), P(U ≥ u)))`,
    /// from the count of rank arrangements giving each U (f(m,n,u) = f(m−1,n,u−n) + f(m,n−1,u)).
    static func exactTwoSidedP(u: Int, _ m: Int, _ n: Int) -> Double {
        // counts[i][j][k]: arrangements of i values of one side and j of the other with U = k.
        let maxU = m * n
        var prev = [[Double]](repeating: [Double](repeating: 0, count: maxU + 1), count: n + 1)
        for j in 0...n { prev[j][0] = 1 } // i = 0: U = 0 in exactly one way
        if m > 0 {
            for i in 1...m {
                var cur = [[Double]](repeating: [Double](repeating: 0, count: maxU + 1), count: n + 1)
                cur[0][0] = 1
                if n > 0 {
                    for j in 1...n {
                        for k in 0...(i * j) {
                            cur[j][k] = (k >= j ? prev[j][k - j] : 0) + cur[j - 1][k]
                        }
                    }
                }
                prev = cur
            }
        }
        let counts = prev[n]
        let total = counts.reduce(0, +)
        let clamped = Swift.min(Swift.max(0, u), maxU)
        let lower = counts[0...clamped].reduce(0, +) / total
        let upper = counts[clamped...].reduce(0, +) / total
        return Swift.min(1, 2 * Swift.min(lower, upper))
    }

    /// Romano et al.'s labels for |Cliff's delta|: < 0.147 negligible, < 0.33 small, < 0.474 medium, else large.
    public static func cliffsMagnitude(_ delta: Double) -> String {
        let d = abs(delta)
        if d < 0.147 { return "negligible" }
        if d < 0.33 { return "small" }
        if d < 0.474 { return "medium" }
        return "large"
    }

    /// Percentile-bootstrap 95% interval of median(b) / median(a) from `resamples` paired resamples.
    ///
    /// Each resample's median is drawn exactly without materialising the resample: a resample of n
    /// values from the sorted values x₁ ≤ … ≤ xₙ takes x_⌈n·Uᵢ⌉ for uniforms Uᵢ, and ⌈n·u⌉ is monotone,
    /// so its k-th smallest value (k = ⌈n/2⌉, the nearest-rank median) is x_⌈n·U₍ₖ₎⌉ where U₍ₖ₎, the
    /// k-th order statistic of n uniforms, is Beta(k, n+1−k). One Beta draw per side and resample:
    /// the same distribution as resampling, at O(1) per resample whatever n is.
    /// nil when a side is empty or a resampled median of `a` is 0 (the ratio is undefined).
    public static func bootstrapRatioCI(sortedA a: [Double], sortedB b: [Double], resamples: Int = 2000,
                                        seed: UInt64 = 0x5EED, level: Double = 0.95) -> ClosedRange<Double>? {
        guard !a.isEmpty, !b.isEmpty, resamples >= 20 else { return nil }
        var rng = SeededRandom(seed: seed)
        var ratios: [Double] = []
        ratios.reserveCapacity(resamples)
        for _ in 0..<resamples {
            let ma = bootstrapMedian(sorted: a, &rng)
            let mb = bootstrapMedian(sorted: b, &rng)
            guard ma != 0 else { return nil }
            ratios.append(mb / ma)
        }
        ratios.sort()
        let tail = (1 - level) / 2
        let lo = ratios[Swift.max(0, Int((tail * Double(resamples)).rounded(.down)))]
        let hi = ratios[Swift.min(resamples - 1, Int(((1 - tail) * Double(resamples)).rounded(.up)) - 1)]
        return lo...hi
    }

    /// The median of one bootstrap resample of `sorted` (see `bootstrapRatioCI`).
    static func bootstrapMedian(sorted: [Double], _ rng: inout SeededRandom) -> Double {
        let n = sorted.count
        if n == 1 { return sorted[0] }
        let k = (n + 1) / 2
        let u = beta(Double(k), Double(n + 1 - k), &rng)
        let index = Swift.min(n, Swift.max(1, Int((Double(n) * u).rounded(.up))))
        return sorted[index - 1]
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    static func beta(_ a: Double, _ b: Double, _ rng: inout SeededRandom) -> Double {
        let x = gamma(a, &rng), y = gamma(b, &rng)
        return x / (x + y)
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang's method (shape ≥ 1; below 1 via the boost
    /// Gamma(a) = Gamma(a+1) · U^(1/a)).
    static func gamma(_ shape: Double, _ rng: inout SeededRandom) -> Double {
        if shape < 1 {
            var u = rng.unit()
            while u <= 0 { u = rng.unit() }
            return gamma(shape + 1, &rng) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = rng.standardNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            var u = rng.unit()
            while u <= 0 { u = rng.unit() }
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
