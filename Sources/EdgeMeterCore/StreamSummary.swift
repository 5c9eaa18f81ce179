import Foundation

/// `Summarizer` fed from `SampleStream` rows: the same summaries, in the same order, as
/// `Summarizer.add` over `SampleCSV.parse`'s samples, without a `String` per row. A row's key
/// (scenario, probe, target, metric, phase, unit) is matched on its bytes against the last few keys
/// seen; only a key not seen among them is looked up by its bytes in a dictionary, and only a key
/// never seen creates Strings and a `SummaryKey` (two byte-different keys whose Strings are equal,
/// e.g. NFC and NFD spellings, share one row as they do in `Summarizer`).
public struct SampleStreamSummarizer: Sendable {
    public private(set) var summarizer = Summarizer()
    public private(set) var rows = 0
    /// Recently used keys, most recent first: (key bytes of scenario, probe, target, metric, phase
    /// and unit; accumulator index). A row is matched against them in place, one comparison per
    /// field (`RowKeyBytes.matches`); the dictionary is consulted only when none matches.
    private var recent: [(key: RowKeyBytes, index: Int)] = []
    private static let recentLimit = 8
    private var byBytes: [RowKeyBytes: Int] = [:]

    public init() {}

    public mutating func add(_ row: SampleRow) {
        rows += 1
        summarizer.add(at: index(of: row), status: row.status, value: row.value)
    }

    public var summaries: [Summary] { summarizer.summaries }

    /// Adds a summarizer fed with the rows that came after this one's (the next part of the file).
    public mutating func merge(_ other: SampleStreamSummarizer) {
        rows += other.rows
        summarizer.merge(other.summarizer)
        recent = []
        byBytes = [:]
    }

    private mutating func index(of row: SampleRow) -> Int {
        if !recent.isEmpty && Self.matches(recent[0].key, row) { return recent[0].index }
        for j in recent.indices.dropFirst() where Self.matches(recent[j].key, row) {
            recent.swapAt(j, 0)
            return recent[0].index
        }
        let bytes = Self.key(row)
        let index: Int
        if let i = byBytes[bytes] {
            index = i
        } else {
            let key = SummaryKey(scenario: row.scenario, probe: row.probe, target: row.target, metric: row.metric,
                                 phase: row.phase, unit: row.unit)
            index = summarizer.index(for: key)
            byBytes[bytes] = index
        }
        recent.insert((bytes, index), at: 0)
        if recent.count > Self.recentLimit { recent.removeLast() }
        return index
    }

    /// The key's fields: scenario, probe, target, metric, phase, unit (not the value between them).
    private static func key(_ row: SampleRow) -> RowKeyBytes {
        var k = RowKeyBytes(row, SampleRow.scenarioField...SampleRow.phaseField)
        k.append(row, SampleRow.unitField)
        return k
    }

    private static func matches(_ k: RowKeyBytes, _ row: SampleRow) -> Bool {
        k.matches(row, SampleRow.scenarioField...SampleRow.phaseField, then: SampleRow.unitField)
    }
}

/// `DelayTable.rows(from:)` fed one sample at a time: the same rows, keeping per group only the
/// received values (8 bytes each, for the exact nearest-rank percentiles), the counts and the
/// time window, not the samples.
public struct DelayAccumulator: Sendable {
    private struct Key: Hashable { var from, to, target, metric: String }
    private struct Group: Sendable {
        var values: [Double] = []
        var count = 0
        var first: Date
        var last: Date
    }
    private var order: [Key] = []
    private var groups: [Key: Group] = [:]

    public init() {}

    /// The delay metric of a row (`DelayTable.metric(of:)`), nil for rows that feed no delay.
    public static func metric(probe: String, metric: String, phase: String) -> String? {
        switch (probe, phase) {
        case ("ping", "echo") where metric == "rtt": return "ping_rtt"
        case ("tcping", "connect"): return "tcp_connect"
        case ("http", "total"): return "http_total"
        default: return nil
        }
    }

    public mutating func add(_ s: Sample) {
        guard let m = DelayTable.metric(of: s), s.unit == "ms" else { return }
        add(metric: m, from: s.labels["from"], to: s.labels["to"], target: s.target, status: s.status, value: s.value,
            timestamp: s.timestamp)
    }

    /// Adds a streamed row; the label field is read only for rows that feed a delay.
    public mutating func add(_ row: SampleRow) {
        guard row.bytesEqual(SampleRow.unitField, "ms"),
              let m = Self.metric(probe: row.probe, metric: row.metric, phase: row.phase) else { return }
        add(metric: m, from: row.label("from"), to: row.label("to"), target: row.target, status: row.status, value: row.value,
            timestamp: row.timestamp)
    }

    private mutating func add(metric: String, from: String?, to: String?, target: String, status: SampleStatus, value: Double?,
                              timestamp: Date) {
        let k = Key(from: from ?? DelayTable.hostOrigin, to: to ?? target, target: target, metric: metric)
        if groups[k] == nil {
            order.append(k)
            groups[k] = Group(first: timestamp, last: timestamp)
        }
        groups[k]!.count += 1
        if status == .ok, let value { groups[k]!.values.append(value) }
        groups[k]!.first = Swift.min(groups[k]!.first, timestamp)
        groups[k]!.last = Swift.max(groups[k]!.last, timestamp)
    }

    /// Adds an accumulator fed with the samples that came after this one's.
    public mutating func merge(_ other: DelayAccumulator) {
        for k in other.order {
            let o = other.groups[k]!
            if var g = groups[k] {
                g.values += o.values
                g.count += o.count
                g.first = Swift.min(g.first, o.first)
                g.last = Swift.max(g.last, o.last)
                groups[k] = g
            } else {
                order.append(k)
                groups[k] = o
            }
        }
    }

    public var rows: [DelayRow] {
        order.map { k in
            let g = groups[k]!
            let values = g.values.sorted()
            return DelayRow(from: k.from, to: k.to, target: k.target, metric: k.metric,
                            p50Milliseconds: DelayTable.nearestRank(values, 50), p90Milliseconds: DelayTable.nearestRank(values, 90),
                            p99Milliseconds: DelayTable.nearestRank(values, 99),
                            lossPercent: Double(g.count - values.count) / Double(g.count) * 100, samples: g.count, received: values.count,
                            windowStart: g.first, windowEnd: g.last)
        }
    }
}

/// What one read of samples.csv feeds: the summaries (summary.csv, summary.md), report.html's
/// charts (`ReportCollector`) and, when asked, delays.csv (`DelayAccumulator`). `edgemeter report`
/// reads the file once for all of them; parts of a file read in parallel are merged in file order.
public struct SamplePass: Sendable {
    public var summarizer: SampleStreamSummarizer?
    public var collector: ReportCollector?
    public var delays: DelayAccumulator?

    public init(summaries: Bool = true, charts: Bool = true, delays: Bool = false) {
        summarizer = summaries ? SampleStreamSummarizer() : nil
        collector = charts ? ReportCollector() : nil
        self.delays = delays ? DelayAccumulator() : nil
    }

    public mutating func add(_ row: SampleRow) {
        summarizer?.add(row)
        collector?.add(row: row)
        delays?.add(row)
    }

    /// Adds the pass over the next part of the file.
    public mutating func merge(_ other: SamplePass) {
        if let o = other.summarizer { summarizer?.merge(o) }
        if let o = other.collector { collector?.merge(o) }
        if let o = other.delays { delays?.merge(o) }
    }
}
