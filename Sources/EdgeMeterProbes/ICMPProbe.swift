import Foundation
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

/// How to open the ICMP socket. `auto` tries an unprivileged datagram ICMP socket first (needs the
/// caller's group in `net.ipv4.ping_group_range`), then a raw socket (needs CAP_NET_RAW).
public enum ICMPSocketMode: String, Sendable, CaseIterable {
    case auto, datagram, raw
}

/// How the probe waits for the next scheduled send. Every echo sample is labelled with it (`spin=`).
///
/// On loopback an echo is a few microseconds of kernel work, so whether the measuring CPU was busy or
/// idle just before it shows in the figure: measured here (2026-12-01, 1 ms intervals) a mean of
/// 7.0 µs spinning vs 9.7 µs sleeping. Neither is the network path alone; the label says which.
public enum ICMPSpinMode: String, Sendable, CaseIterable {
    /// Sleep in poll() until the next send, a reply or an expiry: what a client that does other
    /// work, or none, between echoes sees, including the measuring CPU's exit from idle. No CPU is
    /// spent between echoes. The default, because it hides nothing and costs nothing.
    case off
    /// Busy-wait (poll with a zero timeout) through the last millisecond before each scheduled
    /// send, so the CPU is awake and warm when the request leaves, and the send is on time to the
    /// microsecond. At intervals of 1 ms or less that is the whole interval, including while the
    /// reply is outstanding: a whole core for the run (at 1 s, 0.1 % of one). iputils ping, by
    /// comparison, spins before a send only while no reply is outstanding.
    case on
}

public struct ICMPOptions: Sendable {
    /// Echo rounds (`count`, ping's -c), their spacing on a fixed schedule from the start (no drift:
    /// request k goes at start + k·interval, ping's -i) and the run's deadline (ping's -w).
    public var schedule: Schedule
    /// How long to wait for each reply before counting the request as lost.
    public var timeout: Duration = .seconds(1)
    /// ICMP payload bytes after the 8-byte ICMP header (ping's -s, default 56).
    public var payloadBytes: Int = 56
    public var socketMode: ICMPSocketMode = .auto
    /// Whether to busy-wait through the last millisecond before each send (see `ICMPSpinMode`).
    public var spin: ICMPSpinMode = .off

    public init(schedule: Schedule, timeout: Duration = .seconds(1), payloadBytes: Int = 56,
                socketMode: ICMPSocketMode = .auto, spin: ICMPSpinMode = .off) {
        (self.schedule, self.timeout, self.payloadBytes, self.socketMode, self.spin) = (schedule, timeout, payloadBytes, socketMode, spin)
    }

    /// `count` nil: until stopped or the deadline.
    public init(count: Int? = nil, interval: Duration = .seconds(1), timeout: Duration = .seconds(1), payloadBytes: Int = 56,
                deadline: Duration? = nil, socketMode: ICMPSocketMode = .auto, spin: ICMPSpinMode = .off) {
        self.init(schedule: Schedule(count: count, interval: interval, deadline: deadline), timeout: timeout,
                  payloadBytes: payloadBytes, socketMode: socketMode, spin: spin)
    }
}

/// One echo's outcome.
public struct ICMPEchoResult: Sendable {
    public enum Outcome: Sendable {
        /// `rttNanoseconds`: from just before `sendto()` until the reply's receive stamp. With
        /// `kernelTimestamp` true the end is the kernel's SO_TIMESTAMPNS stamp (excludes the wake-up
        /// and `recvmsg` latency of this process) and both ends are CLOCK_REALTIME read within
        /// nanoseconds of each other; otherwise both ends are the run clock's monotonic time
        /// (CLOCK_MONOTONIC on `SystemClock`) in this process.
        case reply(rttNanoseconds: Int64, bytes: Int, ttl: Int?, kernelTimestamp: Bool, from: String)
        case timeout(reason: String)
        case unreachable(reason: String)
        case error(reason: String)
    }
    public var targetIndex: Int
    public var sequence: UInt16
    public var identifier: UInt16
    /// Wall-clock time the request was sent (the run clock's `wallNow()`).
    public var sentAt: Date
    public var outcome: Outcome
}

public struct ICMPProbeError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The echoes sent and not answered yet, per target, keyed by sequence number: pure bookkeeping,
/// so when an unanswered echo expires is decided by the numbers alone (tested on a manual clock).
struct OutstandingEchoes {
    struct Echo {
        /// Monotonic nanoseconds just before `sendto()`.
        var sendMono: Int64
        /// CLOCK_REALTIME nanoseconds just before `sendto()`, paired with the kernel receive stamp.
        var sendReal: Int64
        var sentAt: Date
    }
    struct Expired {
        var target: Int
        var sequence: UInt16
        var echo: Echo
    }

    private var pending: [[UInt16: Echo]]

    init(targets: Int) { pending = Array(repeating: [:], count: targets) }

    var isEmpty: Bool { pending.allSatisfy(\.isEmpty) }

    mutating func sent(target: Int, sequence: UInt16, _ echo: Echo) { pending[target][sequence] = echo }

    /// Removes and returns the echo a reply answers; nil for a late or duplicate reply.
    mutating func answer(target: Int, sequence: UInt16) -> Echo? { pending[target].removeValue(forKey: sequence) }

    /// Removes and returns, oldest first, the echoes sent at least `timeout` before `now`.
    mutating func expire(now: Int64, timeoutNanoseconds timeout: Int64) -> [Expired] {
        var out: [Expired] = []
        for i in pending.indices {
            for (seq, e) in pending[i] where now - e.sendMono >= timeout { out.append(Expired(target: i, sequence: seq, echo: e)) }
        }
        if out.isEmpty { return out }
        for x in out { pending[x.target][x.sequence] = nil }
        return out.sorted { ($0.echo.sendMono, $0.target) < ($1.echo.sendMono, $1.target) }
    }

    /// When the oldest outstanding echo expires; nil when none is outstanding.
    func nextExpiry(timeoutNanoseconds timeout: Int64) -> Int64? {
        var next: Int64?
        for p in pending { for e in p.values { next = min(next ?? Int64.max, e.sendMono + timeout) } }
        return next
    }

    /// Removes and returns every outstanding echo, oldest first.
    mutating func removeAll() -> [Expired] { expire(now: Int64.max, timeoutNanoseconds: Int64.min) }
}

/// What the echo loop does with its sockets. The real one (`SocketEchoTransport`) is sendto /
/// ppoll / recvmsg; tests script one on a manual clock.
protocol EchoTransport: AnyObject {
    /// Sends echo request `sequence` to target `target`: the monotonic (run clock) and
    /// CLOCK_REALTIME stamps read just before the send, or the send's errno.
    func send(target: Int, sequence: UInt16) -> EchoSend
    /// Waits at most `nanoseconds` (0: only looks) for what the sockets received, and hands every
    /// echo reply or error that is ours to `arrived`.
    func receive(waitNanoseconds: Int64, arrived: (EchoArrival) -> Void)
}

enum EchoSend {
    case sent(mono: Int64, real: Int64)
    case failed(errno: Int32)
}

struct EchoArrival {
    var target: Int
    var sequence: UInt16
    var kind: ICMPProbe.Parsed.Kind
    var source: String
    /// Run clock, read right after `recvmsg` returned.
    var receivedMono: Int64
    /// The kernel's SO_TIMESTAMPNS stamp (CLOCK_REALTIME nanoseconds), when delivered.
    var kernelRealtime: Int64?
    /// TTL / hop limit from the control data, when delivered.
    var controlTTL: Int?
}

/// ICMP echo to several targets at once (fping-like), IPv4 and IPv6.
///
/// Runs on the calling thread with `poll()`, waking at least every 50 ms to honour the stop flag.
/// Samples (probe `ping`): `rtt/echo` per request, with labels `seq`, `icmp_id`, `family`,
/// `socket` (raw|datagram), `address`, `payload_bytes`, `spin` (on|off, `ICMPSpinMode`) and, on a
/// reply, `timestamp` (kernel|userspace), `clock` (realtime-paired|monotonic), `ttl`, `bytes`.
public final class ICMPProbe: Probe {
    public struct TargetSocket {
        public var target: ResolvedTarget
        public var fd: Int32
        public var mode: ICMPSocketMode
        public var identifier: UInt16
        public var kernelTimestamps: Bool
    }

    public let options: ICMPOptions
    public private(set) var sockets: [TargetSocket] = []
    public let scope: SampleScope
    /// Receives ping-style lines: the `PING ...` header per target, then one line per echo.
    public let onLine: ((String) -> Void)?

    /// Opens one socket per target. Throws a message naming the fix when neither socket kind is allowed.
    public init(targets: [ResolvedTarget], options: ICMPOptions, scope: SampleScope = SampleScope(runID: "", scenario: ""),
                onLine: ((String) -> Void)? = nil) throws {
        self.options = options
        self.scope = scope
        self.onLine = onLine
        guard options.payloadBytes >= 0 && options.payloadBytes <= 65_000 else {
            throw ICMPProbeError(message: "payload size \(options.payloadBytes) is out of range: use 0-65000 bytes")
        }
        for (i, t) in targets.enumerated() {
            do {
                sockets.append(try Self.open(target: t, index: i, mode: options.socketMode))
            } catch {
                for s in sockets { close(s.fd) }
                throw error
            }
        }
    }

    deinit { for s in sockets { close(s.fd) } }

    static func open(target: ResolvedTarget, index: Int, mode: ICMPSocketMode) throws -> TargetSocket {
        let family = target.address.family
        let proto = family == AF_INET6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP)
        var tried: [String] = []
        let order: [ICMPSocketMode] = mode == .auto ? [.datagram, .raw] : [mode]
        for m in order {
            let type = m == .datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_RAW.rawValue)
            let fd = socket(family, type | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), proto)
            if fd < 0 {
                let e = errno
                tried.append("\(m.rawValue): \(errnoText(e))")
                continue
            }
            let stamps = em_enable_rx_metadata(fd, family) == 1
            var ident: UInt16
            if m == .datagram {
                // Bind to let the kernel choose the echo identifier now, so samples can carry it.
                var any = sockaddr_storage()
                var len: socklen_t
                if family == AF_INET6 {
                    len = socklen_t(MemoryLayout<sockaddr_in6>.size)
                    withUnsafeMutablePointer(to: &any) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_family = sa_family_t(AF_INET6) } }
                } else {
                    len = socklen_t(MemoryLayout<sockaddr_in>.size)
                    withUnsafeMutablePointer(to: &any) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_family = sa_family_t(AF_INET) } }
                }
                _ = withUnsafePointer(to: &any) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
                var bound = sockaddr_storage()
                var blen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &blen) } }
                ident = SocketAddr(storage: bound, length: blen).port
            } else {
                ident = UInt16(truncatingIfNeeded: Int(getpid()) &* 31 &+ index)
                _ = em_set_icmp_filter(fd, family)
            }
            return TargetSocket(target: target, fd: fd, mode: m, identifier: ident, kernelTimestamps: stamps)
        }
        throw ICMPProbeError(message: """
            cannot open an ICMP socket for \(target.name) (\(tried.joined(separator: "; "))): \
            allow unprivileged ping with `sysctl -w net.ipv4.ping_group_range="0 2147483647"`, \
            or run as root, or grant raw sockets with `setcap cap_net_raw+ep $(which edgemeter)`
            """)
    }

    /// Sends one echo per target per round of `schedule` and records one `rtt/echo` sample per
    /// request into `sink` as it completes (reply, timeout, unreachable, error). After the last
    /// round it waits for the outstanding replies (each at most `options.timeout`, the run at most
    /// until the deadline); after a stop request at most min(timeout, 100 ms) more.
    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) -> [ProbeTotals] {
        var totals = sockets.map { ProbeTotals(name: $0.target.name, address: $0.target.address.host) }
        for s in sockets {
            let v6 = s.target.address.family == AF_INET6
            onLine?("PING \(s.target.name) (\(s.target.address.host)) \(options.payloadBytes)(\(options.payloadBytes + (v6 ? 48 : 28))) bytes of data, \(s.mode.rawValue) socket, \(s.kernelTimestamps ? "kernel" : "user-space") receive stamps, spin \(options.spin.rawValue).")
        }
        echoes(schedule: schedule, clock: clock, stop: stop) { r in
            let (sample, line) = self.sample(r)
            totals[r.targetIndex].add(sample.status, at: r.sentAt)
            sink.record(sample)
            onLine?(line)
        }
        return totals
    }

    /// The sample and the ping-style line for one echo.
    func sample(_ r: ICMPEchoResult) -> (Sample, String) {
        let sock = sockets[r.targetIndex]
        let target = sock.target
        var labels = ["seq": "\(r.sequence)", "icmp_id": "\(r.identifier)", "family": target.address.family == AF_INET6 ? "ipv6" : "ipv4",
                      "socket": sock.mode.rawValue, "address": target.address.host, "payload_bytes": "\(options.payloadBytes)",
                      "spin": options.spin.rawValue]
        func echo(_ value: Double?, _ status: SampleStatus, _ reason: String = "") -> Sample {
            Sample(runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, target: target.name, metric: "rtt", phase: "echo",
                   value: value, unit: "ms", timestamp: r.sentAt, status: status, reason: reason, labels: labels)
        }
        switch r.outcome {
        case .reply(let rtt, let bytes, let ttl, let kernel, let from):
            labels["timestamp"] = kernel ? "kernel" : "userspace"
            labels["clock"] = kernel ? "realtime-paired" : "monotonic"
            labels["bytes"] = "\(bytes)"
            if let ttl { labels["ttl"] = "\(ttl)" }
            let ms = Double(rtt) / 1e6
            return (echo(ms, .ok), "\(bytes) bytes from \(from): icmp_seq=\(r.sequence)\(ttl.map { " ttl=\($0)" } ?? "") time=\(Self.formatMs(ms)) ms")
        case .timeout(let reason):
            return (echo(nil, .timeout, reason), "no answer from \(target.address.host): icmp_seq=\(r.sequence) (\(reason))")
        case .unreachable(let reason):
            return (echo(nil, .unreachable, reason), "From \(target.address.host) icmp_seq=\(r.sequence) \(reason)")
        case .error(let reason):
            return (echo(nil, .error, reason), "\(target.address.host) icmp_seq=\(r.sequence): \(reason)")
        }
    }

    /// ping's precision: 3 significant decimals below 100 ms.
    public static func formatMs(_ ms: Double) -> String {
        ms >= 100 ? String(format: "%.0f", ms) : ms >= 10 ? String(format: "%.1f", ms) : ms >= 1 ? String(format: "%.2f", ms) : String(format: "%.3f", ms)
    }

    /// The echo loop on this probe's sockets: calls `onResult` on this thread for every request,
    /// in completion order; no samples (the startup ICMP ready check stops at the first reply).
    public func echoes(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, onResult: (ICMPEchoResult) -> Void) {
        let transport = SocketEchoTransport(sockets: sockets, payloadBytes: options.payloadBytes, clock: clock)
        Self.echoes(transport: transport, identifiers: sockets.map(\.identifier), timeout: options.timeout, spin: options.spin,
                    schedule: schedule, clock: clock, stop: stop, onResult: onResult)
    }

    /// The echo loop over any transport (the sockets, or a scripted one in tests): the schedule's
    /// rounds from `runSchedule`, replies received while waiting for the next round, each echo
    /// expired `timeout` after its send, then the outstanding ones drained.
    static func echoes<T: EchoTransport>(transport: T, identifiers: [UInt16], timeout: Duration, spin: ICMPSpinMode,
                                         schedule: Schedule, clock: any MeasurementClock, stop: StopFlag,
                                         onResult: (ICMPEchoResult) -> Void) {
        let timeoutNs = max(Int64(1), timeout.nanoseconds)
        var book = OutstandingEchoes(targets: identifiers.count)

        func finish(_ x: OutstandingEchoes.Expired, _ outcome: ICMPEchoResult.Outcome) {
            onResult(ICMPEchoResult(targetIndex: x.target, sequence: x.sequence, identifier: identifiers[x.target], sentAt: x.echo.sentAt, outcome: outcome))
        }
        func expire(_ now: Int64) {
            for x in book.expire(now: now, timeoutNanoseconds: timeoutNs) { finish(x, .timeout(reason: "no reply within \(describe(timeoutNs))")) }
        }
        func arrived(_ a: EchoArrival) {
            guard let p = book.answer(target: a.target, sequence: a.sequence) else { return } // late or duplicate
            let x = OutstandingEchoes.Expired(target: a.target, sequence: a.sequence, echo: p)
            switch a.kind {
            case .reply(let bytes, let ttl):
                let userRTT = a.receivedMono - p.sendMono
                var rtt = userRTT
                var kernel = false
                if let k = a.kernelRealtime.map({ $0 - p.sendReal }) {
                    // A kernel stamp is taken before this process wakes, so it can only be
                    // shorter than the user-space figure; anything else means the wall clock
                    // stepped mid-echo, and the monotonic figure is the one to trust.
                    if k > 0 && k <= userRTT + 10_000 { rtt = k; kernel = true }
                }
                finish(x, .reply(rttNanoseconds: rtt, bytes: bytes, ttl: ttl ?? a.controlTTL, kernelTimestamp: kernel, from: a.source))
            case .unreachable(let text):
                finish(x, .unreachable(reason: "\(text) from \(a.source)"))
            }
        }
        /// Receives until `t` (run clock), expiring overdue echoes; returns early on a stop request
        /// when `honourStop`, and once nothing is outstanding when `untilEmpty`.
        func receive(until t: Int64, honourStop: Bool, untilEmpty: Bool) {
            while true {
                let now = clock.monotonicNanoseconds()
                expire(now)
                if now >= t || (honourStop && stop.isStopped) || (untilEmpty && book.isEmpty) { return }
                var wakeAt = min(t, now + 50_000_000)
                if let e = book.nextExpiry(timeoutNanoseconds: timeoutNs) { wakeAt = min(wakeAt, e) }
                transport.receive(waitNanoseconds: max(0, wakeAt - now), arrived: arrived)
            }
        }

        let start = clock.monotonicNanoseconds()
        let ended = runSchedule(schedule, clock: clock, stop: stop, start: start,
                                spinNanoseconds: spin == .on ? 1_000_000 : 0,
                                idle: { transport.receive(waitNanoseconds: 0, arrived: arrived); expire(clock.monotonicNanoseconds()) },
                                wait: { receive(until: $0, honourStop: true, untilEmpty: false) }) { round in
            let seq = UInt16(truncatingIfNeeded: round.sequence)
            for i in identifiers.indices {
                let sentAt = clock.wallNow()
                switch transport.send(target: i, sequence: seq) {
                case .sent(let mono, let real):
                    book.sent(target: i, sequence: seq, .init(sendMono: mono, sendReal: real, sentAt: sentAt))
                case .failed(let e):
                    let reason = "sendto failed: \(errnoText(e))"
                    let outcome: ICMPEchoResult.Outcome = (e == ENETUNREACH || e == EHOSTUNREACH) ? .unreachable(reason: reason) : .error(reason: reason)
                    onResult(ICMPEchoResult(targetIndex: i, sequence: seq, identifier: identifiers[i], sentAt: sentAt, outcome: outcome))
                }
            }
        }

        // Sending is over: wait for the outstanding replies.
        let deadline = schedule.end(start: start)
        let grace = min(timeoutNs, 100_000_000)
        var stoppedAt: Int64? = ended == .stopped ? clock.monotonicNanoseconds() : nil
        while !book.isEmpty {
            let now = clock.monotonicNanoseconds()
            if let d = deadline, now >= d {
                for x in book.removeAll() { finish(x, .timeout(reason: "deadline reached before a reply")) }
                return
            }
            if stoppedAt == nil && stop.isStopped { stoppedAt = now }
            if let s = stoppedAt, now - s >= grace {
                for x in book.removeAll() { finish(x, .timeout(reason: "run stopped before a reply arrived")) }
                return
            }
            var until = book.nextExpiry(timeoutNanoseconds: timeoutNs) ?? now
            if let d = deadline { until = min(until, d) }
            if let s = stoppedAt { until = min(until, s + grace) }
            receive(until: until, honourStop: stoppedAt == nil, untilEmpty: true)
        }
    }

    static func describe(_ ns: Int64) -> String {
        ns % 1_000_000_000 == 0 ? "\(ns / 1_000_000_000) s" : String(format: "%.3g ms", Double(ns) / 1e6)
    }

    // MARK: packets

    /// Builds an echo request: type 8 (v4) or 128 (v6), the identifier, a payload of
    /// `payloadBytes` bytes (pattern 0x10, 0x11, ... like iputils), checksum filled for IPv4
    /// (the kernel fills ICMPv6's).
    public static func echoRequest(family: Int32, identifier: UInt16, sequence: UInt16, payloadBytes: Int) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 8 + payloadBytes)
        p[0] = family == AF_INET6 ? 128 : 8
        p[4] = UInt8(identifier >> 8); p[5] = UInt8(identifier & 0xff)
        for k in 0..<payloadBytes { p[8 + k] = UInt8(truncatingIfNeeded: 0x10 + k) }
        setSequence(&p, sequence, family: family)
        return p
    }

    static func setSequence(_ p: inout [UInt8], _ seq: UInt16, family: Int32) {
        p[6] = UInt8(seq >> 8); p[7] = UInt8(seq & 0xff)
        if family != AF_INET6 {
            p[2] = 0; p[3] = 0
            let c = internetChecksum(p)
            p[2] = UInt8(c >> 8); p[3] = UInt8(c & 0xff)
        }
    }

    /// RFC 1071 one's-complement checksum.
    public static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
        return ~UInt16(sum)
    }

    struct Parsed {
        enum Kind { case reply(bytes: Int, ttl: Int?), unreachable(String) }
        var kind: Kind
        var sequence: UInt16
    }

    /// Parses what a socket received; nil for anything that is not ours.
    static func parse(buffer: [UInt8], count n: Int, socket s: TargetSocket, source: SocketAddr) -> Parsed? {
        let v6 = s.target.address.family == AF_INET6
        var off = 0
        var ttl: Int?
        if !v6 && s.mode == .raw {
            guard n >= 20 else { return nil }
            off = Int(buffer[0] & 0x0f) * 4
            ttl = Int(buffer[8])
        }
        guard n - off >= 8 else { return nil }
        let type = buffer[off]
        let ident = UInt16(buffer[off + 4]) << 8 | UInt16(buffer[off + 5])
        let seq = UInt16(buffer[off + 6]) << 8 | UInt16(buffer[off + 7])
        let replyType: UInt8 = v6 ? 129 : 0
        if type == replyType {
            if s.mode == .raw {
                guard ident == s.identifier, source.sameHost(as: s.target.address) else { return nil }
            }
            return Parsed(kind: .reply(bytes: n - off, ttl: ttl), sequence: seq)
        }
        // Destination unreachable (v4 type 3, v6 type 1) quoting our request: raw sockets see these.
        let unreachType: UInt8 = v6 ? 1 : 3
        if type == unreachType && s.mode == .raw {
            var inner = off + 8
            if !v6 {
                guard n > inner else { return nil }
                inner += Int(buffer[inner] & 0x0f) * 4
            } else {
                inner += 40
            }
            guard n >= inner + 8 else { return nil }
            let innerIdent = UInt16(buffer[inner + 4]) << 8 | UInt16(buffer[inner + 5])
            let innerSeq = UInt16(buffer[inner + 6]) << 8 | UInt16(buffer[inner + 7])
            guard innerIdent == s.identifier else { return nil }
            return Parsed(kind: .unreachable("destination unreachable (code \(buffer[off + 1]))"), sequence: innerSeq)
        }
        return nil
    }
}

/// The real transport: one ICMP socket per target, `sendto()` with both send stamps read in the
/// innermost closure right before the call, `ppoll()` and `recvmsg()` with the kernel's receive
/// stamp. Kernel stamps are CLOCK_REALTIME pairs, so they are only meaningful on the real clock.
final class SocketEchoTransport: EchoTransport {
    private let sockets: [ICMPProbe.TargetSocket]
    private let clock: any MeasurementClock
    private var templates: [[UInt8]]
    private var pollFds: [pollfd]
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    init(sockets: [ICMPProbe.TargetSocket], payloadBytes: Int, clock: any MeasurementClock) {
        self.sockets = sockets
        self.clock = clock
        templates = sockets.map { ICMPProbe.echoRequest(family: $0.target.address.family, identifier: $0.identifier, sequence: 0, payloadBytes: payloadBytes) }
        pollFds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
    }

    func send(target i: Int, sequence: UInt16) -> EchoSend {
        let s = sockets[i]
        ICMPProbe.setSequence(&templates[i], sequence, family: s.target.address.family)
        var addr = s.target.address
        var mono: Int64 = 0
        var real: Int64 = 0
        let clock = self.clock
        let n = templates[i].withUnsafeBytes { pb in
            withUnsafePointer(to: &addr.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    mono = clock.monotonicNanoseconds()
                    real = em_clock_realtime_ns()
                    return sendto(s.fd, pb.baseAddress, pb.count, 0, sa, addr.length)
                }
            }
        }
        return n < 0 ? .failed(errno: errno) : .sent(mono: mono, real: real)
    }

    func receive(waitNanoseconds: Int64, arrived: (EchoArrival) -> Void) {
        for k in pollFds.indices { pollFds[k].revents = 0 }
        let ready = em_poll_ns(&pollFds, UInt(pollFds.count), waitNanoseconds)
        if ready <= 0 { return }
        for (i, pfd) in pollFds.enumerated() where pfd.revents & Int16(POLLIN) != 0 {
            let s = sockets[i]
            while true {
                var from = sockaddr_storage()
                var fromLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                var info = em_rxinfo()
                let n = buffer.withUnsafeMutableBytes { em_recvmsg(s.fd, $0.baseAddress, $0.count, &from, &fromLen, &info, Int32(MSG_DONTWAIT)) }
                let recvMono = clock.monotonicNanoseconds()
                if n < 0 { break }
                let source = SocketAddr(storage: from, length: fromLen)
                guard let parsed = ICMPProbe.parse(buffer: buffer, count: n, socket: s, source: source) else { continue }
                arrived(EchoArrival(target: i, sequence: parsed.sequence, kind: parsed.kind, source: source.host, receivedMono: recvMono,
                                    kernelRealtime: info.has_kernel_timestamp == 1 ? info.kernel_ts_sec * 1_000_000_000 + info.kernel_ts_nsec : nil,
                                    controlTTL: info.ttl >= 0 ? Int(info.ttl) : nil))
            }
        }
    }
}

extension ICMPProbe: WireMatchable {
    public static let probeName = "ping"
    public static let wireKeys = [WireKey(phase: "echo", match: .icmpEcho)]
}
