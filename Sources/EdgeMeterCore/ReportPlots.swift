import Foundation

/// One chart of the report: a file-safe id (`plots/<id>.svg`), a title, what it shows, the SVG.
public struct ReportChart: Sendable, Equatable {
    public var id: String
    public var title: String
    public var caption: String
    public var svg: String
}

/// A table of the report (summary, compare), as text cells.
public struct ReportTable: Sendable, Equatable {
    public var title: String
    public var header: [String]
    public var rows: [[String]]
    public init(title: String, header: [String], rows: [[String]]) { (self.title, self.header, self.rows) = (title, header, rows) }
}

/// A section of the report: a heading, an optional note, charts, tables.
public struct ReportSection: Sendable, Equatable {
    public var heading: String
    public var note: String?
    public var charts: [ReportChart] = []
    public var tables: [ReportTable] = []
}

/// What the report is made from, besides the samples: the files a run directory may hold.
/// Each pair is (file name, file text).
public struct ReportFiles: Sendable {
    /// summary.csv.
    public var summaryCSV: String?
    /// `reach-<scenario>.csv` (from,to,probe,reachable,why_not,rtt_p50_ms).
    public var reach: [(name: String, text: String)] = []
    /// A migration run's request timeline: the vehicle's CSV (sequence,due_ms,...,delay_ms,status,node,failure).
    public var timelines: [(name: String, text: String)] = []
    /// `compare*.csv` tables (any CSV with a header row), shown as they are.
    public var compare: [(name: String, text: String)] = []
    public init() {}

    /// The header that marks a CSV as a migration timeline (the vehicle's `--csv`).
    public static let timelineHeaderPrefix = "sequence,due_ms,sent_ms,end_ms,delay_ms,status,node"
}

/// Builds the report's charts from a run's samples and files. Pure.
///
/// - Latency CDFs: one chart per scenario, one curve per target × phase, over successful samples
///   in ms (name resolution, startup and load aggregates excluded: they have their own views).
/// - Box plots: one chart per startup scenario, phases on x, one box per backend.
/// - Smoke graphs: one per scenario × target whose samples carry a `round` label (`--rounds`), on
///   the kind's main span (ping echo, tcping connect, http and calc total).
/// - Reachability matrices from `reach-*.csv`; the migration timeline from the vehicle's CSV;
///   compare tables from `compare*.csv`; the summary table from summary.csv.
public enum ReportPlots {
    /// Curves per CDF chart at most (the ones with the most samples are kept, the rest named).
    public static let maxCurves = 10
    /// Smoke graphs show the kind's main span; other phases are in the CDFs.
    public static let smokePhase: [String: String] = ["ping": "echo", "tcping": "connect", "http": "total", "calc": "total"]

    /// Values kept per CDF curve at most: beyond it a uniform random sample of this size stands for
    /// the curve, and the caption says so. The sample is the values whose rows have the smallest
    /// priorities, a priority being a fixed hash of the row's identity (its byte offset in
    /// samples.csv, or its position among the samples given): the same rows are kept whatever order
    /// or parts the file is read in, so the chart is the same every time.
    public static let maxValuesPerCurve = 200_000

    public static func sections(samples: [Sample], files: ReportFiles) -> [ReportSection] {
        var c = ReportCollector()
        for s in samples { c.add(s) }
        return c.sections(files: files)
    }
}

/// Collects, one sample at a time (a run's samples.csv is read in chunks, never whole), what the
/// report's charts need; `sections(files:)` then builds them (see `ReportPlots`).
public struct ReportCollector: Sendable {
    struct Key: Hashable { var scenario, probe, target, metric, phase: String }
    struct SmokeKey: Hashable { var scenario, probe, target, phase: String }
    /// A curve's values: every value while `seen <= maxValuesPerCurve`, then the ones with the
    /// smallest priorities (`priorities[i]` is `values[i]`'s), a max-heap on the priority.
    struct Curve: Sendable {
        var seen = 0
        var values: [Double] = []
        var priorities: [UInt64] = []
    }
    var cdfOrder: [String] = []
    /// CDF curves, in first-seen order per scenario (`cdfKeys`), found by key (`curveIndex`).
    var curves: [Curve] = []
    var curveIndex: [Key: Int] = [:]
    /// The key bytes of the last row `add(row:)` charted and its curve: consecutive rows of one
    /// probe share a key, so most rows skip building Strings and hashing them.
    var lastRowKey = RowKeyBytes(), lastCurve = -1
    var cdfKeys: [String: [Key]] = [:]
    var startupOrder: [String] = []
    var startup: [String: (phases: [String], backends: [String], values: [String: [String: [Double]]])] = [:]
    var smokeOrder: [SmokeKey] = []
    var smoke: [SmokeKey: [Int: (start: Date, values: [Double], attempts: Int)]] = [:]
    var smokeUnit: [SmokeKey: (String, String)] = [:]
    public private(set) var count = 0

    public init() {}

    /// Adds one sample; its identity for the CDF sampling is its position among the samples added.
    public mutating func add(_ s: Sample) {
        add(s, id: UInt64(count))
    }

    mutating func add(_ s: Sample, id: UInt64) {
        count += 1
        if s.probe == "startup" {
            guard s.unit == "ms", s.metric == "startup" else { return }
            if startup[s.scenario] == nil { startupOrder.append(s.scenario); startup[s.scenario] = ([], [], [:]) }
            if !startup[s.scenario]!.phases.contains(s.phase) { startup[s.scenario]!.phases.append(s.phase) }
            if !startup[s.scenario]!.backends.contains(s.target) { startup[s.scenario]!.backends.append(s.target) }
            if s.status == .ok, let v = s.value { startup[s.scenario]!.values[s.phase, default: [:]][s.target, default: []].append(v) }
            return
        }
        if let r = s.labels[RoundsConfig.label], let round = Int(r), ReportPlots.smokePhase[s.probe] == s.phase {
            let k = SmokeKey(scenario: s.scenario, probe: s.probe, target: s.target, phase: s.phase)
            if smoke[k] == nil { smokeOrder.append(k); smoke[k] = [:]; smokeUnit[k] = (s.metric, s.unit) }
            var cell = smoke[k]![round] ?? (s.timestamp, [], 0)
            cell.start = min(cell.start, s.timestamp)
            cell.attempts += 1
            if s.status == .ok, let v = s.value { cell.values.append(v) }
            smoke[k]![round] = cell
        }
        guard s.unit == "ms", s.status == .ok, let v = s.value, s.phase != "resolve", s.probe != "load" else { return }
        addCDF(at: curve(for: Key(scenario: s.scenario, probe: s.probe, target: s.target, metric: s.metric, phase: s.phase)), v,
               priority: Self.priority(id))
    }

    /// A row's sampling priority: SplitMix64's finaliser of its identity (a bijection, so two rows
    /// never tie).
    static func priority(_ id: UInt64) -> UInt64 {
        var z = id &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func curve(for k: Key) -> Int {
        if let i = curveIndex[k] { return i }
        if cdfKeys[k.scenario] == nil { cdfOrder.append(k.scenario) }
        cdfKeys[k.scenario, default: []].append(k)
        curves.append(Curve())
        curveIndex[k] = curves.count - 1
        return curves.count - 1
    }

    mutating func addCDF(at i: Int, _ v: Double, priority: UInt64) {
        curves[i].add(v, priority: priority)
    }

    /// Adds what `other` collected from the samples that came after this one's: the report is then
    /// the one a single collector fed both gives (the same charts, byte for byte).
    public mutating func merge(_ other: ReportCollector) {
        count += other.count
        for scenario in other.cdfOrder {
            for k in other.cdfKeys[scenario] ?? [] {
                let i = curve(for: k)
                curves[i].merge(other.curves[other.curveIndex[k]!])
            }
        }
        for scenario in other.startupOrder {
            let o = other.startup[scenario]!
            if startup[scenario] == nil { startupOrder.append(scenario); startup[scenario] = ([], [], [:]) }
            for p in o.phases where !startup[scenario]!.phases.contains(p) { startup[scenario]!.phases.append(p) }
            for b in o.backends where !startup[scenario]!.backends.contains(b) { startup[scenario]!.backends.append(b) }
            for (phase, byTarget) in o.values {
                for (target, values) in byTarget { startup[scenario]!.values[phase, default: [:]][target, default: []] += values }
            }
        }
        for k in other.smokeOrder {
            if smoke[k] == nil { smokeOrder.append(k); smoke[k] = [:]; smokeUnit[k] = other.smokeUnit[k] }
            for (round, c) in other.smoke[k]! {
                if var mine = smoke[k]![round] {
                    mine.start = min(mine.start, c.start)
                    mine.values += c.values
                    mine.attempts += c.attempts
                    smoke[k]![round] = mine
                } else {
                    smoke[k]![round] = c
                }
            }
        }
    }

    public func sections(files: ReportFiles) -> [ReportSection] {
        let maxCurves = ReportPlots.maxCurves
        var out: [ReportSection] = []
        var usedIDs = Set<String>()
        func uniqueID(_ base: String) -> String {
            var id = FileName.safe(base), k = 2
            while !usedIDs.insert(id).inserted { id = FileName.safe(base) + "-\(k)"; k += 1 }
            return id
        }

        if !cdfOrder.isEmpty {
            var sec = ReportSection(heading: "Latency distributions")
            for scenario in cdfOrder {
                let keys = cdfKeys[scenario] ?? []
                let targets = Set(keys.map(\.target))
                var series = keys.map { k in
                    ChartSeries(name: targets.count > 1 ? "\(k.target) · \(k.phase)" : k.phase, values: curves[curveIndex[k]!].values)
                }
                let sampled = keys.filter { curves[curveIndex[$0]!].seen > curves[curveIndex[$0]!].values.count }
                var caption = "Empirical CDF of every successful sample (ms) of scenario \(scenario), per "
                    + (targets.count > 1 ? "target and phase" : "phase (target \(targets.first ?? ""))") + "."
                if series.count > maxCurves {
                    let kept = series.enumerated().sorted { $0.element.values.count > $1.element.values.count }.prefix(maxCurves).map(\.offset).sorted()
                    let dropped = series.indices.filter { !kept.contains($0) }.map { series[$0].name }
                    series = kept.map { series[$0] }
                    caption += " Left out (fewer samples): " + dropped.joined(separator: ", ") + "."
                }
                if !sampled.isEmpty {
                    caption += " Curves over \(ReportPlots.maxValuesPerCurve) samples are drawn from a uniform random sample of that many: "
                        + sampled.map { "\($0.target) \($0.phase) (\(curves[curveIndex[$0]!].seen))" }.joined(separator: ", ") + "."
                }
                let probes = Set(keys.map(\.probe)).sorted().joined(separator: ", ")
                let title = "Latency CDF: \(scenario) (\(probes))"
                sec.charts.append(ReportChart(id: uniqueID("cdf-\(scenario)"), title: title, caption: caption,
                                              svg: Charts.cdf(title: title, quantity: "latency", unit: "ms", series: series)))
            }
            out.append(sec)
        }

        if !startupOrder.isEmpty {
            var sec = ReportSection(heading: "Startup phases")
            for scenario in startupOrder {
                let s = startup[scenario]!
                let title = "Startup phases: \(scenario)"
                sec.charts.append(ReportChart(
                    id: uniqueID("box-\(scenario)"), title: title,
                    caption: "Per phase and backend: box = quartiles, line = median, whiskers = furthest value within 1.5 IQR, dots beyond; successful attempts only (ms).",
                    svg: Charts.boxPlot(title: title, unit: "ms", categories: s.phases, groups: s.backends, values: s.values)))
            }
            out.append(sec)
        }

        if !smokeOrder.isEmpty {
            var sec = ReportSection(heading: "Rounds (smoke graphs)")
            for k in smokeOrder {
                let byRound = smoke[k]!
                let first = byRound.values.map(\.start).min() ?? Date()
                let rounds = byRound.keys.sorted().map { r in
                    SmokeRound(index: r, startSeconds: byRound[r]!.start.timeIntervalSince(first), values: byRound[r]!.values,
                               attempts: byRound[r]!.attempts)
                }
                let (metric, unit) = smokeUnit[k] ?? ("latency", "ms")
                let title = "\(k.probe) \(k.phase): \(k.target) (\(k.scenario))"
                let lossy = rounds.filter { $0.lossPercent > 0 }.count
                sec.charts.append(ReportChart(
                    id: uniqueID("smoke-\(k.scenario)-\(k.target)"), title: title,
                    caption: "\(rounds.count) rounds; per round the spread of its \(metric) (\(unit)) as smoke and the median as a line coloured by the round's loss; \(lossy) round(s) lost attempts.",
                    svg: Charts.smoke(title: title, quantity: "\(metric) \(k.phase)", unit: unit, rounds: rounds)))
            }
            out.append(sec)
        }

        if !files.reach.isEmpty {
            var sec = ReportSection(heading: "Reachability")
            for (name, text) in files.reach {
                guard let m = ReportPlots.reachMatrix(text) else {
                    sec.note = (sec.note.map { $0 + " " } ?? "") + "\(name) is not a reach matrix (header from,to,probe,reachable,...): left out."
                    continue
                }
                let title = "Reachability: \(name.replacingOccurrences(of: ".csv", with: ""))"
                sec.charts.append(ReportChart(id: uniqueID(name.replacingOccurrences(of: ".csv", with: "")), title: title,
                                              caption: "From \(name): \(m.probes) probes, \(m.reachable) reachable.",
                                              svg: Charts.matrix(title: title, rows: m.rows, columns: m.columns, cells: m.cells)))
            }
            out.append(sec)
        }

        if !files.timelines.isEmpty {
            var sec = ReportSection(heading: "Migration timeline")
            for (name, text) in files.timelines {
                guard let points = ReportPlots.timelinePoints(text), !points.isEmpty else {
                    sec.note = (sec.note.map { $0 + " " } ?? "") + "\(name) has no request rows: left out."
                    continue
                }
                let title = "Migration timeline: \(name)"
                let failed = points.filter(\.failed).count
                sec.charts.append(ReportChart(id: uniqueID("timeline-\(name.replacingOccurrences(of: ".csv", with: ""))"), title: title,
                                              caption: "From \(name): \(points.count) requests, \(failed) failed; delay from the due time to the last byte (CO-corrected).",
                                              svg: Charts.timeline(title: title, points: points)))
            }
            out.append(sec)
        }

        var tables = ReportSection(heading: "Tables")
        for (name, text) in files.compare {
            if let t = ReportPlots.table(text, title: "Compare: \(name)") { tables.tables.append(t) }
        }
        if let csv = files.summaryCSV, let t = ReportPlots.table(csv, title: "Summary (summary.csv)") { tables.tables.append(t) }
        if !tables.tables.isEmpty { out.append(tables) }
        return out
    }

}

extension ReportPlots {
    /// A CSV with a header row as a table; nil when it cannot be parsed or is empty.
    public static func table(_ text: String, title: String) -> ReportTable? {
        guard let rows = try? CSV.parse(text), let head = rows.first, !head.isEmpty else { return nil }
        return ReportTable(title: title, header: head, rows: rows.dropFirst().filter { !($0.count == 1 && $0[0].isEmpty) })
    }

    /// A reach CSV as matrix cells; nil when its header lacks from, to, probe, reachable.
    public static func reachMatrix(_ text: String) -> (rows: [String], columns: [String], cells: [String: [String: MatrixCell]], probes: Int, reachable: Int)? {
        guard let rows = try? CSV.parse(text), let head = rows.first?.map({ $0.lowercased() }),
              let f = head.firstIndex(of: "from"), let t = head.firstIndex(of: "to"), let p = head.firstIndex(of: "probe"),
              let r = head.firstIndex(of: "reachable") else { return nil }
        let why = head.firstIndex(of: "why_not"), rtt = head.firstIndex(of: "rtt_p50_ms")
        var froms: [String] = [], tos: [String] = []
        var cells: [String: [String: MatrixCell]] = [:]
        var probes = 0, reachable = 0
        for row in rows.dropFirst() where row.count > max(f, t, p, r) {
            let from = row[f], to = row[t]
            if !froms.contains(from) { froms.append(from) }
            if !tos.contains(to) { tos.append(to) }
            let ok = ["yes", "true", "1"].contains(row[r].lowercased())
            var detail = "\(row[p]) " + (ok ? "ok" : "not reachable")
            if ok, let rtt, rtt < row.count, !row[rtt].isEmpty { detail += " \(row[rtt]) ms" }
            if !ok, let why, why < row.count, !row[why].isEmpty { detail += " (\(row[why]))" }
            var cell = cells[from]?[to] ?? MatrixCell(reachable: 0, total: 0, detail: "")
            cell.total += 1
            if ok { cell.reachable += 1 }
            cell.detail += (cell.detail.isEmpty ? "" : "; ") + detail
            cells[from, default: [:]][to] = cell
            probes += 1
            if ok { reachable += 1 }
        }
        return (froms, tos, cells, probes, reachable)
    }

    /// The vehicle CSV's rows as timeline points (seconds from the first due time); nil when the
    /// header is not the vehicle's.
    public static func timelinePoints(_ text: String) -> [TimelinePoint]? {
        guard text.hasPrefix(ReportFiles.timelineHeaderPrefix), let rows = try? CSV.parse(text), let head = rows.first,
              let due = head.firstIndex(of: "due_ms"), let delay = head.firstIndex(of: "delay_ms"), let node = head.firstIndex(of: "node"),
              let failure = head.firstIndex(of: "failure") else { return nil }
        var points: [TimelinePoint] = []
        for row in rows.dropFirst() where row.count == head.count {
            guard let d = Double(row[due]) else { continue }
            let failed = !row[failure].isEmpty
            points.append(TimelinePoint(seconds: d / 1000, delayMilliseconds: failed ? nil : Double(row[delay]), node: row[node], failed: failed))
        }
        let t0 = points.map(\.seconds).min() ?? 0
        return points.map { var p = $0; p.seconds -= t0; return p }
    }
}

extension ReportCollector {
    /// Adds one samples.csv data row (no newline), parsed only as far as the charts need: the
    /// timestamp only for samples of a round, of the labels only `round`. A row without quotes is
    /// split on commas; one with quotes goes through the RFC 4180 reader. Errors name the line.
    /// One row of samples.csv as `SampleStream` hands it over (`edgemeter report` and the run's
    /// finish read the file once, in chunks): only the fields a chart needs become Strings.
    public mutating func add(row r: SampleRow) {
        if r.bytesEqual(SampleRow.probeField, "startup") || r.hasLabelPrefix("round=") {
            add(r.sample, id: UInt64(r.offset))
            return
        }
        count += 1
        guard r.status == .ok, let v = r.value, r.bytesEqual(SampleRow.unitField, "ms"),
              !r.bytesEqual(SampleRow.phaseField, "resolve"), !r.bytesEqual(SampleRow.probeField, "load") else { return }
        let fields = SampleRow.scenarioField...SampleRow.phaseField
        if lastCurve < 0 || !lastRowKey.matches(r, fields) {
            lastCurve = curve(for: Key(scenario: r.scenario, probe: r.probe, target: r.target, metric: r.metric, phase: r.phase))
            lastRowKey = RowKeyBytes(r, fields)
        }
        addCDF(at: lastCurve, v, priority: Self.priority(UInt64(r.offset)))
    }
}

extension ReportCollector.Curve {
    mutating func add(_ v: Double, priority p: UInt64, cap: Int = ReportPlots.maxValuesPerCurve) {
        seen += 1
        if values.count < cap {
            values.append(v)
            priorities.append(p)
            if values.count == cap { heapify() }
        } else if p < priorities[0] {
            values[0] = v
            priorities[0] = p
            siftDown(0)
        }
    }

    /// Adds a curve of later samples: while both fit, every value in order; beyond, the
    /// `maxValuesPerCurve` smallest priorities of both, which are those one curve fed both keeps.
    mutating func merge(_ other: Self, cap: Int = ReportPlots.maxValuesPerCurve) {
        seen += other.seen
        if values.count + other.values.count <= cap {
            values += other.values
            priorities += other.priorities
            if values.count == cap { heapify() }
            return
        }
        let all = (priorities + other.priorities).indices.map { $0 }
        let pri = priorities + other.priorities, val = values + other.values
        let kept = all.sorted { pri[$0] < pri[$1] }.prefix(cap)
        values = kept.map { val[$0] }
        priorities = kept.map { pri[$0] }
        heapify()
    }

    /// A max-heap on `priorities` (values moved with them).
    private mutating func heapify() {
        var i = values.count / 2
        while i > 0 { i -= 1; siftDown(i) }
    }

    private mutating func siftDown(_ start: Int) {
        let n = priorities.count
        var i = start
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var c = l
            if l + 1 < n && priorities[l + 1] > priorities[l] { c = l + 1 }
            if priorities[c] <= priorities[i] { return }
            priorities.swapAt(i, c)
            values.swapAt(i, c)
            i = c
        }
    }
}
