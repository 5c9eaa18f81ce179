import Foundation

/// `compare` output: a Markdown report (compare.md, the terminal) and one CSV row per metric and
/// phase (compare.csv). Figures are in each row's unit; ratio = median(B) / median(A).
public enum CompareRender {
    public static let csvHeader = ["scenario", "probe", "target", "metric", "phase", "unit", "polarity", "n_a", "n_b",
                                   "loss_pct_a", "loss_pct_b", "median_a", "median_b", "ratio", "ratio_ci95_low", "ratio_ci95_high",
                                   "mann_whitney_p", "cliffs_delta", "aa_p", "aa_flagged", "verdict", "reason"]

    public static func csv(_ r: CompareResult) -> String {
        var out = CSV.line(csvHeader)
        for row in r.rows {
            out += CSV.line([row.scenario, row.probe, row.target, row.metric, row.phase, row.unit, row.polarity.rawValue,
                             "\(row.nA)", "\(row.nB)", Format.fixed(row.lossPercentA, 2), Format.fixed(row.lossPercentB, 2),
                             Format.fixed(row.medianA, 6), Format.fixed(row.medianB, 6), Format.fixed(row.ratio, 6),
                             Format.fixed(row.ratioCI?.lowerBound, 6), Format.fixed(row.ratioCI?.upperBound, 6),
                             row.pValue.map { String(format: "%.6g", $0) } ?? "", Format.fixed(row.cliffsDelta, 4),
                             row.aaPValue.map { String(format: "%.6g", $0) } ?? "", row.aaFlagged ? "true" : "false",
                             row.verdict.rawValue, row.reason])
        }
        return out
    }

    /// Significant figures that keep sub-millisecond loopback times readable.
    static func num(_ v: Double?) -> String {
        guard let v else { return "–" }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1000 { return Format.fixed(v, 0) }
        if a >= 10 { return Format.fixed(v, 2) }
        if a >= 0.1 { return Format.fixed(v, 3) }
        return String(format: "%.3g", v)
    }

    /// One line that says how many rows the A/A check flagged (the report's "A/A line").
    public static func aaLine(_ r: CompareResult) -> String {
        let tested = r.rows.filter { $0.aaPValue != nil }
        let flagged = tested.filter(\.aaFlagged)
        if tested.isEmpty { return "A/A check: not run (no metric has enough values in A to split in two)" }
        if flagged.isEmpty {
            return "A/A check: A's first and second halves agree on all \(tested.count) tested metric(s) (no drift beyond the tolerances)"
        }
        let names = flagged.map { "\($0.metric)/\($0.phase)" }
        return "A/A check: A's halves differ on \(flagged.count) of \(tested.count) metric(s) (\(names.joined(separator: ", "))): those are \"too noisy to tell\""
    }

    /// The closing line: what the exit status will be and why.
    public static func verdictLine(_ r: CompareResult) -> String {
        let w = r.regressions.count, b = r.improvements.count
        let noisy = r.rows.filter { $0.verdict == .tooNoisy }.count
        var s: String
        switch r.exitStatus {
        case 2: s = "verdict: \(w) regression(s)\(b > 0 ? ", \(b) improvement(s)" : "") (exit status 2)"
        case 4: s = "verdict: \(b) improvement(s), no regression (exit status 4)"
        default: s = "verdict: no significant change (exit status 0)"
        }
        if noisy > 0 { s += "; \(noisy) too noisy to tell" }
        return s
    }

    public static func markdown(_ r: CompareResult, options: CompareOptions) -> String {
        var out = "# Compare: \(r.labelA) (A) → \(r.labelB) (B)\n\n"
        out += "ratio = median(B) / median(A) with its bootstrap 95% CI (\(options.bootstrapResamples) resamples); "
        out += "p = Mann–Whitney U (two-sided; exact up to 20 per side without ties, else normal approximation, tie-corrected); δ = Cliff's delta, P(B>A) − P(B<A). "
        out += "A change needs p < \(Format.fixed(options.alpha, 2)), a ratio CI that excludes 1 and a move beyond a tolerance "
        out += "(\(Set(options.thresholds.map(\.label)).sorted().joined(separator: ", ")) unless set per metric with --threshold). "
        out += "A/A = A's first half against its second half, by the same rule.\n\n"
        out += "| scenario | target | metric/phase | unit | n A | n B | median A | median B | ratio [95% CI] | p | δ | A/A p | verdict |\n"
        out += "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n"
        for row in r.rows {
            var ratio = num(row.ratio)
            if let ci = row.ratioCI { ratio += " [\(Format.fixed(ci.lowerBound, 3)), \(Format.fixed(ci.upperBound, 3))]" }
            let verdict: String
            switch row.verdict {
            case .worse: verdict = "**worse**"
            case .better: verdict = "**better**"
            default: verdict = row.verdict.rawValue
            }
            let cells = [row.scenario, row.target, "\(row.metric)/\(row.phase)", row.unit, "\(row.nA)", "\(row.nB)",
                         num(row.medianA), num(row.medianB), ratio, Compare.formatP(row.pValue),
                         row.cliffsDelta.map { Format.fixed($0, 3) + " " + CompareStatistics.cliffsMagnitude($0) } ?? "–",
                         Compare.formatP(row.aaPValue), verdict]
            out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
        }
        if r.rows.isEmpty { out += "\nNo metric and phase is present in both A and B.\n" }
        let lossRows = r.rows.filter { $0.lossPercentA > 0 || $0.lossPercentB > 0 }
        if !lossRows.isEmpty {
            out += "\nFailed attempts (not in the figures above): " + lossRows.map {
                "\($0.metric)/\($0.phase) \(Format.fixed($0.lossPercentA, 1))% → \(Format.fixed($0.lossPercentB, 1))%"
            }.joined(separator: "; ") + "\n"
        }
        let judged = r.rows.filter { $0.verdict != .noChange && $0.verdict != .tooFewSamples }
        if !judged.isEmpty {
            out += "\nWhy:\n"
            for row in judged { out += "- \(row.metric)/\(row.phase)\(row.target.isEmpty ? "" : " (\(row.target))"): \(row.verdict.rawValue) — \(row.reason)\n" }
        }
        if !r.onlyInA.isEmpty { out += "\nOnly in A (not compared): \(r.onlyInA.joined(separator: ", "))\n" }
        if !r.onlyInB.isEmpty { out += "\nOnly in B (not compared): \(r.onlyInB.joined(separator: ", "))\n" }
        out += "\n" + aaLine(r) + "\n"
        out += verdictLine(r) + "\n"
        return out
    }
}
