import Foundation

/// `summary.csv`: one row per summary key; durations in the row's `unit`. Columns are listed in
/// reports/README.md.
public enum SummaryCSV {
    public static let header = ["scenario", "probe", "target", "metric", "phase", "unit", "sent", "received",
                                "loss_pct", "min", "mean", "max", "mdev", "p50", "p90", "p99", "p99_9",
                                "median_ci95_low", "median_ci95_high", "timeout", "refused", "unreachable", "error"]

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
                             "\(s.statusCounts[.unreachable] ?? 0)", "\(s.statusCounts[.error] ?? 0)"])
        }
        return out
    }
}

/// A scenario that did not produce samples, and why (engine missing, setup failed, interrupted).
public struct ScenarioNote: Sendable, Equatable, Codable {
    public var scenario: String
    public var status: String
    public var reason: String
    public init(scenario: String, status: String, reason: String) {
        self.scenario = scenario
        self.status = status
        self.reason = reason
    }
}

/// `summary.md`: one table per scenario, units in the headers, failures spelled out below.
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
            let units = Set(rows.map(\.key.unit))
            let unit = units.count == 1 ? units.first! : nil
            func h(_ name: String) -> String { unit.map { "\(name) (\($0))" } ?? name }
            var head = ["probe", "target", "metric", "phase", "sent", "received", "loss (%)"]
            if unit == nil { head.append("unit") }
            head += [h("min"), h("mean"), h("max"), h("mdev"), h("p50"), h("p90"), h("p99"), h("p99.9"), h("median 95% CI")]
            out += "| " + head.joined(separator: " | ") + " |\n"
            out += "|" + head.map { _ in "---" }.joined(separator: "|") + "|\n"
            for s in rows {
                let d = 3
                var cells = [s.key.probe, s.key.target, s.key.metric, s.key.phase, "\(s.sent)", "\(s.received)",
                             Format.fixed(s.lossPercent, 1)]
                if unit == nil { cells.append(s.key.unit) }
                cells += [s.min, s.mean, s.max, s.mdev, s.p50, s.p90, s.p99, s.p999].map { Format.fixed($0, d).orDash }
                if let ci = s.medianCI95 {
                    cells.append("\(Format.fixed(ci.lowerBound, d)) – \(Format.fixed(ci.upperBound, d))")
                } else {
                    cells.append("–")
                }
                out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
            }
            let failures = rows.filter { $0.received < $0.sent }
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
}

extension String {
    var orDash: String { isEmpty ? "–" : self }
}
