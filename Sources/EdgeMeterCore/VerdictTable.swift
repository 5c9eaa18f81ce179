import Foundation

/// The short table `edgemeter run` prints last on the terminal: one row per scenario with what it
/// measured, its key figure and its verdict (`ok`, `failed: why`, `not run: why`, `interrupted`),
/// then the counts and the suite's wall time. Built from what the run directory keeps (summaries,
/// scenario notes); pure, so it is tested without running anything.
public enum VerdictTable {
    public struct Row: Sendable, Equatable {
        public var scenario: String
        public var measured: String
        public var figure: String
        public var verdict: String
        public var isOK: Bool { verdict == "ok" }
        public var notRun: Bool { verdict.hasPrefix("not run") }
    }

    /// One suite scenario as the table needs it.
    public struct Scenario: Sendable {
        public var name: String
        public var kind: String
        public var topology: String?
        /// What its kind measures (`KindDeclaration.measures`); the kind's name when nil.
        public var measures: (@Sendable ([Summary]) -> String)?
        public init(name: String, kind: String, topology: String? = nil, measures: (@Sendable ([Summary]) -> String)? = nil) {
            (self.name, self.kind, self.topology, self.measures) = (name, kind, topology, measures)
        }
    }

    /// The phase whose median is the scenario's key figure, in order of preference.
    static let decisivePhases = ["total", "echo", "connect", "request", "move"]

    /// "p50 0.071 ms (n=400, 0% loss)" for the decisive summary of a scenario, or "–".
    public static func keyFigure(kind: String, summaries: [Summary]) -> String {
        let rows = summaries.filter { $0.key.probe != "wire" }
        if kind == "load" {
            if let s = rows.first(where: { $0.key.metric.hasPrefix("corrected") || $0.key.phase == "corrected" }) ?? rows.first(where: { $0.key.unit == "ms" }) {
                return "\(s.key.metric)/\(s.key.phase) \(num(s.p50 ?? s.mean)) \(s.key.unit)"
            }
        }
        var pick: Summary?
        for phase in decisivePhases {
            if let s = rows.first(where: { $0.key.phase == phase && $0.key.metric != "errors" }) { pick = s; break }
        }
        guard let s = pick ?? rows.first(where: { $0.key.unit == "ms" }) ?? rows.first else { return "–" }
        let targets = Set(rows.filter { $0.key.phase == s.key.phase && $0.key.metric == s.key.metric }.map(\.key.target))
        var text = "\(s.key.phase) p50 \(num(s.p50))\(s.key.unit.isEmpty ? "" : " " + s.key.unit)"
        if targets.count > 1 { text += " (\(s.key.target), 1 of \(targets.count) targets)" }
        let loss = s.lossPercent > 0 ? ", \(Format.fixed(s.lossPercent, 1))% failed" : ""
        return text + " n=\(s.received)\(loss)"
    }

    static func num(_ v: Double?) -> String {
        guard let v else { return "–" }
        let a = abs(v)
        if a >= 100 { return Format.fixed(v, 0) }
        if a >= 10 { return Format.fixed(v, 1) }
        if a >= 1 { return Format.fixed(v, 2) }
        return String(format: "%.3g", v)
    }

    /// Rows in suite order. `figures` overrides a scenario's key figure (e.g. a reach matrix's
    /// "21 probes, 14 reachable", which has no samples).
    public static func rows(scenarios: [Scenario], summaries: [Summary], notes: [ScenarioNote], figures: [String: String] = [:]) -> [Row] {
        let failures = RunOutcome.failures(summaries: summaries)
        return scenarios.map { sc in
            let mine = summaries.filter { $0.key.scenario == sc.name }
            var measured = sc.measures?(mine) ?? sc.kind
            if let t = sc.topology { measured += " (\(t))" }
            let figure = figures[sc.name] ?? keyFigure(kind: sc.kind, summaries: mine)
            let verdict: String
            let n = notes.filter { $0.scenario == sc.name && $0.status != "lab" }
            if let x = n.first(where: { $0.status == "not run" }) {
                verdict = "not run: " + x.reason
            } else if let x = n.first(where: { $0.status == "failed" }) {
                verdict = "failed: " + x.reason
            } else if let x = n.first(where: { $0.status == "interrupted" }) {
                verdict = "interrupted: " + x.reason
            } else if let f = failures.first(where: { $0.scenario == sc.name }) {
                verdict = "failed: " + (f.target.isEmpty ? f.reason : "\(f.target): \(f.reason)")
            } else if mine.isEmpty && figures[sc.name] == nil {
                verdict = "failed: no sample recorded"
            } else {
                verdict = "ok"
            }
            return Row(scenario: sc.name, measured: measured, figure: figure, verdict: verdict)
        }
    }

    /// The table as aligned text columns, cells cut to `width` characters, then the counts and the
    /// wall time ("23 scenarios: 20 ok, 1 failed, 2 not run; wall time 8 min 12 s").
    public static func render(_ rows: [Row], wallSeconds: Double, title: String, width: Int = 60) -> String {
        func cut(_ s: String) -> String {
            let one = s.replacingOccurrences(of: "\n", with: " ")
            return one.count <= width ? one : String(one.prefix(width - 1)) + "…"
        }
        let header = ["scenario", "measured", "key figure", "verdict"]
        let cells = rows.map { [cut($0.scenario), cut($0.measured), cut($0.figure), cut($0.verdict)] }
        var widths = header.map(\.count)
        for c in cells { for i in 0..<3 { widths[i] = max(widths[i], c[i].count) } }
        func line(_ c: [String]) -> String {
            (0..<3).map { c[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  " + c[3]
        }
        var out = "\(title)\n" + line(header) + "\n" + line(widths.map { String(repeating: "-", count: $0) } + ["-------"]) + "\n"
        for c in cells { out += line(c) + "\n" }
        out += countsLine(rows, wallSeconds: wallSeconds) + "\n"
        return out
    }

    public static func countsLine(_ rows: [Row], wallSeconds: Double) -> String {
        let ok = rows.filter(\.isOK).count
        let notRun = rows.filter(\.notRun).count
        let failed = rows.count - ok - notRun
        let mins = Int(wallSeconds) / 60, secs = Int(wallSeconds.rounded(.down)) % 60
        let wall = mins > 0 ? "\(mins) min \(secs) s" : String(format: "%.1f s", wallSeconds)
        return "\(rows.count) scenarios: \(ok) ok, \(failed) failed, \(notRun) not run; wall time \(wall)"
    }
}
