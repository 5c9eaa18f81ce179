import Foundation
import EdgeMeterCore

/// One row of `POST /delays`, checked and turned into window samples.
public struct PostedDelays: Sendable {
    public var node: String
    public var metric: String
    public var samples: [MigrationController.TimedDelay]
    /// The row's field name in the request (`delays[2]`).
    public var field: String
}

/// `POST /delays` bodies: `{"service": S?, "delays": [ROW, ...]}`, each ROW either
///
/// - samples: `{"node", "metric", "samples_ms": [5.1, null, 5.3], "timestamps": [ISO 8601, ...]?}`
///   (null = lost; without timestamps every sample is stamped at arrival), or
/// - a summary (a `delays.csv` row, what `edgemeter feed` posts): `{"node", "metric", "p50_ms",
///   "p90_ms", "p99_ms", "samples", "loss_percent"?, "window_start"?, "window_end"?}`. The window
///   cannot hold a summary, so it is expanded into `samples` synthetic samples whose nearest-rank
///   p50, p90 and p99 are exactly the posted ones (⌈0.5n⌉ at p50, up to ⌈0.9n⌉ at p90, the rest at
///   p99), `round(samples × loss/100)` of them lost, spread evenly from window_start to
///   window_end (both at arrival when absent).
///
/// Wall-clock timestamps become the controller clock's monotonic time as
/// `now_mono − (now_wall − t)`; a timestamp more than 5 s in the future is refused.
enum DelayPosting {
    static func parse(_ body: JSONFields, clock: any MeasurementClock) throws -> [PostedDelays] {
        try body.unknownKeys(["service", "delays"])
        let list = try body.array("delays", required: true, example: "[{\"node\": \"node_1\", \"metric\": \"http_total\", \"samples_ms\": [5.1]}]")!
        guard !list.isEmpty else { throw ControllerError("delays is empty; post at least one row", field: "delays") }
        let nowMono = clock.monotonicNanoseconds()
        let nowWall = clock.wallNow()
        func mono(_ d: Date, field: String) throws -> Int64 {
            let ago = nowWall.timeIntervalSince(d)
            guard ago >= -5 else {
                throw ControllerError("\(field) \(Format.timestamp(d)) is \(Int(-ago)) s in the future; check the sender's clock", field: field)
            }
            return nowMono - Int64(ago * 1e9)
        }
        func time(_ f: JSONFields, _ key: String) throws -> Date? {
            guard let s = try f.string(key, example: "\"2026-12-01T21:00:00.000000Z\"") else { return nil }
            guard let d = Format.parseTimestamp(s) ?? ISO8601DateFormatter().date(from: s) else {
                throw ControllerError("\(f.name(key)) \"\(s)\" is not an ISO 8601 UTC timestamp like 2026-12-01T21:00:00.000000Z", field: f.name(key))
            }
            return d
        }
        var rows: [PostedDelays] = []
        for (i, raw) in list.enumerated() {
            let field = "delays[\(i)]"
            guard let o = raw as? [String: Any] else { throw ControllerError("\(field) must be an object", field: field) }
            let f = JSONFields(o, path: field)
            try f.unknownKeys(["node", "metric", "samples_ms", "timestamps", "p50_ms", "p90_ms", "p99_ms", "samples", "received",
                               "loss_percent", "window_start", "window_end", "from", "to", "target"])
            let node = try f.string("node", required: true, example: "\"node_1\"")!
            let metric = try f.string("metric", required: true, example: "\"http_total\"")!
            guard DelayMetric.all.contains(metric) else {
                throw ControllerError("\(f.name("metric")) \"\(metric)\" is not one of \(DelayMetric.all.joined(separator: ", "))", field: f.name("metric"))
            }
            var samples: [MigrationController.TimedDelay] = []
            if let values = try f.array("samples_ms", example: "[5.1, null, 5.3]") {
                guard !values.isEmpty, values.count <= DelayLimits.maxSamples else {
                    throw ControllerError("\(f.name("samples_ms")) must hold 1 to \(DelayLimits.maxSamples) samples", field: f.name("samples_ms"))
                }
                var stamps: [Int64]? = nil
                if let ts = try f.array("timestamps", example: "[\"2026-12-01T21:00:00.000000Z\"]") {
                    guard ts.count == values.count else {
                        throw ControllerError("\(f.name("timestamps")) has \(ts.count) entries for \(values.count) samples; give one per sample",
                                              field: f.name("timestamps"))
                    }
                    stamps = try ts.enumerated().map { j, t in
                        let tf = "\(f.name("timestamps"))[\(j)]"
                        guard let s = t as? String, let d = Format.parseTimestamp(s) ?? ISO8601DateFormatter().date(from: s) else {
                            throw ControllerError("\(tf) must be an ISO 8601 UTC timestamp like 2026-12-01T21:00:00.000000Z", field: tf)
                        }
                        return try mono(d, field: tf)
                    }
                }
                for (j, v) in values.enumerated() {
                    let vf = "\(f.name("samples_ms"))[\(j)]"
                    var ms: Double? = nil
                    if !(v is NSNull) {
                        guard let n = JSONFields.finiteNumber(v) else {
                            throw ControllerError("\(vf) must be a delay in ms or null (lost); got \(JSONFields.show(v))", field: vf)
                        }
                        try DelayLimits.check(n, field: vf)
                        ms = n
                    }
                    samples.append(.init(milliseconds: ms, atNanoseconds: stamps?[j] ?? nowMono))
                }
            } else {
                guard f.has("p90_ms") || f.has("p50_ms") || f.has("p99_ms") else {
                    throw ControllerError("\(field) has neither samples_ms nor p50_ms/p90_ms/p99_ms; give the samples or their percentiles",
                                          field: f.name("samples_ms"))
                }
                var p: [Double] = []
                for key in ["p50_ms", "p90_ms", "p99_ms"] {
                    guard let v = try f.number(key, required: true, example: "5.2") else { continue }
                    try DelayLimits.check(v, field: f.name(key))
                    if let last = p.last, v < last {
                        throw ControllerError("\(f.name(key)) \(v) is below the lower percentile \(last); percentiles cannot decrease", field: f.name(key))
                    }
                    p.append(v)
                }
                let nD = try f.number("samples", required: true, example: "100")!
                guard nD >= 1, nD <= Double(DelayLimits.maxSamples), nD == nD.rounded() else {
                    throw ControllerError("\(f.name("samples")) must be a whole number from 1 to \(DelayLimits.maxSamples)", field: f.name("samples"))
                }
                let n = Int(nD)
                let loss = try f.number("loss_percent", example: "0") ?? 0
                guard loss >= 0, loss <= 100 else {
                    throw ControllerError("\(f.name("loss_percent")) must be 0 to 100; got \(loss)", field: f.name("loss_percent"))
                }
                let lost = Int((Double(n) * loss / 100).rounded())
                let received = n - lost
                let start = try time(f, "window_start").map { try mono($0, field: f.name("window_start")) } ?? nowMono
                let end = try time(f, "window_end").map { try mono($0, field: f.name("window_end")) } ?? nowMono
                guard end >= start else {
                    throw ControllerError("\(f.name("window_end")) is before window_start", field: f.name("window_end"))
                }
                let r50 = Int((0.5 * Double(received)).rounded(.up)), r90 = Int((0.9 * Double(received)).rounded(.up))
                var values: [Double?] = (0..<received).map { k in k < r50 ? p[0] : k < r90 ? p[1] : p[2] }
                // Lost samples spread among the received ones.
                if lost > 0 {
                    let step = Double(n) / Double(lost)
                    for k in 0..<lost { values.insert(nil, at: min(values.count, Int(Double(k) * step))) }
                }
                for (k, v) in values.enumerated() {
                    let at = n == 1 ? end : start + Int64(Double(end - start) * Double(k) / Double(n - 1))
                    samples.append(.init(milliseconds: v, atNanoseconds: at))
                }
            }
            rows.append(PostedDelays(node: node, metric: metric, samples: samples, field: field))
        }
        return rows
    }
}
