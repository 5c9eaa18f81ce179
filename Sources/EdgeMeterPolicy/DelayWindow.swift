import Foundation
import EdgeMeterCore

/// The module's one error type: bad policy input, with what was wrong and what to do next.
public struct PolicyError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A percentile a requirement is stated at.
public enum DelayPercentile: String, Codable, Sendable, CaseIterable {
    case p50, p90, p99

    /// The percentile as a number (50, 90, 99).
    public var value: Double {
        switch self {
        case .p50: return 50
        case .p90: return 90
        case .p99: return 99
        }
    }
}

/// What the client saw from one node over the window, as the policy reads it.
///
/// Delays are client-side delays in milliseconds (whatever the feeding probe measures: a tcping
/// connect, an HTTP request, the vehicle probe's request). Percentiles are nearest-rank over the
/// received samples in the window (the value at rank ⌈p/100 · n⌉ of the sorted values, as
/// `Statistics.swift` defines them) and exact (the window keeps every value). Lost samples count in
/// `lossPercent` and `sent`, not in the percentiles.
public struct NodeObservation: Codable, Sendable, Equatable {
    public var node: String
    /// Samples in the window, lost ones included.
    public var sent: Int
    /// Received samples in the window: the sample count the minimum-samples rule reads.
    public var received: Int
    /// `(sent - received) / sent * 100`; 0 for an empty window.
    public var lossPercent: Double
    public var p50Milliseconds: Double?
    public var p90Milliseconds: Double?
    public var p99Milliseconds: Double?
    /// The newest received sample's delay: what a controller that takes "the node that answered
    /// first" looks at. nil when the window has no received sample.
    public var newestMilliseconds: Double?
    /// Nanoseconds from the newest sample (received or lost) to the observation time, on the
    /// window's clock; nil for an empty window.
    public var newestAgeNanoseconds: Int64?

    /// The delay at `percentile`, nil without received samples.
    public func milliseconds(at percentile: DelayPercentile) -> Double? {
        switch percentile {
        case .p50: return p50Milliseconds
        case .p90: return p90Milliseconds
        case .p99: return p99Milliseconds
        }
    }
}

/// One node's delay samples over the last `length` of the clock, for the policy.
///
/// The window holds the samples whose timestamp `t` satisfies `now - length < t <= now` (a sample
/// exactly `length` old has left it). Timestamps are monotonic nanoseconds of the injected clock
/// (`SystemClock` in production, `ManualClock` in tests and replays). Memory is one entry per
/// sample in the window (10 samples/s over 30 s is 300 entries).
public struct DelayWindow: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Monotonic nanoseconds on the window's clock.
        public var atNanoseconds: Int64
        /// nil: the sample was lost (no answer).
        public var milliseconds: Double?
    }

    public let node: String
    public let lengthNanoseconds: Int64
    public let clock: any MeasurementClock
    /// Oldest first.
    public private(set) var entries: [Entry] = []

    /// `length` must be positive.
    public init(node: String, length: Duration, clock: any MeasurementClock) throws {
        guard length > .zero else {
            throw PolicyError("the delay window of \(node) must be longer than 0 s; give a length such as 30s")
        }
        self.node = node
        self.lengthNanoseconds = length.nanoseconds
        self.clock = clock
    }

    /// Adds a sample stamped now on the window's clock; `milliseconds` nil records a lost sample.
    public mutating func add(milliseconds: Double?) throws {
        try add(milliseconds: milliseconds, atNanoseconds: clock.monotonicNanoseconds())
    }

    /// Adds a sample taken at `atNanoseconds` (the window's clock). Samples may arrive out of order;
    /// each is kept in time order. A delay must be finite and ≥ 0.
    public mutating func add(milliseconds: Double?, atNanoseconds t: Int64) throws {
        if let v = milliseconds, !(v.isFinite && v >= 0) {
            throw PolicyError("a delay sample of \(node) is \(v) ms; delays must be finite and ≥ 0 ms (record a lost sample as no value)")
        }
        let e = Entry(atNanoseconds: t, milliseconds: milliseconds)
        if let last = entries.last, last.atNanoseconds > t {
            let i = entries.firstIndex { $0.atNanoseconds > t } ?? entries.count
            entries.insert(e, at: i)
        } else {
            entries.append(e)
        }
    }

    /// Drops the samples that left the window at `now` (timestamp ≤ now - length).
    public mutating func expire(nowNanoseconds now: Int64) {
        let cutoff = now - lengthNanoseconds
        if let keep = entries.firstIndex(where: { $0.atNanoseconds > cutoff }) {
            if keep > 0 { entries.removeFirst(keep) }
        } else {
            entries.removeAll()
        }
    }

    /// Expires old samples and summarises the rest at the clock's current time.
    public mutating func observe() -> NodeObservation {
        observe(nowNanoseconds: clock.monotonicNanoseconds())
    }

    /// Expires old samples and summarises the rest at `now`. Samples stamped after `now` are
    /// left out of the figures (kept for later).
    public mutating func observe(nowNanoseconds now: Int64) -> NodeObservation {
        expire(nowNanoseconds: now)
        let current = entries.prefix { $0.atNanoseconds <= now }
        let values = current.compactMap(\.milliseconds).sorted()
        let sent = current.count
        return NodeObservation(
            node: node, sent: sent, received: values.count,
            lossPercent: sent == 0 ? 0 : Double(sent - values.count) / Double(sent) * 100,
            p50Milliseconds: Self.nearestRank(values, 50), p90Milliseconds: Self.nearestRank(values, 90),
            p99Milliseconds: Self.nearestRank(values, 99),
            newestMilliseconds: current.last(where: { $0.milliseconds != nil })?.milliseconds,
            newestAgeNanoseconds: current.last.map { now - $0.atNanoseconds })
    }

    /// Nearest-rank percentile of ascending `sorted`: the value at rank ⌈p/100 · n⌉ (at least 1),
    /// the rule of `SummaryAccumulator` in Statistics.swift. nil when empty.
    public static func nearestRank(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let n = sorted.count
        let rank = min(n, max(1, Int((p / 100 * Double(n)).nextDown.rounded(.up))))
        return sorted[rank - 1]
    }
}
