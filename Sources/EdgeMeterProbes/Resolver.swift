import Foundation
import CEdgeMeter
import EdgeMeterCore
import EdgeMeterSystem

/// Which address family a name may resolve to (`-4`, `-6`, or whichever getaddrinfo lists first).
public enum AddressFamilyPreference: String, Sendable {
    case any, ipv4, ipv6
}

/// A socket address held by value (sockaddr_storage plus its length).
public struct SocketAddr: @unchecked Sendable, Equatable {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public init(storage: sockaddr_storage, length: socklen_t) { (self.storage, self.length) = (storage, length) }

    public var family: Int32 { Int32(storage.ss_family) }

    public static func == (a: SocketAddr, b: SocketAddr) -> Bool {
        a.length == b.length && withUnsafeBytes(of: a.storage) { x in withUnsafeBytes(of: b.storage) { y in
            x.prefix(Int(a.length)).elementsEqual(y.prefix(Int(b.length))) } }
    }

    /// Numeric host text (`127.0.0.1`, `::1`).
    public var host: String {
        var s = storage
        var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST)
            }
        }
        return rc == 0 ? String(cString: buf) : "?"
    }

    public var port: UInt16 {
        var s = storage
        return withUnsafePointer(to: &s) { p -> UInt16 in
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    public func withPort(_ port: UInt16) -> SocketAddr {
        var copy = self
        withUnsafeMutablePointer(to: &copy.storage) { p in
            if family == AF_INET6 {
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port = port.bigEndian }
            } else {
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = port.bigEndian }
            }
        }
        return copy
    }

    /// `host:port`, with brackets for IPv6.
    public var hostPort: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Compares only family and address bytes (not port or scope).
    public func sameHost(as other: SocketAddr) -> Bool {
        guard family == other.family else { return false }
        var a = storage, b = other.storage
        if family == AF_INET {
            let x = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr } }
            let y = withUnsafePointer(to: &b) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr } }
            return x == y
        }
        let x = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr } }
        let y = withUnsafePointer(to: &b) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr } }
        return withUnsafeBytes(of: x) { xb in withUnsafeBytes(of: y) { yb in xb.elementsEqual(yb) } }
    }
}

/// A name resolved once, before any timing starts.
public struct ResolvedTarget: Sendable {
    /// What the user wrote (`localhost`, `127.0.0.1`, `example:80`).
    public var name: String
    public var address: SocketAddr
    /// Time spent in getaddrinfo, measured on the run clock's monotonic time; ≈0 for numeric addresses resolved
    /// without a lookup (still measured: the call is made).
    public var resolveNanoseconds: Int64
    public var resolvedAt: Date
}

public struct ResolveError: Error, CustomStringConvertible {
    public var target: String
    public var message: String
    public var description: String { message }
    public init(target: String, message: String) { (self.target, self.message) = (target, message) }
}

public enum Resolver {
    /// Resolves `host` (and `port`, 0 for ICMP) with getaddrinfo, timing the call on `clock`'s
    /// monotonic time (`resolvedAt` is its wall time before the call).
    public static func resolve(_ host: String, port: UInt16 = 0, family: AddressFamilyPreference = .any,
                               socketType: Int32 = Int32(SOCK_STREAM.rawValue), clock: any MeasurementClock = SystemClock()) throws -> ResolvedTarget {
        var hints = addrinfo()
        hints.ai_family = family == .ipv4 ? AF_INET : family == .ipv6 ? AF_INET6 : AF_UNSPEC
        hints.ai_socktype = socketType
        var result: UnsafeMutablePointer<addrinfo>?
        let wall = clock.wallNow()
        let t0 = clock.monotonicNanoseconds()
        let rc = getaddrinfo(host, String(port), &hints, &result)
        let t1 = clock.monotonicNanoseconds()
        guard rc == 0, let first = result else {
            let why = String(cString: gai_strerror(rc))
            let fam = family == .any ? "" : " as \(family == .ipv4 ? "IPv4" : "IPv6")"
            throw ResolveError(target: host, message: "cannot resolve \"\(host)\"\(fam): \(why); check the name or give an IP address")
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        let len = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(len)))
        }
        return ResolvedTarget(name: host, address: SocketAddr(storage: storage, length: len),
                              resolveNanoseconds: t1 - t0, resolvedAt: wall)
    }

    /// Splits `host:port`, `[v6]:port`; throws a message naming the expected form.
    public static func splitHostPort(_ text: String) throws -> (host: String, port: UInt16) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ResolveError(target: text, message: "\"\(text)\" is not HOST:PORT; write IPv6 as [::1]:80")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), text.filter({ $0 == ":" }).count == 1 else {
                throw ResolveError(target: text, message: "\"\(text)\" is not HOST:PORT; for example 127.0.0.1:80 or [::1]:80")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty else { throw ResolveError(target: text, message: "\"\(text)\" has no host; for example 127.0.0.1:80") }
        guard let port = UInt16(portText), port > 0 else {
            throw ResolveError(target: text, message: "\"\(text)\": port must be 1-65535, got \"\(portText)\"")
        }
        return (String(host), port)
    }
}

func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }
