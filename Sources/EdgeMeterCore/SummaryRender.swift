import Foundation

/// `summary.csv`: one row per summary key; durations in the row's `unit`. Columns are listed in
/// reports/README.md.
public enum SummaryCSV {
    public static let header = ["scenario", "probe", "target", "metric", "phase", "unit", "sent", "received",
                                "loss_pct", "min", "mean", "max", "mdev", "p50", "p90", "p99", "p99_9",
                                "median_ci95_low", "median_ci95_high", "timeout", "refused", "unreachable", "error", "sum"]

    public static func render(_ summaries: [Summary]) -> String {
        var out = CSV.line(header)
        for s in summaries {
            let k = s.key
            out += CSV.line([k.scenario, k.probe, k.target, k.metric, k.phase, k.unit, "\(s.sent)", "\(s.received)",
                             Format.fixed(s.lossPercent, 3), Format.fixed(s.min, 6), Format.fixed(s.mean, 6),
                             Format.fixed(s.max, 6), Format.fixed(s.mdev, 6), Format.fixed(s.p50, 6),
                             Format.fixed(s.p90, 6), Format.fixed(s.p99, 6), Format.fixed(s.p999, 6),
                             Format.fixed(s.medianCI95?.lowerBound, 6), Format.fixed(s.medianCI95?.upperBound, 6),
                             "\(s.statusCounts[.timeout] ?? 0)", "\(s.statusCounts[.refused] ?? 0)",
                             "\(s.statusCounts[.unreachable] ?? 0)", "\(s.statusCounts[.error] ?? 0)",
                             Format.fixed(s.sum, 6)])
        }
        return out
    }
}

/// A scenario that did not produce samples, and why (engine missing, setup failed, interrupted).
public struct ScenarioNote: Sendable, Equatable, Codable {
    public var scenario: String
    public var status: String
    public var reason: String
    public init(scenario: String, status: String, reason: String) { (self.scenario, self.status, self.reason) = (scenario, status, reason) }
}

/// Which table of summary.md shows a summary row, decided by the row's probe, metric and unit.
public enum SummaryTableKind: String, Sendable, CaseIterable {
    /// Durations and other distributions (ping, tcping, http and calc phases, wire timings,
    /// app − wire differences): sent/received/loss, exact min/mean/max/mdev, percentiles, median CI.
    case latency
    /// Container/VM start-up phases (`probe=startup`, `metric=startup`, ms): one row per backend,
    /// median and p90 of each phase, ok/attempts.
    case startup
    /// Counters (`unit=count`, e.g. capture_received, capture_dropped): one integer total per row.
    case counter
    /// HTTP load aggregates (`probe=load`): requests, rates, latency percentiles corrected and
    /// uncorrected, errors by kind.
    case load

    public static func of(_ key: SummaryKey) -> SummaryTableKind {
        if key.probe == "load" && LoadTable.understands(key) { return .load }
        if key.probe == "startup" && key.metric == "startup" && key.unit == "ms" { return .startup }
        if key.unit == "count" { return .counter }
        return .latency
    }
}

/// `summary.md`: per scenario, one table for each kind of row it has (see `SummaryTableKind`),
/// units in every header, failures spelled out below, then the sections added at run time.
public enum SummaryMarkdown {
    public static func render(title: String, summaries: [Summary], notes: [ScenarioNote] = [], complete: Bool = true,
                              extraSections: [String] = []) -> String {
        var out = "# \(title)\n\n"
        if !complete {
            out += "> **Incomplete run**: it was stopped before every scenario finished. The figures below cover only what was measured.\n\n"
        }
        var scenarios: [String] = []
        for s in summaries where !scenarios.contains(s.key.scenario) { scenarios.append(s.key.scenario) }
        for n in notes where !scenarios.contains(n.scenario) { scenarios.append(n.scenario) }
        for scenario in scenarios {
            out += "## \(scenario)\n\n"
            for note in notes where note.scenario == scenario {
                out += "- **\(note.status)**: \(note.reason)\n"
            }
            if notes.contains(where: { $0.scenario == scenario }) { out += "\n" }
            let rows = summaries.filter { $0.key.scenario == scenario }
            if rows.isEmpty { continue }
            var kinds: [SummaryTableKind] = []
            for r in rows where !kinds.contains(SummaryTableKind.of(r.key)) { kinds.append(SummaryTableKind.of(r.key)) }
            for (i, kind) in kinds.enumerated() {
                if i > 0 { out += "\n" }
                let part = rows.filter { SummaryTableKind.of($0.key) == kind }
                switch kind {
                case .latency: out += latencyTable(part)
                case .startup: out += startupTable(part)
                case .counter: out += counterTable(part)
                case .load: out += LoadTable.render(part)
                }
            }
            // Load rows have their errors in columns; every other failed attempt is listed here.
            let failures = rows.filter { $0.received < $0.sent && SummaryTableKind.of($0.key) != .load }
            if !failures.isEmpty {
                out += "\n"
                for s in failures {
                    let parts = SampleStatus.allCases.filter { $0 != .ok }.compactMap { st -> String? in
                        guard let c = s.statusCounts[st], c > 0 else { return nil }
                        return "\(c) \(st.rawValue)"
                    }
                    out += "- \(s.key.target) \(s.key.phase): \(parts.joined(separator: ", "))\n"
                }
            }
            out += "\n"
        }
        for section in extraSections { out += section + "\n" }
        return out
    }

    static func row(_ cells: [String]) -> String {
        "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
    }

    static func table(_ head: [String], _ rows: [[String]]) -> String {
        var out = row(head)
        out += "|" + head.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { out += row(r) }
        return out
    }

    /// The distribution table: 16 or 17 columns (a unit column when the rows' units differ).
    static func latencyTable(_ rows: [Summary]) -> String {
        let units = Set(rows.map(\.key.unit))
        let unit = units.count == 1 ? units.first! : nil
        func h(_ name: String) -> String { unit.map { "\(name) (\($0))" } ?? name }
        var head = ["probe", "target", "metric", "phase", "sent", "received", "loss (%)"]
        if unit == nil { head.append("unit") }
        head += [h("min"), h("mean"), h("max"), h("mdev"), h("p50"), h("p90"), h("p99"), h("p99.9"), h("median 95% CI")]
        let d = 3
        let body: [[String]] = rows.map { s in
            var cells = [s.key.probe, s.key.target, s.key.metric, s.key.phase, "\(s.sent)", "\(s.received)",
                         Format.fixed(s.lossPercent, 1)]
            if unit == nil { cells.append(s.key.unit) }
            cells += [s.min, s.mean, s.max, s.mdev, s.p50, s.p90, s.p99, s.p999].map { Format.fixed($0, d).orDash }
            if let ci = s.medianCI95 {
                cells.append("\(Format.fixed(ci.lowerBound, d)) – \(Format.fixed(ci.upperBound, d))")
            } else {
                cells.append("–")
            }
            return cells
        }
        return table(head, body)
    }

    /// Start-up phases in the order they happen; other phases follow in first-seen order.
    static let startupPhaseOrder = ["create", "start", "running", "ready", "stop", "remove", "total"]

    /// One row per backend (target): `p50 / p90` of each phase in ms, and ok/attempts from the
    /// `total` phase (attempts = samples of the phase with the most, ok = `total`'s ok samples).
    static func startupTable(_ rows: [Summary]) -> String {
        var phases = startupPhaseOrder.filter { p in rows.contains { $0.key.phase == p } }
        for r in rows where !phases.contains(r.key.phase) { phases.append(r.key.phase) }
        var targets: [String] = []
        for r in rows where !targets.contains(r.key.target) { targets.append(r.key.target) }
        let head = ["backend"] + phases.map { "\($0) p50 / p90 (ms)" } + ["ok / attempts (count)"]
        let body: [[String]] = targets.map { t in
            let mine = rows.filter { $0.key.target == t }
            var cells = [t]
            for p in phases {
                if let s = mine.first(where: { $0.key.phase == p }), let p50 = s.p50, let p90 = s.p90 {
                    cells.append("\(Format.fixed(p50, 3)) / \(Format.fixed(p90, 3))")
                } else {
                    cells.append("–")
                }
            }
            let attempts = mine.map(\.sent).max() ?? 0
            let ok = mine.first(where: { $0.key.phase == "total" })?.received ?? mine.map(\.received).min() ?? 0
            cells.append("\(ok) / \(attempts)")
            return cells
        }
        return table(head, body)
    }

    /// Counters: the total of the row's values as an integer; `samples` appears when a row sums
    /// more than one sample (e.g. one per flow).
    static func counterTable(_ rows: [Summary]) -> String {
        let many = rows.contains { $0.sent > 1 }
        let head = ["probe", "target", "metric", "phase", "value (count)"] + (many ? ["samples"] : [])
        let body: [[String]] = rows.map { s in
            [s.key.probe, s.key.target, s.key.metric, s.key.phase, Format.fixed(s.sum, 0).orDash] + (many ? ["\(s.sent)"] : [])
        }
        return table(head, body)
    }
}

/// The load table of summary.md, from the aggregate samples of `LoadReport.samples`: metric
/// `latency` (phases `corrected_p50` ... `uncorrected_stddev`, ms), `throughput` (`achieved`,
/// `requested`, `interval`, req/s), `transfer` (`read`, B/s), `responses` (`status_<code>`, count)
/// and `errors` (one phase per kind, count).
public enum LoadTable {
    static let percentiles: [(phase: String, header: String)] = [
        ("p50", "p50"), ("p75", "p75"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("p9999", "p99.99"),
        ("p99999", "p99.999"), ("max", "max"), ("mean", "mean"), ("stddev", "stddev"),
    ]
    static let errorKinds = ["connect", "timeout", "reset", "status", "body"]

    static func understands(_ k: SummaryKey) -> Bool {
        switch (k.metric, k.unit) {
        case ("latency", "ms"): return k.phase.hasPrefix("corrected_") || k.phase.hasPrefix("uncorrected_")
        case ("throughput", "req/s"), ("transfer", "B/s"): return true
        case ("responses", "count"): return k.phase.hasPrefix("status_")
        case ("errors", "count"): return true
        default: return false
        }
    }

    static func render(_ rows: [Summary]) -> String {
        var targets: [String] = []
        for r in rows where !targets.contains(r.key.target) { targets.append(r.key.target) }
        func value(_ mine: [Summary], _ metric: String, _ phase: String) -> Double? {
            mine.first { $0.key.metric == metric && $0.key.phase == phase }?.mean
        }
        var errorKinds = errorKinds
        for r in rows where r.key.metric == "errors" && !errorKinds.contains(r.key.phase) { errorKinds.append(r.key.phase) }
        // 1. Volume, rates and errors.
        let head1 = ["target", "requests (count)", "responses (count)", "achieved (req/s)", "requested (req/s)",
                     "per-second min – max (req/s)", "read (B/s)"] + errorKinds.map { "\($0) errors (count)" } + ["statuses (count)"]
        var body1: [[String]] = []
        var body2: [[String]] = []
        for t in targets {
            let mine = rows.filter { $0.key.target == t }
            let statuses = mine.filter { $0.key.metric == "responses" }
            let responses = statuses.compactMap(\.sum).reduce(0, +)
            let errors = errorKinds.map { value(mine, "errors", $0) }
            // status and body errors are responses too; the others never got one.
            let unanswered = zip(errorKinds, errors).filter { !["status", "body"].contains($0.0) }.compactMap(\.1).reduce(0, +)
            let perSecond = mine.first { $0.key.metric == "throughput" && $0.key.phase == "interval" }
            var cells = [t, Format.fixed(responses + unanswered, 0), Format.fixed(responses, 0),
                         Format.fixed(value(mine, "throughput", "achieved"), 1).orDash,
                         Format.fixed(value(mine, "throughput", "requested"), 1).orDash,
                         perSecond.map { "\(Format.fixed($0.min, 0)) – \(Format.fixed($0.max, 0))" } ?? "–",
                         Format.fixed(value(mine, "transfer", "read"), 0).orDash]
            cells += errors.map { Format.fixed($0, 0).orDash }
            cells.append(statuses.isEmpty ? "–" : statuses.map { "\($0.key.phase.dropFirst("status_".count)): \(Format.fixed($0.sum, 0))" }.joined(separator: ", "))
            body1.append(cells)
            // 2. Latency: corrected (from the intended send time, open loop only) and uncorrected.
            for series in ["corrected", "uncorrected"] where mine.contains(where: { $0.key.phase.hasPrefix(series + "_") }) {
                body2.append([t, series] + percentiles.map { Format.fixed(value(mine, "latency", "\(series)_\($0.phase)"), 3).orDash })
            }
        }
        var out = SummaryMarkdown.table(head1, body1)
        if !body2.isEmpty {
            out += "\n" + SummaryMarkdown.table(["target", "latency"] + percentiles.map { "\($0.header) (ms)" }, body2)
        }
        return out
    }
}

extension String {
    var orDash: String { isEmpty ? "–" : self }
}
