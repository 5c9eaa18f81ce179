import Foundation
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

public struct TCPConnectOptions: Sendable {
    /// Attempt rounds: one attempt per target per round, round k due at start + k·interval;
    /// an attempt that runs longer than the interval delays the next one (attempts never overlap).
    public var schedule: Schedule
    /// Limit for the connect, and separately for the first byte.
    public var timeout: Duration = .seconds(1)
    /// Bytes to send once connected; enables the `first_byte` phase.
    public var payload: [UInt8]?
    /// Bytes the reply must contain (checked on what arrives within the timeout, at most 64 KiB).
    public var expect: [UInt8]?

    public init(schedule: Schedule, timeout: Duration = .seconds(1), payload: [UInt8]? = nil, expect: [UInt8]? = nil) {
        (self.schedule, self.timeout, self.payload, self.expect) = (schedule, timeout, payload, expect)
    }

    public init(count: Int? = nil, interval: Duration = .seconds(1), timeout: Duration = .seconds(1), deadline: Duration? = nil,
                payload: [UInt8]? = nil, expect: [UInt8]? = nil) {
        self.init(schedule: Schedule(count: count, interval: interval, deadline: deadline), timeout: timeout, payload: payload, expect: expect)
    }
}

/// One TCP attempt.
///
/// Durations are differences of the run clock's monotonic time (CLOCK_MONOTONIC on `SystemClock`);
/// `startedAt` is its wall time when the attempt began.
/// - `connectNanoseconds`: from just before `connect()` (the SYN is sent inside that call) until
///   `poll()` reports the socket writable with `SO_ERROR == 0`, i.e. the SYN-ACK arrived and the
///   kernel sent the ACK. Excludes name resolution (its own phase).
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
///
/// Samples (probe `tcping`): per attempt `latency/connect` and, with a payload,
/// `latency/first_byte`, both emitted for every attempt, failed ones included. Labels: `seq`,
/// `family`, `address`, `local_port` (to match the connection on the wire), `clock=monotonic`.
public final class TCPConnectProbe: Probe {
    public let targets: [ResolvedTarget]
    public let options: TCPConnectOptions
    public let scope: SampleScope
    /// Receives one line per attempt (`connected to 127.0.0.1:80: seq=1 time=0.081 ms`).
    public let onLine: ((String) -> Void)?
    /// The kernel wait; tests replace it.
    var pollOne: PollOne = systemPoll

    public init(targets: [ResolvedTarget], options: TCPConnectOptions, scope: SampleScope = SampleScope(runID: "", scenario: ""),
                onLine: ((String) -> Void)? = nil) {
        (self.targets, self.options, self.scope, self.onLine) = (targets, options, scope, onLine)
    }

    /// One attempt per target per round of `schedule`, each recorded into `sink` as it completes.
    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) -> [ProbeTotals] {
        var totals = targets.map { ProbeTotals(name: $0.name, address: $0.address.hostPort) }
        attempts(schedule: schedule, clock: clock, stop: stop) { a in
            let (rows, line) = samples(a)
            totals[a.targetIndex].add(rows[0].status, at: a.startedAt)
            rows.forEach(sink.record)
            onLine?(line)
        }
        return totals
    }

    /// The attempts of a run, in order, to `onAttempt` on this thread.
    func attempts(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, onAttempt: (TCPAttempt) -> Void) {
        runSchedule(schedule, clock: clock, stop: stop) { round in
            for i in targets.indices {
                if stop.isStopped { return }
                onAttempt(attempt(target: i, sequence: round.sequence, clock: clock, stop: stop))
            }
        }
    }

    /// The attempt's samples (connect, then first_byte with a payload) and its terminal line.
    func samples(_ a: TCPAttempt) -> ([Sample], String) {
        let t = targets[a.targetIndex]
        var labels = ["seq": "\(a.sequence)", "family": t.address.family == AF_INET6 ? "ipv6" : "ipv4",
                      "address": t.address.hostPort, "clock": "monotonic"]
        if let p = a.localPort { labels["local_port"] = "\(p)" }
        func row(_ phase: String, _ ns: Int64?, _ status: TCPAttempt.Status, _ reason: String) -> Sample {
            Sample(runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, target: t.name, metric: "latency", phase: phase,
                   value: ns.map { Double($0) / 1e6 }, unit: "ms", timestamp: a.startedAt, status: status.sampleStatus, reason: reason, labels: labels)
        }
        var rows = [row("connect", a.connectNanoseconds, a.connectStatus, a.reason)]
        var line = a.connectStatus == .ok
            ? "connected to \(t.address.hostPort): seq=\(a.sequence) time=\(ICMPProbe.formatMs(Double(a.connectNanoseconds ?? 0) / 1e6)) ms"
            : "\(t.address.hostPort): seq=\(a.sequence) \(a.reason)"
        if let fb = a.firstByteStatus {
            rows.append(row("first_byte", a.firstByteNanoseconds, fb, a.firstByteReason))
            if a.connectStatus == .ok {
                line += fb == .ok ? " first_byte=\(ICMPProbe.formatMs(Double(a.firstByteNanoseconds ?? 0) / 1e6)) ms" : " first_byte: \(a.firstByteReason)"
            }
        }
        return (rows, line)
    }

    /// Performs one attempt to `targets[target]`; durations and the start time from `clock`.
    public func attempt(target i: Int, sequence: Int, clock: any MeasurementClock = SystemClock(), stop: StopFlag? = nil) -> TCPAttempt {
        let stop = stop ?? StopFlag()
        let t = targets[i]
        let timeoutNs = max(Int64(1), options.timeout.nanoseconds)
        var result = TCPAttempt(targetIndex: i, sequence: sequence, startedAt: clock.wallNow(), localPort: nil, connectStatus: .error,
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
        switch TimedTCPConnect.run(fd: fd, address: t.address, timeoutNanoseconds: timeoutNs, clock: clock, stop: { stop.isStopped }, poll: pollOne) {
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
        let budget = AttemptBudget(start: clock.monotonicNanoseconds(), timeoutNanoseconds: timeoutNs)
        let s0 = budget.start
        var sent = 0
        while sent < payload.count {
            let n = payload.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN { var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0); _ = pollOne(&p, 50); continue }
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
            let now = clock.monotonicNanoseconds()
            if stop.isStopped || budget.isSpent(at: now) { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = pollOne(&p, budget.pollMilliseconds(at: now))
            if ready <= 0 { continue }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            let tr = clock.monotonicNanoseconds()
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

extension TCPAttempt.Status {
    var sampleStatus: SampleStatus {
        switch self {
        case .ok: return .ok
        case .refused: return .refused
        case .timeout: return .timeout
        case .unreachable: return .unreachable
        case .error: return .error
        }
    }
}

extension TCPConnectProbe: WireMatchable {
    public static let probeName = "tcping"
    public static let wireKeys = [WireKey(phase: "connect", match: .tcpHandshake)]
}
