/// When a probe's attempts are due and when its run ends: at most `count` rounds, round k due at
/// start + k·`interval` (monotonic time), and nothing started at or after start + `deadline`.
///
/// No drift: the due times are fixed at the start. A round that starts late (the previous one ran
/// past its slot) starts at once and does not move later rounds; a probe makes one attempt per
/// target per round, one after the other, so attempts to one target never overlap. When attempts
/// take longer than the interval, rounds run back to back until the schedule catches up.
public struct Schedule: Sendable, Equatable {
    /// Rounds to run; nil = until the deadline or a stop request.
    public var count: Int?
    /// Between the due times of successive rounds; `.zero`: a closed loop (`isClosedLoop`).
    public var interval: Duration
    /// From the start of the run; no round starts at or after it.
    public var deadline: Duration?

    public init(count: Int? = nil, interval: Duration = .seconds(1), deadline: Duration? = nil) {
        (self.count, self.interval, self.deadline) = (count, interval, deadline)
    }

    public var intervalNanoseconds: Int64 { max(1, interval.nanoseconds) }

    /// An interval of zero (or less): no pacing. Every round is due at the start, so each starts
    /// as soon as the previous one ended (back to back). The load probe calls this a closed loop
    /// (wrk: a connection sends its next request when the response arrived); startup runs its
    /// iterations back to back. Build one with `Schedule.closedLoop(count:deadline:)`.
    public var isClosedLoop: Bool { interval <= .zero }

    /// A schedule without pacing (`interval == .zero`, see `isClosedLoop`).
    public static func closedLoop(count: Int? = nil, deadline: Duration? = nil) -> Schedule {
        Schedule(count: count, interval: .zero, deadline: deadline)
    }

    /// The monotonic time round `index` (0-based) is due, for a run that started at `start`
    /// (`start` for every round of a closed loop).
    public func due(round index: Int, start: Int64) -> Int64 { isClosedLoop ? start : start + Int64(index) * intervalNanoseconds }

    /// The monotonic time the run ends, when it has a deadline.
    public func end(start: Int64) -> Int64? { deadline.map { start + $0.nanoseconds } }
}

/// One round handed to the probe: its index, when it was due and when it actually started.
public struct ScheduleRound: Sendable, Equatable {
    /// 0-based.
    public var index: Int
    /// Monotonic nanoseconds the round was due (start + index·interval).
    public var due: Int64
    /// Monotonic nanoseconds the loop handed the round over (≥ `due`).
    public var started: Int64
    /// 1-based, as ping numbers its echoes (`seq=`).
    public var sequence: Int { index + 1 }
    /// How late the round started, in nanoseconds (0 when on time).
    public var lateNanoseconds: Int64 { started - due }

    public init(index: Int, due: Int64, started: Int64) { (self.index, self.due, self.started) = (index, due, started) }
}

/// Why a scheduled run ended.
public enum ScheduleEnd: String, Sendable, Equatable {
    /// Every round of `count` ran.
    case count
    /// The deadline passed.
    case deadline
    /// The stop flag was set (SIGINT, SIGTERM, an outer deadline).
    case stopped
}

/// The loop's decisions, pure: given the time and whether a stop was asked, what to do next.
/// `runSchedule` drives it on a clock; tests can drive it by hand.
public struct ScheduleCursor: Sendable {
    public enum Step: Sendable, Equatable {
        /// Wait until this monotonic time. `beforeRound` is true when a round is due then (false
        /// when it is the deadline), so a spin-before-send applies only before a round.
        case wait(until: Int64, beforeRound: Bool)
        /// Run this round now.
        case run(ScheduleRound)
        case end(ScheduleEnd)
    }

    public let schedule: Schedule
    /// Monotonic nanoseconds the run started (round 0 is due then).
    public let start: Int64
    /// Rounds handed over so far.
    public private(set) var rounds = 0

    public init(_ schedule: Schedule, start: Int64) { (self.schedule, self.start) = (schedule, start) }

    /// The next step at monotonic time `now`. A stop request ends the run first, then the count,
    /// then the deadline; otherwise the next round runs once it is due.
    public mutating func next(now: Int64, stopped: Bool) -> Step {
        if stopped { return .end(.stopped) }
        if let c = schedule.count, rounds >= c { return .end(.count) }
        let end = schedule.end(start: start)
        if let end, now >= end { return .end(.deadline) }
        let due = schedule.due(round: rounds, start: start)
        if now < due {
            if let end, end <= due { return .wait(until: end, beforeRound: false) }
            return .wait(until: due, beforeRound: true)
        }
        let round = ScheduleRound(index: rounds, due: due, started: now)
        rounds += 1
        return .run(round)
    }
}

/// The one attempt loop of the probes (blocking form): runs `body` for each round of `schedule`
/// on `clock`, in order, never two at once, until the count, the deadline or `stop`. Returns why it
/// ended. `stop` is checked before every round and after every wait. Waits sleep on `clock`,
/// waking at least every 50 ms to check `stop`.
@discardableResult
public func runSchedule(_ schedule: Schedule, clock: any MeasurementClock, stop: StopFlag,
                        round body: (ScheduleRound) -> Void) -> ScheduleEnd {
    runSchedule(schedule, clock: clock, stop: stop, wait: { clock.sleep(untilNanoseconds: $0, stop: { stop.isStopped }) }, round: body)
}

/// The same loop with a custom wait and an optional spin-before-send (the ICMP probe's form).
///
/// - `start`: the monotonic time round 0 is due (default: now), for a caller that needs the
///   schedule's times after the loop (the ICMP probe drains its replies until the deadline).
/// - `wait`: how to wait until a time; it may return early (the loop asks the clock again). The
///   ICMP probe receives replies meanwhile.
/// - `spinNanoseconds` / `idle`: spin-before-send. The last `spinNanoseconds` before each due round
///   are spent calling `idle` in a loop (busy-waiting; ICMP polls its sockets with a zero timeout)
///   instead of waiting, so the CPU is awake when the round starts. Only on a clock that
///   `advancesByItself`: on a virtual clock there is no spin and the loop waits until the due time.
@discardableResult
public func runSchedule(_ schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, start: Int64? = nil,
                        spinNanoseconds: Int64 = 0, idle: () -> Void = {},
                        wait: (Int64) -> Void,
                        round body: (ScheduleRound) -> Void) -> ScheduleEnd {
    var cursor = ScheduleCursor(schedule, start: start ?? clock.monotonicNanoseconds())
    let spin = spinNanoseconds > 0 && clock.advancesByItself
    while true {
        switch cursor.next(now: clock.monotonicNanoseconds(), stopped: stop.isStopped) {
        case .end(let why):
            return why
        case .run(let round):
            body(round)
        case .wait(let until, let beforeRound):
            let waitUntil = spin && beforeRound ? until - spinNanoseconds : until
            if spin && clock.monotonicNanoseconds() >= waitUntil {
                idle()
            } else {
                wait(waitUntil)
            }
        }
    }
}

/// The same loop for async attempts (HTTP, calc): the same `ScheduleCursor`, waiting with the
/// clock's async sleep; no spin.
@discardableResult
public func runSchedule(_ schedule: Schedule, clock: any MeasurementClock, stop: StopFlag,
                        round body: (ScheduleRound) async -> Void) async -> ScheduleEnd {
    var cursor = ScheduleCursor(schedule, start: clock.monotonicNanoseconds())
    while true {
        switch cursor.next(now: clock.monotonicNanoseconds(), stopped: stop.isStopped) {
        case .end(let why):
            return why
        case .run(let round):
            await body(round)
        case .wait(let until, _):
            await clock.sleep(untilNanoseconds: until, stop: { stop.isStopped })
        }
    }
}

/// The time one attempt, or one phase of it, may take: `timeoutNanoseconds` from `start`
/// (monotonic). The probes wait in `poll()` slices of at most 50 ms and ask the budget before each.
public struct AttemptBudget: Sendable, Equatable {
    /// Monotonic nanoseconds the timed span began (just before `connect()`, before the payload's `send()`).
    public var start: Int64
    public var timeoutNanoseconds: Int64

    public init(start: Int64, timeoutNanoseconds: Int64) {
        self.start = start
        self.timeoutNanoseconds = max(1, timeoutNanoseconds)
    }

    /// When the budget is spent.
    public var deadline: Int64 { start + timeoutNanoseconds }
    /// Nanoseconds left at `now` (0 once spent).
    public func remaining(at now: Int64) -> Int64 { max(0, deadline - now) }
    /// True from `deadline` on.
    public func isSpent(at now: Int64) -> Bool { now >= deadline }
    /// The next `poll()` timeout in milliseconds: the time left rounded up to a whole millisecond
    /// (so the wait never ends before the deadline), at most `sliceMilliseconds`.
    public func pollMilliseconds(at now: Int64, sliceMilliseconds: Int32 = 50) -> Int32 {
        Int32(min(Int64(sliceMilliseconds), (remaining(at: now) + 999_999) / 1_000_000))
    }
}
