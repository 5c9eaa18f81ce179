import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import NIOHTTP1
import EdgeMeterCore

/// A plain-HTTP target parsed from a URL (`http://host:port/path?query`). edgemeter measures
/// HTTP/1.1 without TLS, so `https://` is rejected with a message saying so.
public struct HTTPTarget: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Path and query, starting with `/`.
    public var path: String

    public init(host: String, port: Int, path: String) {
        self.host = host
        self.port = port
        self.path = path
    }

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
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    func head(host: String, keepAlive: Bool) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
        head.headers.add(name: "Host", value: host)
        for (k, v) in headers { head.headers.add(name: k, value: v) }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        }
        if !keepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
        return head
    }

    /// The request as wire bytes (what the load generator writes for every request).
    func wireBytes(host: String) -> ByteBuffer {
        let h = head(host: host, keepAlive: true)
        var text = "\(h.method.rawValue) \(h.uri) HTTP/1.1\r\n"
        for (k, v) in h.headers { text += "\(k): \(v)\r\n" }
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
    static func connectFailure(_ error: Error, target: String) -> HTTPClientError {
        if let e = error as? HTTPClientError { return e }
        if let e = error as? TimedConnect.Failure {
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
@inline(__always) func monotonicNanos() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

/// A TCP connect timed exactly as `tcping` times it (`TimedTCPConnect`, in TCPConnectProbe.swift) on a
/// socket of its own, handed to NIO afterwards: excludes name resolution and any channel setup.
/// Blocking: call it off the event loops.
enum TimedConnect {
    /// Why a timed connect failed: the errno of `connect()`/`SO_ERROR`, or the timeout.
    struct Failure: Error {
        var errnoCode: CInt
        var timedOut: Bool
    }

    static func connect(to address: SocketAddress, timeoutNanoseconds: Int64, targetName: String) throws -> (fd: CInt, nanoseconds: Int64, localPort: Int?) {
        let family = address.protocol.rawValue
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(errnoCode: errno, timedOut: false) }
        var keep = false
        defer { if !keep { close(fd) } }
        var target = SocketAddr(storage: sockaddr_storage(), length: 0)
        address.withSockAddr { sa, len in
            withUnsafeMutableBytes(of: &target.storage) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(len, dst.count))) }
            target.length = socklen_t(len)
        }
        let (t0, t1): (Int64, Int64)
        switch TimedTCPConnect.run(fd: fd, address: target, timeoutNanoseconds: timeoutNanoseconds) {
        case .connected(let start, let end): (t0, t1) = (start, end)
        case .failed(let code): throw Failure(errnoCode: code, timedOut: false)
        case .timedOut: throw Failure(errnoCode: ETIMEDOUT, timedOut: true)
        }
        let port = TimedTCPConnect.localPort(fd).map(Int.init)
        keep = true
        return (fd, t1 - t0, port)
    }
}

/// A NIO or Foundation error as a short phrase for a message (no type names, no Swift syntax).
func describe(_ error: Error) -> String {
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

/// One HTTP/1.1 keep-alive connection on swift-nio NIOHTTP1 with timestamps for every phase.
/// Requests go one at a time (no pipelining).
public final class HTTPConnection: @unchecked Sendable {
    public let channel: Channel
    let collector: HTTPExchangeHandler
    let target: String

    init(channel: Channel, collector: HTTPExchangeHandler, target: String) {
        self.channel = channel
        self.collector = collector
        self.target = target
    }

    /// Resolves `host` with getaddrinfo on NIO's thread pool (never on an event loop).
    public static func resolve(host: String, port: Int) async throws -> SocketAddress {
        // An IP literal needs no lookup.
        if let literal = try? SocketAddress(ipAddress: host, port: port) { return literal }
        do {
            return try await NIOThreadPool.singleton.runIfActive {
                try SocketAddress.makeAddressResolvingHost(host, port: port)
            }
        } catch {
            throw resolveFailure(error, host: host)
        }
    }

    /// A failed name lookup as a sentence with the next step (not NIO's `SocketAddressError`).
    static func resolveFailure(_ error: Error, host: String) -> HTTPClientError {
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

    /// Connects. The TCP connect is done as `tcping` does it (`TimedConnect`), then the connected
    /// socket is handed to NIO (`ClientBootstrap.withConnectedSocket`), so `connectNanoseconds`
    /// covers the handshake only, not NIO's channel setup.
    public static func connect(to address: SocketAddress, targetName: String, timeout: TimeAmount,
                               group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> HTTPConnection {
        let collector = HTTPExchangeHandler()
        let stamp = FirstByteStamp(collector: collector)
        let timed: (fd: CInt, nanoseconds: Int64, localPort: Int?)
        do {
            // Blocking (connect + poll): on NIO's thread pool, never on an event loop.
            timed = try await NIOThreadPool.singleton.runIfActive {
                try TimedConnect.connect(to: address, timeoutNanoseconds: max(1, timeout.nanoseconds), targetName: targetName)
            }
        } catch {
            throw HTTPClientError.connectFailure(error, target: targetName)
        }
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(stamp)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
        do {
            let ch = try await bootstrap.withConnectedSocket(timed.fd).get()
            let c = HTTPConnection(channel: ch, collector: collector, target: targetName)
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

    /// Sends one request and waits for the whole response, at most `timeout`.
    /// Returns the response, the monotonic time the request was handed to the socket, the time the
    /// first response byte was read and the time the last byte was read.
    public func send(_ request: HTTPRequestSpec, host: String, keepAlive: Bool = true,
                     timeout: TimeAmount) async throws -> (response: HTTPResponseInfo, sentAt: UInt64, firstByteAt: UInt64, endAt: UInt64) {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: HTTPExchangeHandler.Outcome.self)
        let head = request.head(host: host, keepAlive: keepAlive)
        let body = request.body
        let channel = self.channel
        let collector = self.collector
        let target = self.target
        loop.execute {
            collector.begin(promise: promise)
            guard channel.isActive else {
                collector.fail(.reset("\(target) closed the connection before the request was sent"))
                return
            }
            collector.sentAt = monotonicNanos()
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            collector.timeoutTask = loop.scheduleTask(in: timeout) {
                collector.fail(.timeout("no complete response from \(target) within \(timeout.nanoseconds / 1_000_000) ms"))
                channel.close(promise: nil)
            }
        }
        let o = try await promise.futureResult.get()
        return (o.response, o.sentAt, o.firstByteAt, o.endAt)
    }

    public func close() {
        channel.close(promise: nil)
    }
}

/// Notes when the first byte of each response arrives (before the HTTP decoder sees it).
final class FirstByteStamp: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let collector: HTTPExchangeHandler
    init(collector: HTTPExchangeHandler) { self.collector = collector }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buf = unwrapInboundIn(data)
        if collector.waitingForFirstByte {
            collector.firstByteAt = monotonicNanos()
            collector.waitingForFirstByte = false
        }
        collector.wireBytes += buf.readableBytes
        context.fireChannelRead(data)
    }
}

/// Collects one response; all state lives on the channel's event loop.
final class HTTPExchangeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    struct Outcome: Sendable {
        var response: HTTPResponseInfo
        var sentAt: UInt64
        var firstByteAt: UInt64
        var endAt: UInt64
    }

    var promise: EventLoopPromise<Outcome>?
    var timeoutTask: Scheduled<Void>?
    var sentAt: UInt64 = 0
    var firstByteAt: UInt64 = 0
    var waitingForFirstByte = false
    var wireBytes = 0
    private var status = 0
    private var reasonPhrase = ""
    private var keepAlive = true
    private var headers: [(String, String)] = []
    private var body = ByteBuffer()

    func begin(promise: EventLoopPromise<Outcome>) {
        self.promise = promise
        waitingForFirstByte = true
        wireBytes = 0
        firstByteAt = 0
        status = 0
        headers = []
        body.clear()
    }

    func fail(_ error: HTTPClientError) {
        timeoutTask?.cancel(); timeoutTask = nil
        let p = promise
        promise = nil
        p?.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            status = Int(h.status.code)
            reasonPhrase = h.status.reasonPhrase
            keepAlive = h.isKeepAlive
            headers = h.headers.map { ($0.name, $0.value) }
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            let end = monotonicNanos()
            timeoutTask?.cancel(); timeoutTask = nil
            let p = promise
            promise = nil
            p?.succeed(Outcome(response: HTTPResponseInfo(status: status, headers: headers, body: body, wireBytes: wireBytes, keepAlive: keepAlive,
                                                          reasonPhrase: reasonPhrase),
                               sentAt: sentAt, firstByteAt: firstByteAt, endAt: end))
        }
    }

    /// A parser error in words ("invalid status line"), not its Swift name.
    static func parserProblem(_ error: Error) -> String {
        var name = "\(error)"
        if let dot = name.lastIndex(of: ".") { name = String(name[name.index(after: dot)...]) }
        if let paren = name.firstIndex(of: "(") { name = String(name[..<paren]) }
        var words = ""
        for c in name {
            if c.isUppercase && !words.isEmpty { words += " " }
            words += c.lowercased()
        }
        return words.isEmpty ? "unparseable" : words
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.reset("the server closed the connection before the response was complete"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, io.errnoCode == ECONNRESET {
            fail(.reset("connection reset by the server"))
        } else if error is HTTPParserError || error is NIOHTTPDecoderError {
            fail(.protocolError("the response is not valid HTTP/1.1 (\(Self.parserProblem(error))); is this port an HTTP server (not HTTPS or another protocol)?"))
        } else {
            fail(.other("the exchange failed: \(describe(error))"))
        }
        context.close(promise: nil)
    }
}
