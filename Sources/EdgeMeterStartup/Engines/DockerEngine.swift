import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where dockerd listens: `DOCKER_HOST` (`unix:///path` or `tcp://host:port`) or the default socket.
public enum DockerEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public static let defaultSocket = "/var/run/docker.sock"

    /// Reads `DOCKER_HOST` from `environment`; unset or empty means the default unix socket.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DockerEndpoint {
        guard let value = environment["DOCKER_HOST"], !value.isEmpty else { return .unix(path: defaultSocket) }
        if value.hasPrefix("unix://") {
            let path = String(value.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw StartupError("DOCKER_HOST=\(value) is not an absolute unix socket path: write it as unix:///var/run/docker.sock")
            }
            return .unix(path: path)
        }
        if value.hasPrefix("tcp://") {
            let rest = String(value.dropFirst("tcp://".count))
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw StartupError("DOCKER_HOST=\(value) must look like tcp://HOST:PORT (TLS is not supported)")
            }
            return .tcp(host: String(parts[0]), port: port)
        }
        throw StartupError("DOCKER_HOST=\(value) is not supported: use unix:///path/to/docker.sock or tcp://HOST:PORT")
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port): return "tcp://\(host):\(port)"
        }
    }
}

/// A minimal Docker Engine API client: HTTP/1.1 on swift-nio over the unix socket (or TCP), one
/// connection per request, a `Host` header always sent (dockerd answers `400 missing required Host
/// header` without one). No TLS, no registry access.
public final class DockerAPIClient: @unchecked Sendable {
    public let endpoint: DockerEndpoint
    /// API version prefix; 1.41 is what Debian 12's docker.io speaks and newer daemons still accept.
    public let apiVersion: String
    private let group: EventLoopGroup
    private let counterLock = NSLock()
    private var sent = 0

    /// How many requests this client has sent (each `request` and each opened stream counts one,
    /// whatever its outcome). Lets tests prove which Engine API calls fall inside a timed phase.
    public var requestCount: Int { counterLock.withLock { sent } }

    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The body parsed as JSON (`nil` when empty or not JSON).
        public var json: Any? {
            guard !body.isEmpty else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        }
        /// dockerd's `{"message": "..."}` error text, or the raw body.
        public var errorMessage: String {
            if let dict = json as? [String: Any], let m = dict["message"] as? String { return m }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    public init(endpoint: DockerEndpoint, apiVersion: String = "1.41", group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = endpoint
        self.apiVersion = apiVersion
        self.group = group
    }

    public convenience init() throws {
        self.init(endpoint: try DockerEndpoint.fromEnvironment())
    }

    /// Sends one request and collects the whole response body.
    public func request(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil,
                        contentType: String = "application/json", timeout: Duration = .seconds(120)) async throws -> Response {
        let collector = BodyCollector()
        let stream = try await open(method, path, body: body, contentType: contentType, timeout: timeout) { chunk in
            collector.append(chunk)
        }
        try await stream.finished.get()
        return Response(status: stream.status, body: collector.bytes)
    }

    /// Sends `value` as a JSON body.
    public func request(_ method: HTTPMethod, _ path: String, json value: Any, timeout: Duration = .seconds(120)) async throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        return try await request(method, path, body: Array(data), timeout: timeout)
    }

    /// A streamed response (`/events`, `/containers/ID/logs?follow=1`): `open` returns once the
    /// response head arrived; body chunks go to the callback on an event-loop thread as they arrive.
    public final class Stream: @unchecked Sendable {
        public let status: Int
        /// Succeeds when the response ends; fails on a connection error.
        public let finished: EventLoopFuture<Void>
        let channel: Channel
        init(status: Int, finished: EventLoopFuture<Void>, channel: Channel) {
            self.status = status
            self.finished = finished
            self.channel = channel
        }
        /// Closes the connection (ends a `follow` stream).
        public func close() {
            channel.close(promise: nil)
        }
    }

    public func open(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
                     timeout: Duration? = nil, onBody: @escaping @Sendable ([UInt8]) -> Void) async throws -> Stream {
        counterLock.withLock { sent += 1 }
        let loop = group.next()
        let headPromise = loop.makePromise(of: HTTPResponseHead.self)
        let endPromise = loop.makePromise(of: Void.self)
        let handler = ResponseHandler(head: headPromise, end: endPromise, onBody: onBody)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: Channel
        do {
            switch endpoint {
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            let e = StartupError.dockerUnreachable(endpoint, detail: "\(error)")
            loop.execute { handler.fail(e) }
            throw e
        }
        if let timeout {
            let task = loop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                handler.fail(StartupError("Docker API \(method) \(path) did not finish within \(timeout): dockerd is overloaded or stuck; see its log (/var/log/dockerd.log)"))
                channel.close(promise: nil)
            }
            endPromise.futureResult.whenComplete { _ in task.cancel() }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "docker")
        headers.add(name: "User-Agent", value: "edgemeter")
        headers.add(name: "Connection", value: "close")
        if let body {
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.count))
        } else if method == .POST {
            headers.add(name: "Content-Length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/v\(apiVersion)\(path)", headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body {
            var buffer = channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let responseHead = try await headPromise.futureResult.get()
        return Stream(status: Int(responseHead.status.code), finished: endPromise.futureResult, channel: channel)
    }

    /// `GET /_ping`: proves the daemon answers; throws the "start dockerd" error otherwise.
    public func ping() async throws {
        let r = try await request(.GET, "/_ping", timeout: .seconds(10))
        guard r.status == 200 else {
            throw StartupError("dockerd at \(endpoint) answered /_ping with HTTP \(r.status): \(r.errorMessage)")
        }
    }
}

/// Percent-encodes a query value (JSON filters, image names).
func queryEscape(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

private final class BodyCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [UInt8] = []
    func append(_ chunk: [UInt8]) { lock.lock(); stored.append(contentsOf: chunk); lock.unlock() }
    var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return stored }
}

private final class ResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let head: EventLoopPromise<HTTPResponseHead>
    private let end: EventLoopPromise<Void>
    private let onBody: @Sendable ([UInt8]) -> Void
    private var headDone = false
    private var endDone = false

    init(head: EventLoopPromise<HTTPResponseHead>, end: EventLoopPromise<Void>, onBody: @escaping @Sendable ([UInt8]) -> Void) {
        self.head = head
        self.end = end
        self.onBody = onBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            if !headDone { headDone = true; head.succeed(h) }
        case .body(var buffer):
            if let bytes = buffer.readBytes(length: buffer.readableBytes), !bytes.isEmpty { onBody(bytes) }
        case .end:
            if !endDone { endDone = true; end.succeed(()) }
            context.close(promise: nil)
        }
    }

    func fail(_ error: Error) {
        if !headDone { headDone = true; head.fail(error) }
        if !endDone { endDone = true; end.fail(error) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A follow stream closed by us ends normally; anything else before `.end` is a failure.
        if headDone && !endDone { endDone = true; end.succeed(()) }
        fail(StartupError("dockerd closed the connection before answering"))
        context.fireChannelInactive()
    }
}
