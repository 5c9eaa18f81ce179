import Foundation

/// `Summarizer` fed from `SampleStream` rows: the same summaries, in the same order, as
/// `Summarizer.add` over `SampleCSV.parse`'s samples, without a `String` per row. A row's key
/// (scenario, probe, target, metric, phase, unit) is matched on its bytes against the last few keys
/// seen; only a key not seen among them is looked up by its bytes in a dictionary, and only a key
/// never seen creates Strings and a `SummaryKey` (two byte-different keys whose Strings are equal,
/// e.g. NFC and NFD spellings, share one row as they do in `Summarizer`).
public struct SampleStreamSummarizer {
    public private(set) var summarizer = Summarizer()
    public private(set) var rows = 0
    private static let keyFields = [SampleRow.scenarioField, SampleRow.probeField, SampleRow.targetField,
                                    SampleRow.metricField, SampleRow.phaseField, SampleRow.unitField]
    /// The key bytes of the current row: each field's length (4 bytes) then its bytes.
    private var scratch: [UInt8] = []
    /// Recently used keys, most recent first: (key bytes, accumulator index).
    private var recent: [(bytes: [UInt8], index: Int)] = []
    private static let recentLimit = 8
    private var byBytes: [[UInt8]: Int] = [:]

    public init() {
        scratch.reserveCapacity(256)
    }

    public mutating func add(_ row: SampleRow) {
        rows += 1
        summarizer.add(at: index(of: row), status: row.status, value: row.value)
    }

    public var summaries: [Summary] { summarizer.summaries }

    private mutating func index(of row: SampleRow) -> Int {
        scratch.removeAll(keepingCapacity: true)
        for f in Self.keyFields {
            let b = row.bytes(f)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: b.count)) { scratch.append(contentsOf: $0) }
            scratch.append(contentsOf: b)
        }
        for j in recent.indices where Self.same(recent[j].bytes, scratch) {
            if j > 0 { recent.swapAt(j, 0) }
            return recent[0].index
        }
        let index: Int
        if let i = byBytes[scratch] {
            index = i
        } else {
            let key = SummaryKey(scenario: row.scenario, probe: row.probe, target: row.target, metric: row.metric,
                                 phase: row.phase, unit: row.unit)
            index = summarizer.index(for: key)
            byBytes[scratch] = index
        }
        recent.insert((scratch, index), at: 0)
        if recent.count > Self.recentLimit { recent.removeLast() }
        return index
    }

    private static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
    }
}

/// `DelayTable.rows(from:)` fed one sample at a time: the same rows, keeping per group only the
/// received values (8 bytes each, for the exact nearest-rank percentiles), the counts and the
/// time window, not the samples.
public struct DelayAccumulator {
    private struct Key: Hashable { var from, to, target, metric: String }
    private struct Group {
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
