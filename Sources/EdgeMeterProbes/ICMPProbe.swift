import Foundation
import CEdgeMeter
import EdgeMeterCore

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
    /// Echo requests per target; nil = until stopped or the deadline.
    public var count: Int?
    /// Time between successive requests to the same target, on a fixed schedule from the start
    /// (no drift: request k goes at start + k·interval).
    public var interval: Duration = .seconds(1)
    /// How long to wait for each reply before counting the request as lost.
    public var timeout: Duration = .seconds(1)
    /// ICMP payload bytes after the 8-byte ICMP header (ping's -s, default 56).
    public var payloadBytes: Int = 56
    /// Stop the whole run after this long, whatever the count (ping's -w).
    public var deadline: Duration?
    public var socketMode: ICMPSocketMode = .auto
    /// Whether to busy-wait through the last millisecond before each send (see `ICMPSpinMode`).
    public var spin: ICMPSpinMode = .off

    public init(count: Int? = nil, interval: Duration = .seconds(1), timeout: Duration = .seconds(1), payloadBytes: Int = 56,
                deadline: Duration? = nil, socketMode: ICMPSocketMode = .auto, spin: ICMPSpinMode = .off) {
        self.count = count
        self.interval = interval
        self.timeout = timeout
        self.payloadBytes = payloadBytes
        self.deadline = deadline
        self.socketMode = socketMode
        self.spin = spin
    }
}

/// One echo's outcome.
public struct ICMPEchoResult: Sendable {
    public enum Outcome: Sendable {
        /// `rttNanoseconds`: from just before `sendto()` until the reply's receive stamp. With
        /// `kernelTimestamp` true the end is the kernel's SO_TIMESTAMPNS stamp (excludes the wake-up
        /// and `recvmsg` latency of this process) and both ends are CLOCK_REALTIME read within
        /// nanoseconds of each other; otherwise both ends are CLOCK_MONOTONIC in this process.
        case reply(rttNanoseconds: Int64, bytes: Int, ttl: Int?, kernelTimestamp: Bool, from: String)
        case timeout(reason: String)
        case unreachable(reason: String)
        case error(reason: String)
    }
    public var targetIndex: Int
    public var sequence: UInt16
    public var identifier: UInt16
    /// Wall-clock time the request was sent.
    public var sentAt: Date
    public var outcome: Outcome
}

public struct ICMPProbeError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// ICMP echo to several targets at once (fping-like), IPv4 and IPv6.
///
/// Runs on the calling thread with `poll()`, waking at least every 50 ms to honour the stop flag.
public final class ICMPProbe {
    public struct TargetSocket {
        public var target: ResolvedTarget
        public var fd: Int32
        public var mode: ICMPSocketMode
        public var identifier: UInt16
        public var kernelTimestamps: Bool
    }

    public let options: ICMPOptions
    public private(set) var sockets: [TargetSocket] = []
    private let stop: StopFlag

    /// Opens one socket per target. Throws a message naming the fix when neither socket kind is allowed.
    public init(targets: [ResolvedTarget], options: ICMPOptions, stop: StopFlag) throws {
        self.options = options
        self.stop = stop
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

    private struct Pending {
        var sendMono: Int64
        var sendReal: Int64
        var sentAt: Date
    }

    /// Sends and receives until every request is answered or timed out, the deadline passes, or the
    /// stop flag is set. Calls `onResult` on this thread for every request, in completion order.
    public func run(onResult: (ICMPEchoResult) -> Void) {
        let start = Clocks.monotonicNanoseconds()
        let intervalNs = max(Int64(1), options.interval.nanoseconds)
        let timeoutNs = max(Int64(1), options.timeout.nanoseconds)
        let deadlineNs = options.deadline.map { start + $0.nanoseconds }
        var pending = [[UInt16: Pending]](repeating: [:], count: sockets.count)
        var round = 0
        var nextSend = start
        var stopSendingAt: Int64?
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var pollFds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        let packetTemplates = sockets.map { s in Self.echoRequest(family: s.target.address.family, identifier: s.identifier, sequence: 0, payloadBytes: options.payloadBytes) }

        func finishPending(_ i: Int, _ seq: UInt16, _ outcome: ICMPEchoResult.Outcome) {
            guard let p = pending[i].removeValue(forKey: seq) else { return }
            onResult(ICMPEchoResult(targetIndex: i, sequence: seq, identifier: sockets[i].identifier, sentAt: p.sentAt, outcome: outcome))
        }

        while true {
            let now = Clocks.monotonicNanoseconds()
            let sendingDone = (options.count.map { round >= $0 } ?? false) || stopSendingAt != nil
            if stop.isStopped && stopSendingAt == nil { stopSendingAt = now }
            if let d = deadlineNs, now >= d {
                for i in pending.indices { for seq in pending[i].keys.sorted() { finishPending(i, seq, .timeout(reason: "deadline reached before a reply")) } }
                return
            }
            if let stopAt = stopSendingAt, now - stopAt > min(timeoutNs, 100_000_000) {
                for i in pending.indices { for seq in pending[i].keys.sorted() { finishPending(i, seq, .timeout(reason: "run stopped before a reply arrived")) } }
                return
            }
            if sendingDone && pending.allSatisfy({ $0.isEmpty }) { return }

            // Expire requests whose reply is overdue.
            for i in pending.indices {
                for (seq, p) in pending[i] where now - p.sendMono >= timeoutNs {
                    finishPending(i, seq, .timeout(reason: "no reply within \(Self.describe(timeoutNs))"))
                }
            }

            if !sendingDone && stopSendingAt == nil && now >= nextSend {
                let seq = UInt16(truncatingIfNeeded: round + 1)
                for (i, s) in sockets.enumerated() {
                    var packet = packetTemplates[i]
                    Self.setSequence(&packet, seq, family: s.target.address.family)
                    var addr = s.target.address
                    let sentAt = Date()
                    var mono: Int64 = 0
                    var real: Int64 = 0
                    // Both send stamps are read inside the innermost closure, right before sendto().
                    let n = packet.withUnsafeBytes { pb in
                        withUnsafePointer(to: &addr.storage) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                                mono = Clocks.monotonicNanoseconds()
                                real = Clocks.realtimeNanoseconds()
                                return sendto(s.fd, pb.baseAddress, pb.count, 0, sa, addr.length)
                            }
                        }
                    }
                    if n < 0 {
                        let e = errno
                        let reason = "sendto failed: \(errnoText(e))"
                        let outcome: ICMPEchoResult.Outcome = (e == ENETUNREACH || e == EHOSTUNREACH) ? .unreachable(reason: reason) : .error(reason: reason)
                        onResult(ICMPEchoResult(targetIndex: i, sequence: seq, identifier: s.identifier, sentAt: sentAt, outcome: outcome))
                    } else {
                        pending[i][seq] = Pending(sendMono: mono, sendReal: real, sentAt: sentAt)
                    }
                }
                round += 1
                nextSend = start + Int64(round) * intervalNs
                continue
            }

            // Wait for replies until the next send, the next expiry, or 50 ms.
            var wakeAt = now + 50_000_000
            if !sendingDone && stopSendingAt == nil { wakeAt = min(wakeAt, nextSend) }
            for i in pending.indices { for p in pending[i].values { wakeAt = min(wakeAt, p.sendMono + timeoutNs) } }
            if let d = deadlineNs { wakeAt = min(wakeAt, d) }
            // With spin on, the last millisecond before a scheduled send is spent spinning (poll
            // with no timeout) rather than sleeping, replies included (see `ICMPSpinMode.on`).
            let spinWindow: Int64 = options.spin == .on ? 1_000_000 : 0
            let sendPending = !sendingDone && stopSendingAt == nil
            var sleepUntil = wakeAt
            if sendPending { sleepUntil = min(sleepUntil, nextSend - spinWindow) }
            let waitNs: Int64 = sendPending && spinWindow > 0 && nextSend - now <= spinWindow ? 0 : max(0, sleepUntil - now)
            for k in pollFds.indices { pollFds[k].revents = 0 }
            let ready = em_poll_ns(&pollFds, UInt(pollFds.count), waitNs)
            if ready <= 0 { continue }
            for (i, pfd) in pollFds.enumerated() where pfd.revents & Int16(POLLIN) != 0 {
                let s = sockets[i]
                while true {
                    var from = sockaddr_storage()
                    var fromLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    var info = em_rxinfo()
                    let n = buffer.withUnsafeMutableBytes { em_recvmsg(s.fd, $0.baseAddress, $0.count, &from, &fromLen, &info, Int32(MSG_DONTWAIT)) }
                    let recvMono = Clocks.monotonicNanoseconds()
                    if n < 0 { break }
                    let source = SocketAddr(storage: from, length: fromLen)
                    guard let parsed = Self.parse(buffer: buffer, count: n, socket: s, source: source) else { continue }
                    guard let p = pending[i][parsed.sequence] else { continue } // late or duplicate
                    switch parsed.kind {
                    case .reply(let bytes, let ttl):
                        let userRTT = recvMono - p.sendMono
                        var rtt = userRTT
                        var kernel = false
                        if info.has_kernel_timestamp == 1 {
                            let k = (info.kernel_ts_sec * 1_000_000_000 + info.kernel_ts_nsec) - p.sendReal
                            // A kernel stamp is taken before this process wakes, so it can only be
                            // shorter than the user-space figure; anything else means the wall clock
                            // stepped mid-echo, and the monotonic figure is the one to trust.
                            if k > 0 && k <= userRTT + 10_000 { rtt = k; kernel = true }
                        }
                        finishPending(i, parsed.sequence, .reply(rttNanoseconds: rtt, bytes: bytes, ttl: ttl ?? (info.ttl >= 0 ? Int(info.ttl) : nil),
                                                                 kernelTimestamp: kernel, from: source.host))
                    case .unreachable(let text):
                        finishPending(i, parsed.sequence, .unreachable(reason: "\(text) from \(source.host)"))
                    }
                }
            }
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

extension ICMPProbe: WireMatchable {
    public static let probeName = "ping"
    public static let wireKeys = [WireKey(phase: "echo", match: .icmpEcho)]
}
