import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1

/// `host:port` of a service, from a flag or an environment variable (`127.0.0.1:50001`, also
/// accepted with an `http://` prefix).
public struct ServiceEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

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

/// A keep-alive HTTP/1.1 connection pool to one operation service, written on swift-nio NIOHTTP1.
/// Idle connections are reused (most recently used first); a connection the service closed is
/// dropped, and a request that fails on a reused connection before any reply is retried once on a
/// fresh one. At most `maxIdle` idle connections are kept.
final class OperationPool: @unchecked Sendable {
    let endpoint: ServiceEndpoint
    let group: EventLoopGroup
    let maxIdle: Int
    private let lock = NSLock()
    private var idle: [PooledConnection] = []

    init(endpoint: ServiceEndpoint, group: EventLoopGroup, maxIdle: Int = 64) {
        self.endpoint = endpoint
        self.group = group
        self.maxIdle = maxIdle
    }

    /// Sends `GET path` and returns the status and body text. Throws `DownstreamError`.
    func get(path: String, timeout: TimeAmount) async throws -> (status: Int, body: String) {
        let deadline = NIODeadline.now() + timeout
        if let reused = takeIdle() {
            do {
                return try await reused.request(path: path, host: endpoint.description, deadline: deadline, pool: self)
            } catch PooledConnection.Failure.closedBeforeReply {
                // The service closed the idle connection (restart, idle timeout): retry on a fresh one.
            } catch PooledConnection.Failure.timedOut {
                throw DownstreamError.timeout
            } catch {
                throw DownstreamError.unavailable("\(error)")
            }
        }
        let conn: PooledConnection
        do {
            conn = try await connect(deadline: deadline)
        } catch let e as DownstreamError {
            throw e
        } catch {
            throw DownstreamError.unavailable(Self.describe(error))
        }
        do {
            return try await conn.request(path: path, host: endpoint.description, deadline: deadline, pool: self)
        } catch PooledConnection.Failure.timedOut {
            throw DownstreamError.timeout
        } catch PooledConnection.Failure.closedBeforeReply {
            throw DownstreamError.unavailable("the connection closed before a reply")
        } catch {
            throw DownstreamError.unavailable(Self.describe(error))
        }
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return describe(first.error) }
            return "connect failed: \(e)"
        }
        if let e = error as? ChannelError, case .connectTimeout = e { return "connect timed out" }
        return "\(error)"
    }

    private func takeIdle() -> PooledConnection? {
        lock.lock(); defer { lock.unlock() }
        while let c = idle.popLast() {
            if c.channel.isActive { return c }
        }
        return nil
    }

    func giveBack(_ c: PooledConnection) {
        lock.lock()
        if idle.count < maxIdle, c.channel.isActive {
            idle.append(c)
            lock.unlock()
        } else {
            lock.unlock()
            c.channel.close(promise: nil)
        }
    }

    func closeAll() {
        lock.lock(); let all = idle; idle = []; lock.unlock()
        for c in all { c.channel.close(promise: nil) }
    }

    private func connect(deadline: NIODeadline) async throws -> PooledConnection {
        let remaining = deadline - NIODeadline.now()
        let handler = OperationResponseHandler()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(remaining > .zero ? remaining : .milliseconds(1))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        do {
            let channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
            return PooledConnection(channel: channel, handler: handler)
        } catch let e as ChannelError {
            if case .connectTimeout = e { throw DownstreamError.timeout }
            throw DownstreamError.unavailable(Self.describe(e))
        } catch {
            throw DownstreamError.unavailable(Self.describe(error))
        }
    }
}

struct PooledConnection {
    enum Failure: Error { case closedBeforeReply, timedOut }
    let channel: Channel
    let handler: OperationResponseHandler

    func request(path: String, host: String, deadline: NIODeadline, pool: OperationPool) async throws -> (status: Int, body: String) {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: OperationResponseHandler.Reply.self)
        let channel = self.channel
        let handler = self.handler
        loop.execute {
            handler.start(promise: promise, context: channel, deadline: deadline)
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: host)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        let reply = try await promise.futureResult.get()
        if reply.keepAlive { pool.giveBack(self) } else { channel.close(promise: nil) }
        return (reply.status, reply.body)
    }
}

/// Collects one response at a time on a pooled connection. All state is touched on the channel's
/// event loop only.
final class OperationResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    struct Reply { var status: Int; var body: String; var keepAlive: Bool }

    private var promise: EventLoopPromise<Reply>?
    private var timeoutTask: Scheduled<Void>?
    private var status = 0
    private var keepAlive = true
    private var body = ByteBuffer()
    private var gotHead = false
    private weak var channel: Channel?

    func start(promise: EventLoopPromise<Reply>, context channel: Channel, deadline: NIODeadline) {
        self.promise = promise
        self.channel = channel
        gotHead = false
        body.clear()
        if !channel.isActive {
            fail(PooledConnection.Failure.closedBeforeReply)
            return
        }
        timeoutTask = channel.eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self, self.promise != nil else { return }
            self.fail(PooledConnection.Failure.timedOut)
            channel.close(promise: nil)
        }
    }

    private func fail(_ error: Error) {
        timeoutTask?.cancel(); timeoutTask = nil
        let p = promise
        promise = nil
        p?.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            gotHead = true
            status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            timeoutTask?.cancel(); timeoutTask = nil
            let p = promise
            promise = nil
            p?.succeed(Reply(status: status, body: String(buffer: body), keepAlive: keepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(gotHead ? ChannelError.eof : PooledConnection.Failure.closedBeforeReply)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }
}
