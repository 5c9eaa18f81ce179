import Foundation

/// Builds well-formed frames (Ethernet or Linux SLL2 + IPv4/IPv6 + TCP/UDP/ICMP, with correct
/// checksums) for pcap files with known timings: the tests' corpus and the 1-million-packet
/// benchmark file.
public enum PacketBuilder {
    public static let clientMAC: [UInt8] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
    public static let serverMAC: [UInt8] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03]

    static func put16(_ b: inout [UInt8], _ v: UInt16) { b.append(UInt8(v >> 8)); b.append(UInt8(v & 0xff)) }
    static func put32(_ b: inout [UInt8], _ v: UInt32) { put16(&b, UInt16(v >> 16)); put16(&b, UInt16(v & 0xffff)) }

    static func checksum(_ parts: [[UInt8]]) -> UInt16 {
        var sum: UInt32 = 0
        for part in parts {
            var i = 0
            while i + 1 < part.count { sum += UInt32(part[i]) << 8 | UInt32(part[i + 1]); i += 2 }
            if i < part.count { sum += UInt32(part[i]) << 8 }
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func addressBytes(_ a: IPAddress) -> [UInt8] {
        if a.isV4 {
            let v = UInt32(truncatingIfNeeded: a.lo)
            return [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
        }
        var b: [UInt8] = []
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: a.hi >> (56 - 8 * UInt64(i)))) }
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: a.lo >> (56 - 8 * UInt64(i)))) }
        return b
    }

    /// Wraps a transport segment in IPv4/IPv6 and the link header. `transport` must hold a zeroed
    /// checksum field at `checksumOffset` (nil: no pseudo-header checksum, as for ICMPv4).
    static func wrap(src: IPAddress, dst: IPAddress, proto: UInt8, transport t: [UInt8], checksumOffset: Int?,
                     pseudoHeader: Bool, link: UInt32, fromClient: Bool) -> [UInt8] {
        var seg = t
        let v4 = src.isV4
        let s = addressBytes(src), d = addressBytes(dst)
        if let off = checksumOffset {
            var pseudo: [UInt8] = []
            if pseudoHeader {
                pseudo = s + d
                if v4 { pseudo += [0, proto]; put16(&pseudo, UInt16(seg.count)) }
                else { put32(&pseudo, UInt32(seg.count)); pseudo += [0, 0, 0, proto] }
            }
            let c = checksum([pseudo, seg])
            seg[off] = UInt8(c >> 8); seg[off + 1] = UInt8(c & 0xff)
        }
        var ip: [UInt8] = []
        if v4 {
            ip = [0x45, 0]
            put16(&ip, UInt16(20 + seg.count))
            ip += [0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]
            ip += s + d
            let c = checksum([ip])
            ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
        } else {
            ip = [0x60, 0, 0, 0]
            put16(&ip, UInt16(seg.count))
            ip += [proto, 64]
            ip += s + d
        }
        var frame: [UInt8] = []
        switch link {
        case LinkType.linuxSLL2:
            put16(&frame, v4 ? 0x0800 : 0x86dd)
            frame += [0, 0]
            put32(&frame, 1)              // interface index
            put16(&frame, 1)              // ARPHRD_ETHER
            frame.append(fromClient ? 4 : 0) // outgoing / to us
            frame.append(6)
            frame += (fromClient ? clientMAC : serverMAC) + [0, 0]
        case LinkType.raw:
            break
        default:
            frame = fromClient ? serverMAC + clientMAC : clientMAC + serverMAC
            put16(&frame, v4 ? 0x0800 : 0x86dd)
        }
        return frame + ip + seg
    }

    /// A TCP segment (20-byte header, no options).
    public static func tcp(src: IPAddress, dst: IPAddress, srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32,
                           flags: UInt8, payload: [UInt8] = [], link: UInt32 = LinkType.ethernet, fromClient: Bool = true) -> [UInt8] {
        var t: [UInt8] = []
        put16(&t, srcPort); put16(&t, dstPort)
        put32(&t, seq); put32(&t, flags & TCPFlag.ack != 0 ? ack : 0)
        t += [0x50, flags]
        put16(&t, 65_535)
        t += [0, 0, 0, 0]
        t += payload
        return wrap(src: src, dst: dst, proto: IPProto.tcp, transport: t, checksumOffset: 16, pseudoHeader: true, link: link, fromClient: fromClient)
    }

    /// A UDP datagram.
    public static func udp(src: IPAddress, dst: IPAddress, srcPort: UInt16, dstPort: UInt16, payload: [UInt8],
                           link: UInt32 = LinkType.ethernet, fromClient: Bool = true) -> [UInt8] {
        var t: [UInt8] = []
        put16(&t, srcPort); put16(&t, dstPort)
        put16(&t, UInt16(8 + payload.count)); t += [0, 0]
        t += payload
        return wrap(src: src, dst: dst, proto: IPProto.udp, transport: t, checksumOffset: 6, pseudoHeader: true, link: link, fromClient: fromClient)
    }

    /// An ICMP (IPv4) or ICMPv6 echo request or reply with a 56-byte payload, as ping sends.
    public static func icmpEcho(src: IPAddress, dst: IPAddress, id: UInt16, seq: UInt16, reply: Bool,
                                link: UInt32 = LinkType.ethernet) -> [UInt8] {
        let v4 = src.isV4
        var t: [UInt8] = [v4 ? (reply ? 0 : 8) : (reply ? 129 : 128), 0, 0, 0]
        put16(&t, id); put16(&t, seq)
        t += (0..<56).map { UInt8($0) }
        return wrap(src: src, dst: dst, proto: v4 ? IPProto.icmp : IPProto.icmpv6, transport: t, checksumOffset: 2,
                    pseudoHeader: !v4, link: link, fromClient: !reply)
    }
}

/// A synthetic HTTP/1.1 workload with known timings, written as a pcap: each connection is a
/// handshake, `requestsPerConnection` keep-alive GETs with their responses and ACKs, and a FIN
/// exchange. Connection `i` has SYN→SYN/ACK = `synAckBaseNs + (i % 50) µs`, SYN/ACK→ACK =
/// `ackBaseNs`, and each response starts `firstByteNs` after its request.
public struct SyntheticHTTPTraffic {
    public var connections: Int
    public var requestsPerConnection = 1
    public var concurrent = 8
    public var startNs: Int64 = 1_764_000_000_000_000_000
    public var synAckBaseNs: Int64 = 40_000
    public var ackBaseNs: Int64 = 15_000
    public var firstByteNs: Int64 = 120_000
    public var responseGapNs: Int64 = 5_000
    public var client = IPAddress("172.17.0.1")!
    public var server = IPAddress("172.17.0.2")!
    public var serverPort: UInt16 = 8080

    public init(connections: Int, requestsPerConnection: Int = 1) { (self.connections, self.requestsPerConnection) = (connections, requestsPerConnection) }

    /// Packets per connection: 3 (handshake) + 4 per request (request, ACK, response, ACK) + 3 (FIN, FIN/ACK, ACK).
    public var packetsPerConnection: Int { 6 + 4 * requestsPerConnection }

    public func synAckDelay(_ i: Int) -> Int64 { synAckBaseNs + Int64(i % 50) * 1000 }
    public func clientPort(_ i: Int) -> UInt16 { UInt16(20_000 + i % 40_000) }
    /// `client` for the first 40 000 connections, then the next addresses, so no 5-tuple repeats.
    public func clientAddress(_ i: Int) -> IPAddress {
        IPAddress(hi: client.hi, lo: client.lo &+ UInt64(i / 40_000))
    }

    static let request = Array("GET /sum?a=1&b=2 HTTP/1.1\r\nHost: calc\r\nUser-Agent: edgemeter\r\n\r\n".utf8)
    static let response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n3".utf8)

    /// Writes the file; returns the number of packets written.
    @discardableResult
    public func write(to path: String, link: UInt32 = LinkType.ethernet) throws -> Int {
        let w = try PcapWriter(path: path, linkType: link, nanosecond: true)
        var written = 0
        var group = 0
        while group * concurrent < connections {
            let first = group * concurrent
            let members = min(concurrent, connections - first)
            // Each member's packets, with their times; then merge the group by time.
            var packets: [(Int64, [UInt8])] = []
            packets.reserveCapacity(members * packetsPerConnection)
            let groupStart = startNs + Int64(group) * (Int64(requestsPerConnection) * (firstByteNs + 3 * responseGapNs) + 400_000)
            for m in 0..<members {
                let i = first + m
                let cport = clientPort(i)
                let client = clientAddress(i)
                var t = groupStart + Int64(m) * 3_000
                var cseq: UInt32 = UInt32(truncatingIfNeeded: i &* 7919) &+ 1000
                var sseq: UInt32 = UInt32(truncatingIfNeeded: i &* 104_729) &+ 5000
                func c(_ flags: UInt8, _ payload: [UInt8] = []) -> [UInt8] {
                    PacketBuilder.tcp(src: client, dst: server, srcPort: cport, dstPort: serverPort, seq: cseq, ack: sseq,
                                      flags: flags, payload: payload, link: link, fromClient: true)
                }
                func s(_ flags: UInt8, _ payload: [UInt8] = []) -> [UInt8] {
                    PacketBuilder.tcp(src: server, dst: client, srcPort: serverPort, dstPort: cport, seq: sseq, ack: cseq,
                                      flags: flags, payload: payload, link: link, fromClient: false)
                }
                packets.append((t, c(TCPFlag.syn))); cseq &+= 1
                t += synAckDelay(i)
                packets.append((t, s(TCPFlag.syn | TCPFlag.ack))); sseq &+= 1
                t += ackBaseNs
                packets.append((t, c(TCPFlag.ack)))
                for _ in 0..<requestsPerConnection {
                    t += responseGapNs
                    packets.append((t, c(TCPFlag.psh | TCPFlag.ack, Self.request))); cseq &+= UInt32(Self.request.count)
                    t += firstByteNs / 3
                    packets.append((t, s(TCPFlag.ack)))
                    t += firstByteNs - firstByteNs / 3
                    packets.append((t, s(TCPFlag.psh | TCPFlag.ack, Self.response))); sseq &+= UInt32(Self.response.count)
                    t += responseGapNs
                    packets.append((t, c(TCPFlag.ack)))
                }
                t += responseGapNs
                packets.append((t, c(TCPFlag.fin | TCPFlag.ack))); cseq &+= 1
                t += 20_000
                packets.append((t, s(TCPFlag.fin | TCPFlag.ack))); sseq &+= 1
                t += 10_000
                packets.append((t, c(TCPFlag.ack)))
            }
            packets.sort { $0.0 < $1.0 }
            for (t, p) in packets { try w.write(timestampNs: t, bytes: p) }
            written += packets.count
            group += 1
        }
        try w.close()
        return written
    }
}
