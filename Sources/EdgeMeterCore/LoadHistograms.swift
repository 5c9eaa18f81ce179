import Foundation
import Histogram

/// `load-histograms.json` in a run directory: each load run's whole latency distributions
/// (HdrHistogram buckets, lossless at the histogram's resolution), its per-second throughput and
/// its status and error counts, so a later reader (`edgemeter compare`, a notebook) works on the
/// distribution and not on the twenty percentiles of summary.csv. Documented in docs/reports.md
/// ("load data").
public struct LoadHistogramsDocument: Codable, Sendable, Equatable {
    public static let fileName = "load-histograms.json"
    public static let formatName = "edgemeter-load-histograms"
    public static let currentVersion = 1

    public var format = Self.formatName
    public var version = Self.currentVersion
    /// One entry per load (scenario and target), in the order they ran.
    public var loads: [LoadRecord] = []

    public init(loads: [LoadRecord] = []) { self.loads = loads }

    /// `self` with `record` added, replacing an earlier one of the same scenario and target.
    public func adding(_ record: LoadRecord) -> LoadHistogramsDocument {
        var d = self
        if let i = d.loads.firstIndex(where: { $0.scenario == record.scenario && $0.target == record.target }) {
            d.loads[i] = record
        } else {
            d.loads.append(record)
        }
        return d
    }

    /// Pretty-printed JSON with sorted keys (stable for diffs), ending in a line break.
    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? enc.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Reads the file's text. Errors name the file and what to do.
    public static func parse(_ data: Data, file: String = fileName) throws -> LoadHistogramsDocument {
        let d: LoadHistogramsDocument
        do { d = try JSONDecoder().decode(LoadHistogramsDocument.self, from: data) } catch {
            throw ReportError.badSamples("\(file) is not an edgemeter load-histograms file (\(error)); it is damaged: run the load again")
        }
        guard d.format == formatName else {
            throw ReportError.badSamples("\(file): format is \"\(d.format)\", expected \"\(formatName)\"")
        }
        guard d.version <= currentVersion else {
            throw ReportError.badSamples("\(file): version \(d.version) is newer than this edgemeter reads (\(currentVersion)); use a newer edgemeter")
        }
        for l in d.loads {
            for s in l.latency where s.buckets.contains(where: { $0.count != 2 }) {
                throw ReportError.badSamples("\(file): \(l.scenario) \(s.series): every bucket must be [value_ns, count]")
            }
        }
        return d
    }
}

/// One load run: what `edgemeter load` prints, as data.
public struct LoadRecord: Codable, Sendable, Equatable {
    public var scenario: String
    public var target: String
    /// Open loop (fixed request rate, wrk2 `-R`) or closed loop (wrk).
    public var openLoop: Bool
    public var requestedRate: Double?
    public var connections: Int
    public var threads: Int
    /// Length of the measured window (after the warm-up), seconds.
    public var measuredSeconds: Double
    public var warmupSeconds: Double
    /// Responses to measured requests (any status).
    public var responses: Int
    /// Bytes read for measured responses (status line, headers, body).
    public var bytesRead: Int
    /// Open loop: requests due before the end that were never sent (in the corrected latency).
    public var unsent: Int
    /// The per-request timeout; timed-out requests are in the latency at this value.
    public var timeoutNanoseconds: UInt64
    /// Responses completed in each whole second of the measured window (req/s, one per second).
    public var perSecond: [Int]
    /// Responses by HTTP status code (keys are the codes as text).
    public var statusCounts: [String: Int]
    /// Failures by kind: connect, timeout, reset, status, body (all five, 0 included).
    public var errors: [String: Int]
    /// `corrected` (open loop only: from the intended send time) then `uncorrected` (from the
    /// actual send time), each to the last byte of the response.
    public var latency: [LatencySeries]

    enum CodingKeys: String, CodingKey {
        case scenario, target, openLoop = "open_loop", requestedRate = "requested_rate", connections, threads
        case measuredSeconds = "measured_seconds", warmupSeconds = "warmup_seconds", responses, bytesRead = "bytes_read", unsent
        case timeoutNanoseconds = "timeout_ns", perSecond = "per_second", statusCounts = "status_counts", errors, latency
    }

    public init(scenario: String, target: String, openLoop: Bool, requestedRate: Double?, connections: Int, threads: Int,
                measuredSeconds: Double, warmupSeconds: Double, responses: Int, bytesRead: Int, unsent: Int,
                timeoutNanoseconds: UInt64, perSecond: [Int], statusCounts: [String: Int], errors: [String: Int],
                latency: [LatencySeries]) {
        (self.scenario, self.target, self.openLoop, self.requestedRate, self.connections, self.threads) =
            (scenario, target, openLoop, requestedRate, connections, threads)
        (self.measuredSeconds, self.warmupSeconds, self.responses, self.bytesRead, self.unsent, self.timeoutNanoseconds) =
            (measuredSeconds, warmupSeconds, responses, bytesRead, unsent, timeoutNanoseconds)
        (self.perSecond, self.statusCounts, self.errors, self.latency) = (perSecond, statusCounts, errors, latency)
    }

    /// The series named `name` (`corrected`, `uncorrected`).
    public func series(_ name: String) -> LatencySeries? { latency.first { $0.series == name } }
}

/// One latency distribution of a load run, in nanoseconds: the non-empty buckets of its
/// HdrHistogram (`significant_digits` digits: each bucket spans at most 1/10^digits of its value).
public struct LatencySeries: Codable, Sendable, Equatable {
    public var series: String
    public var unit = "ns"
    public var significantDigits: Int
    /// Requests in the distribution.
    public var count: UInt64
    /// The exact lowest and highest values recorded; `mean` and `stddev` as HdrHistogram computes
    /// them (over the buckets' middle values).
    public var min: UInt64
    public var max: UInt64
    public var mean: Double
    public var stddev: Double
    /// `[value_ns, count]` per non-empty bucket, ascending; `value_ns` is the bucket's highest value
    /// (what HdrHistogram reports as a percentile that falls in the bucket).
    public var buckets: [[UInt64]]

    enum CodingKeys: String, CodingKey {
        case series, unit, significantDigits = "significant_digits", count, min, max, mean, stddev, buckets
    }

    public init(series: String, histogram h: Histogram<UInt64>) {
        self.series = series
        significantDigits = Int(h.numberOfSignificantValueDigits.rawValue)
        count = h.totalCount
        let has = h.totalCount > 0
        min = has ? h.min : 0
        max = has ? h.maxRecorded : 0
        mean = has ? h.mean : 0
        stddev = has ? h.stdDeviation : 0
        buckets = h.recordedValues().map { [h.highestEquivalentForValue($0.value), UInt64($0.count)] }
    }

    /// The distribution as a histogram again: every count in its own bucket, the exact `min` and
    /// `max` recorded as themselves (the top bucket's counts all at `max`), so percentiles (p0 and p100 included), mean, min and max are
    /// those of the histogram it was written from.
    public var histogram: Histogram<UInt64> {
        var h = Histogram<UInt64>(numberOfSignificantValueDigits: SignificantDigits(rawValue: Int8(significantDigits)) ?? .three)
        h.autoResize = true
        let valid = buckets.filter { $0.count == 2 && $0[1] > 0 }
        for (i, b) in valid.enumerated() {
            var n = b[1]
            if i == 0 && h.valuesAreEquivalent(b[0], min) { _ = h.record(min); n -= 1 }
            // The top bucket's counts all go to the exact max, never to the bucket's highest value: a
            // value above `max` would raise the histogram's max, which clamps every percentile there.
            if i == valid.count - 1 && n > 0 && h.valuesAreEquivalent(b[0], max) { _ = h.record(max, count: n); n = 0 }
            if n > 0 { _ = h.record(b[0], count: n) }
        }
        return h
    }

    /// The value (ns) at percentile `p` (0-100), as `Histogram.valueAtPercentile`; nil when empty.
    public func value(atPercentile p: Double) -> UInt64? {
        count == 0 ? nil : histogram.valueAtPercentile(p)
    }
}
