import Foundation

/// An IPv4 or IPv6 address as two 64-bit halves (IPv4 is stored IPv4-mapped, ::ffff:a.b.c.d), cheap
/// to hash and compare in the analyzer's tables.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var hi: UInt64
    public var lo: UInt64

    public init(hi: UInt64, lo: UInt64) { self.hi = hi; self.lo = lo }

    public init(v4 a: UInt32) { hi = 0; lo = 0x0000_ffff_0000_0000 | UInt64(a) }

    /// Parses dotted IPv4 or textual IPv6; nil when `text` is neither.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(v4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        withUnsafeBytes(of: &v6) { b in
            for i in 0..<8 { h = h << 8 | UInt64(b[i]) }
            for i in 8..<16 { l = l << 8 | UInt64(b[i]) }
        }
        self.init(hi: h, lo: l)
    }

    public var isV4: Bool { hi == 0 && lo >> 32 == 0xffff }

    public var description: String {
        if isV4 {
            let a = UInt32(truncatingIfNeeded: lo)
            return "\(a >> 24).\(a >> 16 & 0xff).\(a >> 8 & 0xff).\(a & 0xff)"
        }
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { b in
            for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i))) }
            for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i))) }
        }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &v6, &buf, socklen_t(buf.count))
        return String(cString: buf)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool { (a.hi, a.lo) < (b.hi, b.lo) }
}

/// TCP flag bits.
public enum TCPFlag {
    public static let fin: UInt8 = 0x01
    public static let syn: UInt8 = 0x02
    public static let rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08
    public static let ack: UInt8 = 0x10
}

/// IP protocol numbers the analyzer distinguishes.
public enum IPProto {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
}

/// The fields of one packet the analyzer needs, decoded in place without allocation.
struct DecodedPacket {
    var ipVersion: UInt8 = 0
    var src = IPAddress(hi: 0, lo: 0)
    var dst = IPAddress(hi: 0, lo: 0)
    /// IP protocol of the transport header (after IPv6 extension headers).
    var proto: UInt8 = 0
    /// Bytes of the IP packet as the IP header states them (header + payload), not the frame length.
    var ipLength = 0
    var srcPort: UInt16 = 0
    var dstPort: UInt16 = 0
    var tcpFlags: UInt8 = 0
    var seq: UInt32 = 0
    var ack: UInt32 = 0
    /// Offset of the transport payload in the captured frame.
    var payloadOffset = 0
    /// Transport payload bytes as the headers state them (may exceed what was captured).
    var payloadLength = 0
    /// Transport payload bytes present in the captured frame.
    var capturedPayloadLength = 0
    var icmpType: UInt8 = 0
    var icmpCode: UInt8 = 0
    var icmpID: UInt16 = 0
    var icmpSeq: UInt16 = 0
    /// Linux cooked captures (`any`): the interface index (SLL2) and packet type (0 host, 4 outgoing).
    var interfaceIndex: Int32 = -1
    var cookedPacketType: UInt16 = 0xffff
}

/// Result of decoding one frame.
public enum DecodeOutcome: Equatable {
    /// IPv4/IPv6 with its transport header (TCP, UDP, ICMP, ICMPv6) or another IP protocol.
    case ip
    /// A frame that is not IP (ARP, LLDP, ...): counted, not analysed.
    case notIP
    /// A non-first IPv4 fragment or an IPv6 fragment with offset: no transport header to read.
    case fragment
    /// The captured bytes end before the headers do (snap length, damaged file).
    case truncated
    /// A header states something impossible (bad version, header length below the minimum, ...).
    case malformed
    /// A link type the decoder does not handle.
    case unsupportedLink
}

/// Decodes Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, raw IP, BSD loopback,
/// IPv4 (options, fragments), IPv6 (extension headers), TCP, UDP, ICMP and ICMPv6 echo.
/// Never traps on bad input: every read is bounds-checked and bad frames return an outcome.
enum PacketDecoder {
    @inline(__always) static func be16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 {
        UInt16(b[o]) << 8 | UInt16(b[o + 1])
    }
    @inline(__always) static func be32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    @inline(__always) static func be64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4))
    }

    static func decode(linkType: UInt32, frame b: UnsafeRawBufferPointer, into p: inout DecodedPacket) -> DecodeOutcome {
        p.interfaceIndex = -1
        p.cookedPacketType = 0xffff
        var off = 0
        var etherType: UInt16
        switch linkType {
        case LinkType.ethernet:
            guard b.count >= 14 else { return .truncated }
            etherType = be16(b, 12)
            off = 14
            var tags = 0
            while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
                guard b.count >= off + 4, tags < 4 else { return tags >= 4 ? .malformed : .truncated }
                etherType = be16(b, off + 2)
                off += 4
                tags += 1
            }
        case LinkType.linuxSLL:
            guard b.count >= 16 else { return .truncated }
            p.cookedPacketType = be16(b, 0)
            etherType = be16(b, 14)
            off = 16
        case LinkType.linuxSLL2:
            guard b.count >= 20 else { return .truncated }
            etherType = be16(b, 0)
            p.interfaceIndex = Int32(bitPattern: be32(b, 4))
            p.cookedPacketType = UInt16(b[10])
            off = 20
        case LinkType.raw, LinkType.ipv4, LinkType.ipv6:
            guard b.count >= 1 else { return .truncated }
            let v = b[0] >> 4
            etherType = v == 4 ? 0x0800 : v == 6 ? 0x86dd : 0
            if etherType == 0 { return .malformed }
        case LinkType.null, LinkType.loop:
            guard b.count >= 5 else { return .truncated }
            let v = b[4] >> 4
            etherType = v == 4 ? 0x0800 : v == 6 ? 0x86dd : 0
            off = 4
            if etherType == 0 { return .notIP }
        default:
            return .unsupportedLink
        }
        switch etherType {
        case 0x0800: return decodeIPv4(b, off, &p)
        case 0x86dd: return decodeIPv6(b, off, &p)
        default: return .notIP
        }
    }

    static func decodeIPv4(_ b: UnsafeRawBufferPointer, _ start: Int, _ p: inout DecodedPacket) -> DecodeOutcome {
        guard b.count >= start + 20 else { return .truncated }
        let vihl = b[start]
        guard vihl >> 4 == 4 else { return .malformed }
        let ihl = Int(vihl & 0x0f) * 4
        guard ihl >= 20 else { return .malformed }
        guard b.count >= start + ihl else { return .truncated }
        var total = Int(be16(b, start + 2))
        if total == 0 { total = b.count - start } // TSO frames captured before segmentation state 0
        guard total >= ihl else { return .malformed }
        p.ipVersion = 4
        p.ipLength = total
        p.proto = b[start + 9]
        p.src = IPAddress(v4: be32(b, start + 12))
        p.dst = IPAddress(v4: be32(b, start + 16))
        let fragOff = be16(b, start + 6) & 0x1fff
        if fragOff != 0 { return .fragment }
        return decodeTransport(b, start + ihl, start + total, &p)
    }

    static func decodeIPv6(_ b: UnsafeRawBufferPointer, _ start: Int, _ p: inout DecodedPacket) -> DecodeOutcome {
        guard b.count >= start + 40 else { return .truncated }
        guard b[start] >> 4 == 6 else { return .malformed }
        let payloadLen = Int(be16(b, start + 4))
        p.ipVersion = 6
        p.ipLength = 40 + payloadLen
        p.src = IPAddress(hi: be64(b, start + 8), lo: be64(b, start + 16))
        p.dst = IPAddress(hi: be64(b, start + 24), lo: be64(b, start + 32))
        var next = b[start + 6]
        var off = start + 40
        let end = payloadLen == 0 ? b.count : start + 40 + payloadLen // jumbo/TSO: 0 means "see frame"
        var hops = 0
        while true {
            switch next {
            case 0, 43, 60: // hop-by-hop, routing, destination options
                guard b.count >= off + 2 else { return .truncated }
                let len = (Int(b[off + 1]) + 1) * 8
                guard off + len <= end else { return .malformed }
                next = b[off]
                off += len
            case 44: // fragment
                guard b.count >= off + 8 else { return .truncated }
                let fragOff = be16(b, off + 2) >> 3
                next = b[off]
                off += 8
                if fragOff != 0 { p.proto = next; return .fragment }
            case 51: // authentication header
                guard b.count >= off + 2 else { return .truncated }
                let len = (Int(b[off + 1]) + 2) * 4
                guard off + len <= end else { return .malformed }
                next = b[off]
                off += len
            default:
                p.proto = next
                return decodeTransport(b, off, end, &p)
            }
            hops += 1
            if hops > 8 { return .malformed }
        }
    }

    /// `off`: start of the transport header; `end`: end of the IP packet as its header states it.
    static func decodeTransport(_ b: UnsafeRawBufferPointer, _ off: Int, _ end: Int, _ p: inout DecodedPacket) -> DecodeOutcome {
        guard end >= off else { return .malformed }
        p.srcPort = 0; p.dstPort = 0; p.tcpFlags = 0; p.seq = 0; p.ack = 0
        p.icmpType = 0; p.icmpCode = 0; p.icmpID = 0; p.icmpSeq = 0
        let capEnd = min(end, b.count)
        switch p.proto {
        case IPProto.tcp:
            guard b.count >= off + 20 else { return .truncated }
            let hl = Int(b[off + 12] >> 4) * 4
            guard hl >= 20, off + hl <= end else { return .malformed }
            guard b.count >= off + hl else { return .truncated }
            p.srcPort = be16(b, off)
            p.dstPort = be16(b, off + 2)
            p.seq = be32(b, off + 4)
            p.ack = be32(b, off + 8)
            p.tcpFlags = b[off + 13]
            p.payloadOffset = off + hl
            p.payloadLength = end - off - hl
            p.capturedPayloadLength = max(0, capEnd - off - hl)
        case IPProto.udp:
            guard b.count >= off + 8 else { return .truncated }
            guard end - off >= 8 else { return .malformed }
            p.srcPort = be16(b, off)
            p.dstPort = be16(b, off + 2)
            p.payloadOffset = off + 8
            p.payloadLength = end - off - 8
            p.capturedPayloadLength = max(0, capEnd - off - 8)
        case IPProto.icmp, IPProto.icmpv6:
            guard b.count >= off + 8 else { return .truncated }
            guard end - off >= 8 else { return .malformed }
            p.icmpType = b[off]
            p.icmpCode = b[off + 1]
            p.icmpID = be16(b, off + 4)
            p.icmpSeq = be16(b, off + 6)
            p.payloadOffset = off + 8
            p.payloadLength = end - off - 8
            p.capturedPayloadLength = max(0, capEnd - off - 8)
        default:
            p.payloadOffset = off
            p.payloadLength = end - off
            p.capturedPayloadLength = max(0, capEnd - off)
        }
        return .ip
    }
}
