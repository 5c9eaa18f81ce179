import Foundation

/// `--json`: the summaries as a JSON array for scripts (same fields as summary.csv; null = no value),
/// plus `table`: which summary.md table shows the row (`latency`, `startup`, `counter`, `load`).
public enum SummaryJSON {
    public static func render(_ summaries: [Summary], runDirectory: String? = nil, complete: Bool = true) -> String {
        func num(_ v: Double?) -> Any { v.map { ($0 * 1e6).rounded() / 1e6 } ?? NSNull() }
        let rows: [[String: Any]] = summaries.map { s in
            [
                "scenario": s.key.scenario, "probe": s.key.probe, "target": s.key.target, "metric": s.key.metric,
                "phase": s.key.phase, "unit": s.key.unit, "sent": s.sent, "received": s.received,
                "loss_pct": num(s.lossPercent), "min": num(s.min), "mean": num(s.mean), "max": num(s.max),
                "mdev": num(s.mdev), "sum": num(s.sum), "table": SummaryTableKind.of(s.key).rawValue, "p50": num(s.p50), "p90": num(s.p90), "p99": num(s.p99), "p99_9": num(s.p999),
                "median_ci95": s.medianCI95.map { [num($0.lowerBound), num($0.upperBound)] } ?? NSNull(),
                "status_counts": Dictionary(uniqueKeysWithValues: s.statusCounts.map { ($0.key.rawValue, $0.value) }),
            ]
        }
        var top: [String: Any] = ["summaries": rows, "complete": complete]
        if let runDirectory { top["run_directory"] = runDirectory }
        let data = (try? JSONSerialization.data(withJSONObject: top, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
