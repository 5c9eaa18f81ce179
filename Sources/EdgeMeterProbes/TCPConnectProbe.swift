import Foundation
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

public struct TCPConnectOptions: Sendable {
    public var count: Int?
    /// Attempts to one target start at start + k·interval; an attempt that runs longer than the
    /// interval delays the next one (attempts never overlap).
    public var interval: Duration = .seconds(1)
    /// Limit for the connect, and separately for the first byte.
    public var timeout: Duration = .seconds(1)
    public var deadline: Duration?
    /// Bytes to send once connected; enables the `first_byte` phase.
    public var payload: [UInt8]?
    /// Bytes the reply must contain (checked on what arrives within the timeout, at most 64 KiB).
    public var expect: [UInt8]?

    public init(count: Int? = nil, interval: Duration = .seconds(1), timeout: Duration = .seconds(1), deadline: Duration? = nil,
                payload: [UInt8]? = nil, expect: [UInt8]? = nil) {
        self.count = count
        self.interval = interval
        self.timeout = timeout
        self.deadline = deadline
        self.payload = payload
        self.expect = expect
    }
}

/// One TCP attempt.
///
/// - `connectNanoseconds`: CLOCK_MONOTONIC from just before `connect()` (the SYN is sent inside
///   that call) until `poll()` reports the socket writable with `SO_ERROR == 0`, i.e. the SYN-ACK
///   arrived and the kernel sent the ACK. Excludes name resolution (its own phase).
/// - `firstByteNanoseconds`: from just before `send()` of the payload until the first byte of the
///   reply is readable. nil when no payload is configured or the attempt failed earlier.
public struct TCPAttempt: Sendable {
    public enum Status: Sendable, Equatable { case ok, refused, timeout, unreachable, error }
    public var targetIndex: Int
    public var sequence: Int
    public var startedAt: Date
    public var localPort: UInt16?
    public var connectStatus: Status
    public var connectNanoseconds: Int64?
    public var firstByteStatus: Status?
    public var firstByteNanoseconds: Int64?
    public var reason: String
    public var firstByteReason: String
}

/// tcping: TCP connect time with an optional request/response exchange.
public final class TCPConnectProbe {
    public let targets: [ResolvedTarget]
    public let options: TCPConnectOptions
    private let stop: StopFlag

    public init(targets: [ResolvedTarget], options: TCPConnectOptions, stop: StopFlag) {
        self.targets = targets
        self.options = options
        self.stop = stop
    }

    public func run(onAttempt: (TCPAttempt) -> Void) {
        let start = Clocks.monotonicNanoseconds()
        let interval = max(Int64(1), options.interval.nanoseconds)
        let deadline = options.deadline.map { start + $0.nanoseconds }
        var round = 0
        while !stop.isStopped {
            if let c = options.count, round >= c { return }
            let due = start + Int64(round) * interval
            // Sleep in slices so a stop request or the deadline is seen promptly.
            while true {
                let now = Clocks.monotonicNanoseconds()
                if stop.isStopped { return }
                if let d = deadline, now >= d { return }
                if now >= due { break }
                let slice = min(due - now, 50_000_000)
                var ts = timespec(tv_sec: Int(slice / 1_000_000_000), tv_nsec: Int(slice % 1_000_000_000))
                nanosleep(&ts, nil)
            }
            for i in targets.indices {
                if stop.isStopped { return }
                onAttempt(attempt(target: i, sequence: round + 1))
            }
            round += 1
        }
    }

    /// Performs one attempt to `targets[target]`.
    public func attempt(target i: Int, sequence: Int) -> TCPAttempt {
        let t = targets[i]
        let timeoutNs = max(Int64(1), options.timeout.nanoseconds)
        var result = TCPAttempt(targetIndex: i, sequence: sequence, startedAt: Date(), localPort: nil, connectStatus: .error,
                                connectNanoseconds: nil, firstByteStatus: options.payload == nil ? nil : .error,
                                firstByteNanoseconds: nil, reason: "", firstByteReason: "")
        let fd = socket(t.address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            result.reason = "socket() failed: \(errnoText(errno))"
            result.firstByteReason = "not attempted: connect failed"
            return result
        }
        defer { close(fd) }
        var err: Int32 = 0
        var t1: Int64 = 0, t0: Int64 = 0
        switch TimedTCPConnect.run(fd: fd, address: t.address, timeoutNanoseconds: timeoutNs, stop: { stop.isStopped }) {
        case .connected(let start, let end):
            t0 = start; t1 = end
        case .failed(let code):
            err = code
        case .timedOut:
            result.connectStatus = .timeout
            result.reason = "no SYN-ACK within \(ICMPProbe.describe(timeoutNs))"
            result.firstByteReason = "not attempted: connect timed out"
            result.firstByteStatus = options.payload == nil ? nil : .timeout
            return result
        }
        if err != 0 {
            switch err {
            case ECONNREFUSED: result.connectStatus = .refused; result.reason = "connection refused (RST): nothing listens on \(t.address.hostPort)"
            case EHOSTUNREACH, ENETUNREACH: result.connectStatus = .unreachable; result.reason = "\(errnoText(err)) for \(t.address.hostPort)"
            case ETIMEDOUT: result.connectStatus = .timeout; result.reason = "connect timed out in the kernel"
            case ECANCELED: result.connectStatus = .error; result.reason = "run stopped during connect"
            default: result.connectStatus = .error; result.reason = "connect failed: \(errnoText(err))"
            }
            result.firstByteStatus = options.payload == nil ? nil : result.connectStatus
            result.firstByteReason = "not attempted: connect failed"
            return result
        }
        result.connectStatus = .ok
        result.connectNanoseconds = t1 - t0
        result.localPort = TimedTCPConnect.localPort(fd)

        guard let payload = options.payload else { return result }
        let s0 = Clocks.monotonicNanoseconds()
        var sent = 0
        while sent < payload.count {
            let n = payload.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN { var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0); _ = poll(&p, 1, 50); continue }
                result.firstByteStatus = .error
                result.firstByteReason = "send failed: \(errnoText(errno))"
                return result
            }
            sent += n
        }
        var received: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var gotFirst = false
        while true {
            let now = Clocks.monotonicNanoseconds()
            let left = s0 + timeoutNs - now
            if stop.isStopped || left <= 0 { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(50, (left + 999_999) / 1_000_000)))
            if ready <= 0 { continue }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            let tr = Clocks.monotonicNanoseconds()
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                result.firstByteStatus = .error
                result.firstByteReason = "receive failed: \(errnoText(errno))"
                return result
            }
            if n == 0 { break }
            if !gotFirst { gotFirst = true; result.firstByteNanoseconds = tr - s0 }
            received.append(contentsOf: buf[0..<n])
            guard let expect = options.expect else { break }
            if received.count >= 65_536 || Self.contains(received, expect) { break }
        }
        if !gotFirst {
            result.firstByteNanoseconds = nil
            result.firstByteStatus = stop.isStopped ? .error : .timeout
            result.firstByteReason = stop.isStopped ? "run stopped before the first byte" : "no reply byte within \(ICMPProbe.describe(timeoutNs)) (or the peer closed)"
            return result
        }
        if let expect = options.expect, !Self.contains(received, expect) {
            result.firstByteStatus = .error
            result.firstByteReason = "reply does not contain the expected bytes \"\(String(decoding: expect, as: UTF8.self))\" (got \(received.count) bytes)"
            result.firstByteNanoseconds = nil
            return result
        }
        result.firstByteStatus = .ok
        return result
    }

    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        if needle.isEmpty { return true }
        guard hay.count >= needle.count else { return false }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}

extension TCPConnectProbe: WireMatchable {
    public static let probeName = "tcping"
    public static let wireKeys = [WireKey(phase: "connect", match: .tcpHandshake)]
}
