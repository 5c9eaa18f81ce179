/// IPv4 addresses and prefixes for topology validation: parsing, containment, and the ranges a lab
/// may use. Pure value types; no sockets.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Dotted quad, four decimal octets 0-255 without leading zeros (so `010.1.1.1` is not read as octal
    /// by one tool and decimal by another).
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(p.count > 1 && p.first == "0"), let o = UInt32(p), o <= 255 else { return nil }
            v = v << 8 | o
        }
        value = v
    }

    public var description: String {
        "\(value >> 24).\((value >> 16) & 255).\((value >> 8) & 255).\(value & 255)"
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public var network: IPv4Address
    public var length: Int

    /// `192.168.1.0/24`; the address must be the network's first address (no host bits set), so a
    /// typo like `192.168.1.5/24` is caught instead of silently meaning `192.168.1.0/24`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])), let n = Int(parts[1]), (0...32).contains(n) else { return nil }
        let mask: UInt32 = n == 0 ? 0 : UInt32.max << (32 - UInt32(n))
        guard a.value & ~mask == 0 else { return nil }
        network = a
        length = n
    }

    public init(network: IPv4Address, length: Int) { (self.network, self.length) = (network, length) }

    public var mask: UInt32 { length == 0 ? 0 : UInt32.max << (32 - UInt32(length)) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }

    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == network.value }
    public func contains(_ p: IPv4Prefix) -> Bool { p.length >= length && contains(p.network) }
    public func overlaps(_ p: IPv4Prefix) -> Bool { contains(p) || p.contains(self) }

    /// An address a host may take in this subnet (not the network or broadcast address, for /30 and wider).
    public func isUsableHost(_ a: IPv4Address) -> Bool {
        guard contains(a) else { return false }
        if length >= 31 { return true }
        return a != network && a != broadcast
    }

    public var description: String { "\(network)/\(length)" }

    /// Where lab links may live: RFC 1918 private ranges and the RFC 2544 benchmarking range.
    public static let labRanges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "198.18.0.0/15"].compactMap(IPv4Prefix.init)

    public var isLabRange: Bool { IPv4Prefix.labRanges.contains { $0.contains(self) } }
}
