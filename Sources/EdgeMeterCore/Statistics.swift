import Foundation
import Histogram

/// Groups samples for a summary: one row per scenario, probe, target, metric, phase and unit.
public struct SummaryKey: Hashable, Sendable, Comparable {
    public var scenario: String
    public var probe: String
    public var target: String
    public var metric: String
    public var phase: String
    public var unit: String

    public init(scenario: String, probe: String, target: String, metric: String, phase: String, unit: String) {
        (self.scenario, self.probe, self.target, self.metric, self.phase, self.unit) = (scenario, probe, target, metric, phase, unit)
    }

    public init(_ s: Sample) {
        self.init(scenario: s.scenario, probe: s.probe, target: s.target, metric: s.metric, phase: s.phase, unit: s.unit)
    }

    public static func < (a: SummaryKey, b: SummaryKey) -> Bool {
        (a.scenario, a.probe, a.target, a.metric, a.phase, a.unit) < (b.scenario, b.probe, b.target, b.metric, b.phase, b.unit)
    }
}

/// Summary figures for one key.
///
/// - `sent` counts every attempt (every sample), `received` the `ok` ones; `lossPercent` is
///   `(sent - received) / sent * 100`, as ping prints it.
/// - `min`, `mean`, `max` and `mdev` are exact (from running sums, not the histogram). `mdev` is the
///   population standard deviation `sqrt(Σx²/n - (Σx/n)²)`, the formula iputils `ping` prints as mdev.
/// - `sum` is the exact sum of the `ok` values (counters are reported as this total).
/// - `p50`...`p999` are nearest-rank percentiles (the value at rank ⌈p/100 · n⌉ of the sorted values)
///   read from HDR histograms with 3 significant digits (relative error ≤ 0.1%). Signed metrics are
///   supported: negative values go to a second histogram of magnitudes, so a percentile of a
///   mixed-sign series is as exact as one of positive values. A percentile is reported as the bucket
///   bound farthest from minus infinity (the highest equivalent value for a positive value, minus the
///   lowest equivalent magnitude for a negative one), clamped to the exact min and max.
/// - `medianCI95` is the distribution-free 95% confidence interval of the median from order
///   statistics (ranks n/2 ∓ 1.96·√n/2), read from the same histogram; nil below 6 values.
public struct Summary: Sendable, Equatable {
    public var key: SummaryKey
    public var sent: Int
    public var received: Int
    public var lossPercent: Double
    public var min: Double?
    public var mean: Double?
    public var max: Double?
    public var mdev: Double?
    public var sum: Double?
    public var p50: Double?
    public var p90: Double?
    public var p99: Double?
    public var p999: Double?
    public var medianCI95: ClosedRange<Double>?
    public var statusCounts: [SampleStatus: Int]
}

/// Accumulates one key's values with memory bounded by two histograms (a few KiB each), whatever
/// the number of samples.
public struct SummaryAccumulator: Sendable {
    public let key: SummaryKey
    public private(set) var sent = 0
    public private(set) var received = 0
    /// Exact sums (`ExactSum`), so that merged parts (`merge`) give the same figures bit for bit.
    private var sum = ExactSum()
    private var sumSquares = ExactSum()
    private var minValue = Double.infinity
    private var maxValue = -Double.infinity
    /// Values ≥ 0 (after scaling and rounding to the histogram's resolution).
    private var positive: Histogram<UInt64>
    /// Magnitudes of values < 0; empty for unsigned metrics such as durations.
    private var negative: Histogram<UInt64>
    private let scale: Double
    /// Attempts per status, indexed by `SampleStatus.allCases` order (an array, not a dictionary:
    /// `add` runs once per row of samples.csv).
    private var statusTally = [Int](repeating: 0, count: SampleStatus.allCases.count)

    /// Histogram resolution per unit: durations in ms are recorded in ns, anything else in
    /// thousandths of its unit.
    public static func histogramScale(unit: String) -> Double {
        switch unit {
        case "ms": return 1e6
        case "s": return 1e9
        case "us": return 1e3
        default: return 1e3
        }
    }

    public init(key: SummaryKey) {
        self.key = key
        self.scale = Self.histogramScale(unit: key.unit)
        var h = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        h.autoResize = true
        self.positive = h
        self.negative = h
    }

    public mutating func add(_ sample: Sample) {
        add(status: sample.status, value: sample.value)
    }

    /// Adds one attempt: counted in `sent` and under its status; its value (ignored unless `status`
    /// is `.ok`) goes to the figures when it is finite.
    public mutating func add(status: SampleStatus, value: Double?) {
        sent += 1
        statusTally[status.tallyIndex] += 1
        guard status == .ok, let v = value, v.isFinite else { return }
        addValue(v)
    }

    /// Adds one successful value (in the key's unit); negative values are kept with their sign.
    public mutating func addValue(_ v: Double) {
        received += 1
        sum.add(v)
        sumSquares.add(v * v)
        minValue = Swift.min(minValue, v)
        maxValue = Swift.max(maxValue, v)
        let scaled = (v * scale).rounded()
        if scaled < 0 {
            _ = negative.record(UInt64(Swift.min(-scaled, 9.0e18)))
        } else {
            _ = positive.record(UInt64(Swift.min(scaled, 9.0e18)))
        }
    }

    /// Adds every attempt `other` counted (same key): the figures are then exactly those of one
    /// accumulator fed both series, in either order (histograms add bucket by bucket, sums are exact).
    public mutating func merge(_ other: SummaryAccumulator) {
        sent += other.sent
        received += other.received
        sum.add(other.sum)
        sumSquares.add(other.sumSquares)
        minValue = Swift.min(minValue, other.minValue)
        maxValue = Swift.max(maxValue, other.maxValue)
        positive.add(other.positive)
        negative.add(other.negative)
        for i in statusTally.indices { statusTally[i] += other.statusTally[i] }
    }

    /// The value at 1-based rank `rank` of the sorted values (both histograms together).
    private func valueAtRank(_ rank: Int) -> Double {
        let negCount = Int(negative.totalCount)
        let v: Double
        if rank <= negCount {
            // The rank-th smallest value is the (negCount - rank + 1)-th smallest magnitude's negation.
            let k = negCount - rank + 1
            let raw = negative.valueAtPercentile((Double(k) - 0.5) / Double(negCount) * 100)
            v = -Double(negative.lowestEquivalentForValue(raw)) / scale
        } else {
            let posCount = Int(positive.totalCount)
            let k = rank - negCount
            v = Double(positive.valueAtPercentile((Double(k) - 0.5) / Double(posCount) * 100)) / scale
        }
        return Swift.min(Swift.max(v, minValue), maxValue)
    }

    /// Nearest-rank percentile: the value at rank ⌈p/100 · n⌉ (at least 1).
    private func percentile(_ p: Double) -> Double? {
        guard received > 0 else { return nil }
        let n = received
        let rank = Swift.min(n, Swift.max(1, Int((p / 100 * Double(n)).nextDown.rounded(.up))))
        return valueAtRank(rank)
    }

    public var summary: Summary {
        let n = Double(received)
        var ci: ClosedRange<Double>?
        if received >= 6 {
            let half = 1.96 * n.squareRoot() / 2
            let lowRank = Swift.max(1, Int((n / 2 - half).rounded(.down)))
            let highRank = Swift.min(received, Int((1 + n / 2 + half).rounded(.up)))
            let lo = valueAtRank(lowRank)
            let hi = valueAtRank(highRank)
            ci = Swift.min(lo, hi)...Swift.max(lo, hi)
        }
        var mean: Double?
        var mdev: Double?
        if received > 0 {
            let m = sum.value / n
            mean = m
            mdev = Swift.max(0, sumSquares.value / n - m * m).squareRoot()
        }
        return Summary(
            key: key, sent: sent, received: received,
            lossPercent: sent == 0 ? 0 : Double(sent - received) / Double(sent) * 100,
            min: received > 0 ? minValue : nil, mean: mean, max: received > 0 ? maxValue : nil, mdev: mdev,
            sum: received > 0 ? sum.value : nil,
            p50: percentile(50), p90: percentile(90), p99: percentile(99), p999: percentile(99.9), medianCI95: ci,
            statusCounts: statusCounts)
    }

    /// The statuses seen, with their counts (statuses never seen are absent).
    private var statusCounts: [SampleStatus: Int] {
        var out: [SampleStatus: Int] = [:]
        for (i, st) in SampleStatus.allCases.enumerated() where statusTally[i] > 0 { out[st] = statusTally[i] }
        return out
    }
}

/// Summaries for many keys, fed sample by sample; rows come out in the order keys first appeared
/// (suite order, then target order), which is the order a reader expects in a report.
public struct Summarizer: Sendable {
    /// In order of first appearance.
    private var accumulators: [SummaryAccumulator] = []
    private var indexByKey: [SummaryKey: Int] = [:]
    public init() {}
    public mutating func add(_ sample: Sample) {
        add(at: index(for: SummaryKey(sample)), status: sample.status, value: sample.value)
    }

    /// The summaries of `samples`, in the order their keys first appear.
    public static func summaries(of samples: some Sequence<Sample>) -> [Summary] {
        var s = Summarizer()
        for x in samples { s.add(x) }
        return s.summaries
    }

    /// The position of `key`'s accumulator, created (at the end of the row order) when new; for
    /// callers that look a key up once and add many rows to it (`SampleStreamSummarizer`).
    public mutating func index(for key: SummaryKey) -> Int {
        if let i = indexByKey[key] { return i }
        accumulators.append(SummaryAccumulator(key: key))
        indexByKey[key] = accumulators.count - 1
        return accumulators.count - 1
    }

    /// Adds one attempt to the accumulator at `index` (from `index(for:)`).
    public mutating func add(at index: Int, status: SampleStatus, value: Double?) {
        accumulators[index].add(status: status, value: value)
    }

    public var summaries: [Summary] {
        accumulators.map(\.summary)
    }

    /// Adds `other`, fed with the samples that came after this one's: the result is what one
    /// `Summarizer` fed both gives (rows in first-appearance order, every figure bit for bit).
    public mutating func merge(_ other: Summarizer) {
        for a in other.accumulators {
            if let i = indexByKey[a.key] {
                accumulators[i].merge(a)
            } else {
                accumulators.append(a)
                indexByKey[a.key] = accumulators.count - 1
            }
        }
    }
    public var isEmpty: Bool { accumulators.isEmpty }
}

/// Quantiles of a handful of values held in memory (report tables, not the streamed summaries).
public enum Quantile {
    /// The element at rank `round(q · (n − 1))` of `sorted` (ascending, 0-based), `q` in 0...1: no
    /// interpolation, so the figure is always one of the values (q = 0 the minimum, 1 the maximum).
    /// nil when `sorted` is empty.
    public static func rounded<T>(_ sorted: [T], _ q: Double) -> T? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((Swift.min(1, Swift.max(0, q)) * Double(sorted.count - 1)).rounded())
        return sorted[Swift.min(sorted.count - 1, rank)]
    }
}
