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
    /// X₁ + X₂, two independent draws of the distribution: what a round trip adds when both of its
    /// crossings are jittered (a ping's request and reply). Its CDF is the convolution
    /// ∫ f(y) F(x − y) dy, integrated with Simpson's rule on 2 000 intervals over the component's
    /// support (±8σ for an untruncated normal); accurate to about 1e-6.
    indirect case sumOfTwo(DeclaredDistribution)

    /// The cumulative distribution function P(X ≤ x).
    public func cdf(_ x: Double) -> Double {
        switch self {
        case .sumOfTwo(let c):
            let (a, b) = c.support
            guard x > 2 * a else { return 0 }
            guard x < 2 * b else { return 1 }
            let n = 2000
            let h = (b - a) / Double(n)
            var sum = 0.0
            for i in 0...n {
                let y = a + Double(i) * h
                let w: Double = (i == 0 || i == n) ? 1 : (i % 2 == 1 ? 4 : 2)
                sum += w * c.density(y) * c.cdf(x - y)
            }
            return min(1, max(0, sum * h / 3))
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

    /// Where the distribution's mass lies (finite; ±8σ around the mean for an untruncated normal).
    public var support: (Double, Double) {
        switch self {
        case .uniform(let a, let b): return (a, b)
        case .normal(let mu, let sd, let a, let b): return (a.isFinite ? a : mu - 8 * sd, b.isFinite ? b : mu + 8 * sd)
        case .sumOfTwo(let c): let (a, b) = c.support; return (2 * a, 2 * b)
        }
    }

    /// The density of a component (uniform or normal; the sum is only integrated, never differentiated).
    public func density(_ x: Double) -> Double {
        let (a, b) = support
        guard x >= a, x <= b else { return 0 }
        switch self {
        case .uniform(let a, let b): return 1 / (b - a)
        case .normal(let mu, let sd, let lo, let hi):
            let z = (lo.isFinite ? Self.phi((lo - mu) / sd) : 0)
            let mass = (hi.isFinite ? Self.phi((hi - mu) / sd) : 1) - z
            let u = (x - mu) / sd
            return exp(-u * u / 2) / (sd * (2 * Double.pi).squareRoot()) / mass
        case .sumOfTwo: return .nan
        }
    }

    /// The median (the offset the p50 prediction adds to the fixed delay).
    public var median: Double {
        switch self {
        case .sumOfTwo:
            var (lo, hi) = support
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if cdf(mid) < 0.5 { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
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

/// The jitter one exchange adds when the link never reorders: the composition of the per-frame
/// draws the exchange crosses. `framesPerDirection` lists, for each one-way crossing in order, how
/// many frames the receiver must wait for that were sent back to back (k). Each frame draws its own
/// offset from `frame` (i.i.d.), and without reordering the last of k back-to-back frames is
/// released no earlier than any of them, so that crossing completes at the **maximum** of k draws
/// (CDF F^k). The exchange's jitter is the **sum** over crossings. A ping is `[1, 1]` (sum of two
/// draws); a request on a new connection that crosses SYN, SYN-ACK, ACK+request, ACK+response is
/// `[1, 1, 2, 2]`. The few µs between back-to-back frames are neglected (they are ≪ the jitter's range).
///
/// Computed numerically: each crossing's distribution is discretised on a grid of `stepMs` (at most
/// 0.01 ms; the cell masses are exact differences of F^k at the cell edges), the crossings are
/// convolved, and the CDF is linear inside a cell. Accurate to a few 1e-5 in CDF against closed forms.
public struct ExchangeJitter: Sendable, Equatable {
    public let frame: DeclaredDistribution
    public let framesPerDirection: [Int]
    public let stepMs: Double
    /// Lower edge of the first cell of the sum.
    let originMs: Double
    /// Cumulative mass at the upper edge of each cell.
    let cumulative: [Double]

    /// `frame` must be uniform or normal (one draw); every k ≥ 1; `maxStepMs` caps the grid step.
    public init(frame: DeclaredDistribution, framesPerDirection: [Int], maxStepMs: Double = 0.01) {
        precondition(!framesPerDirection.isEmpty && framesPerDirection.allSatisfy { $0 >= 1 }, "every crossing carries at least one frame")
        let (a, b) = frame.support
        let cells = max(1, Int(((b - a) / maxStepMs).rounded(.up)))
        let h = (b - a) / Double(cells)
        (self.frame, self.framesPerDirection, self.stepMs) = (frame, framesPerDirection, h)
        // Cell masses of one crossing with k frames: F(x)^k differenced at the cell edges.
        var edgesCDF = [Double](repeating: 0, count: cells + 1)
        for i in 0...cells { edgesCDF[i] = frame.cdf(a + Double(i) * h) }
        edgesCDF[0] = 0; edgesCDF[cells] = 1
        func masses(_ k: Int) -> [Double] {
            var m = [Double](repeating: 0, count: cells)
            var previous = 0.0
            for i in 0..<cells {
                let next = pow(edgesCDF[i + 1], Double(k))
                m[i] = next - previous
                previous = next
            }
            return m
        }
        // Each crossing's draw is represented at its cell's centre; D crossings sum to a lattice
        // whose points sit at D·a + (j + D/2)·h; spreading each point's mass over the cell around it
        // gives a CDF linear inside [D·a + j·h + (D−1)h/2, … + h].
        var sum: [Double] = [1]
        var cache: [Int: [Double]] = [:]
        for k in framesPerDirection {
            let m = cache[k] ?? masses(k)
            cache[k] = m
            var out = [Double](repeating: 0, count: sum.count + m.count - 1)
            m.withUnsafeBufferPointer { mb in
                out.withUnsafeMutableBufferPointer { ob in
                    for (i, x) in sum.enumerated() where x != 0 {
                        for j in 0..<mb.count { ob[i + j] += x * mb[j] }
                    }
                }
            }
            sum = out
        }
        let d = Double(framesPerDirection.count)
        originMs = d * a + (d - 1) * h / 2
        var c = [Double](repeating: 0, count: sum.count)
        var acc = 0.0
        for (j, x) in sum.enumerated() { acc += x; c[j] = min(1, acc) }
        cumulative = c
    }

    /// P(exchange jitter ≤ x), x in ms.
    public func cdf(_ x: Double) -> Double {
        let u = (x - originMs) / stepMs
        guard u > 0 else { return 0 }
        let j = Int(u.rounded(.down))
        guard j < cumulative.count else { return 1 }
        let below = j == 0 ? 0 : cumulative[j - 1]
        return below + (cumulative[j] - below) * (u - Double(j))
    }

    /// The median (ms): where the CDF crosses 0.5, interpolated inside its cell.
    public var median: Double { quantile(0.5) }

    /// The p-quantile (0 < p < 1), ms.
    public func quantile(_ p: Double) -> Double {
        var lo = 0, hi = cumulative.count - 1
        while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] < p { lo = mid + 1 } else { hi = mid } }
        let below = lo == 0 ? 0 : cumulative[lo - 1]
        let inCell = cumulative[lo] > below ? (p - below) / (cumulative[lo] - below) : 0.5
        return originMs + (Double(lo) + inCell) * stepMs
    }
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
        wilson(successes: successes, trials: trials, z: z95)
    }

    /// The Wilson score interval for a two-sided z (`wilson95` is z = 1.96).
    public static func wilson(successes: Int, trials: Int, z: Double) -> ClosedRange<Double>? {
        guard trials > 0, successes >= 0, successes <= trials else { return nil }
        let n = Double(trials), p = Double(successes) / n, z2 = z * z
        let denominator = 1 + z2 / n
        let centre = (p + z2 / (2 * n)) / denominator
        let half = z / denominator * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
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
    public var oneWayDelays: Double { Double(framesPerDirection.count) }

    /// The frames each one-way crossing of the exchange makes the receiver wait for, sent back to
    /// back (see `ExchangeJitter`), as captured on the calibration link (docs/calibrate.md):
    /// - icmp: echo request; echo reply → [1, 1];
    /// - tcp-connect: SYN; SYN-ACK (connect() returns on it) → [1, 1];
    /// - http-keepalive: the request (one segment, the ACK of the previous response rides on it);
    ///   the response (head and body in one segment, the request's ACK rides on it) → [1, 1];
    /// - http-new-connection: SYN; SYN-ACK; the handshake's ACK then at once the request (2); the
    ///   server's immediate ACK of the request (a new connection starts in quick-ACK mode) then the
    ///   response (2) → [1, 1, 2, 2].
    public var framesPerDirection: [Int] {
        switch self {
        case .icmp, .tcpConnect, .httpKeepAlive: return [1, 1]
        case .httpNewConnection: return [1, 1, 2, 2]
        }
    }
}

/// One calibration case: what is applied to each direction of the link.
public struct CalibrationCase: Sendable, Equatable {
    public var name: String
    /// Fixed one-way delay per direction, ms.
    public var delayMs: Double
    /// Jitter of each direction (nil = none), drawn independently per packet, as the lab applies a
    /// link's `impair:` to both directions. A round trip's jitter is then the sum of two draws
    /// (`DeclaredDistribution.sumOfTwo`), which is what the KS test compares with.
    public var jitter: DeclaredDistribution?
    /// Pause between attempts (ms): long enough that consecutive packets of one direction are never
    /// held back by the model's no-reordering rule (at least twice the jitter's range).
    public var intervalMs: Double
    /// Attempts per probe.
    public var samples: [CalibrationProbe: Int]
    /// Loss per direction, 0...1 (applied to both directions).
    public var lossPerDirection: Double

    public init(name: String, delayMs: Double, jitter: DeclaredDistribution? = nil, lossPerDirection: Double = 0,
                intervalMs: Double = 10, samples: [CalibrationProbe: Int] = [:]) {
        (self.name, self.delayMs, self.jitter, self.lossPerDirection) = (name, delayMs, jitter, lossPerDirection)
        (self.intervalMs, self.samples) = (intervalMs, samples)
    }

    /// The round trip's jitter: the sum of one draw per direction.
    public var roundTripJitter: DeclaredDistribution? { jitter.map { .sumOfTwo($0) } }

    /// The jitter `probe`'s figure contains: the composition of the per-frame draws it crosses
    /// (`CalibrationProbe.framesPerDirection`); nil without jitter.
    public func exchangeJitter(_ probe: CalibrationProbe) -> ExchangeJitter? {
        jitter.map { ExchangeJitter(frame: $0, framesPerDirection: probe.framesPerDirection) }
    }

    /// The predicted p50 (ms) of `probe`: its one-way delays times d, plus the median of the jitter
    /// its frames compose (`exchangeJitter`), plus `baselineMs` (the same probe's p50 at delay 0
    /// in the same run: the path's, the server's and the forwarder's own cost; 0 when not measured).
    public func predictedMs(_ probe: CalibrationProbe, baselineMs: Double = 0) -> Double {
        probe.oneWayDelays * delayMs + (exchangeJitter(probe)?.median ?? 0) + baselineMs
    }

    /// The predicted proportion of failed round trips for `probe`: ICMP loses an echo when either
    /// packet is dropped; TCP and HTTP retransmit, so a drop is a stall, not a failure (nil).
    public func predictedLoss(_ probe: CalibrationProbe) -> Double? {
        guard lossPerDirection > 0, probe == .icmp else { return nil }
        return CalibrationStatistics.roundTripLoss(perDirection: lossPerDirection)
    }
}

/// The cases a calibration runs, in order. Delay 0 comes first: its p50 per probe is the baseline
/// the other cases' predictions add (and is itself predicted as 0: the forwarder's own added
/// latency must stay within the 0.5 ms tolerance).
public enum CalibrationPlan {
    static func counts(_ n: Int, newConnection: Int? = nil) -> [CalibrationProbe: Int] {
        [.icmp: n, .tcpConnect: n, .httpKeepAlive: n, .httpNewConnection: newConnection ?? n]
    }

    /// Delay 0, 1, 5, 20, 100 ms per direction (100 samples per probe; 50 at 100 ms); jitter ±5 ms
    /// uniform and σ = 5 ms normal (truncated at ±3σ, as the model draws it) around 20 ms with 1 000
    /// samples for ICMP, TCP connect and keep-alive requests; loss 1 % and 5 % per direction around
    /// 5 ms with 1 000 echoes. About 8 minutes.
    public static let full: [CalibrationCase] = [
        CalibrationCase(name: "delay-0", delayMs: 0, intervalMs: 10, samples: counts(100)),
        CalibrationCase(name: "delay-1", delayMs: 1, intervalMs: 10, samples: counts(100)),
        CalibrationCase(name: "delay-5", delayMs: 5, intervalMs: 10, samples: counts(100)),
        CalibrationCase(name: "delay-20", delayMs: 20, intervalMs: 10, samples: counts(100)),
        CalibrationCase(name: "delay-100", delayMs: 100, intervalMs: 10, samples: counts(50)),
        CalibrationCase(name: "jitter-5-uniform", delayMs: 20, jitter: .uniform(low: -5, high: 5),
                        intervalMs: 25, samples: counts(1000, newConnection: 100)),
        CalibrationCase(name: "jitter-5-normal", delayMs: 20, jitter: .normal(mean: 0, sd: 5, low: -15, high: 15),
                        intervalMs: 45, samples: counts(1000, newConnection: 100)),
        CalibrationCase(name: "loss-1", delayMs: 5, lossPerDirection: 0.01, intervalMs: 5,
                        samples: [.icmp: 1000, .tcpConnect: 50, .httpKeepAlive: 50, .httpNewConnection: 50]),
        CalibrationCase(name: "loss-5", delayMs: 5, lossPerDirection: 0.05, intervalMs: 5,
                        samples: [.icmp: 1000, .tcpConnect: 50, .httpKeepAlive: 50, .httpNewConnection: 50]),
    ]

    /// `--quick` (CI): delay 0 (100 samples per probe, each paired with one on the direct path:
    /// its error is the forwarder's own cost, a fraction of the 0.5 ms allowed, so the median must
    /// not wander) and 20 ms (30 samples per probe), the uniform jitter on ICMP only (still 1 000
    /// echoes: below about 740 samples a correct link fails D ≤ 0.05 by chance more than 5 % of the
    /// time) and 5 % loss on 500 echoes. About 1 minute.
    public static let quick: [CalibrationCase] = [
        CalibrationCase(name: "delay-0", delayMs: 0, intervalMs: 10, samples: counts(100)),
        CalibrationCase(name: "delay-20", delayMs: 20, intervalMs: 10, samples: counts(30)),
        CalibrationCase(name: "jitter-5-uniform", delayMs: 20, jitter: .uniform(low: -5, high: 5), intervalMs: 25,
                        samples: [.icmp: 1000]),
        CalibrationCase(name: "loss-5", delayMs: 5, lossPerDirection: 0.05, intervalMs: 5, samples: [.icmp: 500]),
    ]
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
    /// Only for jitter cases and one-round-trip probes: the KS distance of (sample − 2d − baseline)
    /// against the jitter the probe's frames compose (`CalibrationCase.exchangeJitter`).
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
    /// attempts that got no answer; `baselineMs` as in `CalibrationCase.predictedMs`.
    public static func judge(case c: CalibrationCase, probe: CalibrationProbe, valuesMs: [Double], failed: Int,
                             baselineMs: Double = 0) -> CalibrationRow {
        let jitter = c.exchangeJitter(probe)
        let fixed = probe.oneWayDelays * c.delayMs + baselineMs
        var row = CalibrationRow(caseName: c.name, probe: probe, predictedMs: fixed + (jitter?.median ?? 0),
                                 measuredP50Ms: CalibrationStatistics.median(valuesMs), ks: nil,
                                 samples: valuesMs.count + failed)
        if let jitter, probe.oneWayDelays == 2 {
            // One round trip per sample: sample − (2d + baseline) should follow the composition of
            // the frames' draws (for these probes one frame each way: the sum of two draws).
            row.ks = CalibrationStatistics.ksDistance(valuesMs.map { $0 - fixed }, cdf: jitter.cdf)
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
    /// Further header lines (`name: value`), e.g. the direct path's p50 per probe.
    public var notes: [String]
    public init(kernel: String, forwarder: String, clock: String, date: Date, notes: [String] = []) {
        (self.kernel, self.forwarder, self.clock, self.date, self.notes) = (kernel, forwarder, clock, date, notes)
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
        for n in provenance.notes { s += "- \(n)\n" }
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
