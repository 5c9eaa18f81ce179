import Foundation
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

/// The direction of a proxied byte or datagram.
public enum ProxyDirection: String, Sendable, CaseIterable {
    /// From the client that connected to the proxy, towards the upstream service.
    case toUpstream = "to-upstream"
    /// From the upstream service back to the client.
    case toClient = "to-client"
}

/// Counters of one direction since the proxy started.
public struct ProxyCounters: Sendable, Equatable {
    /// Chunks (TCP: one `recv()` result; UDP: one datagram) offered to the model.
    public var chunks = 0
    public var bytes = 0
    /// UDP datagrams dropped by the model (loss or queue full).
    public var dropped = 0
    /// TCP chunks the model dropped, delivered after a retransmission stall instead.
    public var stalls = 0
}

/// `edgemeter proxy`: a userspace TCP or UDP relay between a listening address and an upstream
/// service, that runs each direction through the link-impairment model (`Impairer`), for a service
/// the lab topology does not own.
///
/// What a figure through it contains:
/// - **TCP**: the client's `connect()` completes against the proxy at once (the proxy cannot delay a
///   handshake it terminates; the lab's forwarder can). The proxy connects upstream when it accepts.
///   Each direction is a byte stream: every `recv()` result (a chunk) is admitted by the model at
///   the moment it was read and written out at its release time, in order, so a request/response
///   exchange pays d on the way up and d on the way back (2d). **Loss is a stall, never deleted
///   bytes**: a chunk the model drops is held for `retransmissionTimeout` (200 ms, Linux's minimum
///   RTO) and offered again, as the sender's TCP would retransmit it; bytes keep their order.
///   End of stream (FIN) is a zero-byte chunk that goes through the model behind the data.
/// - **UDP**: each datagram is admitted on its own; a dropped datagram is gone. One upstream socket per
///   client address (at most `maxUDPClients`), so replies find their way back.
/// - The model is the lab's: one `Impairer` per direction shared by every connection (the proxy is
///   one link), so its no-reordering rule and rate limit hold across connections.
/// - Times are CLOCK_MONOTONIC; a chunk's arrival is its kernel receive stamp (SO_TIMESTAMPNS, so
///   the reader's wake-up is not added to the delay); writers sleep with `clock_nanosleep` until
///   the release time (a few tens of µs late on a quiet machine).
public final class ImpairProxy: @unchecked Sendable {
    public let listenAddress: SocketAddr
    public let upstream: SocketAddr
    public let udp: Bool
    public static let retransmissionTimeoutNanoseconds: Int64 = 200_000_000
    public static let maxUDPClients = 1024
    /// A reader waits while this many bytes of its direction are queued (back pressure).
    static let queueLimitBytes = 4 << 20

    private let listenFD: Int32
    private let stopFlag = StopFlag()
    private let lock = NSLock()
    private var impairers: [ProxyDirection: Impairer]
    private var counters: [ProxyDirection: ProxyCounters] = [.toUpstream: ProxyCounters(), .toClient: ProxyCounters()]
    private var openFDs: Set<Int32> = []
    private var threads: [Thread] = []
    private var udpSessions: [String: Int32] = [:]
    private var lastArrival: [ProxyDirection: Int64] = [:]
    private var udpToUpstreamLine: DelayLine?
    private var udpToClientLine: DelayLine?
    /// SCHED_FIFO priority of the proxy's threads, readers and releasers (0 = ordinary scheduling;
    /// set before `start`). On a busy host an ordinary thread woken at a release time, or by a
    /// chunk to read, can wait milliseconds for a CPU: the chunk then leaves that late (a reader
    /// woken after the chunk's release time has passed cannot release it on time, even though its
    /// arrival is the kernel's stamp). A real-time thread runs at once; they only sleep or move bytes. Needs root
    /// (CAP_SYS_NICE); refused, the threads stay ordinary and `realtimeRefused` says why.
    public var realtimePriority: Int32 = 0
    public private(set) var realtimeRefused: String?
    /// With a real-time priority the proxy also keeps idle CPUs polling while it runs (PM QoS CPU
    /// latency 0, see `CPULatencyHold`): otherwise the endpoints' and the proxy's own wake-ups
    /// after each quiet spell between datagrams are late by a halted vCPU's wake-up.
    public let idleHold = CPULatencyHold()
    /// With a real-time priority, releasing threads wake 200 µs before a release and spin to it (the
    /// timer wake-up itself is late by up to that); without one they sleep to it.
    var releaseSpinNanoseconds: Int64 { realtimePriority > 0 ? 200_000 : 0 }
    public private(set) var connectionsAccepted = 0
    public private(set) var connectionErrors: [String] = []

    /// Binds `listen` (port 0 = any free port; read `listenAddress`). `toUpstream`/`toClient` are the
    /// two directions' impairments; `seed` makes loss and jitter draws reproducible.
    public init(listen: String, upstream: String, udp: Bool, toUpstream: ImpairmentSpec, toClient: ImpairmentSpec, seed: UInt64 = 1) throws {
        let sockType = udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let l = try Resolver.splitHostPortAllowingZero(listen)
        let u = try Resolver.splitHostPort(upstream)
        let la = try Resolver.resolve(l.host, port: l.port, socketType: sockType).address
        let ua = try Resolver.resolve(u.host, port: u.port, socketType: sockType).address
        for (name, spec) in [("to-upstream", toUpstream), ("to-client", toClient)] where !spec.problems.isEmpty {
            throw ProxyError("\(name) impairment: \(spec.problems.joined(separator: "; "))")
        }
        let fd = socket(la.family, sockType | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ProxyError("cannot open a socket for \(la.hostPort): \(errnoText(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = la
        let rc = withUnsafePointer(to: &addr.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, addr.length) } }
        guard rc == 0, udp || Glibc.listen(fd, 1024) == 0 else {
            let e = errno
            close(fd)
            throw ProxyError("cannot listen on \(la.hostPort): \(errnoText(e)); choose another address or port")
        }
        var bound = sockaddr_storage()
        var blen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &blen) } }
        listenAddress = SocketAddr(storage: bound, length: blen)
        self.upstream = ua
        self.udp = udp
        listenFD = fd
        if udp { _ = em_enable_rx_metadata(fd, la.family) }
        impairers = [.toUpstream: Impairer(spec: toUpstream, seed: seed),
                     .toClient: Impairer(spec: toClient, seed: seed &+ 0x9E37_79B9)]
    }

    /// Starts serving on background threads.
    public func start() {
        if realtimePriority > 0 { idleHold.hold() }
        if udp {
            let up = DelayLine(stop: stopFlag, spinNanoseconds: releaseSpinNanoseconds), down = DelayLine(stop: stopFlag, spinNanoseconds: releaseSpinNanoseconds)
            lock.lock(); udpToUpstreamLine = up; udpToClientLine = down; lock.unlock()
            spawn { up.run() }
            spawn { down.run() }
            spawn { [self] in udpServe(up: up, down: down) }
        } else {
            spawn { [self] in acceptLoop() }
        }
    }

    /// Stops accepting, closes every connection and socket, waits up to 2 s for the threads.
    public func stop() {
        stopFlag.stop(reason: "proxy stopped")
        lock.lock()
        let fds = openFDs
        let lines = [udpToUpstreamLine, udpToClientLine].compactMap { $0 }
        lock.unlock()
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        for l in lines { l.wake() }
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            lock.lock(); let alive = threads.filter { !$0.isFinished }.count; lock.unlock()
            if alive == 0 { break }
            usleep(5_000)
        }
        lock.lock()
        for fd in openFDs { close(fd) }
        openFDs.removeAll()
        for (_, fd) in udpSessions { close(fd) }
        udpSessions.removeAll()
        lock.unlock()
        close(listenFD)
        idleHold.release()
    }

    /// Applies a new impairment to one direction from now on (chunks already queued keep their times).
    public func update(_ direction: ProxyDirection, _ spec: ImpairmentSpec) throws {
        guard spec.problems.isEmpty else { throw ProxyError(spec.problems.joined(separator: "; ")) }
        lock.lock(); impairers[direction]!.update(spec); lock.unlock()
    }

    /// UDP: how late datagrams left against the model's release times (median, µs), per direction;
    /// nil before any left (TCP connections keep their own lines).
    public func udpLatenessP50Microseconds(_ direction: ProxyDirection) -> Double? {
        lock.lock(); let line = direction == .toUpstream ? udpToUpstreamLine : udpToClientLine; lock.unlock()
        guard let xs = line?.latenessSample, !xs.isEmpty else { return nil }
        return Double(xs.sorted()[(xs.count - 1) / 2]) / 1000
    }

    public func counters(_ direction: ProxyDirection) -> ProxyCounters {
        lock.lock(); defer { lock.unlock() }; return counters[direction]!
    }

    // MARK: the model

    /// Admits `bytes` that arrived at `arrival` (CLOCK_MONOTONIC; nil = now) in `direction`: the
    /// release time, or nil when dropped. Arrivals are kept in order per direction (connections
    /// share one model).
    func admit(_ direction: ProxyDirection, bytes: Int, arrival: Int64? = nil) -> Int64? {
        lock.lock(); defer { lock.unlock() }
        let t = max(arrival ?? em_clock_monotonic_ns(), lastArrival[direction] ?? .min)
        lastArrival[direction] = t
        counters[direction]!.chunks += 1
        counters[direction]!.bytes += bytes
        return impairers[direction]!.admit(bytes: bytes, arrivalNanoseconds: t).releaseNanoseconds
    }

    /// A chunk's arrival: its kernel receive stamp (SO_TIMESTAMPNS, CLOCK_REALTIME) moved to
    /// CLOCK_MONOTONIC, so the delay counts from when the bytes reached the proxy's socket, not from
    /// when the reading thread woke up to take them (which on a busy or idle host adds up to
    /// milliseconds the model never drew). nil when the kernel gave no usable stamp.
    static func arrival(_ info: em_rxinfo) -> Int64? {
        guard info.has_kernel_timestamp != 0 else { return nil }
        let mono = em_clock_monotonic_ns()
        let stamp = info.kernel_ts_sec * 1_000_000_000 + info.kernel_ts_nsec
        let age = em_clock_realtime_ns() - stamp
        if age >= 0 && age < 1_000_000_000 { return mono - age }
        // A local TCP's departure stamp (CLOCK_MONOTONIC) kept on loopback: the chunk's arrival.
        return stamp <= mono && mono - stamp < 1_000_000_000 ? stamp : nil
    }

    /// `recv` with the kernel's receive stamp of the data read.
    static func stampedRecv(_ fd: Int32, _ buf: inout [UInt8]) -> (Int, Int64?) {
        var info = em_rxinfo()
        let n = buf.withUnsafeMutableBytes { em_recvmsg(fd, $0.baseAddress, $0.count, nil, nil, &info, 0) }
        return (n, n > 0 ? arrival(info) : nil)
    }

    /// TCP: admits a chunk, stalling for a retransmission timeout each time the model drops it
    /// (a retransmitted chunk arrives when offered again).
    func admitStream(_ direction: ProxyDirection, bytes: Int, arrival: Int64? = nil) -> Int64? {
        var arrival = arrival
        while !stopFlag.isStopped {
            if let t = admit(direction, bytes: bytes, arrival: arrival) { return t }
            arrival = nil
            lock.lock(); counters[direction]!.stalls += 1; lock.unlock()
            DelayLine.sleep(until: em_clock_monotonic_ns() + Self.retransmissionTimeoutNanoseconds, stop: stopFlag)
        }
        return nil
    }

    // MARK: threads and sockets

    /// Moves the calling thread to SCHED_FIFO `realtimePriority`, when asked.
    private func raisePriority() {
        guard realtimePriority > 0 else { return }
        var param = sched_param(sched_priority: realtimePriority)
        let rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
        if rc != 0 { lock.lock(); realtimeRefused = "SCHED_FIFO \(realtimePriority) refused: \(errnoText(rc))"; lock.unlock() }
    }

    /// Asks the kernel for receive stamps on `fd` (SO_TIMESTAMPNS), as the proxy's own sockets do.
    static func enableStamps(_ fd: Int32) -> Bool { em_enable_rx_metadata(fd, Int32(AF_INET)) == 1 }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        let t = Thread { [self] in raisePriority(); body() }
        t.stackSize = 256 << 10
        lock.lock(); threads.removeAll { $0.isFinished }; threads.append(t); lock.unlock()
        t.start()
    }

    private func track(_ fd: Int32) { lock.lock(); openFDs.insert(fd); lock.unlock() }
    private func untrackAndClose(_ fd: Int32) {
        lock.lock(); let had = openFDs.remove(fd) != nil; lock.unlock()
        if had { close(fd) }
    }

    private func note(_ error: String) {
        lock.lock(); if connectionErrors.count < 100 { connectionErrors.append(error) }; lock.unlock()
    }

    private func acceptLoop() {
        while !stopFlag.isStopped {
            var p = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 50) <= 0 { continue }
            let client = accept(listenFD, nil, nil)
            if client < 0 { continue }
            lock.lock(); connectionsAccepted += 1; lock.unlock()
            let upstreamFD = socket(upstream.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = upstream
            let rc = upstreamFD < 0 ? -1 : withUnsafePointer(to: &addr.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstreamFD, $0, addr.length) }
            }
            if rc != 0 {
                note("connect to upstream \(upstream.hostPort): \(errnoText(errno))")
                if upstreamFD >= 0 { close(upstreamFD) }
                close(client)
                continue
            }
            var one: Int32 = 1
            for fd in [client, upstreamFD] {
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                _ = em_enable_rx_metadata(fd, upstream.family)
                track(fd)
            }
            let connection = TCPConnection(client: client, upstream: upstreamFD) { [self] in
                // Wake a reader still blocked in recv() (a writer that failed ends its direction
                // early) before the descriptors are closed and could be reused.
                shutdown(client, Int32(SHUT_RDWR)); shutdown(upstreamFD, Int32(SHUT_RDWR))
                usleep(1_000)
                untrackAndClose(client); untrackAndClose(upstreamFD)
            }
            for (direction, from, to) in [(ProxyDirection.toUpstream, client, upstreamFD), (.toClient, upstreamFD, client)] {
                let line = DelayLine(stop: stopFlag, spinNanoseconds: releaseSpinNanoseconds)
                spawn { line.run(); connection.directionFinished() }
                spawn { [self] in pump(direction, from: from, to: to, line: line) }
            }
        }
    }

    /// Reads one direction of a TCP connection and queues each chunk at its release time.
    private func pump(_ direction: ProxyDirection, from: Int32, to: Int32, line: DelayLine) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while !stopFlag.isStopped {
            line.waitForRoom(limitBytes: Self.queueLimitBytes)
            let (n, arrival) = Self.stampedRecv(from, &buf)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // End of stream (or reset): pass the FIN on behind the data.
                let release = admitStream(direction, bytes: 0) ?? em_clock_monotonic_ns()
                line.enqueue(release: release, bytes: 0, last: true) { _ = shutdown(to, Int32(SHUT_WR)); return true }
                return
            }
            let chunk = Array(buf[0..<n])
            guard let release = admitStream(direction, bytes: n, arrival: arrival) else { break }
            line.enqueue(release: release, bytes: n, last: false) {
                chunk.withUnsafeBytes { raw in
                    var off = 0
                    while off < raw.count {
                        let w = send(to, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                        if w < 0 && errno == EINTR { continue }
                        if w <= 0 { return false }
                        off += w
                    }
                    return true
                }
            }
        }
        line.enqueue(release: em_clock_monotonic_ns(), bytes: 0, last: true) { _ = shutdown(to, Int32(SHUT_WR)); return true }
    }

    private func udpServe(up: DelayLine, down: DelayLine) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while !stopFlag.isStopped {
            var p = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 50) <= 0 { continue }
            var from = sockaddr_storage()
            var flen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            var info = em_rxinfo()
            let n = buf.withUnsafeMutableBytes { b in em_recvmsg(listenFD, b.baseAddress, b.count, &from, &flen, &info, 0) }
            if n < 0 { continue }
            let client = SocketAddr(storage: from, length: flen)
            guard let session = udpSession(for: client, down: down) else { continue }
            guard let release = admit(.toUpstream, bytes: n, arrival: Self.arrival(info)) else {
                lock.lock(); counters[.toUpstream]!.dropped += 1; lock.unlock()
                continue
            }
            let datagram = Array(buf[0..<n])
            up.enqueue(release: release, bytes: n, last: false) {
                _ = datagram.withUnsafeBytes { send(session, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                return true
            }
        }
    }

    /// The upstream socket of a UDP client (created on its first datagram, with a reader for replies).
    private func udpSession(for client: SocketAddr, down: DelayLine) -> Int32? {
        let key = client.hostPort
        lock.lock()
        if let fd = udpSessions[key] { lock.unlock(); return fd }
        guard udpSessions.count < Self.maxUDPClients else {
            lock.unlock(); note("more than \(Self.maxUDPClients) UDP clients; datagrams from \(key) are not relayed")
            return nil
        }
        lock.unlock()
        let fd = socket(upstream.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = upstream
        guard fd >= 0, withUnsafePointer(to: &addr.storage, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, addr.length) } }) == 0 else {
            note("UDP socket to upstream \(upstream.hostPort): \(errnoText(errno))")
            if fd >= 0 { close(fd) }
            return nil
        }
        _ = em_enable_rx_metadata(fd, upstream.family)
        lock.lock(); udpSessions[key] = fd; lock.unlock()
        let listenFD = self.listenFD
        spawn { [self] in
            var buf = [UInt8](repeating: 0, count: 65536)
            while !stopFlag.isStopped {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 50) <= 0 { continue }
                let (n, arrival) = Self.stampedRecv(fd, &buf)
                if n < 0 { continue }
                guard let release = admit(.toClient, bytes: n, arrival: arrival) else {
                    lock.lock(); counters[.toClient]!.dropped += 1; lock.unlock()
                    continue
                }
                let datagram = Array(buf[0..<n])
                let destination = client
                down.enqueue(release: release, bytes: n, last: false) {
                    var dest = destination
                    _ = datagram.withUnsafeBytes { d in
                        withUnsafePointer(to: &dest.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(listenFD, d.baseAddress, d.count, Int32(MSG_NOSIGNAL), $0, dest.length)
                        } }
                    }
                    return true
                }
            }
        }
        return fd
    }
}

/// Closes a TCP connection's two sockets once both directions have delivered their end of stream.
final class TCPConnection: @unchecked Sendable {
    private let lock = NSLock()
    private var finished = 0
    private let onClose: @Sendable () -> Void
    init(client: Int32, upstream: Int32, onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }
    func directionFinished() {
        lock.lock(); finished += 1; let done = finished == 2; lock.unlock()
        if done { onClose() }
    }
}

/// A FIFO of actions due at monotonic times, run by one thread in order (the model never releases a
/// chunk before the one ahead of it, so FIFO order is release order).
final class DelayLine: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [(release: Int64, bytes: Int, last: Bool, action: @Sendable () -> Bool)] = []
    private var head = 0
    private var queuedBytes = 0
    private let stop: StopFlag
    /// How late each action ran against its release time (ns), the last 4096.
    private var lateness: [Int64] = []
    private var latenessNext = 0

    /// How long before a release the thread stops sleeping and spins (0: sleeps to the release).
    let spinNanoseconds: Int64
    init(stop: StopFlag, spinNanoseconds: Int64 = 0) { (self.stop, self.spinNanoseconds) = (stop, spinNanoseconds) }

    func enqueue(release: Int64, bytes: Int, last: Bool, _ action: @escaping @Sendable () -> Bool) {
        condition.lock()
        items.append((release, bytes, last, action))
        queuedBytes += bytes
        condition.signal()
        condition.unlock()
    }

    func waitForRoom(limitBytes: Int) {
        condition.lock()
        while queuedBytes > limitBytes && !stop.isStopped { _ = condition.wait(until: Date().addingTimeInterval(0.05)) }
        condition.unlock()
    }

    func wake() { condition.lock(); condition.broadcast(); condition.unlock() }

    /// Lateness of the last (up to 4096) actions against their release times, ns.
    var latenessSample: [Int64] { condition.lock(); defer { condition.unlock() }; return lateness }

    /// Runs until an item marked `last` has run, an action fails, or the proxy stops.
    func run() {
        while true {
            condition.lock()
            while head == items.count && !stop.isStopped { _ = condition.wait(until: Date().addingTimeInterval(0.05)) }
            if stop.isStopped { condition.unlock(); return }
            let item = items[head]
            head += 1
            if head > 256 && head * 2 > items.count { items.removeFirst(head); head = 0 }
            condition.unlock()
            Self.sleep(until: item.release - spinNanoseconds, stop: stop)
            while em_clock_monotonic_ns() < item.release && !stop.isStopped {}
            let late = em_clock_monotonic_ns() - item.release
            let ok = item.action()
            condition.lock()
            queuedBytes -= item.bytes
            if lateness.count < 4096 { lateness.append(late) } else { lateness[latenessNext] = late; latenessNext = (latenessNext + 1) % 4096 }
            condition.broadcast()
            condition.unlock()
            if item.last || !ok || stop.isStopped { return }
        }
    }

    /// Sleeps until the monotonic time `t` (absolute `clock_nanosleep`, in slices of at most 50 ms
    /// so a stop is seen promptly).
    static func sleep(until t: Int64, stop: StopFlag) {
        while !stop.isStopped {
            let now = em_clock_monotonic_ns()
            if now >= t { return }
            let target = min(t, now + 50_000_000)
            var ts = timespec(tv_sec: Int(target / 1_000_000_000), tv_nsec: Int(target % 1_000_000_000))
            _ = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil)
        }
    }
}

/// The proxy's error: what went wrong and what to do.
public struct ProxyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Resolver {
    /// As `splitHostPort`, but port 0 (any free port) is allowed: for listening addresses.
    public static func splitHostPortAllowingZero(_ text: String) throws -> (host: String, port: UInt16) {
        if text.hasSuffix(":0") {
            let host = String(text.dropLast(2))
            let h = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            guard !h.isEmpty else { throw ResolveError(target: text, message: "\"\(text)\" has no host; for example 127.0.0.1:0") }
            return (h, 0)
        }
        return try splitHostPort(text)
    }
}
