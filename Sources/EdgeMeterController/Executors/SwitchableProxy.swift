import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1

/// The client path in front of the nodes: an HTTP/1.1 reverse proxy on loopback whose backend can
/// be switched at runtime. It works per request, not per connection: each request goes to the
/// backend that is current when its head arrives, over a keep-alive connection to that backend
/// (opened on first use, replaced when the backend changed since the connection's previous
/// request). So after `switchTo`, every new request goes to the new backend, even on a client
/// connection that was opened before the switch, and requests already sent to the old backend
/// finish there (`inFlight`, `waitDrained`). Clients keep their connections to the proxy across a
/// switch: nothing they hold is closed under them.
///
/// A backend that cannot be reached or that closes before the end of its response gets the client
/// `502 Bad Gateway` with the reason (`X-Edgemeter-Proxy-Error`), so a broken path shows as failed
/// requests, never as silence. Requests are handled one at a time per client connection
/// (pipelined requests wait, `HTTPServerPipelineHandler`).
public final class SwitchableProxy: @unchecked Sendable {
    public struct Backend: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// The node's name (what reports call it).
        public var name: String
        public var host: String
        public var port: Int
        public init(name: String, host: String, port: Int) { (self.name, self.host, self.port) = (name, host, port) }
        public var description: String { "\(name) \(host):\(port)" }
    }

    private let lock = NSLock()
    private var current: Backend?
    private var inFlightByBackend: [Backend: Int] = [:]
    private var servedByBackend: [Backend: Int] = [:]
    private var server: Channel?
    private let group: EventLoopGroup

    public init(backend: Backend? = nil, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.current = backend
        self.group = group
    }

    /// Listens on `host:port` (port 0 picks a free one) and returns the port.
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FrontHandler(proxy: self))
                }
            }
        let ch: Channel
        do {
            ch = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw ControllerError("the migration proxy could not listen on \(host):\(port) (\(error)): pick another port or free that one", status: 500)
        }
        lock.withLock { server = ch }
        return ch.localAddress?.port ?? port
    }

    public func stop() async {
        let ch = lock.withLock { () -> Channel? in let c = server; server = nil; return c }
        try? await ch?.close()
    }

    /// Where new requests go from now on; returns the previous backend.
    @discardableResult
    public func switchTo(_ backend: Backend) -> Backend? {
        lock.withLock { let old = current; current = backend; return old }
    }

    public var backend: Backend? { lock.withLock { current } }

    /// Requests sent to `backend` whose response has not ended yet.
    public func inFlight(_ backend: Backend) -> Int { lock.withLock { inFlightByBackend[backend] ?? 0 } }

    /// Responses `backend` completed through the proxy.
    public func served(_ backend: Backend) -> Int { lock.withLock { servedByBackend[backend] ?? 0 } }

    /// Waits until no request is in flight to `backend` (polled every millisecond); false when
    /// `timeout` passed first.
    public func waitDrained(_ backend: Backend, timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while inFlight(backend) > 0 {
            if clock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    /// Picks the backend for a new request and counts it in flight, in one step, so a switch
    /// cannot fall between the choice and the count.
    fileprivate func acquire() -> Backend? {
        lock.withLock {
            guard let b = current else { return nil }
            inFlightByBackend[b, default: 0] += 1
            return b
        }
    }

    fileprivate func release(_ b: Backend, served: Bool) {
        lock.withLock {
            inFlightByBackend[b, default: 1] -= 1
            if served { servedByBackend[b, default: 0] += 1 }
        }
    }
}

/// One client connection: forwards each request to the backend chosen when its head arrived.
private final class FrontHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let proxy: SwitchableProxy
    private var context: ChannelHandlerContext?
    /// The connection to the backend of the current (or previous) request, and which backend it is.
    private var upstream: Channel?
    private var upstreamBackend: SwitchableProxy.Backend?
    private var connecting = false
    private var pending: [HTTPClientRequestPart] = []
    /// The request being served: its backend (counted in flight) and whether the client keeps the connection.
    private var active: SwitchableProxy.Backend?
    private var clientKeepAlive = true
    private var responseStarted = false

    init(proxy: SwitchableProxy) { self.proxy = proxy }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            guard let b = proxy.acquire() else {
                respondError(502, "the migration proxy has no backend yet")
                return
            }
            active = b
            responseStarted = false
            clientKeepAlive = head.isKeepAlive
            head.headers.remove(name: "Connection")
            head.headers.remove(name: "Proxy-Connection")
            if upstreamBackend != b {
                // A switch happened since this connection's previous request: leave the old backend.
                // Detach first: on this event loop the close runs at once, and the old connection's
                // end must not be taken for the end of the request just begun.
                let old = upstream
                upstream = nil
                old?.close(promise: nil)
                upstreamBackend = b
                connect(to: b, context: context)
            } else if upstream == nil && !connecting {
                connect(to: b, context: context)
            }
            send(.head(head))
        case .body(let buffer):
            send(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            send(.end(trailers))
        }
    }

    private func send(_ part: HTTPClientRequestPart) {
        if let up = upstream, !connecting {
            if case .end = part { up.writeAndFlush(part, promise: nil) } else { up.write(part, promise: nil) }
        } else {
            pending.append(part)
        }
    }

    private func connect(to b: SwitchableProxy.Backend, context: ChannelHandlerContext) {
        connecting = true
        let loop = context.eventLoop
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(BackHandler(front: self))
                }
            }
            .connect(host: b.host, port: b.port)
            .whenComplete { [self] result in
                loop.assertInEventLoop()
                connecting = false
                switch result {
                case .success(let ch):
                    guard upstreamBackend == b, self.context != nil else { ch.close(promise: nil); return }
                    upstream = ch
                    let parts = pending
                    pending = []
                    for p in parts { ch.write(p, promise: nil) }
                    ch.flush()
                case .failure(let error):
                    pending = []
                    upstreamBackend = nil
                    respondError(502, "cannot connect to backend \(b): \(error)")
                }
            }
    }

    // Called by BackHandler on the same event loop.
    func responsePart(_ part: HTTPClientResponsePart, from channel: Channel) {
        guard let context, channel === upstream else { return }
        switch part {
        case .head(var head):
            responseStarted = true
            head.headers.remove(name: "Connection")
            if !clientKeepAlive { head.headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            finish(served: true)
            let keep = clientKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).whenComplete { _ in
                if !keep { context.close(promise: nil) }
            }
        }
    }

    func upstreamClosed(_ channel: Channel, error: Error?) {
        guard channel === upstream else { return }
        upstream = nil
        upstreamBackend = nil
        if let b = active {
            if responseStarted {
                finish(served: false)
                context?.close(promise: nil)
            } else {
                respondError(502, "backend \(b) closed the connection before answering" + (error.map { " (\($0))" } ?? ""))
            }
        }
    }

    private func finish(served: Bool) {
        if let b = active { proxy.release(b, served: served) }
        active = nil
    }

    private func respondError(_ status: Int, _ reason: String) {
        guard let context else { return }
        finish(served: false)
        var headers = HTTPHeaders()
        let body = "migration proxy: \(reason)\n"
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Edgemeter-Proxy-Error", value: reason.replacingOccurrences(of: "\n", with: " "))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let b = active { proxy.release(b, served: false); active = nil }
        let old = upstream
        upstream = nil
        old?.close(promise: nil)
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The backend side of one client connection: hands response parts to its `FrontHandler`.
private final class BackHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let front: FrontHandler
    private var error: Error?
    init(front: FrontHandler) { self.front = front }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        front.responsePart(unwrapInboundIn(data), from: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.upstreamClosed(context.channel, error: error)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.error = error
        context.close(promise: nil)
    }
}
