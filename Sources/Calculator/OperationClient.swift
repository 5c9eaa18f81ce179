import Foundation
import EdgeMeterHTTP
import NIOCore
import NIOPosix

/// `host:port` of a service, from a flag or an environment variable (`127.0.0.1:50001`, also
/// accepted with an `http://` prefix).
public struct ServiceEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) { (self.host, self.port) = (host, port) }

    /// Parses `host:port`, `http://host:port` or `[v6]:port`; nil when it is not one of those.
    public init?(parsing text: String) {
        var t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("http://") { t.removeFirst("http://".count) }
        while t.hasSuffix("/") { t.removeLast() }
        guard let colon = t.lastIndex(of: ":") else { return nil }
        var host = String(t[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(t[t.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a downstream call failed; the front end maps these to 502 (unavailable) and 504 (timeout).
enum DownstreamError: Error {
    case unavailable(String)
    case timeout
}

/// A keep-alive HTTP/1.1 connection pool to one operation service, on edgemeter's own swift-nio
/// client (`HTTPConnection`, the one the `http` probe uses). Idle connections are reused (most
/// recently used first); a connection the service closed is dropped, and a request that fails on a
/// reused connection before any reply is retried once on a fresh one. At most `maxIdle` idle
/// connections are kept.
final class OperationPool: @unchecked Sendable {
    let endpoint: ServiceEndpoint
    let group: EventLoopGroup
    let maxIdle: Int
    private let lock = NSLock()
    private var idle: [HTTPConnection] = []

    init(endpoint: ServiceEndpoint, group: EventLoopGroup, maxIdle: Int = 64) { (self.endpoint, self.group, self.maxIdle) = (endpoint, group, maxIdle) }

    /// Sends `GET path` and returns the status and body text. Throws `DownstreamError`.
    func get(path: String, timeout: TimeAmount) async throws -> (status: Int, body: String) {
        let deadline = NIODeadline.now() + timeout
        let request = HTTPRequestSpec(method: "GET", path: path)
        if let reused = takeIdle() {
            do {
                return try await exchange(reused, request, deadline: deadline)
            } catch HTTPClientError.reset {
                // The service closed the idle connection (restart, idle timeout): retry on a fresh one.
            }
        }
        let conn: HTTPConnection
        do {
            let remaining = deadline - NIODeadline.now()
            let address = try await HTTPConnection.resolve(host: endpoint.host, port: endpoint.port)
            conn = try await HTTPConnection.connect(to: address, targetName: endpoint.description,
                                                    timeout: remaining > .zero ? remaining : .milliseconds(1), group: group)
        } catch let e as HTTPClientError {
            throw Self.downstream(e)
        } catch {
            throw DownstreamError.unavailable("\(error)")
        }
        do {
            return try await exchange(conn, request, deadline: deadline)
        } catch HTTPClientError.reset {
            throw DownstreamError.unavailable("the connection closed before a reply")
        }
    }

    /// One request on `conn`; keeps the connection for reuse when the service allows it.
    private func exchange(_ conn: HTTPConnection, _ request: HTTPRequestSpec, deadline: NIODeadline) async throws -> (status: Int, body: String) {
        let remaining = deadline - NIODeadline.now()
        do {
            let r = try await conn.send(request, host: endpoint.description, timeout: remaining > .zero ? remaining : .milliseconds(1))
            if r.response.keepAlive { giveBack(conn) } else { conn.close() }
            return (r.response.status, r.response.bodyText)
        } catch let e as HTTPClientError {
            if case .reset = e { throw e }
            throw Self.downstream(e)
        }
    }

    /// What the front end reports: refused and unreachable in a few words, timeouts as 504.
    static func downstream(_ e: HTTPClientError) -> DownstreamError {
        switch e {
        case .timeout, .connectTimeout: return .timeout
        case .refused: return .unavailable("connection refused")
        default: return .unavailable(e.description)
        }
    }

    private func takeIdle() -> HTTPConnection? {
        lock.lock(); defer { lock.unlock() }
        while let c = idle.popLast() {
            if c.channel.isActive { return c }
        }
        return nil
    }

    func giveBack(_ c: HTTPConnection) {
        lock.lock()
        if idle.count < maxIdle, c.channel.isActive {
            idle.append(c)
            lock.unlock()
        } else {
            lock.unlock()
            c.close()
        }
    }

    func closeAll() {
        lock.lock(); let all = idle; idle = []; lock.unlock()
        for c in all { c.close() }
    }
}
