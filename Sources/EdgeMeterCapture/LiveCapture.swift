import Foundation
import CPcap
import EdgeMeterCore

/// A network interface libpcap can capture on.
public struct CaptureInterface: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var addresses: [String]
    public var isUp: Bool
    public var isLoopback: Bool
}

/// Options of a live capture.
public struct CaptureOptions: Sendable {
    public var interface: String
    /// A BPF filter in tcpdump syntax (`icmp or tcp port 8080`); nil captures everything.
    public var filter: String?
    /// Bytes kept of each packet. 65535 holds every packet of an interface with an MTU up to 64 KiB
    /// (lo's is 65536) and keeps the ring's slots small (see `bufferSize`).
    public var snapLength: Int32 = 65_535
    /// Kernel ring buffer size in bytes; nil uses `defaultBufferSize`. In immediate mode libpcap
    /// uses a TPACKET_V2 ring of fixed slots of about `snapLength` bytes, so the ring holds roughly
    /// bufferSize / snapLength packets: libpcap's own 2 MiB default with a 256 KiB snap length
    /// holds 8 and drops packets of a single TCP exchange on lo.
    public var bufferSize: Int32?
    public var promiscuous = false
    /// true: immediate mode, each packet is handed to the reader at once (it wakes for every packet).
    /// false: the kernel hands packets over in blocks (TPACKET_V3), at most `blockTimeoutMs` late;
    /// the reader is not woken per packet, so the capture disturbs less the traffic it measures.
    /// Timestamps are the kernel's either way.
    public var immediate = true
    public var blockTimeoutMs: Int32 = 10
    public static let defaultBufferSize: Int32 = 32 << 20

    public init(interface: String, filter: String? = nil, snapLength: Int32 = 65_535, bufferSize: Int32? = nil) {
        (self.interface, self.filter, self.snapLength, self.bufferSize) = (interface, filter, snapLength, bufferSize)
    }
}

/// Counters from `pcap_stats` at the end of a capture (Linux semantics: `received` counts packets
/// the filter accepted, `dropped` those lost because the buffer was full, `interfaceDropped` those
/// the interface dropped). On `lo` the kernel counts each packet twice in `received`.
public struct CaptureStats: Sendable, Equatable {
    public var received: UInt32
    public var dropped: UInt32
    public var interfaceDropped: UInt32
}

/// How a capture ended.
public struct CaptureResult: Sendable {
    public var packets: Int
    public var stats: CaptureStats?
    public var linkType: UInt32
    /// `nano` or `micro`: the timestamp precision libpcap delivered.
    public var precision: String
    public var startedNs: Int64
    public var endedNs: Int64
    /// Why it stopped: `duration`, `count`, or the stop flag's reason.
    public var stopReason: String
}

/// A libpcap live capture: immediate mode, nanosecond timestamps when the interface supports them,
/// a settable buffer size, non-blocking reads with poll(2) on the selectable descriptor so the loop
/// stops on time even when no packet arrives (pcap_next_ex alone blocks forever on Linux then).
public final class LiveCapture {
    public let options: CaptureOptions
    private var handle: OpaquePointer?
    public private(set) var linkType: UInt32 = LinkType.ethernet
    /// `nano` when libpcap accepted nanosecond precision, else `micro`.
    public private(set) var precision = "micro"

    /// Opens and activates the handle and installs the filter. Throws `CaptureError.permission` with
    /// the way to grant the capability, `.capture` for a missing interface or a bad filter.
    public init(_ options: CaptureOptions) throws {
        self.options = options
        var err = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_create(options.interface, &err) else {
            throw CaptureError.capture("cannot open \(options.interface): \(String(cString: err)); list interfaces with `edgemeter capture --list`")
        }
        handle = h
        pcap_set_snaplen(h, options.snapLength)
        pcap_set_promisc(h, options.promiscuous ? 1 : 0)
        pcap_set_immediate_mode(h, options.immediate ? 1 : 0)
        pcap_set_timeout(h, options.immediate ? 50 : options.blockTimeoutMs)
        pcap_set_buffer_size(h, options.bufferSize ?? CaptureOptions.defaultBufferSize)
        let nanoOK = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO)) == 0
        let rc = pcap_activate(h)
        if rc < 0 {
            let msg = String(cString: pcap_geterr(h))
            pcap_close(h)
            handle = nil
            switch rc {
            case PCAP_ERROR_PERM_DENIED:
                throw CaptureError.permission("capturing on \(options.interface) needs CAP_NET_RAW and CAP_NET_ADMIN (\(msg)): run as root or grant them with `setcap cap_net_raw,cap_net_admin+ep $(which edgemeter)`")
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw CaptureError.capture("no interface named \(options.interface) (\(msg)); list the interfaces with `edgemeter capture --list`")
            case PCAP_ERROR_IFACE_NOT_UP:
                throw CaptureError.capture("interface \(options.interface) is down; bring it up with `ip link set \(options.interface) up` or choose another with `edgemeter capture --list`")
            default:
                throw CaptureError.capture("cannot start capturing on \(options.interface): \(msg) (pcap_activate \(rc))")
            }
        }
        precision = nanoOK && pcap_get_tstamp_precision(h) == Int32(PCAP_TSTAMP_PRECISION_NANO) ? "nano" : "micro"
        // `any` defaults to Linux cooked v1, which does not say on which interface a packet was
        // seen; v2 does, and the analyzer needs it to tell a bridged packet's copies apart.
        if pcap_datalink(h) == Int32(LinkType.linuxSLL) { _ = pcap_set_datalink(h, Int32(LinkType.linuxSLL2)) }
        linkType = UInt32(bitPattern: pcap_datalink(h))
        if let f = options.filter, !f.isEmpty {
            var prog = bpf_program()
            if pcap_compile(h, &prog, f, 1, PCAP_NETMASK_UNKNOWN) != 0 {
                let msg = String(cString: pcap_geterr(h))
                close()
                throw CaptureError.usage("the capture filter \"\(f)\" does not compile: \(msg); use tcpdump filter syntax, e.g. \"icmp or tcp port 8080\"")
            }
            defer { pcap_freecode(&prog) }
            if pcap_setfilter(h, &prog) != 0 {
                let msg = String(cString: pcap_geterr(h))
                close()
                throw CaptureError.capture("cannot install the filter \"\(f)\": \(msg)")
            }
        }
        if pcap_setnonblock(h, 1, &err) != 0 {
            close()
            throw CaptureError.capture("cannot make the capture non-blocking: \(String(cString: err))")
        }
    }

    deinit { close() }

    public func close() {
        if let h = handle { pcap_close(h); handle = nil }
    }

    /// Current `pcap_stats` counters, nil when the handle is closed or libpcap cannot give them.
    public func stats() -> CaptureStats? {
        guard let h = handle else { return nil }
        var s = pcap_stat()
        guard pcap_stats(h, &s) == 0 else { return nil }
        return CaptureStats(received: s.ps_recv, dropped: s.ps_drop, interfaceDropped: s.ps_ifdrop)
    }

    /// Captures until `stop` (or `parent`) is set, `until` (monotonic) passes, or `maxCount` packets
    /// were seen, checking every 50 ms at most. `body` runs on the calling thread for each packet.
    public func run(stop: StopFlag, parent: StopFlag? = nil, until: ContinuousClock.Instant? = nil, maxCount: Int? = nil,
                    idle: (() -> Void)? = nil, _ body: (PcapRecord) throws -> Void) throws -> CaptureResult {
        guard let h = handle else { throw CaptureError.capture("the capture on \(options.interface) is closed") }
        let fd = pcap_get_selectable_fd(h)
        let clock = ContinuousClock()
        let started = Self.realtimeNs()
        var count = 0
        var reason = "stopped"
        let nanoScale: Int64 = precision == "nano" ? 1 : 1000
        // A stop request or the end of `until` ends the loop only after one more drain, so the
        // packets the kernel buffered since the last poll (the last replies of a run) are kept.
        var lastPass = false
        loop: while true {
            if !lastPass {
                if let r = stop.reason ?? parent?.reason { reason = r; lastPass = true }
                else if let u = until, clock.now >= u { reason = "duration"; lastPass = true }
            }
            // Drain what is buffered.
            var batch = 0
            while true {
                var hdr: UnsafeMutablePointer<pcap_pkthdr>?
                var data: UnsafePointer<UInt8>?
                let rc = pcap_next_ex(h, &hdr, &data)
                if rc == 1, let hdr, let data {
                    let ts = Int64(hdr.pointee.ts.tv_sec) * 1_000_000_000 + Int64(hdr.pointee.ts.tv_usec) * nanoScale
                    let rec = PcapRecord(timestampNs: ts, originalLength: Int(hdr.pointee.len),
                                         data: UnsafeRawBufferPointer(start: data, count: Int(hdr.pointee.caplen)))
                    try body(rec)
                    count += 1
                    batch += 1
                    if let m = maxCount, count >= m { reason = "count"; break loop }
                } else if rc == 0 {
                    break
                } else {
                    let msg = String(cString: pcap_geterr(h))
                    throw CaptureError.capture("capture on \(options.interface) failed: \(msg)")
                }
            }
            idle?()
            if lastPass { break }
            // Under a high packet rate, waking up for every packet costs more than handling it: after
            // a large batch, let the ring fill for 250 µs before polling again. Timestamps are the
            // kernel's, so this delays delivery, never the figures; at low rates every packet still
            // wakes the loop at once (immediate mode).
            if batch >= 32 { usleep(250) }
            var wait: Int32 = 50
            if let u = until {
                let left = (u - clock.now).milliseconds
                wait = Int32(max(0, min(50, left)))
            }
            if fd >= 0 {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, wait)
            } else {
                usleep(UInt32(wait) * 1000)
            }
        }
        return CaptureResult(packets: count, stats: stats(), linkType: linkType, precision: precision, startedNs: started,
                             endedNs: Self.realtimeNs(), stopReason: reason)
    }

    static func realtimeNs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The interfaces libpcap can open (`pcap_findalldevs`), `any` included.
    public static func interfaces() throws -> [CaptureInterface] {
        var err = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        var list: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&list, &err) == 0 else {
            throw CaptureError.capture("cannot list interfaces: \(String(cString: err))")
        }
        defer { pcap_freealldevs(list) }
        var out: [CaptureInterface] = []
        var cur = list
        while let d = cur {
            var addrs: [String] = []
            var a = d.pointee.addresses
            while let ad = a {
                if let sa = ad.pointee.addr, let s = Self.addressString(sa) { addrs.append(s) }
                a = ad.pointee.next
            }
            let flags = d.pointee.flags
            out.append(CaptureInterface(name: String(cString: d.pointee.name),
                                        description: d.pointee.description.map { String(cString: $0) },
                                        addresses: addrs, isUp: flags & UInt32(PCAP_IF_UP) != 0,
                                        isLoopback: flags & UInt32(PCAP_IF_LOOPBACK) != 0))
            cur = d.pointee.next
        }
        return out
    }

    static func addressString(_ sa: UnsafeMutablePointer<sockaddr>) -> String? {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                var a = sin.pointee.sin_addr
                return inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count)).map { _ in String(cString: buf) }
            }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                var a = sin.pointee.sin6_addr
                return inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)).map { _ in String(cString: buf) }
            }
        default:
            return nil
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
