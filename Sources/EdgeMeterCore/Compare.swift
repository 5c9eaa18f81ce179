import Foundation

/// Which direction of a metric is better, declared per metric (as package-benchmark's
/// `BenchmarkMetric.polarity` does), so a verdict can say better or worse.
public enum MetricPolarity: String, Sendable, Equatable {
    case lowerIsBetter = "lower is better"
    case higherIsBetter = "higher is better"
    /// Neither (a configured rate, a status count): changes are reported, never judged or gated.
    case none = "no polarity"

    /// The declared polarity of a sample's metric, phase and unit, first rule that matches:
    /// - `throughput` and `transfer` (and any unit per second, `req/s`, `B/s`) → higher is better,
    ///   except phase `requested` (the rate asked for, a setting) → none;
    /// - `errors`, and counts of `timeouts` / `unsent` → lower is better; `responses` (status
    ///   counts) → none;
    /// - durations (`ns`, `us`, `ms`, `s`): rtt, latency, startup phases, wire and hop times → lower;
    /// - sizes (`bytes`, `KiB`, `MiB`): footprint → lower;
    /// - anything else → none.
    public static func declared(metric: String, phase: String, unit: String) -> MetricPolarity {
        if phase == "requested" { return .none }
        if metric == "throughput" || metric == "transfer" || unit.hasSuffix("/s") { return .higherIsBetter }
        if metric == "errors" || phase == "timeouts" || phase == "unsent" { return .lowerIsBetter }
        if metric == "responses" { return .none }
        if ["ns", "us", "ms", "s"].contains(unit) { return .lowerIsBetter }
        if ["bytes", "KiB", "MiB", "B"].contains(unit) { return .lowerIsBetter }
        return .none
    }
}

/// A tolerance on one percentile of a metric: how far B may move from A before the move counts,
/// as package-benchmark's `thresholds: [.p50: .relative(5)]` / `.absolute`. When both a relative
/// and an absolute tolerance are set for the same percentile, a move must exceed both (so 0.01 ms
/// on a 0.05 ms loopback rtt, 20%, is not a regression when the absolute tolerance is 0.1 ms).
public struct CompareThreshold: Sendable, Equatable {
    /// `*`, a metric (`rtt`) or metric/phase (`latency/total`).
    public var scope: String
    /// 50 for the median, 90, 99, ...
    public var percentile: Double
    /// Percent of A's value; nil when not set.
    public var relativePercent: Double?
    /// In the metric's unit; nil when not set.
    public var absolute: Double?

    public init(scope: String, percentile: Double, relativePercent: Double? = nil, absolute: Double? = nil) {
        (self.scope, self.percentile, self.relativePercent, self.absolute) = (scope, percentile, relativePercent, absolute)
    }

    /// The defaults: median ±2%, p90 ±5%, for every metric (a move smaller than that is not
    /// reported even when significant; a 5% shift of the whole distribution is).
    public static let defaults: [CompareThreshold] = [
        CompareThreshold(scope: "*", percentile: 50, relativePercent: 2),
        CompareThreshold(scope: "*", percentile: 90, relativePercent: 5),
    ]

    /// Parses `SCOPE:pNN=VALUE`, VALUE `5%` (relative) or `0.2` (absolute, the metric's unit);
    /// SCOPE `*`, `rtt` or `latency/total`. Two specs for the same scope and percentile merge
    /// (one relative, one absolute).
    public static func parse(_ spec: String) throws -> CompareThreshold {
        func fail(_ why: String) -> CompareError {
            .usage("--threshold \"\(spec)\": \(why); write SCOPE:pNN=VALUE, e.g. rtt:p50=5% (relative) or latency/total:p90=0.5 (absolute, in the metric's unit), SCOPE * for every metric")
        }
        guard let colon = spec.lastIndex(of: ":") else { throw fail("no `:` between the scope and the percentile") }
        let scope = String(spec[..<colon])
        guard !scope.isEmpty else { throw fail("the scope is empty") }
        let rest = spec[spec.index(after: colon)...]
        guard let eq = rest.firstIndex(of: "=") else { throw fail("no `=` before the value") }
        let pText = rest[..<eq]
        guard pText.hasPrefix("p"), let p = Double(pText.dropFirst().replacingOccurrences(of: "p", with: "")), p > 0, p <= 100 else {
            throw fail("percentile \"\(pText)\" is not p1...p100 (p50, p90, p99)")
        }
        var valueText = String(rest[rest.index(after: eq)...])
        let relative = valueText.hasSuffix("%")
        if relative { valueText.removeLast() }
        guard let v = Double(valueText), v >= 0, v.isFinite else { throw fail("value \"\(valueText)\" is not a non-negative number") }
        return CompareThreshold(scope: scope, percentile: p, relativePercent: relative ? v : nil, absolute: relative ? nil : v)
    }

    /// Merges user thresholds over the defaults: a user threshold replaces a default of the same
    /// scope and percentile; relative and absolute parts of the same scope and percentile combine.
    public static func merged(_ user: [CompareThreshold], over base: [CompareThreshold] = defaults) -> [CompareThreshold] {
        var out: [CompareThreshold] = []
        func put(_ t: CompareThreshold, combine: Bool) {
            if let i = out.firstIndex(where: { $0.scope == t.scope && $0.percentile == t.percentile }) {
                if combine {
                    if let r = t.relativePercent { out[i].relativePercent = r }
                    if let a = t.absolute { out[i].absolute = a }
                } else { out[i] = t }
            } else { out.append(t) }
        }
        for t in base { put(t, combine: false) }
        var seen = Set<String>()
        for t in user {
            let id = "\(t.scope)|\(t.percentile)"
            put(t, combine: seen.contains(id))
            seen.insert(id)
        }
        return out
    }

    /// The thresholds that apply to one metric and phase: per percentile, the most specific scope
    /// (metric/phase over metric over `*`).
    public static func applicable(_ all: [CompareThreshold], metric: String, phase: String) -> [CompareThreshold] {
        var byP: [Double: (Int, CompareThreshold)] = [:]
        for t in all {
            let rank: Int
            if t.scope == "\(metric)/\(phase)" { rank = 3 } else if t.scope == metric { rank = 2 } else if t.scope == "*" { rank = 1 } else { continue }
            if let cur = byP[t.percentile], cur.0 >= rank { continue }
            byP[t.percentile] = (rank, t)
        }
        return byP.keys.sorted().map { byP[$0]!.1 }
    }

    /// Whether moving from `a` to `b` exceeds this tolerance (every part that is set).
    public func exceeded(a: Double, b: Double) -> Bool {
        if relativePercent == nil && absolute == nil { return false }
        let diff = abs(b - a)
        if let r = relativePercent {
            if a == 0 { if diff == 0 { return false } } else if diff / abs(a) * 100 <= r { return false }
        }
        if let abs = absolute, diff <= abs { return false }
        return true
    }

    public var label: String {
        var parts: [String] = []
        if let r = relativePercent { parts.append("\(Format.fixed(r, 1))%") }
        if let a = absolute { parts.append("\(a)") }
        return "p\(Format.fixed(percentile, percentile == percentile.rounded() ? 0 : 1))±" + parts.joined(separator: "&")
    }
}

/// The verdict for one metric and phase.
public enum CompareVerdict: String, Sendable, Equatable {
    case better
    case worse
    case noChange = "no significant change"
    /// The baseline's two halves already differ "significantly": the machine's own noise is as large
    /// as any difference this comparison could show.
    case tooNoisy = "too noisy to tell"
    /// Significant and beyond tolerance, but the metric has no polarity: reported, never gated.
    case changed
    /// Fewer than `CompareOptions.minimumSamples` values on a side: no test is run.
    case tooFewSamples = "too few samples"
}

public enum CompareError: Error, CustomStringConvertible, Equatable {
    /// A wrong argument or an input that cannot be compared; the CLI exits 64 (EX_USAGE).
    case usage(String)
    public var description: String {
        switch self { case .usage(let m): return m }
    }
}

public struct CompareOptions: Sendable {
    /// Significance level of the Mann–Whitney test (and of the A/A check).
    public var alpha = 0.05
    public var thresholds = CompareThreshold.defaults
    public var bootstrapResamples = 2000
    public var seed: UInt64 = 0x5EED
    /// Below this many values on a side, no test is run (`too few samples`).
    public var minimumSamples = 5
    public init() {}
}

/// One side's values of one metric and phase, in the order they were measured: the summary key's
/// fields (`series.metric`, ...) and the values.
@dynamicMemberLookup
public struct CompareSeries: Sendable {
    /// Scenario, probe, target, metric, phase and unit: the grouping a summary row has.
    public var summaryKey: SummaryKey
    public var values: [Double]
    /// Every attempt, failed ones included (for the loss columns).
    public var attempts: Int

    public subscript(dynamicMember field: WritableKeyPath<SummaryKey, String>) -> String {
        get { summaryKey[keyPath: field] }
        set { summaryKey[keyPath: field] = newValue }
    }

    /// The key as one string (also the seed of the row's bootstrap).
    public var key: String { [self.scenario, self.probe, self.target, self.metric, self.phase, self.unit].joined(separator: "\u{1F}") }

    public init(summaryKey: SummaryKey, values: [Double], attempts: Int) {
        (self.summaryKey, self.values, self.attempts) = (summaryKey, values, attempts)
    }

    public init(scenario: String, probe: String, target: String, metric: String, phase: String, unit: String, values: [Double], attempts: Int) {
        self.init(summaryKey: SummaryKey(scenario: scenario, probe: probe, target: target, metric: metric, phase: phase, unit: unit),
                  values: values, attempts: attempts)
    }

    /// Groups samples into series (one per scenario, probe, target, metric, phase, unit), in the
    /// order keys first appear; `dropping` blanks a field ("scenario" or "target") so two groups of
    /// one run (`--by target`) line up.
    public static func group(_ samples: [Sample], dropping: String? = nil) -> [CompareSeries] {
        var index: [String: Int] = [:]
        var out: [CompareSeries] = []
        for s in samples {
            var c = CompareSeries(summaryKey: SummaryKey(s), values: [], attempts: 0)
            if dropping == "scenario" { c.scenario = "" }
            if dropping == "target" { c.target = "" }
            let k = c.key
            let i: Int
            if let found = index[k] { i = found } else { i = out.count; index[k] = i; out.append(c) }
            out[i].attempts += 1
            if s.status == .ok, let v = s.value, v.isFinite { out[i].values.append(v) }
        }
        return out
    }
}

/// One row of a comparison: one metric and phase present in both A and B.
public struct CompareRow: Sendable {
    public var scenario: String, probe: String, target: String, metric: String, phase: String, unit: String
    public var polarity: MetricPolarity
    public var nA: Int, nB: Int
    public var lossPercentA: Double, lossPercentB: Double
    public var medianA: Double?, medianB: Double?
    /// median(B) / median(A).
    public var ratio: Double?
    /// Bootstrap 95% interval of `ratio`.
    public var ratioCI: ClosedRange<Double>?
    public var pValue: Double?
    public var cliffsDelta: Double?
    /// The A/A check on A: p-value of A's first half against its second half (time order).
    public var aaPValue: Double?
    /// Whether the A/A check alone would have been judged a change (significant and beyond tolerance).
    public var aaFlagged: Bool
    /// |median(second half of A) / median(first half) − 1|: A's own drift, as a fraction.
    public var aaShift: Double?
    /// The tolerances checked and, per percentile, A's and B's values.
    public var thresholdChecks: [(threshold: CompareThreshold, a: Double, b: Double, exceeded: Bool)]
    public var verdict: CompareVerdict
    /// Why, in one phrase ("p=0.001, ratio CI excludes 1, p50 +7.1% beyond ±5%").
    public var reason: String
}

/// The whole comparison: rows and what the exit status says.
public struct CompareResult: Sendable {
    public var labelA: String
    public var labelB: String
    public var rows: [CompareRow]
    /// Metrics and phases present on one side only (not compared).
    public var onlyInA: [String]
    public var onlyInB: [String]

    public var regressions: [CompareRow] { rows.filter { $0.verdict == .worse } }
    public var improvements: [CompareRow] { rows.filter { $0.verdict == .better } }

    /// package-benchmark's convention: 0 no change, 2 at least one regression, 4 improvements only.
    /// "too noisy to tell", "changed" (no polarity) and "too few samples" never gate: exit 0.
    public var exitStatus: Int32 {
        if !regressions.isEmpty { return 2 }
        if !improvements.isEmpty { return 4 }
        return 0
    }
}

/// Compares B against A, metric by metric.
///
/// For each metric and phase in both (same scenario, probe, target, metric, phase and unit):
/// 1. the medians, ratio median(B)/median(A) with a bootstrap 95% CI, Mann–Whitney p, Cliff's delta;
/// 2. the tolerances (`CompareThreshold.applicable`) at each configured percentile;
/// 3. "significant" = p < alpha AND the ratio's CI excludes 1 AND some percentile moved beyond its
///    tolerance; the direction of the largest tolerance-exceeding move and the polarity give better/worse;
/// 4. the A/A check: A's values split in time order into first and second half, judged by the same
///    rule (test and tolerances). When the halves already differ, the verdict is "too noisy to tell"
///    unless the whole ratio CI of B against A lies farther from 1 than A's own drift (the relative
///    gap between its halves' medians): a 2× slowdown is not hidden by a 10% drift. (Time-ordered
///    halves rather than alternate samples: alternating would hide exactly the drift — a neighbour's
///    build starting mid-run, a CPU frequency step — that makes a baseline untrustworthy; iid noise
///    is already accounted for by the test.)
public enum Compare {
    public static func run(a: [CompareSeries], b: [CompareSeries], labelA: String, labelB: String,
                           options: CompareOptions = CompareOptions()) -> CompareResult {
        var bByKey: [String: CompareSeries] = [:]
        for s in b { bByKey[s.key] = s }
        let aKeys = Set(a.map(\.key))
        var rows: [CompareRow] = []
        var onlyA: [String] = []
        for sa in a {
            guard let sb = bByKey[sa.key] else { onlyA.append(describe(sa)); continue }
            rows.append(row(sa, sb, options: options))
        }
        let onlyB = b.filter { !aKeys.contains($0.key) }.map(describe)
        return CompareResult(labelA: labelA, labelB: labelB, rows: rows, onlyInA: onlyA, onlyInB: onlyB)
    }

    static func describe(_ s: CompareSeries) -> String {
        [s.scenario, s.target, "\(s.metric)/\(s.phase)"].filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The judgement of B against A by the test and the tolerances (no A/A).
    struct Judgement {
        var p: Double?
        var delta: Double?
        var ci: ClosedRange<Double>?
        var checks: [(threshold: CompareThreshold, a: Double, b: Double, exceeded: Bool)]
        /// +1 B higher, −1 B lower, 0 not significant.
        var direction: Int
        var reason: String
    }

    static func judge(_ a: [Double], _ b: [Double], metric: String, phase: String, options: CompareOptions,
                      seed: UInt64) -> Judgement {
        let sa = a.sorted(), sb = b.sorted()
        let mw = CompareStatistics.mannWhitney(a, b)
        let ci = CompareStatistics.bootstrapRatioCI(sortedA: sa, sortedB: sb, resamples: options.bootstrapResamples, seed: seed)
        var checks: [(threshold: CompareThreshold, a: Double, b: Double, exceeded: Bool)] = []
        var worstMove = 0.0
        var worstDirection = 0
        for t in CompareThreshold.applicable(options.thresholds, metric: metric, phase: phase) {
            guard let pa = CompareStatistics.percentile(sorted: sa, t.percentile),
                  let pb = CompareStatistics.percentile(sorted: sb, t.percentile) else { continue }
            let ex = t.exceeded(a: pa, b: pb)
            checks.append((t, pa, pb, ex))
            if ex {
                let move = pa == 0 ? abs(pb - pa) : abs(pb - pa) / abs(pa)
                if move > worstMove { worstMove = move; worstDirection = pb > pa ? 1 : -1 }
            }
        }
        let p = mw?.p
        let significant = (p ?? 1) < options.alpha
        let ciExcludesOne = ci.map { !$0.contains(1) } ?? false
        var direction = 0
        var why: [String] = []
        why.append("p=" + formatP(p))
        if !significant {
            why.append("not significant at α=\(Format.fixed(options.alpha, 2))")
        } else if ci != nil && !ciExcludesOne {
            why.append("ratio CI includes 1")
        } else if worstDirection == 0 {
            why.append(checks.isEmpty ? "no tolerance set" : "within " + checks.map(\.threshold.label).joined(separator: ", "))
        } else {
            direction = worstDirection
            let moved = checks.filter(\.exceeded).map { c -> String in
                let pct = c.a == 0 ? "" : " \(c.b >= c.a ? "+" : "")\(Format.fixed((c.b - c.a) / abs(c.a) * 100, 1))%"
                return "p\(Format.fixed(c.threshold.percentile, 0))\(pct) beyond \(c.threshold.label)"
            }
            why.append(moved.joined(separator: ", "))
        }
        return Judgement(p: p, delta: mw?.cliffsDelta, ci: ci, checks: checks, direction: direction, reason: why.joined(separator: "; "))
    }

    static func formatP(_ p: Double?) -> String {
        guard let p else { return "–" }
        if p < 0.0001 { return "<0.0001" }
        return Format.fixed(p, 4)
    }

    static func row(_ sa: CompareSeries, _ sb: CompareSeries, options: CompareOptions) -> CompareRow {
        let polarity = MetricPolarity.declared(metric: sa.metric, phase: sa.phase, unit: sa.unit)
        let sortedA = sa.values.sorted(), sortedB = sb.values.sorted()
        let medA = CompareStatistics.median(sorted: sortedA), medB = CompareStatistics.median(sorted: sortedB)
        let ratio: Double? = (medA != nil && medB != nil && medA != 0) ? medB! / medA! : nil
        func loss(_ s: CompareSeries) -> Double { s.attempts == 0 ? 0 : Double(s.attempts - s.values.count) / Double(s.attempts) * 100 }
        var r = CompareRow(scenario: sa.scenario, probe: sa.probe, target: sa.target, metric: sa.metric, phase: sa.phase, unit: sa.unit,
                           polarity: polarity, nA: sa.values.count, nB: sb.values.count, lossPercentA: loss(sa), lossPercentB: loss(sb),
                           medianA: medA, medianB: medB, ratio: ratio, ratioCI: nil, pValue: nil, cliffsDelta: nil,
                           aaPValue: nil, aaFlagged: false, aaShift: nil, thresholdChecks: [], verdict: .tooFewSamples, reason: "")
        let minN = options.minimumSamples
        guard sa.values.count >= minN, sb.values.count >= minN else {
            r.reason = "n=\(sa.values.count) vs \(sb.values.count): at least \(minN) values per side are needed for a test"
            return r
        }
        // A stable per-row seed: the same inputs give the same intervals in every run of compare.
        var h: UInt64 = options.seed
        for byte in sa.key.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let j = judge(sa.values, sb.values, metric: sa.metric, phase: sa.phase, options: options, seed: h)
        r.pValue = j.p
        r.cliffsDelta = j.delta
        r.ratioCI = j.ci
        r.thresholdChecks = j.checks
        // A/A: A's first half against its second half, same rule.
        let half = sa.values.count / 2
        var aaNote = "A/A: n/a (fewer than \(2 * minN) values in A)"
        if half >= minN {
            let aa = judge(Array(sa.values[..<half]), Array(sa.values[half...]), metric: sa.metric, phase: sa.phase,
                           options: options, seed: h ^ 0xAA)
            r.aaPValue = aa.p
            r.aaFlagged = aa.direction != 0
            let first = CompareStatistics.median(sorted: sa.values[..<half].sorted()), second = CompareStatistics.median(sorted: sa.values[half...].sorted())
            if let first, let second, first != 0 { r.aaShift = abs(second / first - 1) }
            aaNote = "A/A " + (r.aaFlagged ? "differs (\(aa.reason))" : "ok (p=\(formatP(aa.p)))")
        }
        // A change whose whole ratio CI lies farther from 1 than A's own drift between its halves
        // is judged even when the A/A check flags A: the drift cannot explain it.
        var dwarfsDrift = false
        if r.aaFlagged, j.direction != 0, let ci = j.ci, let shift = r.aaShift {
            let margin = ci.lowerBound > 1 ? ci.lowerBound - 1 : (ci.upperBound < 1 ? 1 - ci.upperBound : 0)
            dwarfsDrift = margin > shift
            if dwarfsDrift {
                aaNote += "; the ratio CI lies beyond A's own drift (medians of its halves \(Format.fixed(shift * 100, 1))% apart), so the change is judged"
            }
        }
        if r.aaFlagged && !dwarfsDrift {
            r.verdict = .tooNoisy
        } else if j.direction == 0 {
            r.verdict = .noChange
        } else {
            switch polarity {
            case .lowerIsBetter: r.verdict = j.direction < 0 ? .better : .worse
            case .higherIsBetter: r.verdict = j.direction > 0 ? .better : .worse
            case .none: r.verdict = .changed
            }
        }
        r.reason = j.reason + "; " + aaNote
        return r
    }
}
