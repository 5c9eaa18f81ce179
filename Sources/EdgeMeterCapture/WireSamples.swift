import Foundation
import EdgeMeterCore

/// Turns a wire analysis into samples (probe `wire`) and report text.
///
/// Phases, all measured between capture timestamps of the packets named (same kernel clock, so
/// they exclude the time the application spends before send()/after recv()):
/// - `icmp_echo`: echo request → first matching reply (id, sequence, addresses); metric `rtt`.
/// - `tcp_syn_synack`: the SYN answered → the first SYN/ACK; `tcp_synack_ack`: SYN/ACK → the
///   client's ACK; `tcp_handshake`: SYN → ACK (Wireshark's initial RTT); metric `rtt`.
/// - `http_first_byte`: first byte of a request → first byte of its response; `http_response`:
///   first byte of the request → last byte of the response; metric `latency`.
/// - `flow`: per 5-tuple `duration` (first → last packet, ms), `packets`, `bytes` (frame bytes).
/// - `tcp_retransmissions`: per TCP flow, segments resending sequence space already seen.
/// - `decode_*`: frame counts by decode outcome; `capture_*`: pcap_stats counters.
public enum WireSamples {
    public static let probe = "wire"

    static func date(_ ns: Int64) -> Date { Date(timeIntervalSince1970: Double(ns) / 1e9) }
    static func ms(_ ns: Int64) -> Double { Double(ns) / 1e6 }

    /// Samples of an analysis. `target` names what was measured (the probe's target, the file or
    /// the interface); nil uses the server/destination address of each item.
    public static func samples(_ a: WireAnalysis, runID: String, scenario: String, target: String?,
                               labels base: [String: String] = [:], includeFlows: Bool = true) -> [Sample] {
        var out: [Sample] = []
        func add(_ t: String, _ metric: String, _ phase: String, _ v: Double?, _ unit: String, _ ns: Int64,
                 _ status: SampleStatus, _ reason: String, _ labels: [String: String]) {
            out.append(Sample(runID: runID, scenario: scenario, probe: probe, target: t, metric: metric, phase: phase,
                              value: v, unit: unit, timestamp: date(ns), status: status, reason: reason,
                              labels: base.merging(labels) { _, new in new }))
        }
        for e in a.echoes {
            var l = ["icmp_id": String(e.id), "seq": String(e.seq), "src": e.source.description, "dst": e.destination.description]
            if e.duplicateReplies > 0 { l["duplicate_replies"] = String(e.duplicateReplies) }
            let t = target ?? e.destination.description
            if let r = e.rttNs {
                add(t, "rtt", "icmp_echo", ms(r), "ms", e.requestNs, .ok, "", l)
            } else {
                add(t, "rtt", "icmp_echo", nil, "ms", e.requestNs, .timeout, "no echo reply captured", l)
            }
        }
        for h in a.handshakes {
            let l = ["local_port": String(h.clientPort), "client": "\(h.client):\(h.clientPort)",
                     "server": endpoint(h.server, h.serverPort), "syn_retransmissions": String(h.synRetransmissions)]
            let t = target ?? endpoint(h.server, h.serverPort)
            let noSynAck: (SampleStatus, String) = h.refused ? (.refused, "the server answered the SYN with RST") : (.timeout, "no SYN/ACK captured")
            if let v = h.synToSynAckNs { add(t, "rtt", "tcp_syn_synack", ms(v), "ms", h.synNs, .ok, "", l) }
            else { add(t, "rtt", "tcp_syn_synack", nil, "ms", h.synNs, noSynAck.0, noSynAck.1, l) }
            let noAck: (SampleStatus, String) = h.synAckNs == nil ? noSynAck : (.timeout, "no ACK from the client captured")
            if let v = h.synAckToAckNs { add(t, "rtt", "tcp_synack_ack", ms(v), "ms", h.synNs, .ok, "", l) }
            else { add(t, "rtt", "tcp_synack_ack", nil, "ms", h.synNs, noAck.0, noAck.1, l) }
            if let v = h.handshakeNs { add(t, "rtt", "tcp_handshake", ms(v), "ms", h.synNs, .ok, "", l) }
            else { add(t, "rtt", "tcp_handshake", nil, "ms", h.synNs, noAck.0, noAck.1, l) }
        }
        for x in a.http {
            var l = ["local_port": String(x.clientPort), "request": String(x.index), "method": x.method,
                     "path": String(x.target.prefix(200)), "server": endpoint(x.server, x.serverPort)]
            if let s = x.status { l["status"] = String(s) }
            let t = target ?? endpoint(x.server, x.serverPort)
            if let v = x.firstByteNs { add(t, "latency", "http_first_byte", ms(v), "ms", x.requestStartNs, .ok, "", l) }
            else { add(t, "latency", "http_first_byte", nil, "ms", x.requestStartNs, .timeout, "no response captured", l) }
            if let v = x.responseNs { add(t, "latency", "http_response", ms(v), "ms", x.requestStartNs, .ok, "", l) }
            else {
                add(t, "latency", "http_response", nil, "ms", x.requestStartNs, .timeout,
                    x.responseStartNs == nil ? "no response captured" : "the response's end was not captured", l)
            }
        }
        if includeFlows {
            for f in a.flows {
                let l = ["flow": flowName(f), "local_port": String(f.clientPort)]
                let t = target ?? endpoint(f.server, f.serverPort)
                add(t, "duration", "flow", ms(f.durationNs), "ms", f.firstNs, .ok, "", l)
                add(t, "packets", "flow", Double(f.packets), "count", f.firstNs, .ok, "", l)
                add(t, "bytes", "flow", Double(f.bytes), "bytes", f.firstNs, .ok, "", l)
                if f.proto == IPProto.tcp {
                    add(t, "segments", "tcp_retransmissions", Double(f.retransmissions), "count", f.firstNs, .ok, "", l)
                }
            }
        }
        let c = a.counters
        let t = target ?? "capture"
        let ns = a.firstNs ?? 0
        // Frames are always counted; the other outcomes only when they occurred.
        for (phase, v) in [("decode_frames", c.frames), ("decode_ip", c.ip), ("decode_not_ip", c.notIP),
                           ("decode_fragments", c.fragments), ("decode_truncated", c.truncated + c.truncatedRecords),
                           ("decode_malformed", c.malformed), ("decode_unsupported_link", c.unsupportedLink),
                           ("decode_other_interface_copies", c.otherInterfaceCopies)] {
            if v > 0 || phase == "decode_frames" { add(t, "packets", phase, Double(v), "count", ns, .ok, "", [:]) }
        }
        return out
    }

    /// Samples of a live capture's `pcap_stats` counters (probe `wire`, metric `packets`).
    public static func captureSamples(_ r: CaptureResult, interface: String, runID: String, scenario: String, target: String,
                                      labels base: [String: String] = [:]) -> [Sample] {
        var l = base
        l["interface"] = interface
        l["tstamp_precision"] = r.precision
        l["link_type"] = LinkType.name(r.linkType)
        var out = [Sample(runID: runID, scenario: scenario, probe: probe, target: target, metric: "packets", phase: "capture_seen",
                          value: Double(r.packets), unit: "count", timestamp: date(r.startedNs), status: .ok, labels: l)]
        if let s = r.stats {
            for (phase, v) in [("capture_received", s.received), ("capture_dropped", s.dropped), ("capture_if_dropped", s.interfaceDropped)] {
                out.append(Sample(runID: runID, scenario: scenario, probe: probe, target: target, metric: "packets", phase: phase,
                                  value: Double(v), unit: "count", timestamp: date(r.startedNs), status: .ok, labels: l))
            }
        } else {
            out.append(Sample(runID: runID, scenario: scenario, probe: probe, target: target, metric: "packets", phase: "capture_dropped",
                              value: nil, unit: "count", timestamp: date(r.startedNs), status: .error,
                              reason: "pcap_stats gave no counters for \(interface)", labels: l))
        }
        return out
    }

    /// UTC capture time with nanoseconds, `2026-11-29T01:40:00.123456789Z` (gmtime_r: fast enough
    /// for a row per flow of a million-packet file).
    public static func timestamp(_ ns: Int64) -> String {
        var secs = time_t(ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000)
        let frac = Int(ns - Int64(secs) * 1_000_000_000)
        var t = tm()
        gmtime_r(&secs, &t)
        func pad(_ v: Int32, _ w: Int) -> String {
            let d = String(v)
            return d.count >= w ? d : String(repeating: "0", count: w - d.count) + d
        }
        let f = String(frac)
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1, 2))-\(pad(t.tm_mday, 2))T\(pad(t.tm_hour, 2)):\(pad(t.tm_min, 2)):\(pad(t.tm_sec, 2))."
            + String(repeating: "0", count: 9 - f.count) + f + "Z"
    }

    static func endpoint(_ a: IPAddress, _ port: UInt16) -> String {
        a.isV4 ? "\(a):\(port)" : "[\(a)]:\(port)"
    }

    static func flowName(_ f: FlowSummary) -> String {
        "\(f.protoName) \(endpoint(f.client, f.clientPort)) > \(endpoint(f.server, f.serverPort))"
    }

    /// Builds CSV tables of up to millions of rows quickly: bytes appended to one buffer, numbers
    /// formatted from integers (milliseconds with exactly 6 decimals from nanoseconds), addresses
    /// and the date part of timestamps cached.
    struct FastCSV {
        var bytes: [UInt8] = []
        private var names: [IPAddress: [UInt8]] = [:]
        private var lastSecond: Int64 = .min
        private var secondPrefix: [UInt8] = []

        /// With a descriptor, rows are written out in 1 MiB pieces; without, they stay in `bytes`.
        let fd: Int32?
        private(set) var writeError: Int32 = 0

        init(header: [String], rows: Int, fd: Int32? = nil) {
            self.fd = fd
            bytes.reserveCapacity(fd == nil ? 64 + rows * 120 : 1 << 20 + 4096)
            bytes += Array(CSV.line(header).utf8)
        }

        var out: String { String(decoding: bytes, as: UTF8.self) }

        mutating func flushIfFull(force: Bool = false) {
            guard let fd, force || bytes.count >= 1 << 20 else { return }
            var off = 0
            while off < bytes.count && writeError == 0 {
                let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + off, $0.count - off) }
                if n < 0 { if errno != EINTR { writeError = errno } } else { off += n }
            }
            bytes.removeAll(keepingCapacity: true)
        }

        mutating func field(_ s: String) { bytes += s.utf8; bytes.append(0x2c) }
        mutating func escaped(_ s: String) {
            if s.utf8.contains(where: { $0 == 0x2c || $0 == 0x22 || $0 == 0x0a || $0 == 0x0d }) { bytes += CSV.escape(s).utf8 } else { bytes += s.utf8 }
            bytes.append(0x2c)
        }
        mutating func digits(_ v: UInt64, width: Int = 0) {
            var buf: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes of scratch
            withUnsafeMutableBytes(of: &buf) { b in
                var n = v, i = 24
                repeat { i -= 1; b[i] = UInt8(0x30 + n % 10); n /= 10 } while n > 0
                while 24 - i < width { i -= 1; b[i] = 0x30 }
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[i..<24]))
            }
        }
        mutating func int<I: BinaryInteger>(_ v: I) {
            if v < 0 { bytes.append(0x2d); digits(UInt64(-Int64(v))) } else { digits(UInt64(v)) }
            bytes.append(0x2c)
        }
        private var lastAddresses: (IPAddress, [UInt8], IPAddress, [UInt8]) = (IPAddress(hi: 1, lo: 1), [], IPAddress(hi: 1, lo: 1), [])
        mutating func address(_ a: IPAddress) {
            // Rows repeat the same client and server: two one-entry caches before the table.
            if a == lastAddresses.0 { bytes += lastAddresses.1 }
            else if a == lastAddresses.2 { bytes += lastAddresses.3 }
            else {
                let n: [UInt8]
                if let known = names[a] { n = known } else { n = Array(a.description.utf8); names[a] = n }
                bytes += n
                lastAddresses = (a, n, lastAddresses.0, lastAddresses.1)
            }
            bytes.append(0x2c)
        }
        /// Nanoseconds as milliseconds with 6 decimals, exact.
        mutating func ms(_ ns: Int64?) {
            if let ns {
                if ns < 0 { bytes.append(0x2d) }
                let m = ns.magnitude
                digits(m / 1_000_000)
                bytes.append(0x2e)
                digits(m % 1_000_000, width: 6)
            }
            bytes.append(0x2c)
        }
        mutating func time(_ ns: Int64) {
            let sec = ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000
            if sec != lastSecond {
                lastSecond = sec
                let full = WireSamples.timestamp(sec * 1_000_000_000)
                secondPrefix = Array(full.utf8.dropLast(10)) // through the seconds and the "."
            }
            bytes += secondPrefix
            digits(UInt64(ns - sec * 1_000_000_000), width: 9)
            bytes.append(0x5a)
            bytes.append(0x2c)
        }
        mutating func endRow() {
            if bytes.last == 0x2c { bytes.removeLast() }
            bytes.append(0x0a)
            if fd != nil && bytes.count >= 1 << 20 { flushIfFull() }
        }
    }

    /// Writes one of the CSV tables straight to `path` (streamed, no whole-file copy in memory).
    /// The CSV tables of an analysis.
    public enum Table: Sendable, CaseIterable {
        /// flows.csv: one row per 5-tuple.
        case flows
        /// handshakes.csv: one row per TCP connection attempt, times in ms with ns resolution.
        case handshakes
        /// http.csv: one row per HTTP request, times in ms with ns resolution.
        case http

        /// Builds the table; with `fd` the rows are streamed to it (check `writeError`).
        func fill(_ a: WireAnalysis, fd: Int32?) -> FastCSV {
            switch self {
            case .flows:
                var c = FastCSV(header: ["proto", "client", "client_port", "server", "server_port", "packets", "bytes", "packets_from_client",
                                         "bytes_from_client", "first", "duration_ms", "retransmissions"], rows: a.flows.count, fd: fd)
                for f in a.flows {
                    c.field(f.protoName); c.address(f.client); c.int(f.clientPort); c.address(f.server); c.int(f.serverPort)
                    c.int(f.packets); c.int(f.bytes); c.int(f.packetsFromClient); c.int(f.bytesFromClient)
                    c.time(f.firstNs); c.ms(f.durationNs); c.int(f.retransmissions)
                    c.endRow()
                }
                c.flushIfFull(force: true)
                return c
            case .handshakes:
                var c = FastCSV(header: ["client", "client_port", "server", "server_port", "syn", "syn_synack_ms", "synack_ack_ms", "handshake_ms",
                                         "syn_retransmissions", "refused"], rows: a.handshakes.count, fd: fd)
                for h in a.handshakes {
                    c.address(h.client); c.int(h.clientPort); c.address(h.server); c.int(h.serverPort); c.time(h.synNs)
                    c.ms(h.synToSynAckNs); c.ms(h.synAckToAckNs); c.ms(h.handshakeNs); c.int(h.synRetransmissions); c.field(h.refused ? "1" : "0")
                    c.endRow()
                }
                c.flushIfFull(force: true)
                return c
            case .http:
                var c = FastCSV(header: ["client", "client_port", "server", "server_port", "index", "method", "target", "status", "request_start",
                                         "first_byte_ms", "response_ms"], rows: a.http.count, fd: fd)
                for x in a.http {
                    c.address(x.client); c.int(x.clientPort); c.address(x.server); c.int(x.serverPort); c.int(x.index)
                    c.escaped(x.method); c.escaped(x.target); c.field(x.status.map(String.init) ?? ""); c.time(x.requestStartNs)
                    c.ms(x.firstByteNs); c.ms(x.responseNs)
                    c.endRow()
                }
                c.flushIfFull(force: true)
                return c
            }
        }
    }

    /// The table as CSV text.
    public static func csv(_ table: Table, _ a: WireAnalysis) -> String { table.fill(a, fd: nil).out }

    /// Streams the table to `path` (mode 0644); throws `CaptureError.file` saying what failed.
    public static func writeTable(_ table: Table, _ a: WireAnalysis, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CaptureError.file("cannot create \(path): \(String(cString: strerror(errno))); choose a writable --out directory") }
        defer { close(fd) }
        let c = table.fill(a, fd: fd)
        if c.writeError != 0 {
            throw CaptureError.file("writing \(path) failed: \(String(cString: strerror(c.writeError))); free disk space or choose another --out directory")
        }
    }

    /// flows.csv as text: one row per 5-tuple.
    public static func flowsCSV(_ a: WireAnalysis) -> String { csv(.flows, a) }
    /// handshakes.csv as text.
    public static func handshakesCSV(_ a: WireAnalysis) -> String { csv(.handshakes, a) }
    /// http.csv as text.
    public static func httpCSV(_ a: WireAnalysis) -> String { csv(.http, a) }

    /// A Markdown report of an analysis: decode counts, the timing phases' distribution, the first
    /// items of each kind and the largest flows.
    public static func markdown(_ a: WireAnalysis, source: String, capture: CaptureResult? = nil, interface: String? = nil,
                                maxRows: Int = 20) -> String {
        var s = "## Wire analysis of \(source)\n\n"
        let c = a.counters
        s += "Link type \(LinkType.name(a.linkType)); \(c.frames) frames: \(c.ip) IP, \(c.notIP) not IP, \(c.fragments) fragments, "
        s += "\(c.truncated) truncated, \(c.malformed) malformed"
        if c.unsupportedLink > 0 { s += ", \(c.unsupportedLink) of an unsupported link type" }
        if c.otherInterfaceCopies > 0 { s += ", \(c.otherInterfaceCopies) copies on a second interface (not analysed)" }
        if c.truncatedRecords > 0 { s += "; \(c.truncatedRecords) record(s) cut short by the end of the file" }
        if let off = c.corruptRecordAt { s += "; a corrupt record header at byte \(off) ended the reading there" }
        s += ".\n"
        if let f = a.firstNs, let l = a.lastNs {
            s += "From \(timestamp(f)) to \(timestamp(l)) (\(Format.fixed(ms(l - f), 3)) ms).\n"
        }
        if let r = capture {
            s += "\nCapture on `\(interface ?? "?")`: \(r.packets) packets seen, timestamp precision \(r.precision), stopped by \(r.stopReason)"
            if let st = r.stats {
                s += "; pcap_stats: received \(st.received), dropped \(st.dropped), interface dropped \(st.interfaceDropped)"
            }
            s += ".\n"
        }
        // Distribution per phase.
        var rows: [(String, [Int64], Int)] = []
        rows.append(("icmp_echo", a.echoes.compactMap(\.rttNs), a.echoes.count))
        rows.append(("tcp_syn_synack", a.handshakes.compactMap(\.synToSynAckNs), a.handshakes.count))
        rows.append(("tcp_synack_ack", a.handshakes.compactMap(\.synAckToAckNs), a.handshakes.count))
        rows.append(("tcp_handshake", a.handshakes.compactMap(\.handshakeNs), a.handshakes.count))
        rows.append(("http_first_byte", a.http.compactMap(\.firstByteNs), a.http.count))
        rows.append(("http_response", a.http.compactMap(\.responseNs), a.http.count))
        s += "\n| phase | attempts | measured | min ms | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (name, values, n) in rows where n > 0 {
            let v = values.sorted()
            func q(_ p: Double) -> String { Quantile.rounded(v, p).map { Format.fixed(ms($0), 3) } ?? "" }
            s += "| \(name) | \(n) | \(v.count) | \(q(0)) | \(q(0.5)) | \(q(0.9)) | \(q(0.99)) | \(q(1)) |\n"
        }
        let retrans = a.flows.reduce(0) { $0 + $1.retransmissions }
        s += "\n\(a.flows.count) flows, \(a.handshakes.count) TCP handshakes, \(a.echoes.count) ICMP echoes, \(a.http.count) HTTP requests"
        s += ", \(retrans) TCP retransmissions"
        if a.httpUnfollowable > 0 { s += ", \(a.httpUnfollowable) HTTP connections not followable (gap or snap length)" }
        s += ".\n"
        if !a.echoes.isEmpty {
            s += "\n### ICMP echoes (first \(min(maxRows, a.echoes.count)))\n\n| src | dst | id | seq | rtt ms |\n|---|---|---:|---:|---:|\n"
            for e in a.echoes.prefix(maxRows) {
                s += "| \(e.source) | \(e.destination) | \(e.id) | \(e.seq) | \(e.rttNs.map { Format.fixed(ms($0), 3) } ?? "no reply") |\n"
            }
        }
        if !a.handshakes.isEmpty {
            s += "\n### TCP handshakes (first \(min(maxRows, a.handshakes.count)))\n\n| client | server | SYN→SYN/ACK ms | SYN/ACK→ACK ms | SYN→ACK ms |\n|---|---|---:|---:|---:|\n"
            for h in a.handshakes.prefix(maxRows) {
                let f = { (v: Int64?) in v.map { Format.fixed(ms($0), 3) } ?? (h.refused ? "refused" : "—") }
                s += "| \(endpoint(h.client, h.clientPort)) | \(endpoint(h.server, h.serverPort)) | \(f(h.synToSynAckNs)) | \(f(h.synAckToAckNs)) | \(f(h.handshakeNs)) |\n"
            }
        }
        if !a.http.isEmpty {
            s += "\n### HTTP requests (first \(min(maxRows, a.http.count)))\n\n| client | # | request | status | first byte ms | response ms |\n|---|---:|---|---:|---:|---:|\n"
            for x in a.http.prefix(maxRows) {
                let req = "\(x.method) \(x.target.prefix(60))".replacingOccurrences(of: "|", with: "\\|")
                s += "| \(endpoint(x.client, x.clientPort)) | \(x.index) | \(req) | \(x.status.map(String.init) ?? "") | \(x.firstByteNs.map { Format.fixed(ms($0), 3) } ?? "—") | \(x.responseNs.map { Format.fixed(ms($0), 3) } ?? "—") |\n"
            }
        }
        if !a.http.isEmpty {
            // Per server: with a capture on a shared bridge this is the per-hop breakdown (client →
            // front end, front end → each back end).
            var byServer: [String: [WireHTTPExchange]] = [:]
            for x in a.http { byServer[endpoint(x.server, x.serverPort), default: []].append(x) }
            s += "\n### HTTP by server (hops)\n\n| server | requests | first byte p50 ms | response p50 ms | response p90 ms |\n|---|---:|---:|---:|---:|\n"
            for (server, xs) in byServer.sorted(by: { $0.value.first!.requestStartNs < $1.value.first!.requestStartNs }) {
                func q(_ v: [Int64], _ p: Double) -> String { Quantile.rounded(v.sorted(), p).map { Format.fixed(ms($0), 3) } ?? "—" }
                s += "| \(server) | \(xs.count) | \(q(xs.compactMap(\.firstByteNs), 0.5)) | \(q(xs.compactMap(\.responseNs), 0.5)) | \(q(xs.compactMap(\.responseNs), 0.9)) |\n"
            }
        }
        if !a.flows.isEmpty {
            s += "\n### Largest flows (by bytes, first \(min(maxRows, a.flows.count)))\n\n| flow | packets | bytes | duration ms | retransmissions |\n|---|---:|---:|---:|---:|\n"
            // The largest `maxRows` flows in one pass (no sort of every flow).
            var top: [FlowSummary] = []
            for f in a.flows where top.count < maxRows || f.bytes > top[top.count - 1].bytes {
                let at = top.firstIndex { $0.bytes < f.bytes } ?? top.count
                top.insert(f, at: at)
                if top.count > maxRows { top.removeLast() }
            }
            for f in top {
                s += "| \(flowName(f)) | \(f.packets) | \(f.bytes) | \(Format.fixed(ms(f.durationNs), 3)) | \(f.retransmissions) |\n"
            }
        }
        return s
    }
}
