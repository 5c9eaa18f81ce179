import Foundation
import EdgeMeterCore
import EdgeMeterRun

/// The terminal verdict table `edgemeter run` prints last (before the report line): one row per
/// scenario of the suite, built from the run directory (summaries, scenario notes, reach-*.csv),
/// then the counts and the wall time from the command's start (validation included).
enum RunVerdict {
    static func table(suite: Suite, summaries: [Summary], directory: RunDirectory, wallSeconds: Double) -> String {
        let scenarios = suite.scenarios.map { s in
            VerdictTable.Scenario(name: s.name, kind: s.kind, topology: suite.topology(of: s), measures: ScenarioKinds.named(s.kind)?.declaration.measures)
        }
        var figures: [String: String] = [:]
        for s in suite.scenarios {
            if let f = ScenarioKinds.named(s.kind)?.keyFigure?(directory.url, s.name) { figures[s.name] = f }
        }
        let rows = VerdictTable.rows(scenarios: scenarios, summaries: summaries, notes: directory.scenarioNotes, figures: figures)
        var out = VerdictTable.render(rows, wallSeconds: wallSeconds, title: "\nsuite \(suite.name): verdicts")
        let comparisons = suite.comparisons.flatMap { comparisonLines($0, directory.url.appendingPathComponent($0.fileName)) }
        if !comparisons.isEmpty {
            out += "comparisons (B vs A; compare-*.csv, report.html):\n" + comparisons.map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return out
    }

    /// "startup: startup-lxc vs startup-docker: 4 better, 2 no significant change" per pair of a
    /// comparison's CSV (the verdicts in its rows counted), or why it has none.
    static func comparisonLines(_ c: SuiteComparison, _ url: URL) -> [String] {
        guard let text = try? String(contentsOf: url, encoding: .utf8), let rows = try? CSV.parse(text), let head = rows.first,
              let v = head.firstIndex(of: "verdict") else { return ["\(c.name): not computed (\(url.lastPathComponent) missing)"] }
        var order: [String] = []
        var counts: [String: [String: Int]] = [:]
        for r in rows.dropFirst() where r.count == head.count {
            let pair = "\(r[1]) vs \(r[0])"
            if counts[pair] == nil { order.append(pair) }
            counts[pair, default: [:]][r[v], default: 0] += 1
        }
        if order.isEmpty { return ["\(c.name): nothing compared (a side has no samples: see summary.md)"] }
        let verdictOrder = ["better", "worse", "no significant change", "changed", "too noisy to tell", "too few samples"]
        return order.map { pair in
            let n = counts[pair] ?? [:]
            let parts = verdictOrder.compactMap { k in n[k].map { "\($0) \(k)" } }
            return "\(c.name): \(pair): " + parts.joined(separator: ", ")
        }
    }
}
