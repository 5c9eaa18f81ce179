import Foundation

/// One request of the restart client: when it was sent and when its outcome was known, on one
/// monotonic clock (nanoseconds), and whether it got a good answer.
public struct RestartProbeRecord: Sendable, Equatable {
    public var sentNanoseconds: UInt64
    /// When the answer's last byte arrived, or when the failure was known (refused, reset, timeout).
    public var doneNanoseconds: UInt64
    public var ok: Bool
    public init(sentNanoseconds: UInt64, doneNanoseconds: UInt64, ok: Bool) {
        (self.sentNanoseconds, self.doneNanoseconds, self.ok) = (sentNanoseconds, doneNanoseconds, ok)
    }
}

/// The client-visible interruption of a restart, from the records of a fixed-rate client that ran
/// across it (pure: tested on made-up records).
///
/// - `gapMilliseconds`: from the last good answer that arrived before the restart was issued to
///   the first good answer to a request sent after it was issued: how long the client saw no
///   answer. Its resolution is the client's interval (plus the answer time).
/// - `firstGoodMilliseconds`: from issuing the restart to that first good answer.
/// - `failed`: requests sent from the restart on (and the ones in flight then) that did not get a
///   good answer.
public struct RestartDowntime: Sendable, Equatable {
    public var gapMilliseconds: Double?
    public var firstGoodMilliseconds: Double?
    public var failed: Int
    /// Requests sent in the whole window, and those with a good answer.
    public var sent: Int
    public var good: Int
    /// Why there is no gap (no good answer before, or none after): nil when there is one.
    public var problem: String?

    public static func analyse(_ records: [RestartProbeRecord], restartIssuedNanoseconds t: UInt64) -> RestartDowntime {
        let before = records.filter { $0.ok && $0.doneNanoseconds <= t }.map(\.doneNanoseconds).max()
        let after = records.filter { $0.ok && $0.sentNanoseconds >= t }.map(\.doneNanoseconds).min()
        let failed = records.filter { !$0.ok && $0.doneNanoseconds >= t }.count
        var d = RestartDowntime(gapMilliseconds: nil, firstGoodMilliseconds: nil, failed: failed, sent: records.count,
                                good: records.filter(\.ok).count, problem: nil)
        if let after { d.firstGoodMilliseconds = Double(after - t) / 1e6 }
        if let before, let after { d.gapMilliseconds = Double(after - before) / 1e6 }
        if before == nil { d.problem = "no good answer before the restart: the service was not up" }
        else if after == nil { d.problem = "no good answer after the restart within the window: the service did not come back" }
        return d
    }
}
