import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import EdgeMeterCore
import EdgeMeterSystem

/// A plain-HTTP target parsed from a URL (`http://host:port/path?query`). edgemeter measures
/// HTTP/1.1 without TLS, so `https://` is rejected with a message saying so.
public struct HTTPTarget: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Path and query, starting with `/`.
    public var path: String

    public init(host: String, port: Int, path: String) { (self.host, self.port, self.path) = (host, port, path) }

    public init(url text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.lowercased().hasPrefix("https://") {
            throw HTTPClientError.badURL("\(t): https is not supported (edgemeter measures plain HTTP/1.1); use an http:// URL")
        }
        var rest = Substring(t)
        if rest.lowercased().hasPrefix("http://") { rest = rest.dropFirst("http://".count) }
        else if rest.contains("://") {
            throw HTTPClientError.badURL("\(t): only http:// URLs are supported; write it like http://127.0.0.1:50000/calculate")
        }
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        var host: Substring
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw HTTPClientError.badURL("\(t): unterminated IPv6 literal; write it like http://[::1]:8080/")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    throw HTTPClientError.badURL("\(t): the port must be a number from 1 to 65535")
                }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw HTTPClientError.badURL("\(t): the port must be a number from 1 to 65535")
            }
            port = p
        } else {
            host = authority
        }
        guard !host.isEmpty else {
            throw HTTPClientError.badURL("\(t): no host; write the URL like http://127.0.0.1:50000/calculate")
        }
        self.host = String(host)
        self.port = port
        self.path = path
    }

    /// The `Host` header value.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? h : "\(h):\(port)"
    }

    public var description: String { "http://\(hostHeader)\(path)" }
}

/// What an HTTP request sends.
public struct HTTPRequestSpec: Sendable {
    public var method: String
    public var path: String
    /// Extra headers; `Host`, `Content-Length` and `Connection` are added by the client.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String = "GET", path: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        (self.method, self.path, self.headers, self.body) = (method, path, headers, body)
    }

    /// The header lines sent: `Host` first, then `headers` in order, then `Content-Length` (whenever
    /// there is a body, and for POST/PUT/PATCH; replacing any given) and `Connection: close` when
    /// not `keepAlive` (replacing any given).
    public func headerLines(host: String, keepAlive: Bool) -> [(String, String)] {
        var lines: [(String, String)] = [("Host", host)] + headers
        func replaceOrAdd(_ name: String, _ value: String) {
            lines.removeAll { $0.0.caseInsensitiveCompare(name) == .orderedSame }
            lines.append((name, value))
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { replaceOrAdd("Content-Length", String(body.count)) }
        if !keepAlive { replaceOrAdd("Connection", "close") }
        return lines
    }

    /// The request as wire bytes: what the client and the load generator write for every request.
    public func wireBytes(host: String, keepAlive: Bool = true) -> ByteBuffer {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (k, v) in headerLines(host: host, keepAlive: keepAlive) { text += "\(k): \(v)\r\n" }
        text += "\r\n"
        var buf = ByteBuffer(string: text)
        buf.writeBytes(body)
        return buf
    }
}

/// A received response.
public struct HTTPResponseInfo: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: ByteBuffer
    /// Bytes received on the socket for this response (status line, headers and body).
    public var wireBytes: Int
    /// Whether the server keeps the connection open after this response (HTTP/1.1 default,
    /// `Connection: close` or HTTP/1.0 without keep-alive says no).
    public var keepAlive: Bool = true
    /// The reason phrase of the status line (`Not Found`), when the server sent one.
    public var reasonPhrase: String = ""

    /// `404 Not Found` (or only the code when there is no reason phrase).
    public var statusLine: String { reasonPhrase.isEmpty ? String(status) : "\(status) \(reasonPhrase)" }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
    public var bodyText: String { String(buffer: body) }
}

/// Failures of one HTTP exchange, classified as a sample status.
public enum HTTPClientError: Error, CustomStringConvertible, Equatable {
    case badURL(String)
    case resolve(String)
    case refused(String)
    case unreachable(String)
    case connectTimeout(String)
    case timeout(String)
    case reset(String)
    case protocolError(String)
    case other(String)

    public var description: String {
        switch self {
        case .badURL(let s), .resolve(let s), .refused(let s), .unreachable(let s), .connectTimeout(let s),
             .timeout(let s), .reset(let s), .protocolError(let s), .other(let s):
            return s
        }
    }

    public var sampleStatus: SampleStatus {
        switch self {
        case .refused: return .refused
        case .unreachable: return .unreachable
        case .connectTimeout, .timeout: return .timeout
        default: return .error
        }
    }

    /// Maps a NIO/socket error raised while connecting.
    public static func connectFailure(_ error: Error, target: String) -> HTTPClientError {
        if let e = error as? HTTPClientError { return e }
        if let e = error as? TimedTCPConnect.Failure {
            if e.timedOut { return .connectTimeout("no TCP connection to \(target) within the timeout (no SYN-ACK); check that the host is up and the port is not filtered, or raise --timeout") }
            switch e.errnoCode {
            case ECONNREFUSED: return .refused("connection refused by \(target): is the server running and listening on that port?")
            case EHOSTUNREACH, ENETUNREACH: return .unreachable("\(target) is unreachable (\(errnoText(e.errnoCode))): check the address and routes")
            case ETIMEDOUT: return .connectTimeout("connect to \(target) timed out in the kernel: check that the host is up and the port is not filtered")
            default: return .other("connect to \(target) failed: \(errnoText(e.errnoCode))")
            }
        }
        if let e = error as? ChannelError, case .connectTimeout(let t) = e {
            return .connectTimeout("no TCP connection to \(target) within \(t.nanoseconds / 1_000_000) ms")
        }
        if let e = error as? NIOConnectionError, let first = e.connectionErrors.first {
            return connectFailure(first.error, target: target)
        }
        if let e = error as? IOError {
            switch e.errnoCode {
            case ECONNREFUSED: return .refused("connection refused by \(target): is the server running and listening on that port?")
            case EHOSTUNREACH, ENETUNREACH: return .unreachable("\(target) is unreachable (\(e.description)): check the address and routes")
            case ETIMEDOUT: return .connectTimeout("connect to \(target) timed out")
            default: return .other("connect to \(target) failed: \(errnoText(e.errnoCode))")
            }
        }
        return .other("connect to \(target) failed: \(describe(error))")
    }
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC via NIODeadline).
@inline(__always) public func monotonicNanos() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

/// `strerror` text for an errno value.
func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// A TCP connect timed as `tcping` times it (`TimedTCPConnect`) on a socket of its own, handed to
/// NIO afterwards: excludes name resolution and any channel setup. Blocking: call it off the event loops.
enum TimedConnect {
    static func connect(to address: SocketAddress, timeoutNanoseconds: Int64) throws -> (fd: CInt, nanoseconds: Int64, localPort: Int?) {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        address.withSockAddr { sa, len in
            withUnsafeMutableBytes(of: &storage) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(len, dst.count))) }
            length = socklen_t(len)
        }
        switch TimedTCPConnect.open(storage: storage, length: length, timeoutNanoseconds: timeoutNanoseconds) {
        case .success(let c): return (c.fd, c.nanoseconds, TimedTCPConnect.localPort(c.fd).map(Int.init))
        case .failure(let f): throw f
        }
    }
}

/// A NIO or Foundation error as a short phrase for a message (no type names, no Swift syntax).
public func describe(_ error: Error) -> String {
    if let e = error as? HTTPClientError { return e.description }
    if let e = error as? IOError { return errnoText(e.errnoCode) }
    if let e = error as? ChannelError {
        switch e {
        case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return "the connection was already closed"
        case .eof: return "the peer closed the connection"
        default: return "channel error (\(e))"
        }
    }
    return "\(error)"
}

/// The threads HTTP connections make their sockets on, when not NIO's shared ones: `threadPool`
/// runs name lookups and the blocking TCP connect (the thread that calls `socket()`), `group`
/// runs the connection afterwards. A thread inherits the network namespace of the thread that
/// creates it, so threads created on a thread inside a namespace (`NamespaceThread.run(in:)`)
/// make every socket of the connections in that namespace. Set for a task with
/// `HTTPSocketThreads.$current.withValue`; `shutdown()` after the last connection closed.
public final class HTTPSocketThreads: Sendable {
    @TaskLocal public static var current: HTTPSocketThreads?

    public let threadPool: NIOThreadPool
    public let group: MultiThreadedEventLoopGroup

    /// Starts `threads` pool threads and `threads` event loops now, on the calling thread.
    public init(threads: Int = 1) {
        threadPool = NIOThreadPool(numberOfThreads: threads)
        threadPool.start()
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    public func shutdown() async {
        try? await group.shutdownGracefully()
        try? await threadPool.shutdownGracefully()
    }
}

/// One HTTP/1.1 keep-alive connection on swift-nio with timestamps for every phase. Requests are
/// written as `HTTPRequestSpec.wireBytes`; responses are framed by `HTTP1Parser` (the parser the
/// load generator and the wire analyzer use), in order, so requests may also be pipelined (send
/// again before the previous answer arrived).
public final class HTTPConnection: @unchecked Sendable {
    public let channel: Channel
    /// The connection's response reader (its `sentAt`/`firstByteAt` describe the latest request).
    public let collector: HTTPResponseReader
    let target: String

    init(channel: Channel, collector: HTTPResponseReader, target: String) { (self.channel, self.collector, self.target) = (channel, collector, target) }

    /// Resolves `host` with getaddrinfo on NIO's thread pool (never on an event loop).
    public static func resolve(host: String, port: Int) async throws -> SocketAddress {
        // An IP literal needs no lookup.
        if let literal = try? SocketAddress(ipAddress: host, port: port) { return literal }
        do {
            return try await (HTTPSocketThreads.current?.threadPool ?? NIOThreadPool.singleton).runIfActive {
                try SocketAddress.makeAddressResolvingHost(host, port: port)
            }
        } catch {
            throw resolveFailure(error, host: host)
        }
    }

    /// A failed name lookup as a sentence with the next step (not NIO's `SocketAddressError`).
    public static func resolveFailure(_ error: Error, host: String) -> HTTPClientError {
        if error is SocketAddressError.UnknownHost {
            return .resolve("cannot resolve \(host): no address found for that name; check the spelling, "
                            + "/etc/hosts and the DNS settings (/etc/resolv.conf), or give an IP address")
        }
        if let e = error as? SocketAddressError, case .unknown = e {
            return .resolve("cannot resolve \(host): no address found for that name; check the spelling, "
                            + "/etc/hosts and the DNS settings (/etc/resolv.conf), or give an IP address")
        }
        return .resolve("cannot resolve \(host) (\(describe(error))); check the host name or give an IP address")
    }

    /// Connects. The TCP connect is done as `tcping` does it (`TimedTCPConnect`), then the connected
    /// socket is handed to NIO (`ClientBootstrap.withConnectedSocket`), so `connectNanoseconds`
    /// covers the handshake only, not NIO's channel setup. The socket is made on
    /// `HTTPSocketThreads.current`'s pool when the task has one (in its namespace), else on NIO's
    /// shared pool; the channel runs on `group`, else that one's group, else NIO's shared group.
    public static func connect(to address: SocketAddress, targetName: String, timeout: TimeAmount,
                               group: EventLoopGroup? = nil) async throws -> HTTPConnection {
        let threads = HTTPSocketThreads.current
        let group: EventLoopGroup = group ?? threads?.group ?? MultiThreadedEventLoopGroup.singleton
        let reader = HTTPResponseReader()
        let timed: (fd: CInt, nanoseconds: Int64, localPort: Int?)
        do {
            // Blocking (connect + poll): on NIO's thread pool, never on an event loop.
            timed = try await (threads?.threadPool ?? NIOThreadPool.singleton).runIfActive {
                try TimedConnect.connect(to: address, timeoutNanoseconds: max(1, timeout.nanoseconds))
            }
        } catch {
            throw HTTPClientError.connectFailure(error, target: targetName)
        }
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(reader)
                }
            }
        do {
            let ch = try await bootstrap.withConnectedSocket(timed.fd).get()
            let c = HTTPConnection(channel: ch, collector: reader, target: targetName)
            c.connectNanoseconds = timed.nanoseconds
            c.localPort = timed.localPort
            return c
        } catch {
            throw HTTPClientError.other("setting up the connection to \(targetName) failed after the TCP handshake (\(describe(error))); try again")
        }
    }

    /// CLOCK_MONOTONIC nanoseconds from just before `connect()` until the socket was writable with
    /// no error (the handshake completed): the same span as `tcping`'s connect.
    public private(set) var connectNanoseconds: Int64 = 0
    /// The client port of the connection.
    public private(set) var localPort: Int?

    /// Sends one request and waits for its whole response, at most `timeout` (a timeout closes the
    /// connection). Returns the response and its three CLOCK_MONOTONIC instants.
    public func send(_ request: HTTPRequestSpec, host: String, keepAlive: Bool = true,
                     timeout: TimeAmount) async throws -> HTTPTimedResponse {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: HTTPTimedResponse.self)
        let bytes = request.wireBytes(host: host, keepAlive: keepAlive)
        let toHEAD = request.method == "HEAD"
        let channel = self.channel
        let reader = self.collector
        let target = self.target
        loop.execute {
            reader.send(bytes, toHEAD: toHEAD, promise: promise, on: channel, timeout: timeout, target: target)
        }
        return try await promise.futureResult.get()
    }

    public func close() {
        channel.close(promise: nil)
    }
}

/// One response of `HTTPConnection.send` and three CLOCK_MONOTONIC instants (`monotonicNanos`) of its exchange.
public struct HTTPTimedResponse: Sendable {
    public var response: HTTPResponseInfo
    /// Just before the request was written to the socket.
    public var sentAt: UInt64
    /// When the read that held the response's first byte reached the client.
    public var firstByteAt: UInt64
    /// When the read that completed the response reached the client.
    public var endAt: UInt64
}

/// Reads the responses of one connection with `HTTP1Parser` and completes the requests waiting for
/// them, first come first served. All state lives on the channel's event loop.
public final class HTTPResponseReader: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer

    /// A request written and not answered yet.
    struct Pending {
        var id: Int
        var promise: EventLoopPromise<HTTPTimedResponse>
        var sentAt: UInt64
        var firstByteAt: UInt64 = 0
        /// Stream offset of the response's first byte (interim 1xx responses included).
        var firstOffset = -1
        var head: HTTPHead?
        var body = ByteBuffer()
        /// Inside an interim (1xx) response, which is skipped.
        var inInterim = false
        var timeoutTask: Scheduled<Void>?
    }

    /// The latest request: CLOCK_MONOTONIC instant it was written, and when its response's first
    /// byte arrived (0: not yet).
    public private(set) var sentAt: UInt64 = 0
    public private(set) var firstByteAt: UInt64 = 0

    var parser = HTTP1Parser(kind: .response)
    var pending: [Pending] = []
    var nextID = 0

    public init() {}

    /// Bytes that belong to no request (a response nobody asked for).
    struct Unsolicited: Error {}

    func send(_ bytes: ByteBuffer, toHEAD: Bool, promise: EventLoopPromise<HTTPTimedResponse>, on channel: Channel, timeout: TimeAmount, target: String) {
        guard channel.isActive else {
            promise.fail(HTTPClientError.reset("\(target) closed the connection before the request was sent"))
            return
        }
        if let failure = parser.failure {
            promise.fail(Self.framingError(failure))
            return
        }
        nextID += 1
        let id = nextID
        parser.expectResponse(toHEAD: toHEAD)
        let now = monotonicNanos()
        sentAt = now
        firstByteAt = 0
        pending.append(Pending(id: id, promise: promise, sentAt: now))
        channel.writeAndFlush(bytes, promise: nil)
        let task = channel.eventLoop.scheduleTask(in: timeout) { [weak self] in
            self?.fail(id: id, .timeout("no complete response from \(target) within \(timeout.nanoseconds / 1_000_000) ms"))
            channel.close(promise: nil)
        }
        if let i = pending.firstIndex(where: { $0.id == id }) { pending[i].timeoutTask = task }
    }

    static func framingError(_ e: HTTPParseError) -> HTTPClientError {
        .protocolError("the response is not valid HTTP/1.1 (\(e.message), at byte \(e.offset)); is this port an HTTP server (not HTTPS or another protocol)?")
    }

    func fail(id: Int, _ error: HTTPClientError) {
        guard let i = pending.firstIndex(where: { $0.id == id }) else { return }
        let p = pending.remove(at: i)
        p.timeoutTask?.cancel()
        p.promise.fail(error)
    }

    func failAll(_ error: HTTPClientError) {
        let all = pending
        pending = []
        for p in all {
            p.timeoutTask?.cancel()
            p.promise.fail(error)
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let now = monotonicNanos()
        do {
            try buffer.withUnsafeReadableBytes { raw in
                try parser.feed(raw) { event in try self.handle(event, raw: raw, now: now) }
            }
        } catch let e as HTTPParseError {
            failAll(Self.framingError(e))
            context.close(promise: nil)
        } catch {
            failAll(.protocolError("the server sent a response before any request was sent (or more responses than requests); "
                                   + "is this port an HTTP server?"))
            context.close(promise: nil)
        }
    }

    func handle(_ event: HTTP1Parser.Event, raw: UnsafeRawBufferPointer, now: UInt64) throws {
        guard !pending.isEmpty else { throw Unsolicited() }
        switch event {
        case .start(let offset):
            if pending[0].firstOffset < 0 {
                pending[0].firstOffset = offset
                pending[0].firstByteAt = now
                if pending[0].id == nextID { firstByteAt = now }
            }
        case .head(let h):
            if (100..<200).contains(h.status) && h.status != 101 {
                pending[0].inInterim = true
            } else {
                pending[0].head = h
            }
        case .body(let range, _):
            pending[0].body.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range]))
        case .end(let endOffset):
            if pending[0].inInterim {
                pending[0].inInterim = false
                return
            }
            let p = pending.removeFirst()
            p.timeoutTask?.cancel()
            let h = p.head ?? HTTPHead()
            let response = HTTPResponseInfo(status: h.status, headers: h.headers.map { ($0.name, $0.value) }, body: p.body,
                                            wireBytes: endOffset - p.firstOffset, keepAlive: h.keepAlive && h.status != 101,
                                            reasonPhrase: h.reason)
            p.promise.succeed(HTTPTimedResponse(response: response, sentAt: p.sentAt, firstByteAt: p.firstByteAt, endAt: now))
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        // A body delimited by the connection's close ends here.
        if parser.bodyEndsAtClose && !pending.isEmpty {
            let now = monotonicNanos()
            try? parser.finishStream { event in try self.handle(event, raw: UnsafeRawBufferPointer(start: nil, count: 0), now: now) }
        }
        failAll(.reset("the server closed the connection before the response was complete"))
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, io.errnoCode == ECONNRESET {
            failAll(.reset("connection reset by the server"))
        } else {
            failAll(.other("the exchange failed: \(describe(error))"))
        }
        context.close(promise: nil)
    }
}
