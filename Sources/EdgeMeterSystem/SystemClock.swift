import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterCore

/// The real clock: CLOCK_MONOTONIC for durations, CLOCK_REALTIME for timestamps, `nanosleep` in
/// slices of at most 50 ms (so a stop request is seen within 50 ms) for the blocking wait, and
/// `Task.sleep` in the same slices for the async one.
public struct SystemClock: MeasurementClock {
    public init() {}

    @inline(__always)
    public func monotonicNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public func wallNow() -> Date { Date() }

    @discardableResult
    public func sleep(untilNanoseconds deadline: Int64, stop: () -> Bool) -> Bool {
        while true {
            if stop() { return false }
            let now = monotonicNanoseconds()
            if now >= deadline { return true }
            let slice = min(deadline - now, 50_000_000)
            var ts = timespec(tv_sec: Int(slice / 1_000_000_000), tv_nsec: Int(slice % 1_000_000_000))
            nanosleep(&ts, nil)
        }
    }

    @discardableResult
    public func sleep(untilNanoseconds deadline: Int64, stop: @Sendable () -> Bool) async -> Bool {
        while true {
            if stop() || Task.isCancelled { return false }
            let now = monotonicNanoseconds()
            if now >= deadline { return true }
            let slice = min(deadline - now, 50_000_000)
            try? await Task.sleep(nanoseconds: UInt64(slice))
        }
    }
}
