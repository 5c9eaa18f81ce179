import Foundation

// The impairment certificate's statistics: pure, no I/O. `edgemeter calibrate` measures, this file
// predicts, compares and renders. Every duration here is in milliseconds (Double).

/// A declared distribution of one direction's jitter, as offsets (ms) added to the fixed delay.
public enum DeclaredDistribution: Sendable, Equatable {
    /// Uniform on [low, high].
    case uniform(low: Double, high: Double)
    /// Normal(mean, sd) truncated to [low, high] by redrawing values outside it (so the density
    /// inside is the normal density renormalised; no mass piles up at the bounds). Pass
    /// `-infinity`/`infinity` for no truncation.
    case normal(mean: Double, sd: Double, low: Double, high: Double)

    /// The cumulative distribution function P(X ≤ x).
    public func cdf(_ x: Double) -> Double {
        switch self {
        case .uniform(let a, let b):
            if x < a { return 0 }
            if x >= b { return 1 }
            return (x - a) / (b - a)
        case .normal(let mu, let sd, let a, let b):
            if x < a { return 0 }
            if x >= b { return 1 }
            let lo = a.isFinite ? Self.phi((a - mu) / sd) : 0
            let hi = b.isFinite ? Self.phi((b - mu) / sd) : 1
            return (Self.phi((x - mu) / sd) - lo) / (hi - lo)
        }
    }

    /// The median (the offset the p50 prediction adds to the fixed delay).
    public var median: Double {
        switch self {
        case .uniform(let a, let b): return (a + b) / 2
        case .normal(let mu, let sd, let a, let b):
            // Bisection on the CDF: exact to 1e-9 ms, symmetric truncation gives mu.
            var lo = a.isFinite ? a : mu - 40 * sd
            var hi = b.isFinite ? b : mu + 40 * sd
            for _ in 0..<200 {
                let mid = (lo + hi) / 2
                if cdf(mid) < 0.5 { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
        }
    }

    /// Standard normal CDF Φ(z) = erfc(−z/√2)/2.
    public static func phi(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }
}

/// Pure statistics of the certificate.
public enum CalibrationStatistics {
    /// The one-sample Kolmogorov–Smirnov distance D = sup_x |F_n(x) − F(x)| between the empirical
    /// CDF of `samples` and `cdf`, computed exactly on the sorted sample as
    /// max_i max(i/n − F(x₍ᵢ₎), F(x₍ᵢ₎) − (i−1)/n). nil for an empty sample.
    public static func ksDistance(_ samples: [Double], cdf: (Double) -> Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let n = Double(sorted.count)
        var d = 0.0
        for (index, x) in sorted.enumerated() {
            let f = cdf(x)
            let i = Double(index + 1)
            d = max(d, i / n - f, f - (i - 1) / n)
        }
        return d
    }

    /// z for a two-sided 95 % interval.
    public static let z95 = 1.959963984540054

    /// The Wilson score 95 % interval of a proportion from `successes` out of `trials`:
    /// centre (p̂ + z²/2n)/(1 + z²/n), half-width z/(1 + z²/n)·√(p̂(1−p̂)/n + z²/4n²). Unlike the
    /// Wald interval it stays inside [0, 1] and is not empty at p̂ = 0. nil when `trials` is 0.
    public static func wilson95(successes: Int, trials: Int) -> ClosedRange<Double>? {
        guard trials > 0, successes >= 0, successes <= trials else { return nil }
        let n = Double(trials), p = Double(successes) / n, z2 = z95 * z95
        let denominator = 1 + z2 / n
        let centre = (p + z2 / (2 * n)) / denominator
        let half = z95 / denominator * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return max(0, centre - half)...min(1, centre + half)
    }

    /// The probability that a round trip loses at least one of its two packets when each direction
    /// drops independently with `perDirection` (0...1): 1 − (1 − p)².
    public static func roundTripLoss(perDirection p: Double) -> Double { 1 - (1 - p) * (1 - p) }

    /// The nearest-rank median of `values` (the value at rank ⌈n/2⌉ of the sorted values), as the
    /// summaries report p50. nil when empty.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[(sorted.count + 1) / 2 - 1]
    }
}

/// The probe kinds the certificate measures, and the round trip each is predicted to pay.
public enum CalibrationProbe: String, Sendable, CaseIterable {
    /// ICMP echo RTT (the ping probe): one packet each way, 2d.
    case icmp
    /// TCP connect (the tcping probe), from `connect()` until the SYN-ACK is in: SYN out and
    /// SYN-ACK back, 2d.
    case tcpConnect = "tcp-connect"
    /// An HTTP request on an open keep-alive connection, request sent until the response is read:
    /// request out and response back, 2d.
    case httpKeepAlive = "http-keepalive"
    /// An HTTP request on a new connection, `connect()` until the response is read: the handshake's
    /// round trip plus the request's, 4d.
    case httpNewConnection = "http-new-connection"

    /// How many one-way delays `d` the measured figure contains.
    public var oneWayDelays: Double {
        switch self {
        case .icmp, .tcpConnect, .httpKeepAlive: return 2
        case .httpNewConnection: return 4
        }
    }
}

/// One calibration case: what is applied to each direction of the link.
public struct CalibrationCase: Sendable, Equatable {
    public var name: String
    /// Fixed one-way delay per direction, ms.
    public var delayMs: Double
    /// Jitter of the client → server direction only (nil = none). Applying it in one direction
    /// keeps the measured round trip's jitter equal to the declared distribution, so the KS test
    /// compares like with like (with jitter both ways it would be a convolution of the two).
    public var jitter: DeclaredDistribution?
    /// Loss per direction, 0...1 (applied to both directions).
    public var lossPerDirection: Double

    public init(name: String, delayMs: Double, jitter: DeclaredDistribution? = nil, lossPerDirection: Double = 0) {
        (self.name, self.delayMs, self.jitter, self.lossPerDirection) = (name, delayMs, jitter, lossPerDirection)
    }

    /// The predicted p50 (ms) of `probe`: its one-way delays times d, plus the jitter's median
    /// once per packet that crosses the jittered direction (the handshake and the request each
    /// cross it once), plus `baselineMs` (the same probe's p50 at delay 0 in the same run: the
    /// path's and the forwarder's own cost; 0 when not measured).
    public func predictedMs(_ probe: CalibrationProbe, baselineMs: Double = 0) -> Double {
        let crossings = probe.oneWayDelays / 2
        return probe.oneWayDelays * delayMs + crossings * (jitter?.median ?? 0) + baselineMs
    }

    /// The predicted proportion of failed round trips for `probe`: ICMP loses an echo when either
    /// packet is dropped; TCP and HTTP retransmit, so a drop is a stall, not a failure (nil).
    public func predictedLoss(_ probe: CalibrationProbe) -> Double? {
        guard lossPerDirection > 0, probe == .icmp else { return nil }
        return CalibrationStatistics.roundTripLoss(perDirection: lossPerDirection)
    }
}

/// The certificate's pass rule, in one place.
public enum CalibrationRule {
    /// p50 error allowed: max(0.5 ms, 5 % of the prediction).
    public static func p50Tolerance(predictedMs: Double) -> Double { max(0.5, 0.05 * abs(predictedMs)) }
    /// The largest KS distance that passes.
    public static let maxKS = 0.05
}

/// What was measured for one case × probe, and the verdict.
public struct CalibrationRow: Sendable, Equatable {
    public var caseName: String
    public var probe: CalibrationProbe
    public var predictedMs: Double
    /// nil when no attempt succeeded.
    public var measuredP50Ms: Double?
    /// Only for jitter cases: the KS distance of (sample − fixed part of the prediction) against
    /// the declared jitter distribution.
    public var ks: Double?
    public var samples: Int
    /// Only where a loss is predicted: failed attempts out of `samples`.
    public var lost: Int?
    public var predictedLoss: Double?
    /// Wilson 95 % interval of the measured loss proportion.
    public var lossInterval: ClosedRange<Double>?
    /// Why the row cannot be judged (a probe failed entirely), when it cannot.
    public var problem: String?

    public var errorMs: Double? { measuredP50Ms.map { $0 - predictedMs } }

    /// Each failed criterion, as a short phrase; empty = pass.
    public var failures: [String] {
        var out: [String] = []
        if let problem { out.append(problem) }
        if let e = errorMs {
            let tol = CalibrationRule.p50Tolerance(predictedMs: predictedMs)
            if abs(e) > tol { out.append(String(format: "p50 error %.3f ms > %.3f ms", abs(e), tol)) }
        } else if problem == nil {
            out.append("no successful sample")
        }
        if let ks, ks > CalibrationRule.maxKS { out.append(String(format: "KS D %.4f > %.2f", ks, CalibrationRule.maxKS)) }
        if let predictedLoss {
            if let lossInterval {
                if !lossInterval.contains(predictedLoss) {
                    out.append(String(format: "predicted loss %.2f %% outside the measured 95 %% interval", predictedLoss * 100))
                }
            } else {
                out.append("no attempts to estimate loss from")
            }
        }
        return out
    }

    public var passed: Bool { failures.isEmpty }

    /// Builds a row from raw samples: `valuesMs` are the successful attempts' figures, `failed` the
    /// attempts that got no answer. `fixedMs` is the prediction without the jitter median (the part
    /// subtracted before the KS test).
    public static func judge(case c: CalibrationCase, probe: CalibrationProbe, valuesMs: [Double], failed: Int,
                             baselineMs: Double = 0) -> CalibrationRow {
        let predicted = c.predictedMs(probe, baselineMs: baselineMs)
        var row = CalibrationRow(caseName: c.name, probe: probe, predictedMs: predicted,
                                 measuredP50Ms: CalibrationStatistics.median(valuesMs), ks: nil,
                                 samples: valuesMs.count + failed)
        if let j = c.jitter, probe.oneWayDelays == 2 {
            // One jittered crossing per sample: sample − (2d + baseline) should follow j.
            let fixed = probe.oneWayDelays * c.delayMs + baselineMs
            row.ks = CalibrationStatistics.ksDistance(valuesMs.map { $0 - fixed }, cdf: j.cdf)
        }
        if let p = c.predictedLoss(probe) {
            row.lost = failed
            row.predictedLoss = p
            row.lossInterval = CalibrationStatistics.wilson95(successes: failed, trials: valuesMs.count + failed)
        }
        return row
    }
}

/// Where and how a certificate was measured (the table's header).
public struct CalibrationProvenance: Sendable, Equatable {
    public var kernel: String
    public var forwarder: String
    public var clock: String
    public var date: Date
    public init(kernel: String, forwarder: String, clock: String, date: Date) {
        (self.kernel, self.forwarder, self.clock, self.date) = (kernel, forwarder, clock, date)
    }
}

/// Renders the certificate as Markdown and CSV.
public enum CalibrationTable {
    public static let columns = ["case", "probe", "samples", "predicted_ms", "measured_p50_ms", "error_ms",
                                 "tolerance_ms", "ks_d", "loss_percent", "loss_ci95_low_percent",
                                 "loss_ci95_high_percent", "predicted_loss_percent", "verdict"]

    static func fields(_ r: CalibrationRow) -> [String] {
        [r.caseName, r.probe.rawValue, String(r.samples), Format.fixed(r.predictedMs, 3),
         Format.fixed(r.measuredP50Ms, 3), Format.fixed(r.errorMs, 3),
         Format.fixed(CalibrationRule.p50Tolerance(predictedMs: r.predictedMs), 3), Format.fixed(r.ks, 4),
         r.lost.map { Format.fixed(Double($0) / Double(max(r.samples, 1)) * 100, 2) } ?? "",
         Format.fixed(r.lossInterval.map { $0.lowerBound * 100 }, 2),
         Format.fixed(r.lossInterval.map { $0.upperBound * 100 }, 2),
         Format.fixed(r.predictedLoss.map { $0 * 100 }, 2),
         r.passed ? "pass" : "FAIL: " + r.failures.joined(separator: "; ")]
    }

    /// One header row, then one row per case × probe; empty fields where a figure does not apply.
    public static func csv(_ rows: [CalibrationRow]) -> String {
        CSV.line(columns) + rows.map { CSV.line(fields($0)) }.joined()
    }

    /// The Markdown certificate: provenance, the rule, one row per case × probe, the count of failures.
    public static func markdown(_ rows: [CalibrationRow], provenance: CalibrationProvenance) -> String {
        var s = "# Impairment calibration certificate\n\n"
        s += "- kernel: \(provenance.kernel)\n- forwarder: \(provenance.forwarder)\n"
        s += "- clock: \(provenance.clock)\n- date: \(Format.timestamp(provenance.date))\n"
        s += "- rule: |p50 − predicted| ≤ max(0.5 ms, 5 %); KS D ≤ 0.05 (jitter cases); "
        s += "predicted loss inside the Wilson 95 % interval of the measured loss\n\n"
        s += "| case | probe | n | predicted ms | p50 ms | error ms | KS D | loss % [95 % CI] (predicted) | verdict |\n"
        s += "|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let f = fields(r)
            var loss = ""
            if !f[8].isEmpty { loss = "\(f[8]) [\(f[9]), \(f[10])] (\(f[11]))" }
            let verdict = r.passed ? "pass" : "**FAIL**: " + r.failures.joined(separator: "; ")
            s += "| \(f[0]) | \(f[1]) | \(f[2]) | \(f[3]) | \(f[4]) | \(f[5]) | \(f[7]) | \(loss) | \(verdict) |\n"
        }
        let failed = rows.filter { !$0.passed }.count
        s += "\n\(rows.count) figures, \(failed) failed.\n"
        return s
    }
}
