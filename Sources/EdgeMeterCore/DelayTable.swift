import Foundation

/// One row of a run's `delays.csv`: what one origin saw of one destination with one probe, over
/// the run. Percentiles are nearest rank over the received samples (the value at rank
/// ⌈p/100 · n⌉ of the sorted values, the rule of `Statistics.swift`), in milliseconds.
public struct DelayRow: Codable, Sendable, Equatable {
    /// The origin: the lab node the probe ran in (the samples' `from` label), `(host)` otherwise.
    public var from: String
    /// The destination: the lab node name (the samples' `to` label), otherwise the target as written.
    public var to: String
    /// The probe's target as the samples name it (`127.0.0.1:8000`, `http://…/healthz`).
    public var target: String
    /// `ping_rtt` (ICMP echo round trip), `tcp_connect` (connect() until the handshake completed),
    /// `http_total` (a new connection's whole exchange, resolve to last byte).
    public var metric: String
    public var p50Milliseconds: Double?
    public var p90Milliseconds: Double?
    public var p99Milliseconds: Double?
    /// Lost or failed attempts ÷ attempts × 100.
    public var lossPercent: Double
    /// Attempts, failed ones included.
    public var samples: Int
    /// Attempts that got an answer (the ones the percentiles are over).
    public var received: Int
    /// Wall-clock start time of the first and the last attempt in the row.
    public var windowStart: Date
    public var windowEnd: Date

    public init(from: String, to: String, target: String, metric: String, p50Milliseconds: Double?, p90Milliseconds: Double?,
                p99Milliseconds: Double?, lossPercent: Double, samples: Int, received: Int, windowStart: Date, windowEnd: Date) {
        self.from = from
        self.to = to
        self.target = target
        self.metric = metric
        self.p50Milliseconds = p50Milliseconds
        self.p90Milliseconds = p90Milliseconds
        self.p99Milliseconds = p99Milliseconds
        self.lossPercent = lossPercent
        self.samples = samples
        self.received = received
        self.windowStart = windowStart
        self.windowEnd = windowEnd
    }
}

/// `delays.csv`: the delay feed of a run directory (see `DelayRow`), built from samples.csv.
public enum DelayTable {
    public static let header = ["from", "to", "target", "metric", "p50_ms", "p90_ms", "p99_ms", "loss_percent", "samples", "received",
                                "window_start", "window_end"]
    /// The origin written when a sample has no `from` label (the probe ran on the host).
    public static let hostOrigin = "(host)"

    /// The delay metric a sample feeds, nil for samples that are not a delay of this kind: ping's
    /// `rtt/echo`, tcping's `connect`, http's `total`.
    public static func metric(of s: Sample) -> String? {
        switch (s.probe, s.phase) {
        case ("ping", "echo") where s.metric == "rtt": return "ping_rtt"
        case ("tcping", "connect"): return "tcp_connect"
        case ("http", "total"): return "http_total"
        default: return nil
        }
    }

    /// One row per (from, to, target, metric), in order of first appearance. Samples whose unit is
    /// not `ms` are skipped (no delay metric writes another unit).
    public static func rows(from samples: [Sample]) -> [DelayRow] {
        struct Key: Hashable { var from, to, target, metric: String }
        var order: [Key] = []
        var groups: [Key: [Sample]] = [:]
        for s in samples {
            guard let m = metric(of: s), s.unit == "ms" else { continue }
            let k = Key(from: s.labels["from"] ?? hostOrigin, to: s.labels["to"] ?? s.target, target: s.target, metric: m)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(s)
        }
        return order.map { k in
            let g = groups[k]!
            let values = g.compactMap { $0.status == .ok ? $0.value : nil }.sorted()
            let times = g.map(\.timestamp)
            return DelayRow(from: k.from, to: k.to, target: k.target, metric: k.metric,
                            p50Milliseconds: nearestRank(values, 50), p90Milliseconds: nearestRank(values, 90),
                            p99Milliseconds: nearestRank(values, 99),
                            lossPercent: Double(g.count - values.count) / Double(g.count) * 100, samples: g.count, received: values.count,
                            windowStart: times.min()!, windowEnd: times.max()!)
        }
    }

    /// Nearest-rank percentile of ascending `sorted`; nil when empty.
    public static func nearestRank(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = min(sorted.count, max(1, Int((p / 100 * Double(sorted.count)).nextDown.rounded(.up))))
        return sorted[rank - 1]
    }

    /// The CSV text: header and one line per row; delays with 3 decimals, loss with 2.
    public static func csv(_ rows: [DelayRow]) -> String {
        var out = CSV.line(header)
        for r in rows {
            out += CSV.line([r.from, r.to, r.target, r.metric, Format.fixed(r.p50Milliseconds, 3), Format.fixed(r.p90Milliseconds, 3),
                             Format.fixed(r.p99Milliseconds, 3), Format.fixed(r.lossPercent, 2), String(r.samples), String(r.received),
                             Format.timestamp(r.windowStart), Format.timestamp(r.windowEnd)])
        }
        return out
    }

    /// Reads delays.csv back. Errors name the file, the line and the field.
    public static func parse(_ text: String, file: String = "delays.csv") throws -> [DelayRow] {
        func bad(_ line: Int, _ why: String) -> ReportError {
            .badSamples("\(file):\(line): \(why); the file is damaged: fix that line, or measure again (each finished run writes delays.csv)")
        }
        let table = try CSV.rowsAfterHeader(text, file: file, header: header, wrongHeader: "not an edgemeter delays header", damaged: bad)
        var rows: [DelayRow] = []
        for (i, r) in table.enumerated() {
            let line = i + 2
            if r.count == 1 && r[0].isEmpty { continue }
            guard r.count == header.count else { throw bad(line, "expected \(header.count) fields, got \(r.count)") }
            func ms(_ j: Int) throws -> Double? {
                if r[j].isEmpty { return nil }
                guard let v = Double(r[j]), v.isFinite, v >= 0 else { throw bad(line, "\(header[j]) \"\(r[j])\" is not a delay ≥ 0") }
                return v
            }
            guard let loss = Double(r[7]), loss >= 0, loss <= 100 else { throw bad(line, "loss_percent \"\(r[7])\" is not a percentage") }
            guard let n = Int(r[8]), n >= 0, let rec = Int(r[9]), rec >= 0, rec <= n else {
                throw bad(line, "samples \"\(r[8])\" and received \"\(r[9])\" must be counts with received ≤ samples")
            }
            guard let a = Format.parseTimestamp(r[10]), let b = Format.parseTimestamp(r[11]) else {
                throw bad(line, "window_start/window_end must be ISO 8601 UTC timestamps")
            }
            rows.append(DelayRow(from: r[0], to: r[1], target: r[2], metric: r[3], p50Milliseconds: try ms(4), p90Milliseconds: try ms(5),
                                 p99Milliseconds: try ms(6), lossPercent: loss, samples: n, received: rec, windowStart: a, windowEnd: b))
        }
        return rows
    }
}
