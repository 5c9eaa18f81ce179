import Foundation
import Yams

/// A suite's `compare:` entry: scenarios of the same run set side by side with `compare`'s
/// statistics (medians, ratio with its bootstrap 95% CI, Mann–Whitney p, Cliff's delta, A/A check,
/// verdicts that know each metric's polarity). The first group is the baseline A; every other
/// group is B against it, metric by metric (same probe, metric, phase and unit; the scenario and
/// target names are not part of the key, so `startup-docker` and `startup-qemu` line up).
///
/// ```yaml
/// compare:
///   - name: startup
///     description: Docker vs LXC vs QEMU start-up
///     scenarios: [startup-docker, "startup-*"]        # names or globs (`*`), in order, no repeats
///   - name: tcp-connect-path
///     scenarios: [{scenario: loopback-tcp-connect, target: 127.0.0.1}, bridge-tcp-connect]
/// ```
public struct SuiteComparison: Sendable, Equatable {
    /// One side: a scenario's samples, all its targets or only `target`'s.
    public struct Group: Sendable, Equatable {
        public var scenario: String
        public var target: String?
        public init(scenario: String, target: String? = nil) { (self.scenario, self.target) = (scenario, target) }
        /// How tables name the group: `scenario` or `scenario (target)`.
        public var label: String { target.map { "\(scenario) (\($0))" } ?? scenario }
        public func matches(_ s: Sample) -> Bool { s.scenario == scenario && (target == nil || s.target == target) }
    }

    /// File-name safe: the table is written as `compare-<name>.csv`.
    public var name: String
    public var description: String
    /// Resolved (globs expanded), baseline first; at least two.
    public var groups: [Group]
    public var line: Int

    public init(name: String, description: String = "", groups: [Group], line: Int = 0) {
        (self.name, self.description, self.groups, self.line) = (name, description, groups, line)
    }

    public var fileName: String { "compare-\(name).csv" }

    static let keys = ["name", "description", "scenarios"]

    /// `*` matches any run of characters (none included); everything else matches itself.
    public static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && p[pi] != "*" && p[pi] == t[ti] { pi += 1; ti += 1 }
            else if pi < p.count && p[pi] == "*" { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Parses the suite's `compare:` value against its validated scenarios; every problem located.
    public static func parse(_ node: Node, file: String, scenarios: [ValidatedScenario]) -> ([SuiteComparison], [SuiteError]) {
        var out: [SuiteComparison] = []
        var problems: [SuiteError] = []
        let names = scenarios.map(\.name)
        func problem(_ line: Int, _ message: String) { problems.append(SuiteError(file: file, line: line, message: message)) }
        guard case .sequence(let seq) = node else {
            problem(node.mark?.line ?? 1, "`compare` must be a list of comparisons, each `{name: NAME, scenarios: [A, B, ...]}`")
            return ([], problems)
        }
        var seenNames: [String: Int] = [:]
        for entry in seq {
            let line = entry.mark?.line ?? 1
            guard case .mapping(let m) = entry else {
                problem(line, "a comparison must be a mapping `{name: NAME, scenarios: [A, B, ...]}`"); continue
            }
            var name: String?
            var description = ""
            var groups: [Group] = []
            var scenariosGiven = false
            var ok = true
            for (k, v) in m {
                let key = k.string ?? ""
                let kline = k.mark?.line ?? line
                switch key {
                case "name":
                    guard let s = v.string, !s.isEmpty, FileName.safe(s) == s else {
                        problem(kline, "comparison `name` must be letters, digits, '-', '_' or '.' (it names compare-NAME.csv), got \"\(v.string ?? "")\"")
                        ok = false; continue
                    }
                    name = s
                case "description":
                    description = v.string ?? ""
                case "scenarios":
                    scenariosGiven = true
                    guard case .sequence(let items) = v else {
                        problem(kline, "comparison `scenarios` must be a list of scenario names, globs (`startup-*`) or `{scenario: NAME, target: TARGET}`")
                        ok = false; continue
                    }
                    for item in items {
                        let iline = item.mark?.line ?? kline
                        var pattern: String?
                        var target: String?
                        if case .scalar(let s) = item { pattern = s.string }
                        else if case .mapping(let im) = item {
                            for (ik, iv) in im {
                                switch ik.string ?? "" {
                                case "scenario": pattern = iv.string
                                case "target": target = iv.string
                                default:
                                    problem(ik.mark?.line ?? iline, "unknown key `\(ik.string ?? "")` in a comparison item; expected `scenario` and optionally `target`")
                                    ok = false
                                }
                            }
                        }
                        guard let pattern, !pattern.isEmpty else {
                            problem(iline, "a comparison item must be a scenario name, a glob or `{scenario: NAME, target: TARGET}`"); ok = false; continue
                        }
                        let matched = pattern.contains("*") ? names.filter { glob(pattern, matches: $0) } : names.filter { $0 == pattern }
                        if matched.isEmpty {
                            let hint = pattern.contains("*") ? "" : suggestion(pattern, names)
                            problem(iline, "comparison item \"\(pattern)\" names no scenario of this suite\(hint)")
                            ok = false; continue
                        }
                        for n in matched where !groups.contains(Group(scenario: n, target: target)) {
                            groups.append(Group(scenario: n, target: target))
                        }
                    }
                default:
                    problem(kline, "unknown key `\(key)` in a comparison\(suggestion(key, keys)); expected one of: \(keys.joined(separator: ", "))")
                    ok = false
                }
            }
            guard let name else {
                if ok { problem(line, "a comparison needs a `name` (it names compare-NAME.csv)") }
                continue
            }
            if !scenariosGiven {
                // A misspelt `scenarios` is one mistake, not two.
                if ok { problem(line, "comparison \"\(name)\" needs `scenarios`: at least two scenarios to set side by side") }
                continue
            }
            if let first = seenNames[name] {
                problem(line, "duplicate comparison name \"\(name)\" (first used on line \(first)); names must be unique"); continue
            }
            seenNames[name] = line
            guard ok else { continue }
            if groups.count < 2 {
                problem(line, "comparison \"\(name)\" matches \(groups.count) scenario(s) (\(groups.map(\.label).joined(separator: ", "))): it needs at least two")
                continue
            }
            out.append(SuiteComparison(name: name, description: description, groups: groups, line: line))
        }
        return (out, problems)
    }
}

/// A comparison's samples, collected as the run goes, and its pairwise results.
public struct SuiteComparisonData: Sendable {
    public let comparison: SuiteComparison
    /// Per group, its samples with scenario and target blanked so the groups line up.
    public private(set) var samples: [[Sample]]

    public init(_ c: SuiteComparison) {
        comparison = c
        samples = Array(repeating: [], count: c.groups.count)
    }

    public mutating func add(_ s: Sample) {
        for (i, g) in comparison.groups.enumerated() where g.matches(s) {
            var x = s
            x.scenario = ""
            x.target = ""
            samples[i].append(x)
        }
    }

    /// B (each group after the first) against A (the first), by `Compare.run`. Groups with no
    /// sample (not run) are skipped and named in `missing`.
    public func results(options: CompareOptions = CompareOptions()) -> (pairs: [CompareResult], missing: [String]) {
        let g = comparison.groups
        guard !samples[0].isEmpty else { return ([], g.map(\.label).enumerated().filter { samples[$0.offset].isEmpty }.map(\.element)) }
        let a = CompareSeries.group(samples[0])
        var pairs: [CompareResult] = []
        var missing: [String] = []
        for i in 1..<g.count {
            if samples[i].isEmpty { missing.append(g[i].label); continue }
            pairs.append(Compare.run(a: a, b: CompareSeries.group(samples[i]), labelA: g[0].label, labelB: g[i].label, options: options))
        }
        return (pairs, missing)
    }
}

/// The "Comparisons" outputs: `compare-<name>.csv` (report.html and report.md show every
/// `compare*.csv` as a table) and summary.md's section.
public enum SuiteCompareRender {
    public static let csvHeader = ["a", "b"] + CompareRender.csvHeader

    /// One row per metric and phase per B-vs-A pair; figures in each row's unit, ratio = median(B)/median(A).
    public static func csv(_ pairs: [CompareResult]) -> String {
        var out = CSV.line(csvHeader)
        for r in pairs {
            guard let rows = try? CSV.parse(CompareRender.csv(r)) else { continue }
            for row in rows.dropFirst() where row.count == CompareRender.csvHeader.count {
                out += CSV.line([r.labelA, r.labelB] + row)
            }
        }
        return out
    }

    /// "B vs A: 2 better, 1 worse, 3 no change" for one pair (the terminal and the section).
    public static func tally(_ r: CompareResult) -> String {
        let order: [CompareVerdict] = [.better, .worse, .noChange, .changed, .tooNoisy, .tooFewSamples]
        let counts = order.compactMap { v -> String? in
            let n = r.rows.filter { $0.verdict == v }.count
            return n == 0 ? nil : "\(n) \(v.rawValue)"
        }
        return counts.isEmpty ? "nothing in common to compare" : counts.joined(separator: ", ")
    }

    /// summary.md's `## Comparisons` section for all of a suite's comparisons.
    public static func markdown(_ all: [(SuiteComparison, [CompareResult], [String])], options: CompareOptions = CompareOptions()) -> String {
        var out = "## Comparisons\n\n"
        out += "Inside this run, by `compare`'s statistics: ratio = median(B) / median(A) with its bootstrap 95% CI; p = Mann–Whitney U; "
        out += "δ = Cliff's delta; a change needs p < \(Format.fixed(options.alpha, 2)), a ratio CI that excludes 1 and a move beyond a tolerance; "
        out += "better/worse by the metric's polarity (durations: lower is better); \"too noisy to tell\" when A's own halves already differ (A/A check).\n\n"
        for (c, pairs, missing) in all {
            out += "### \(c.name)\(c.description.isEmpty ? "" : ": \(c.description)")\n\n"
            out += "A (baseline) = \(c.groups[0].label); file \(c.fileName).\n\n"
            if !missing.isEmpty { out += "Not compared (no samples: not run or failed): \(missing.joined(separator: ", ")).\n\n" }
            if pairs.isEmpty { out += "No pair to compare.\n\n"; continue }
            out += "| B vs A | metric/phase | unit | n A | n B | median A | median B | ratio [95% CI] | p | δ | verdict |\n"
            out += "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|\n"
            for r in pairs {
                for row in r.rows {
                    var ratio = CompareRender.num(row.ratio)
                    if let ci = row.ratioCI { ratio += " [\(Format.fixed(ci.lowerBound, 3)), \(Format.fixed(ci.upperBound, 3))]" }
                    let verdict = row.verdict == .better || row.verdict == .worse ? "**\(row.verdict.rawValue)**" : row.verdict.rawValue
                    let cells = [r.labelB, "\(row.metric)/\(row.phase)", row.unit, "\(row.nA)", "\(row.nB)",
                                 CompareRender.num(row.medianA), CompareRender.num(row.medianB), ratio, Compare.formatP(row.pValue),
                                 row.cliffsDelta.map { Format.fixed($0, 3) } ?? "–", verdict]
                    out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
                }
            }
            out += "\n"
            for r in pairs { out += "- \(r.labelB) vs \(r.labelA): \(tally(r))\n" }
            out += "\n"
        }
        return out
    }
}
