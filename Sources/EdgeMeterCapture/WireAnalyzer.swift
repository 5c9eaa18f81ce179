import Foundation
import EdgeMeterHTTP

/// A flow's 5-tuple in canonical order (the lower address/port pair is `a`), so both directions of a
/// conversation share one key.
public struct FlowKey: Hashable, Sendable {
    public var proto: UInt8
    public var a: IPAddress
    public var aPort: UInt16
    public var b: IPAddress
    public var bPort: UInt16

    /// Three words into the hasher instead of seven fields (the table is probed once per packet).
    public func hash(into h: inout Hasher) {
        h.combine(a.lo &* 0x9E37_79B9_7F4A_7C15 ^ b.lo)
        h.combine(a.hi ^ (b.hi &* 0xC2B2_AE3D_27D4_EB4F))
        h.combine(UInt64(aPort) << 32 | UInt64(bPort) << 8 | UInt64(proto))
    }

    /// Returns the canonical key and whether `src` is the `a` side.
    @inline(__always)
    static func make(_ p: DecodedPacket) -> (FlowKey, Bool) {
        if p.src < p.dst || (p.src == p.dst && p.srcPort <= p.dstPort) {
            return (FlowKey(proto: p.proto, a: p.src, aPort: p.srcPort, b: p.dst, bPort: p.dstPort), true)
        }
        return (FlowKey(proto: p.proto, a: p.dst, aPort: p.dstPort, b: p.src, bPort: p.srcPort), false)
    }
}

/// Per-flow totals. The client is the side that sent the SYN (TCP) or the first packet (others).
public struct FlowSummary: Sendable, Equatable {
    public var proto: UInt8
    public var client: IPAddress
    public var clientPort: UInt16
    public var server: IPAddress
    public var serverPort: UInt16
    public var packets: Int
    /// Frame bytes on the wire (`orig_len`, link header included), both directions.
    public var bytes: Int
    public var packetsFromClient: Int
    public var bytesFromClient: Int
    public var firstNs: Int64
    public var lastNs: Int64
    /// TCP segments that resend sequence space already seen in their direction (keep-alives excluded).
    public var retransmissions: Int
    /// Last packet time − first packet time.
    public var durationNs: Int64 { lastNs - firstNs }

    public var protoName: String {
        switch proto {
        case IPProto.tcp: return "tcp"
        case IPProto.udp: return "udp"
        case IPProto.icmp: return "icmp"
        case IPProto.icmpv6: return "icmpv6"
        default: return "ip\(proto)"
        }
    }
}

/// The TCP three-way handshake as seen on the wire.
public struct TCPHandshake: Sendable, Equatable {
    public var client: IPAddress
    public var clientPort: UInt16
    public var server: IPAddress
    public var serverPort: UInt16
    /// The most recent SYN before the first SYN/ACK (after SYN retransmissions, the one answered).
    public var synNs: Int64
    public var synAckNs: Int64?
    /// The client's first ACK (without SYN) after the SYN/ACK.
    public var ackNs: Int64?
    /// SYNs sent before the SYN/ACK, minus one.
    public var synRetransmissions: Int
    /// The server answered the SYN with RST.
    public var refused: Bool

    /// SYN → SYN/ACK.
    public var synToSynAckNs: Int64? { synAckNs.map { $0 - synNs } }
    /// SYN/ACK → client ACK.
    public var synAckToAckNs: Int64? { guard let a = ackNs, let s = synAckNs else { return nil }; return a - s }
    /// SYN → client ACK: Wireshark's `tcp.analysis.initial_rtt`.
    public var handshakeNs: Int64? { ackNs.map { $0 - synNs } }
}

/// One ICMP/ICMPv6 echo request and its reply.
public struct ICMPEcho: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress
    public var id: UInt16
    public var seq: UInt16
    public var requestNs: Int64
    public var replyNs: Int64?
    /// Replies beyond the first for the same request (duplicates).
    public var duplicateReplies: Int
    /// Request → first matching reply: Wireshark's `icmp.resptime`.
    public var rttNs: Int64? { replyNs.map { $0 - requestNs } }
}

/// One HTTP/1.x request and its response on a TCP connection.
public struct WireHTTPExchange: Sendable, Equatable {
    public var client: IPAddress
    public var clientPort: UInt16
    public var server: IPAddress
    public var serverPort: UInt16
    /// 0 for the first request on the connection, 1 for the next on keep-alive, ...
    public var index: Int
    public var method: String
    public var target: String
    public var status: Int?
    /// Capture time of the packet holding the request's first byte.
    public var requestStartNs: Int64
    /// Capture time of the packet holding the request's last byte.
    public var requestEndNs: Int64?
    /// Capture time of the packet holding the response's first byte (an interim 1xx included).
    public var responseStartNs: Int64?
    /// Capture time of the packet holding the final response's last byte (by Content-Length,
    /// chunked framing, or the connection's close when the response is delimited by it).
    public var responseEndNs: Int64?

    /// Request start → response start.
    public var firstByteNs: Int64? { responseStartNs.map { $0 - requestStartNs } }
    /// Request start → response end.
    public var responseNs: Int64? { responseEndNs.map { $0 - requestStartNs } }
}

/// Packet counts of an analysis, bad frames included.
public struct DecodeCounters: Sendable, Equatable {
    public var frames = 0
    public var ip = 0
    public var notIP = 0
    public var fragments = 0
    public var truncated = 0
    public var malformed = 0
    public var unsupportedLink = 0
    /// Cooked (`any`) captures see a bridged packet once per interface it crosses; the copies on
    /// interfaces other than the one a flow was first seen on are counted here and not analysed.
    public var otherInterfaceCopies = 0
    /// Records cut short by the end of the file.
    public var truncatedRecords = 0
    /// Set when a pcap record header was corrupt; the records after it could not be read.
    public var corruptRecordAt: Int?
}

/// Everything the analyzer found.
public struct WireAnalysis: Sendable, Equatable {
    public var linkType: UInt32
    public var counters: DecodeCounters
    public var flows: [FlowSummary]
    public var handshakes: [TCPHandshake]
    public var echoes: [ICMPEcho]
    public var http: [WireHTTPExchange]
    /// TCP connections whose HTTP stream could not be followed (a gap in the captured sequence
    /// space, a payload cut by the snap length, or a header block over 64 KiB).
    public var httpUnfollowable: Int
    public var firstNs: Int64?
    public var lastNs: Int64?
}

/// Streaming wire analysis: feed frames in capture order with `add`, then call `finish`.
/// Works the same on a file (`analyze(path:)`) and on a live capture.
public final class WireAnalyzer {
    /// All state lives in one struct: one dynamic exclusivity check per packet instead of one per
    /// property access.
    var core: AnalyzerCore
    public var linkType: UInt32 { core.linkType }

    public init(linkType: UInt32, expectedFlows: Int = 1024) {
        core = AnalyzerCore(linkType: linkType, expectedFlows: expectedFlows)
    }

    /// Adds one frame. Frames must come in capture order.
    public func add(_ rec: PcapRecord) { core.add(rec) }

    func finish() -> WireAnalysis { core.finish() }

    /// Reads and analyses a whole pcap file.
    public static func analyze(path: String) throws -> WireAnalysis {
        var analyzer = WireAnalyzer(linkType: LinkType.ethernet)
        // About one flow per 10 packets of 80 bytes is typical of request/response traffic.
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        let expectedFlows = min(max(1024, size / 800), 4_000_000)
        let info = try PcapReader.read(path: path, onHeader: { analyzer = WireAnalyzer(linkType: $0.linkType, expectedFlows: expectedFlows) }) { rec in
            analyzer.core.add(rec)
        }
        analyzer.core.counters.truncatedRecords = info.truncatedRecords
        analyzer.core.counters.corruptRecordAt = info.corruptAtOffset
        return analyzer.core.finish()
    }
}

struct AnalyzerCore {
    let linkType: UInt32
    private var packet = DecodedPacket()
    var counters = DecodeCounters()
    private var flowIndex: [FlowKey: Int] = [:]
    private var flows: [FlowState] = []
    private var echoIndex: [EchoKey: Int] = [:]
    private var echoes: [ICMPEcho] = []
    private var httpDone: [WireHTTPExchange] = []
    private var httpUnfollowable = 0
    private var firstNs: Int64?
    private var lastNs: Int64 = 0

    public init(linkType: UInt32, expectedFlows: Int = 1024) {
        self.linkType = linkType
        flowIndex.reserveCapacity(expectedFlows)
        flows.reserveCapacity(expectedFlows)
    }

    struct EchoKey: Hashable {
        var src: IPAddress
        var dst: IPAddress
        var id: UInt16
        var seq: UInt16
    }

    /// Per-flow state, stored inline in `flows` (no object per flow).
    struct FlowState {
        let key: FlowKey
        var clientIsA: Bool
        var packets = 0
        var bytes = 0
        var packetsA = 0
        var bytesA = 0
        var firstNs: Int64
        var lastNs: Int64
        var interfaceIndex: Int32
        var retransmissions = 0
        // TCP
        var nextSeq: (UInt32, UInt32) = (0, 0) // per side a, b: next expected sequence number
        var haveSeq: (Bool, Bool) = (false, false)
        var synNs: Int64?
        var synCount = 0
        var synAckNs: Int64?
        var ackNs: Int64?
        var refused = false
        var sawSyn = false
        var http: HTTPFlow?
        var httpChecked = false

        init(key: FlowKey, clientIsA: Bool, ns: Int64, interfaceIndex: Int32) {
            self.key = key
            self.clientIsA = clientIsA
            firstNs = ns
            lastNs = ns
            self.interfaceIndex = interfaceIndex
        }
    }

    mutating func add(_ rec: PcapRecord) {
        counters.frames += 1
        let ns = rec.timestampNs
        if firstNs == nil { firstNs = ns }
        if ns > lastNs { lastNs = ns }
        switch PacketDecoder.decode(linkType: linkType, frame: rec.data, into: &packet) {
        case .ip: counters.ip += 1
        case .notIP: counters.notIP += 1; return
        case .fragment: counters.fragments += 1; return
        case .truncated: counters.truncated += 1; return
        case .malformed: counters.malformed += 1; return
        case .unsupportedLink: counters.unsupportedLink += 1; return
        }
        let (key, srcIsA) = FlowKey.make(packet)
        let idx: Int
        if let i = flowIndex[key], !isNewConnection(i, srcIsA) {
            idx = i
            if flows[i].interfaceIndex != packet.interfaceIndex {
                counters.otherInterfaceCopies += 1
                return
            }
        } else {
            // The SYN sender is the client; a SYN/ACK seen first (capture started mid-handshake)
            // makes its receiver the client; otherwise the first sender is.
            let isSynAck = packet.proto == IPProto.tcp && packet.tcpFlags & (TCPFlag.syn | TCPFlag.ack) == (TCPFlag.syn | TCPFlag.ack)
            idx = flows.count
            flowIndex[key] = idx
            flows.append(FlowState(key: key, clientIsA: isSynAck ? !srcIsA : srcIsA, ns: ns, interfaceIndex: packet.interfaceIndex))
        }
        let length = rec.originalLength
        flows[idx].packets += 1
        flows[idx].bytes += length
        if srcIsA { flows[idx].packetsA += 1; flows[idx].bytesA += length }
        flows[idx].lastNs = ns
        if packet.proto == IPProto.tcp {
            Self.tcp(&flows[idx], packet, srcIsA, ns, rec.data, &httpUnfollowable)
        } else if packet.proto == IPProto.icmp || packet.proto == IPProto.icmpv6 {
            icmp(ns)
        }
    }

    /// A SYN on a 5-tuple whose previous connection completed its handshake (or was refused)
    /// starts a new connection: the client port was reused.
    @inline(__always) private func isNewConnection(_ i: Int, _ srcIsA: Bool) -> Bool {
        guard packet.proto == IPProto.tcp, packet.tcpFlags & (TCPFlag.syn | TCPFlag.ack) == TCPFlag.syn else { return false }
        guard flows[i].synAckNs != nil || flows[i].refused else { return false }
        return packet.interfaceIndex == flows[i].interfaceIndex && packet.seq != (srcIsA ? flows[i].nextSeq.0 : flows[i].nextSeq.1) &- 1
    }

    private mutating func icmp(_ ns: Int64) {
        let v6 = packet.proto == IPProto.icmpv6
        let request: UInt8 = v6 ? 128 : 8
        let reply: UInt8 = v6 ? 129 : 0
        if packet.icmpType == request {
            let k = EchoKey(src: packet.src, dst: packet.dst, id: packet.icmpID, seq: packet.icmpSeq)
            if let i = echoIndex[k], echoes[i].replyNs == nil { return } // repeated request copy
            echoIndex[k] = echoes.count
            echoes.append(ICMPEcho(source: packet.src, destination: packet.dst, id: packet.icmpID, seq: packet.icmpSeq,
                                   requestNs: ns, replyNs: nil, duplicateReplies: 0))
        } else if packet.icmpType == reply {
            let k = EchoKey(src: packet.dst, dst: packet.src, id: packet.icmpID, seq: packet.icmpSeq)
            guard let i = echoIndex[k] else { return }
            if echoes[i].replyNs == nil { echoes[i].replyNs = ns } else { echoes[i].duplicateReplies += 1 }
        }
    }

    @inline(__always) private static func seqLess(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

    private static func tcp(_ f: inout FlowState, _ packet: DecodedPacket, _ srcIsA: Bool, _ ns: Int64, _ frame: UnsafeRawBufferPointer,
                            _ httpUnfollowable: inout Int) {
        let flags = packet.tcpFlags
        let fromClient = srcIsA == f.clientIsA
        let syn = flags & TCPFlag.syn != 0
        let ackFlag = flags & TCPFlag.ack != 0
        if syn && !ackFlag {
            if fromClient && f.synAckNs == nil {
                f.synNs = ns
                f.synCount += 1
                f.sawSyn = true
            }
        } else if syn && ackFlag {
            if !fromClient && f.synAckNs == nil && f.synNs != nil { f.synAckNs = ns }
        } else if ackFlag && fromClient && f.synAckNs != nil && f.ackNs == nil {
            f.ackNs = ns
        }
        if flags & TCPFlag.rst != 0 && !fromClient && f.synNs != nil && f.synAckNs == nil { f.refused = true }

        // Sequence space: SYN and FIN take one number each.
        let segLen = UInt32(truncatingIfNeeded: packet.payloadLength) &+ (syn ? 1 : 0) &+ (flags & TCPFlag.fin != 0 ? 1 : 0)
        let seq = packet.seq
        let end = seq &+ segLen
        var have = srcIsA ? f.haveSeq.0 : f.haveSeq.1
        var next = srcIsA ? f.nextSeq.0 : f.nextSeq.1
        var newDataFrom: UInt32 = seq // first byte of payload not seen before
        if !have {
            have = true
            next = end
        } else if segLen > 0 {
            let keepAlive = packet.payloadLength <= 1 && !syn && flags & (TCPFlag.fin | TCPFlag.rst) == 0 && seq == next &- 1
            if AnalyzerCore.seqLess(seq, next) && !keepAlive {
                f.retransmissions += 1
                newDataFrom = next
            } else if keepAlive {
                newDataFrom = next
            }
            if AnalyzerCore.seqLess(next, end) {
                if AnalyzerCore.seqLess(next, seq) { f.http?.gap = true } // bytes missing from the capture
                next = end
            }
        }
        if srcIsA { f.haveSeq.0 = have; f.nextSeq.0 = next } else { f.haveSeq.1 = have; f.nextSeq.1 = next }

        // HTTP: follow the payload in order.
        let closes = flags & TCPFlag.rst != 0 || (flags & TCPFlag.fin != 0 && !fromClient)
        guard packet.payloadLength > 0 else {
            if closes { f.http?.closed(ns: ns) }
            return
        }
        if !f.httpChecked {
            f.httpChecked = true
            if packet.capturedPayloadLength > 0 {
                let first = UnsafeRawBufferPointer(rebasing: frame[packet.payloadOffset..<(packet.payloadOffset + packet.capturedPayloadLength)])
                if HTTPFlow.looksLikeRequest(first) {
                    if !f.sawSyn { f.clientIsA = srcIsA } // no handshake captured: the requester is the client
                    if srcIsA == f.clientIsA { f.http = HTTPFlow() }
                }
            }
        }
        guard f.http != nil, !f.http!.dead else { return }
        if f.http!.gap {
            f.http!.dead = true
            httpUnfollowable += 1
            return
        }
        // Skip bytes already seen (retransmission); a partial overlap yields its new tail.
        let skip = Int(newDataFrom &- seq)
        guard skip >= 0, skip < packet.payloadLength else { return }
        if packet.capturedPayloadLength < packet.payloadLength {
            f.http!.dead = true
            httpUnfollowable += 1
            return
        }
        let bytes = UnsafeRawBufferPointer(rebasing: frame[(packet.payloadOffset + skip)..<(packet.payloadOffset + packet.capturedPayloadLength)])
        let clientToServer = srcIsA == f.clientIsA
        f.http!.feed(bytes, fromClient: clientToServer, ns: ns)
        if f.http!.dead { httpUnfollowable += 1 }
        if closes { f.http!.closed(ns: ns) }
    }

    func finish() -> WireAnalysis {
        var flowSummaries: [FlowSummary] = []
        flowSummaries.reserveCapacity(flows.count)
        var handshakes: [TCPHandshake] = []
        var http = httpDone
        for f in flows {
            let k = f.key
            let client = f.clientIsA ? (k.a, k.aPort) : (k.b, k.bPort)
            let server = f.clientIsA ? (k.b, k.bPort) : (k.a, k.aPort)
            flowSummaries.append(FlowSummary(proto: k.proto, client: client.0, clientPort: client.1, server: server.0, serverPort: server.1,
                                             packets: f.packets, bytes: f.bytes,
                                             packetsFromClient: f.clientIsA ? f.packetsA : f.packets - f.packetsA,
                                             bytesFromClient: f.clientIsA ? f.bytesA : f.bytes - f.bytesA,
                                             firstNs: f.firstNs, lastNs: f.lastNs, retransmissions: f.retransmissions))
            if let syn = f.synNs {
                handshakes.append(TCPHandshake(client: client.0, clientPort: client.1, server: server.0, serverPort: server.1,
                                               synNs: syn, synAckNs: f.synAckNs, ackNs: f.ackNs,
                                               synRetransmissions: max(0, f.synCount - 1), refused: f.refused))
            }
            if let h = f.http {
                for var e in h.exchanges {
                    e.client = client.0; e.clientPort = client.1; e.server = server.0; e.serverPort = server.1
                    http.append(e)
                }
            }
        }
        // Requests in the order they started on the wire (flows interleave).
        http.sort { ($0.requestStartNs, $0.clientPort, $0.index) < ($1.requestStartNs, $1.clientPort, $1.index) }
        return WireAnalysis(linkType: linkType, counters: counters, flows: flowSummaries, handshakes: handshakes, echoes: echoes,
                            http: http, httpUnfollowable: httpUnfollowable, firstNs: firstNs, lastNs: firstNs == nil ? nil : lastNs)
    }
}

/// Follows both directions of one HTTP/1.x connection (in-order bytes only) with one
/// `HTTP1Parser` per direction and pairs requests with responses in order, as HTTP/1.1 keep-alive
/// and pipelining require. Each event happens while the packet holding its byte is fed, so the
/// packet's capture time is the time of that byte. A class, so a flow record holds one reference
/// instead of two parsers (most flows of a capture are not HTTP). One thread at a time uses it, and
/// the event handlers touch only properties other than the parser being fed, so the run-time
/// exclusivity checks (a cost on every packet) are off for these properties.
final class HTTPFlow {
    @exclusivity(unchecked) var requests = HTTP1Parser(kind: .request, keepHeaders: false)
    @exclusivity(unchecked) var responses = HTTP1Parser(kind: .response, keepHeaders: false)
    @exclusivity(unchecked) var exchanges: [WireHTTPExchange] = []
    /// Index in `exchanges` of the request the next response answers.
    @exclusivity(unchecked) var nextToAnswer = 0
    /// Status of the response head read last (an interim 1xx does not end the exchange).
    @exclusivity(unchecked) var lastStatus = 0
    var dead = false
    var gap = false

    /// A response that answers no request: the stream cannot be paired.
    struct Unpaired: Error {}

    static let methods: [[UInt8]] = ["GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "].map { Array($0.utf8) }

    static func looksLikeRequest(_ b: UnsafeRawBufferPointer) -> Bool {
        for m in methods where b.count >= m.count {
            var same = true
            for i in 0..<m.count where b[i] != m[i] { same = false; break }
            if same { return true }
        }
        return false
    }

    func feed(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, ns: Int64) {
        // After `101 Switching Protocols` neither direction is HTTP any more: nothing to follow.
        if dead || responses.switchedProtocols { return }
        do {
            if fromClient {
                try requests.feed(bytes) { event in
                    switch event {
                    case .start:
                        exchanges.append(WireHTTPExchange(client: IPAddress(hi: 0, lo: 0), clientPort: 0, server: IPAddress(hi: 0, lo: 0), serverPort: 0,
                                                          index: exchanges.count, method: "", target: "", status: nil, requestStartNs: ns))
                    case .head(let head):
                        exchanges[exchanges.count - 1].method = head.method
                        exchanges[exchanges.count - 1].target = head.target
                        responses.expectResponse(toHEAD: head.method == "HEAD")
                    case .body:
                        break
                    case .end:
                        exchanges[exchanges.count - 1].requestEndNs = ns
                    }
                }
            } else {
                try responses.feed(bytes) { event in try responseEvent(event, ns: ns) }
            }
        } catch {
            dead = true
        }
    }

    private func responseEvent(_ event: HTTP1Parser.Event, ns: Int64) throws {
        switch event {
        case .start:
            guard nextToAnswer < exchanges.count else { throw Unpaired() }
            if exchanges[nextToAnswer].responseStartNs == nil { exchanges[nextToAnswer].responseStartNs = ns }
        case .head(let head):
            lastStatus = head.status
            exchanges[nextToAnswer].status = head.status
        case .body:
            break
        case .end:
            if lastStatus >= 100 && lastStatus < 200 && lastStatus != 101 { return } // interim: the final response follows
            exchanges[nextToAnswer].responseEndNs = ns
            nextToAnswer += 1
        }
    }

    /// The connection closed (FIN or RST): a response delimited by the close ends here.
    func closed(ns: Int64) {
        guard responses.bodyEndsAtClose, nextToAnswer < exchanges.count else { return }
        do {
            try responses.finishStream { _ in }
            exchanges[nextToAnswer].responseEndNs = ns
            nextToAnswer += 1
        } catch {
            dead = true
        }
    }
}
