import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

/// The userspace link-impairment forwarder: one process per topology (`edgemeter impair-forwarder`,
/// started by `lab up` inside the topology's fabric namespace), one thread moving the frames of
/// every impaired link, and one thread serving the HTTP API (`ForwarderAPI`).
///
/// Per link, two AF_PACKET sockets (ETH_P_ALL, promiscuous, PACKET_IGNORE_OUTGOING so a frame it
/// sends is not read back) bound to the link's A end (towards the node) and B end (towards the
/// bridge). Every frame read from one is stamped with its kernel receive time (SO_TIMESTAMPNS,
/// moved to CLOCK_MONOTONIC; the clock right after `recv` when the kernel gave none), handed to
/// that direction's `Impairer`, and either dropped or queued with its release time; queued frames
/// are sent on the other socket when the release time comes. The loop waits in `ppoll` (nanosecond
/// timeout, timer slack set to 1 ns) until `spinNanoseconds` (250 µs: the wake-up of a virtual CPU
/// that went idle takes up to that) before the earliest release, then polls without blocking until
/// the release time (a short spin), so frames leave within a few microseconds of their time; the lateness of every frame sent (send time − release time) is
/// counted per direction and reported by `GET /links`.
///
/// Frames are kept in a fixed ring per direction (2048-byte slots, `ringFrames` of them); a frame
/// that finds the ring full is dropped and counted as `queue_full`. Without reordering (the model's
/// default) release times within one direction never decrease, so the ring is in release order.
public final class Forwarder: @unchecked Sendable {
    public static let slotBytes = 2048
    public let links: [ImpairedLink]
    public let ringFrames: Int
    public let spinNanoseconds: Int64
    /// SCHED_FIFO priority of the forwarding thread (0 = normal scheduling). With the default 10 the
    /// thread preempts ordinary processes (compilers, the measured workloads) when a release is due;
    /// the kernel's real-time throttling (95 % of each second) bounds what it can take.
    public let realtimePriority: Int32
    let control: ForwarderControl
    private var directions: [Direction] = []
    /// Idle CPUs poll while frames flow (and for 1 s after the last one): see `CPULatencyHold`.
    /// Without it every release after a quiet spell pays a halted vCPU's wake-up.
    let idleHold: ActivityLatencyHold

    public init(links: [ImpairedLink], seed: UInt64 = 0x5eed, ringFrames: Int = 8192, spinNanoseconds: Int64 = 250_000, realtimePriority: Int32 = 10) throws {
        self.links = links
        idleHold = ActivityLatencyHold(enabled: geteuid() == 0)
        self.realtimePriority = realtimePriority
        self.ringFrames = ringFrames
        self.spinNanoseconds = spinNanoseconds
        control = try ForwarderControl(links: links)
        for (i, link) in links.enumerated() {
            let a = try PacketSocket(device: link.forwarderA)
            let b = try PacketSocket(device: link.forwarderB)
            directions.append(Direction(link: i, name: "to_network", spec: link.spec, seed: seed &+ UInt64(2 * i), input: a, output: b, ring: ringFrames))
            directions.append(Direction(link: i, name: "to_node", spec: link.toNodeSpec, seed: seed &+ UInt64(2 * i + 1), input: b, output: a, ring: ringFrames))
        }
    }

    /// Runs until the process is killed (`lab down` sends SIGTERM to everything in the fabric).
    public func run() -> Never {
        Self.setTimerSlackToOneNanosecond()
        if realtimePriority > 0 {
            var param = sched_param(sched_priority: realtimePriority)
            if sched_setscheduler(0, SCHED_FIFO, &param) != 0 {
                print("impair-forwarder: SCHED_FIFO \(realtimePriority) refused (\(String(cString: strerror(errno)))); running at normal priority, releases may be late under load")
            }
        }
        print(idleHold.isEnabled ? "impair-forwarder: idle CPUs poll while frames flow (PM QoS CPU latency 0 µs, withdrawn after 1 s without frames)"
                                 : "impair-forwarder: idle CPUs keep the host's idle states (not root): releases after a quiet spell may be late by a vCPU wake-up")
        var pfds = [pollfd(fd: control.wakeRead, events: Int16(POLLIN), revents: 0)]
        for d in directions { pfds.append(pollfd(fd: d.input.fd, events: Int16(POLLIN), revents: 0)) }
        var lastPublish: Int64 = 0
        while true {
            let now = em_clock_monotonic_ns()
            var next = Int64.max
            for d in directions {
                d.releaseDue(now: now)
                if let r = d.nextRelease, r < next { next = r }
            }
            if now - lastPublish > 100_000_000 { publish(); lastPublish = now }
            var timeout: Int64 = 100_000_000
            if next != .max {
                let wait = next - em_clock_monotonic_ns()
                timeout = wait > spinNanoseconds ? min(timeout, wait - spinNanoseconds) : 0
            }
            let nfds = UInt(pfds.count)
            let n = pfds.withUnsafeMutableBufferPointer { em_poll_ns($0.baseAddress, nfds, timeout) }
            guard n > 0 else {
                if next == .max { idleHold.expire(em_clock_monotonic_ns()) }
                continue
            }
            var active = false
            for k in 1..<pfds.count where pfds[k].revents != 0 { directions[k - 1].receive(); active = true }
            let t = em_clock_monotonic_ns()
            if active { idleHold.touch(t) } else if next == .max { idleHold.expire(t) }
            if pfds[0].revents != 0 { applyUpdates(); publish(); lastPublish = em_clock_monotonic_ns() }
        }
    }

    /// `prctl(PR_SET_TIMERSLACK, 1)`: without it the kernel may wake `ppoll` up to 50 µs late
    /// (the default slack). prctl is variadic in C, so it is called through its symbol.
    static func setTimerSlackToOneNanosecond() {
        typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        guard let h = dlopen(nil, RTLD_NOW), let sym = dlsym(h, "prctl") else { return }
        _ = unsafeBitCast(sym, to: Prctl.self)(29, 1, 0, 0, 0)
    }

    private func applyUpdates() {
        for (link, spec, seed, direction) in control.takeUpdates() {
            // Directions alternate per link: even index = to_network (egress), odd = to_node (ingress).
            for (k, d) in directions.enumerated() where d.link == link && direction.includes(toNode: k % 2 == 1) {
                d.impairer.update(spec)
                if let seed { d.impairer.reseed(seed &+ UInt64(k % 2)) }
            }
        }
    }

    /// Hands the API thread each link's specs and counters as they are now. Only copies: the
    /// lateness histograms are copy-on-write arrays, and the quantiles and the spec's text are
    /// worked out by the reader (`PublishedLink.report`). This loop publishes every 100 ms, and a
    /// release that falls due meanwhile waits for it: computing the quantiles here (8 directions
    /// × 1001 buckets) made releases up to 5.5 ms late in a debug build (`lab status` showed
    /// late_max_us 2893-5491; 101 in a release build).
    private func publish() {
        control.publish(links.indices.map { i in
            let ds = directions.filter { $0.link == i }
            return PublishedLink(link: links[i], specs: (ds[0].impairer.spec, ds[1].impairer.spec), counters: (ds[0].counters(), ds[1].counters()))
        })
    }
}

/// One direction of one link: its model, its ring and its counters.
final class Direction {
    let link: Int
    let name: String
    var impairer: Impairer
    let input: PacketSocket
    let output: PacketSocket
    private let storage: UnsafeMutableRawPointer
    private var release: [Int64]
    private var length: [Int32]
    private var head = 0
    private var count = 0
    private let capacity: Int
    private let scratch: UnsafeMutableRawPointer
    var received = 0, forwarded = 0, droppedLoss = 0, droppedQueueFull = 0, droppedOversize = 0, sendErrors = 0
    var lastSendError: Int32 = 0
    /// Arrivals timed by the kernel's receive stamp (the others by the clock after `recv`).
    var stampedArrivals = 0
    private var lastArrival: Int64 = .min
    /// Lateness of each sent frame (send − release), in 1 µs buckets; the last bucket is ≥ 1 ms.
    var lateness = [Int](repeating: 0, count: 1001)
    var latenessMax: Int64 = 0

    init(link: Int, name: String, spec: ImpairmentSpec, seed: UInt64, input: PacketSocket, output: PacketSocket, ring: Int) {
        (self.link, self.name, self.input, self.output, capacity) = (link, name, input, output, ring)
        impairer = Impairer(spec: spec, seed: seed)
        // Pages are touched only as frames fill them.
        storage = UnsafeMutableRawPointer.allocate(byteCount: ring * Forwarder.slotBytes, alignment: 64)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 64)
        release = [Int64](repeating: 0, count: ring)
        length = [Int32](repeating: 0, count: ring)
    }

    var nextRelease: Int64? { count == 0 ? nil : release[head] }

    /// Reads every frame waiting on the input socket (at most 256 per call, so the other
    /// directions are not starved).
    func receive() {
        for _ in 0..<256 {
            let full = count == capacity
            let slot = full ? scratch : storage + ((head + count) % capacity) * Forwarder.slotBytes
            var info = em_rxinfo()
            let n = em_recvmsg(input.fd, slot, full ? 65536 : Forwarder.slotBytes, nil, nil, &info, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
            if n < 0 { return }
            let t = arrivalTime(info)
            received += 1
            if n > Forwarder.slotBytes { droppedOversize += 1; continue }
            switch impairer.admit(bytes: n, arrivalNanoseconds: t) {
            case .dropped(.loss): droppedLoss += 1
            case .dropped(.queueFull): droppedQueueFull += 1
            case .release(let r):
                if full { droppedQueueFull += 1; continue }
                if count == 0 && r <= t {
                    send(slot, n, release: r)
                } else {
                    let idx = (head + count) % capacity
                    release[idx] = r
                    length[idx] = Int32(n)
                    count += 1
                }
            }
        }
    }

    /// The frame's arrival on the link, CLOCK_MONOTONIC: the kernel's receive stamp of the frame
    /// (SO_TIMESTAMPNS, CLOCK_REALTIME, taken when the frame entered the fabric's stack), moved to
    /// the monotonic clock by the offset between the two clocks read now. Without it the arrival
    /// would be the time this thread got round to `recv` — after its own wake-up from `ppoll`, which
    /// on an idle (or a busy, shared) host adds tens of µs to a few ms to the frame's delay, a cost
    /// that grows with the time the forwarder slept and that no baseline at delay 0 contains. Never
    /// later than now, never earlier than the previous frame's arrival (the model's order).
    private func arrivalTime(_ info: em_rxinfo) -> Int64 {
        let mono = em_clock_monotonic_ns()
        var t = mono
        if info.has_kernel_timestamp != 0 {
            let real = em_clock_realtime_ns()
            let stamp = info.kernel_ts_sec &* 1_000_000_000 &+ info.kernel_ts_nsec
            let age = real - stamp
            // A frame a local TCP sent keeps its departure time (CLOCK_MONOTONIC, the stack's EDT
            // stamp) across the veth, and the packet socket reports that: it is then the frame's
            // entry on the link. Any other stamp (future, or older than a second) is ignored.
            if age >= 0 && age < 1_000_000_000 { t = mono - age; stampedArrivals += 1 }
            else if stamp <= mono && mono - stamp < 1_000_000_000 { t = stamp; stampedArrivals += 1 }
        }
        t = max(t, lastArrival)
        lastArrival = t
        return t
    }

    /// Sends every queued frame whose release time is ≤ now.
    func releaseDue(now: Int64) {
        while count > 0 && release[head] <= now {
            send(storage + head * Forwarder.slotBytes, Int(length[head]), release: release[head])
            head = (head + 1) % capacity
            count -= 1
        }
    }

    private func send(_ p: UnsafeMutableRawPointer, _ n: Int, release r: Int64) {
        // Lateness is taken when the frame is handed to send(): what the send itself costs (the
        // veth delivering the frame through the peer's stack, inside the call) is the forwarder's
        // per-frame cost, measured separately (benchmarks/README.md).
        let late = em_clock_monotonic_ns() - r
        let sent = Glibc.send(output.fd, p, n, 0)
        if sent < 0 { sendErrors += 1; lastSendError = errno; return }
        forwarded += 1
        lateness[Int(min(1000, max(0, late / 1000)))] += 1
        latenessMax = max(latenessMax, late)
    }

    func counters() -> DirectionCounters {
        DirectionCounters(received: received, forwarded: forwarded, droppedLoss: droppedLoss, droppedQueueFull: droppedQueueFull,
                          droppedOversize: droppedOversize, sendErrors: sendErrors, queued: count, lateness: lateness, latenessMax: latenessMax)
    }
}

/// One direction's counters as the forwarding thread published them (see `Forwarder.publish`).
struct DirectionCounters: Sendable {
    var received, forwarded, droppedLoss, droppedQueueFull, droppedOversize, sendErrors, queued: Int
    /// Lateness of each sent frame in 1 µs buckets; the last bucket is ≥ 1 ms.
    var lateness: [Int]
    var latenessMax: Int64

    var stats: ForwarderDirectionStats {
        let total = lateness.reduce(0, +)
        func quantile(_ q: Double) -> Int? {
            guard total > 0 else { return nil }
            let rank = max(1, Int((q * Double(total)).rounded(.up)))
            var acc = 0
            for (us, c) in lateness.enumerated() { acc += c; if acc >= rank { return us } }
            return 1000
        }
        return ForwarderDirectionStats(received: received, forwarded: forwarded, droppedLoss: droppedLoss, droppedQueueFull: droppedQueueFull,
                                       droppedOversize: droppedOversize, sendErrors: sendErrors, queued: queued,
                                       lateP50Microseconds: quantile(0.5), lateP99Microseconds: quantile(0.99),
                                       lateMaxMicroseconds: forwarded == 0 ? nil : Int(latenessMax / 1000))
    }
}

/// One link as the forwarding thread published it; `report` is what `GET /links` answers.
struct PublishedLink: Sendable {
    var link: ImpairedLink
    /// Each direction's spec and counters: node → network, network → node.
    var specs: (toNetwork: ImpairmentSpec, toNode: ImpairmentSpec)
    var counters: (toNetwork: DirectionCounters, toNode: DirectionCounters)

    var report: ForwarderLinkReport {
        ForwarderLinkReport(id: link.id, node: link.node, network: link.network, a: link.forwarderA, b: link.forwarderB,
                            impairment: LinkImpairment(specs.toNetwork), impairmentToNode: LinkImpairment(specs.toNode),
                            toNetwork: counters.toNetwork.stats, toNode: counters.toNode.stats)
    }
}

/// An AF_PACKET raw socket bound to one interface, receiving every protocol (ETH_P_ALL) in
/// promiscuous mode, not seeing its own sends (PACKET_IGNORE_OUTGOING).
struct PacketSocket {
    let fd: Int32
    let device: String

    static let solPacket: Int32 = 263
    static let packetAddMembership: Int32 = 1
    static let packetMrPromisc: UInt16 = 1
    static let packetIgnoreOutgoing: Int32 = 23
    static let ethPAll: UInt16 = 0x0003

    init(device: String) throws {
        self.device = device
        let index = if_nametoindex(device)
        guard index > 0 else { throw LabError(.stepFailed, "forwarder: no interface \(device) in this namespace; is the topology up (`edgemeter lab status`)?") }
        // Protocol 0 until bound: nothing from other interfaces is queued before the bind.
        fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        guard fd >= 0 else { throw Self.error("socket(AF_PACKET) for \(device)", hint: "the forwarder needs CAP_NET_RAW: run lab up as root") }
        // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16, pkttype u8, halen u8, addr[8].
        var sll = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { sll.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: Self.ethPAll.bigEndian) { sll.replaceSubrange(2..<4, with: $0) }
        withUnsafeBytes(of: Int32(index)) { sll.replaceSubrange(4..<8, with: $0) }
        let b = sll.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), 20) }
        guard b == 0 else { let e = Self.error("bind to \(device)", hint: "check the interface exists and is up"); close(fd); throw e }
        var one: Int32 = 1
        guard setsockopt(fd, Self.solPacket, Self.packetIgnoreOutgoing, &one, 4) == 0 else {
            let e = Self.error("PACKET_IGNORE_OUTGOING on \(device)", hint: "the kernel must be 4.20 or later"); close(fd); throw e
        }
        // struct packet_mreq: ifindex i32, type u16, alen u16, address[8].
        var mreq = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: Int32(index)) { mreq.replaceSubrange(0..<4, with: $0) }
        withUnsafeBytes(of: Self.packetMrPromisc) { mreq.replaceSubrange(4..<6, with: $0) }
        guard setsockopt(fd, Self.solPacket, Self.packetAddMembership, mreq, 16) == 0 else {
            let e = Self.error("promiscuous mode on \(device)", hint: "run as root"); close(fd); throw e
        }
        // Kernel receive stamps: a frame's arrival is when it entered the stack, not when the
        // forwarding thread woke up to read it (`Direction.arrivalTime`).
        _ = em_enable_rx_metadata(fd, Int32(AF_PACKET))
        var buf: Int32 = 8 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, 4)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, 4)
    }

    static func error(_ what: String, hint: String) -> LabError {
        LabError(.stepFailed, "forwarder: \(what) failed: \(String(cString: strerror(errno))); \(hint)")
    }
}

extension Forwarder {
    /// Serves the HTTP API (`ForwarderAPI.swift`) on a unix socket, on a thread of its own.
    public func startAPI(socketPath: String) throws {
        signal(SIGPIPE, SIG_IGN)
        try ForwarderHTTP.serve(socketPath: socketPath, control: control)
    }
}
