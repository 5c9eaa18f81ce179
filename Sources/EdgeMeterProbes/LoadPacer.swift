import Histogram

/// The timing rules of one connection of a load run, as a pure state machine over monotonic
/// nanoseconds: when its next request is due, which requests are measured (intended send time at
/// or after the warm-up), and what each one records, with wrk2's coordinated-omission correction.
/// No clock, no I/O: the caller passes the time of every event (`LoadSlot` reads CLOCK_MONOTONIC,
/// the tests a virtual clock), so the rules are tested on virtual time.
///
/// The schedule (open loop): connection `index` of `connections` sends its request number `k` at
/// `t0 + (k·connections + index) / rate` (rounded to the ns), computed from `k` each time, so it
/// never drifts. When the connection is still waiting for an earlier response at a request's slot,
/// that request goes out as soon as the response is complete, keeping its slot as intended send
/// time: the backlog goes out back to back until the schedule is caught up. Closed loop (`rate`
/// nil): the next request goes out when the previous response is complete, and its intended send
/// time is its actual one.
///
/// What a request records (only when its intended send time is at or after `measureStart`):
/// - a response: `corrected` = last byte of the response − intended send time (open loop only),
///   `uncorrected` = last byte − actual send time (handing the bytes to the socket);
/// - a timeout: `corrected` = lag behind the slot + timeout, `uncorrected` = the timeout;
/// - at the end (open loop): every request whose slot lies before the end but that was never sent
///   is `unsent` and recorded in `corrected` at end − intended send time.
/// Requests whose intended send time lies in the warm-up are counted as warm-up only.
struct LoadPacer: Sendable {
    /// The first intended send time (the end of the connections' lead-in).
    let t0: UInt64
    /// Requests intended at or after this are measured.
    let measureStart: UInt64
    /// The end of the run: no request is sent at or after it. Lowered by `stop(at:)`.
    private(set) var end: UInt64
    /// Requests per second over all connections (open loop); nil: closed loop.
    let rate: Double?
    let connections: Int
    /// This connection's place in the schedule (0..<connections).
    let index: Int
    /// Measured requests this connection sends at most (count mode); nil: until the end.
    let quota: Int?
    let timeoutNanos: UInt64

    /// Requests sent so far (warm-up included); the next one is number `seq` on the schedule.
    private(set) var seq = 0
    private(set) var measuredSent = 0
    private(set) var inFlight = false
    /// Intended and actual send time of the request in flight (or the last one sent).
    private(set) var intended: UInt64 = 0
    private(set) var sentAt: UInt64 = 0
    private(set) var finished = false

    init(t0: UInt64, measureStart: UInt64, end: UInt64, rate: Double?, connections: Int, index: Int,
         quota: Int?, timeoutNanos: UInt64) {
        self.t0 = t0
        self.measureStart = measureStart
        self.end = end
        self.rate = rate
        self.connections = connections
        self.index = index
        self.quota = quota
        self.timeoutNanos = timeoutNanos
    }

    /// What the connection does next when it is idle.
    enum Step: Equatable, Sendable {
        /// Nothing: a request is in flight, or the pacer has finished.
        case nothing
        /// Send a request now with this intended send time.
        case send(intended: UInt64)
        /// Ask again at this time (the next slot, or the end of the lead-in).
        case wait(until: UInt64)
        /// The connection's part of the run is over: call `finish`.
        case finish
    }

    @inline(__always) func isMeasured(_ intendedTime: UInt64) -> Bool { intendedTime >= measureStart }

    /// Intended send time of this connection's request number `k` on the fixed schedule (open loop).
    @inline(__always) func scheduled(_ k: Int) -> UInt64 {
        guard let rate else { return 0 }
        return t0 + UInt64((Double(k * connections + index) * 1e9 / rate).rounded())
    }

    /// Whether the quota of measured requests is used up.
    @inline(__always) var quotaReached: Bool {
        if let q = quota { return measuredSent >= q }
        return false
    }

    /// The next step at `now` for an idle, open connection. A lagging open loop does not keep
    /// sending its backlog after the end (`finish` records it as unsent), and no request whose slot
    /// lies at or after the end is sent.
    func next(now: UInt64) -> Step {
        if finished || inFlight { return .nothing }
        if quotaReached { return .finish }
        // Closed loop: nothing goes out during the lead-in, so every request is warm-up or measured.
        let due = rate == nil ? max(now, t0) : scheduled(seq)
        if now >= end || due >= end { return .finish }
        if due > now { return .wait(until: due) }
        return .send(intended: rate == nil ? now : due)
    }

    /// A request with this intended send time was handed to the socket at `now`.
    mutating func sent(intended due: UInt64, at now: UInt64) {
        intended = due
        sentAt = now
        inFlight = true
        seq += 1
        if isMeasured(due) { measuredSent += 1 }
    }

    /// The in-flight request's response was complete (its last byte read) at `now`. `failure` is
    /// `.status` or `.body` when the response missed the expectations, `bytes` what was read for it.
    /// Returns false when no request was in flight (nothing recorded).
    @discardableResult
    mutating func completed(at now: UInt64, status: Int, failure: LoadErrorKind?, bytes: Int,
                            into stats: LoopStats) -> Bool {
        guard inFlight else { return false }
        inFlight = false
        if isMeasured(intended) {
            if rate != nil { stats.correctedLatencies.record(now &- intended) }
            stats.uncorrectedLatencies.record(now &- sentAt)
            stats.responses += 1
            stats.statusCounts[min(max(status, 0), 999)] += 1
            stats.bytesRead += bytes
            if let failure { stats.count(failure) }
            let second = Int((now &- measureStart) / 1_000_000_000)
            if second < 1_000_000 {
                while stats.perSecond.count <= second { stats.perSecond.append(0) }
                stats.perSecond[second] += 1
            }
            if now > stats.lastCompletion { stats.lastCompletion = now }
        } else {
            stats.warmupRequests += 1
        }
        return true
    }

    /// Whether the request in flight has gone without a complete response for longer than the
    /// timeout at `now`. If so it is recorded as a timeout (and no longer in flight): the caller
    /// closes the connection.
    mutating func timedOut(at now: UInt64, into stats: LoopStats) -> Bool {
        guard inFlight, now &- sentAt > timeoutNanos else { return false }
        inFlight = false
        recordTimeout(into: stats)
        return true
    }

    /// A measured request without a complete response within the timeout: counted as a `timeout`
    /// error and recorded at the timeout value (uncorrected), at the timeout plus its lag behind
    /// its slot (corrected), as wrk2 does, so the percentiles do not leave out the worst requests.
    private func recordTimeout(into stats: LoopStats) {
        guard isMeasured(intended) else { return }
        stats.count(.timeout)
        if rate != nil { stats.correctedLatencies.record((sentAt &- intended) &+ timeoutNanos) }
        stats.uncorrectedLatencies.record(timeoutNanos)
    }

    /// The response in flight was not HTTP: a `body` error (if measured); the caller closes.
    mutating func protocolError(into stats: LoopStats) {
        guard inFlight else { return }
        inFlight = false
        if isMeasured(intended) { stats.count(.body) }
    }

    /// The connection closed: a request in flight is a `reset` error (if measured).
    mutating func connectionLost(into stats: LoopStats) {
        guard inFlight else { return }
        inFlight = false
        if isMeasured(intended) { stats.count(.reset) }
    }

    /// Whether a connection should be (re)opened at `now`: not after the end or the quota.
    func shouldConnect(now: UInt64) -> Bool { !finished && now < end && !quotaReached }

    /// A connect attempt failed at `now`: a `connect` error once the measured window has begun.
    func connectFailed(at now: UInt64, into stats: LoopStats) {
        if isMeasured(now) { stats.count(.connect) }
    }

    /// A stop request at `now`: the run ends there (never later than planned).
    mutating func stop(at now: UInt64) {
        if now < end { end = now }
    }

    /// Ends the connection's part of the run. Open loop: records the requests whose slot lies
    /// before the end but that were never sent (the connection was busy with a slow response or
    /// reconnecting) as `unsent`, each in `corrected` at end − intended send time, the least it
    /// would have waited, so a stall just before the end shows as it does mid-window. A connection
    /// that never connected records nothing here (its connect errors say why).
    mutating func finish(everConnected: Bool, into stats: LoopStats) {
        if finished { return }
        finished = true
        guard rate != nil, everConnected else { return }
        var k = seq
        var counted = 0
        while true {
            if let q = quota, measuredSent + counted >= q { break }
            let due = scheduled(k)
            if due >= end { break }
            if isMeasured(due) {
                stats.correctedLatencies.record(end &- due)
                stats.unsent += 1
                counted += 1
            }
            k += 1
        }
    }

    /// Ends the connection at once after the grace period: a request still in flight is a timeout.
    mutating func abort(everConnected: Bool, into stats: LoopStats) {
        if inFlight { recordTimeout(into: stats) }
        inFlight = false
        finish(everConnected: everConnected, into: stats)
    }
}

/// The run's time bounds, as pure arithmetic over monotonic nanoseconds: the lead-in, the warm-up,
/// the planned end, a stop request, the grace period after the end for responses in flight, and
/// the measured window the result reports.
struct LoadWindow: Sendable {
    /// The first intended send time (after a lead-in in which connections open).
    let t0: UInt64
    /// The start of the measured window (`t0` + warm-up).
    let measureStart: UInt64
    /// The planned end (duration mode: `measureStart` + duration; count mode: + max duration).
    let end: UInt64
    /// Count mode: the window ends at the last measured completion instead of `end`.
    let countMode: Bool
    /// How long after the end requests in flight may still complete before the run is aborted.
    let graceNanos: UInt64
    /// When a stop request (or the give-up on a dead target) ended the run.
    private(set) var stoppedAt: UInt64?

    init(t0: UInt64, warmupNanos: UInt64, durationNanos: UInt64?, maxDurationNanos: UInt64, timeoutNanos: UInt64) {
        self.t0 = t0
        measureStart = t0 + warmupNanos
        end = measureStart + (durationNanos ?? maxDurationNanos)
        countMode = durationNanos == nil
        graceNanos = timeoutNanos + 500_000_000
    }

    /// The first stop request counts.
    mutating func stop(at now: UInt64) { if stoppedAt == nil { stoppedAt = now } }

    /// The end in force: the planned one, or an earlier stop.
    var effectiveEnd: UInt64 { min(end, stoppedAt ?? end) }

    /// Whether the grace period after the end has passed at `now` (in-flight requests are then
    /// recorded as timeouts and the connections closed).
    func graceOver(at now: UInt64) -> Bool { now > effectiveEnd + graceNanos }

    /// The measured window's length in ns: from `measureStart` to the stop (if any, and before
    /// the end), the planned end (duration mode) or the last measured completion (count mode);
    /// 0 when the run ended before the window began.
    func measuredNanoseconds(lastCompletion: UInt64) -> UInt64 {
        let windowEnd: UInt64
        if let stoppedAt {
            windowEnd = max(min(stoppedAt, end), measureStart)
        } else if !countMode {
            windowEnd = end
        } else {
            windowEnd = max(lastCompletion, measureStart)
        }
        return windowEnd &- measureStart
    }
}
