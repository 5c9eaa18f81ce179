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
/// The engine may answer the restart call before the old instance stops (it then still answers
/// for a while), so the outage is found in the answers, not assumed to start at the call:
/// - `gapMilliseconds`: the longest time between two consecutive good answers (by arrival) whose
///   later one arrived after the restart was issued: how long the client saw no answer. Its
///   resolution is the client's interval (plus the answer time).
/// - `firstGoodMilliseconds`: from issuing the restart to the first good answer to a request sent
///   after the restart call returned (the restarted instance's first answer).
/// - `failed`: requests that ended without a good answer from the restart on.
///
/// A good answer is a 200 that came within `goodWithinNanoseconds` of its send: a request whose
/// connect was retried by the kernel (SYN retransmits after 1, 3, 7 s) and answered seconds later
/// would otherwise fill the gap it sat through. The service must also answer a request sent after
/// the restart call returned (`returnedNanoseconds`), or it "did not come back".
public struct RestartDowntime: Sendable, Equatable {
    public var gapMilliseconds: Double?
    public var firstGoodMilliseconds: Double?
    public var failed: Int
    /// Requests sent in the whole window, and those with a good answer.
    public var sent: Int
    public var good: Int
    /// Why there is no gap (no good answer before, or none after): nil when there is one.
    public var problem: String?

    public static func analyse(_ records: [RestartProbeRecord], restartIssuedNanoseconds t: UInt64, returnedNanoseconds: UInt64? = nil,
                               goodWithinNanoseconds: UInt64 = 1_000_000_000) -> RestartDowntime {
        func good(_ r: RestartProbeRecord) -> Bool { r.ok && r.doneNanoseconds - r.sentNanoseconds <= goodWithinNanoseconds }
        let goods = records.filter(good).map(\.doneNanoseconds).sorted()
        let failed = records.filter { !good($0) && $0.doneNanoseconds >= t }.count
        var d = RestartDowntime(gapMilliseconds: nil, firstGoodMilliseconds: nil, failed: failed, sent: records.count,
                                good: goods.count, problem: nil)
        guard let firstBefore = goods.lastIndex(where: { $0 <= t }) else {
            d.problem = "no good answer before the restart: the service was not up"
            return d
        }
        let cameBack = records.contains { good($0) && $0.sentNanoseconds >= (returnedNanoseconds ?? t) }
        guard firstBefore + 1 < goods.count, cameBack else {
            d.problem = "no good answer after the restart within the window: the service did not come back"
            return d
        }
        var best: (gap: UInt64, end: UInt64) = (0, 0)
        for i in firstBefore..<(goods.count - 1) where goods[i + 1] - goods[i] > best.gap {
            best = (goods[i + 1] - goods[i], goods[i + 1])
        }
        d.gapMilliseconds = Double(best.gap) / 1e6
        let back = records.filter { good($0) && $0.sentNanoseconds >= (returnedNanoseconds ?? t) }.map(\.doneNanoseconds).min()
        d.firstGoodMilliseconds = back.map { Double($0 - t) / 1e6 }
        return d
    }
}
