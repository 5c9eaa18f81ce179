import Foundation

/// Where probes, schedules, pacers and runners read the time and wait. Production code uses
/// `SystemClock` (EdgeMeterSystem: CLOCK_MONOTONIC and CLOCK_REALTIME, `nanosleep`); tests use
/// `ManualClock`, whose time moves only when code sleeps on it or the test advances it, so timing
/// logic is tested deterministically, in microseconds, with no real sleeps.
///
/// Why not swift-clocks' `TestClock`: the ICMP and TCP probes run on a blocking thread (`poll()`,
/// `nanosleep`) so that nothing between the send stamp and the syscall is an `await`, and
/// `TestClock` can only be waited on from async code. One protocol with a blocking and an async
/// wait serves both the blocking probes and the async ones (HTTP, calc).
public protocol MeasurementClock: Sendable {
    /// Monotonic nanoseconds since an arbitrary origin (CLOCK_MONOTONIC on `SystemClock`).
    /// Durations are differences of these values.
    func monotonicNanoseconds() -> Int64
    /// Wall-clock time (CLOCK_REALTIME), for sample timestamps only, never for durations.
    func wallNow() -> Date
    /// Blocks the calling thread until `monotonicNanoseconds() >= deadline`, waking at least every
    /// 50 ms to ask `stop`. Returns `true` when the deadline was reached, `false` when `stop` said
    /// yes first.
    @discardableResult
    func sleep(untilNanoseconds deadline: Int64, stop: () -> Bool) -> Bool
    /// The same for async code; returns `false` when `stop` said yes first or the task was cancelled.
    @discardableResult
    func sleep(untilNanoseconds deadline: Int64, stop: @Sendable () -> Bool) async -> Bool
    /// True when the time moves by itself (a real clock). Busy-waiting until a time (the ICMP
    /// spin-before-send) only makes sense then: on a virtual clock it would never end.
    var advancesByItself: Bool { get }
}

extension MeasurementClock {
    public var advancesByItself: Bool { true }
}

/// A clock that never moves by itself. `sleep(until:)` jumps the time to the deadline at once
/// (unless `stop` already says yes), and records the wait; `advance(by:)` moves it from a test.
/// `onSleep` runs after each jump (with the new time), so a test can set a stop flag, or fail a
/// connection, at an exact virtual instant.
public final class ManualClock: MeasurementClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now: Int64
    private let wallOrigin: Date
    private let origin: Int64
    private var waits: [Int64] = []
    /// Called with the new time after every sleep that moved the clock.
    public var onSleep: (@Sendable (Int64) -> Void)?

    /// `start`: the monotonic time the clock shows at first; `wall`: the wall-clock time at `start`.
    public init(start: Int64 = 1_000_000_000, wall: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        now = start
        origin = start
        wallOrigin = wall
    }

    public func monotonicNanoseconds() -> Int64 { lock.lock(); defer { lock.unlock() }; return now }

    public func wallNow() -> Date {
        lock.lock(); defer { lock.unlock() }
        return wallOrigin.addingTimeInterval(Double(now - origin) / 1e9)
    }

    /// Moves the clock forward by `nanoseconds` (never backwards).
    public func advance(by nanoseconds: Int64) {
        lock.lock(); now += max(0, nanoseconds); lock.unlock()
    }

    /// Moves the clock forward by a `Duration`.
    public func advance(by duration: Duration) {
        let c = duration.components
        advance(by: c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }

    /// Virtual time moves only when code sleeps on it or a test advances it.
    public var advancesByItself: Bool { false }

    /// Every deadline slept to so far, in order (monotonic nanoseconds).
    public var sleeps: [Int64] { lock.lock(); defer { lock.unlock() }; return waits }

    @discardableResult
    public func sleep(untilNanoseconds deadline: Int64, stop: () -> Bool) -> Bool {
        if stop() { return false }
        let t = jump(to: deadline)
        onSleep?(t)
        return !stop()
    }

    @discardableResult
    public func sleep(untilNanoseconds deadline: Int64, stop: @Sendable () -> Bool) async -> Bool {
        if stop() || Task.isCancelled { return false }
        let t = jump(to: deadline)
        onSleep?(t)
        return !(stop() || Task.isCancelled)
    }

    private func jump(to deadline: Int64) -> Int64 {
        lock.lock(); defer { lock.unlock() }
        waits.append(deadline)
        if deadline > now { now = deadline }
        return now
    }
}
