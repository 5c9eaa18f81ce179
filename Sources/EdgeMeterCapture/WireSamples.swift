import Foundation
import EdgeMeterCore

extension StopFlag: StopCondition {}

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
        for (phase, v) in [("decode_frames", c.frames), ("decode_ip", c.ip), ("decode_not_ip", c.notIP),
                           ("decode_fragments", c.fragments), ("decode_truncated", c.truncated + c.truncatedRecords),
                           ("decode_malformed", c.malformed), ("decode_unsupported_link", c.unsupportedLink),
                           ("decode_other_interface_copies", c.otherInterfaceCopies)] {
            add(t, "packets", phase, Double(v), "count", ns, .ok, "", [:])
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

    static func endpoint(_ a: IPAddress, _ port: UInt16) -> String {
        a.isV4 ? "\(a):\(port)" : "[\(a)]:\(port)"
    }

    static func flowName(_ f: FlowSummary) -> String {
        "\(f.protoName) \(endpoint(f.client, f.clientPort)) > \(endpoint(f.server, f.serverPort))"
    }

    /// flows.csv: one row per 5-tuple.
    public static func flowsCSV(_ a: WireAnalysis) -> String {
        var s = CSV.line(["proto", "client", "client_port", "server", "server_port", "packets", "bytes", "packets_from_client",
                          "bytes_from_client", "first", "duration_ms", "retransmissions"])
        for f in a.flows {
            s += CSV.line([f.protoName, f.client.description, String(f.clientPort), f.server.description, String(f.serverPort),
                           String(f.packets), String(f.bytes), String(f.packetsFromClient), String(f.bytesFromClient),
                           Format.timestamp(date(f.firstNs)), Format.fixed(ms(f.durationNs), 6), String(f.retransmissions)])
        }
        return s
    }

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
            s += "From \(Format.timestamp(date(f))) to \(Format.timestamp(date(l))) (\(Format.fixed(ms(l - f), 3)) ms).\n"
        }
        if let r = capture {
            s += "\nCapture on `\(interface ?? "?")`: \(r.packets) packets seen, timestamp precision \(r.precision), stopped by \(r.stopReason)"
            if let st = r.stats {
                s += "; pcap_stats: received \(st.received), dropped \(st.dropped), interface dropped \(st.interfaceDropped)"
            }
            s += ".\n"
        }
        // Distribution per phase.
        var rows: [(String, [Double], Int)] = []
        rows.append(("icmp_echo", a.echoes.compactMap { $0.rttNs.map(ms) }, a.echoes.count))
        rows.append(("tcp_syn_synack", a.handshakes.compactMap { $0.synToSynAckNs.map(ms) }, a.handshakes.count))
        rows.append(("tcp_synack_ack", a.handshakes.compactMap { $0.synAckToAckNs.map(ms) }, a.handshakes.count))
        rows.append(("tcp_handshake", a.handshakes.compactMap { $0.handshakeNs.map(ms) }, a.handshakes.count))
        rows.append(("http_first_byte", a.http.compactMap { $0.firstByteNs.map(ms) }, a.http.count))
        rows.append(("http_response", a.http.compactMap { $0.responseNs.map(ms) }, a.http.count))
        s += "\n| phase | attempts | measured | min ms | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (name, values, n) in rows where n > 0 {
            let v = values.sorted()
            func q(_ p: Double) -> String {
                guard !v.isEmpty else { return "" }
                return Format.fixed(v[min(v.count - 1, Int((p * Double(v.count - 1)).rounded()))], 3)
            }
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
        if !a.flows.isEmpty {
            s += "\n### Largest flows (by bytes, first \(min(maxRows, a.flows.count)))\n\n| flow | packets | bytes | duration ms | retransmissions |\n|---|---:|---:|---:|---:|\n"
            for f in a.flows.sorted(by: { $0.bytes > $1.bytes }).prefix(maxRows) {
                s += "| \(flowName(f)) | \(f.packets) | \(f.bytes) | \(Format.fixed(ms(f.durationNs), 3)) | \(f.retransmissions) |\n"
            }
        }
        return s
    }
}
