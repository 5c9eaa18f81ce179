import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterCore

/// `poll()` on one descriptor, injectable so a test can stand in for the kernel's wait on a manual
/// clock (advance the clock by the timeout instead of sleeping).
public typealias PollOne = (_ fd: inout pollfd, _ timeoutMilliseconds: Int32) -> Int32

/// The real `poll()` on one descriptor.
public func systemPoll(_ fd: inout pollfd, _ timeoutMilliseconds: Int32) -> Int32 { poll(&fd, 1, timeoutMilliseconds) }

/// The timed TCP connect that `tcping`, `http` and the HTTP client share: the clock
/// (CLOCK_MONOTONIC) read just before `connect()` (the SYN leaves inside that call), then `poll()` in
/// slices of at most 50 ms until the socket is writable, read again at once, and `SO_ERROR` checked
/// (0: the SYN-ACK arrived and the kernel sent the ACK). Excludes name resolution and anything done
/// with the socket after. Blocking: call it off event loops.
public enum TimedTCPConnect {
    public enum Outcome: Sendable, Equatable {
        /// Monotonic nanoseconds just before `connect()` and when the socket was found connected.
        case connected(start: Int64, end: Int64)
        /// The errno of `connect()`, `SO_ERROR` or `poll()`; ECANCELED when `stop` said so.
        case failed(errno: Int32)
        case timedOut
    }

    /// `fd` must be a non-blocking stream socket; it stays open whatever the outcome. `stop` is
    /// checked at least every 50 ms while waiting. Time comes from `clock` (durations on its
    /// monotonic time, the budget an `AttemptBudget`); `poll` stands in for the kernel's wait in tests
    /// on a manual clock.
    public static func run(fd: Int32, storage: sockaddr_storage, length: socklen_t, timeoutNanoseconds: Int64,
                           clock: any MeasurementClock = SystemClock(), stop: () -> Bool = { false },
                           poll pollOne: PollOne = systemPoll) -> Outcome {
        var addr = storage
        let t0 = clock.monotonicNanoseconds()
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        if rc == 0 { return .connected(start: t0, end: clock.monotonicNanoseconds()) }
        let err = errno
        guard err == EINPROGRESS else { return .failed(errno: err) }
        let budget = AttemptBudget(start: t0, timeoutNanoseconds: timeoutNanoseconds)
        while true {
            if stop() { return .failed(errno: ECANCELED) }
            let now = clock.monotonicNanoseconds()
            if budget.isSpent(at: now) { return .timedOut }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = pollOne(&p, budget.pollMilliseconds(at: now))
            let t1 = clock.monotonicNanoseconds()
            if n > 0 {
                var soErr: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                return soErr == 0 ? .connected(start: t0, end: t1) : .failed(errno: soErr)
            }
            if n < 0 && errno != EINTR { return .failed(errno: errno) }
        }
    }

    /// Opens a non-blocking, close-on-exec stream socket for `storage`'s family, connects it as
    /// `run` does and returns it connected with the handshake's duration; the caller owns the
    /// descriptor. On failure the socket is closed and the outcome returned.
    public static func open(storage: sockaddr_storage, length: socklen_t, timeoutNanoseconds: Int64,
                            stop: () -> Bool = { false }) -> Result<(fd: Int32, nanoseconds: Int64), Failure> {
        let fd = socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Failure(errnoCode: errno, timedOut: false)) }
        switch run(fd: fd, storage: storage, length: length, timeoutNanoseconds: timeoutNanoseconds, stop: stop) {
        case .connected(let start, let end):
            return .success((fd, end - start))
        case .failed(let code):
            close(fd)
            return .failure(Failure(errnoCode: code, timedOut: false))
        case .timedOut:
            close(fd)
            return .failure(Failure(errnoCode: ETIMEDOUT, timedOut: true))
        }
    }

    /// The socket address of a numeric IPv4 or IPv6 host (`172.17.0.2`, `::1`) and port, nil for a name.
    public static func numericAddress(host: String, port: Int) -> (storage: sockaddr_storage, length: socklen_t)? {
        func make<T>(_ family: Int32, _ value: T, _ fill: (inout T) -> Int32) -> (storage: sockaddr_storage, length: socklen_t)? {
            var v = value
            guard fill(&v) == 1 else { return nil }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: v) { dst.copyMemory(from: $0) } }
            return (storage, socklen_t(MemoryLayout<T>.size))
        }
        let p = UInt16(truncatingIfNeeded: port).bigEndian
        return make(AF_INET, sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: p, sin_addr: in_addr(), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))) {
            inet_pton(AF_INET, host, &$0.sin_addr)
        } ?? make(AF_INET6, sockaddr_in6(sin6_family: sa_family_t(AF_INET6), sin6_port: p, sin6_flowinfo: 0, sin6_addr: in6_addr(), sin6_scope_id: 0)) {
            inet_pton(AF_INET6, host, &$0.sin6_addr)
        }
    }

    /// Why a connect failed: the errno of `connect()`/`SO_ERROR`, or the timeout.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var errnoCode: Int32
        public var timedOut: Bool
        public var description: String {
            timedOut ? "no SYN-ACK within the timeout" : String(cString: strerror(errnoCode))
        }
    }

    /// The socket's local port (after a connect), nil when getsockname fails.
    public static func localPort(_ fd: Int32) -> UInt16? {
        var local = sockaddr_storage()
        var llen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &llen) } }
        guard got == 0 else { return nil }
        let family = Int32(local.ss_family)
        return withUnsafePointer(to: &local) { p -> UInt16 in
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
