import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1
import XCTest

/// A real swift-nio HTTP/1.1 server on 127.0.0.1 with an ephemeral port, for probe tests.
/// Routes: `/` → 200 "hello edgemeter"; `/status/NNN` → that status; `/stall-once` → 200 at once,
/// except request number `stallAt` (1-based, counted across all connections) which is answered
/// after `stallMilliseconds`; `/slow` → 200 after 300 ms; `/chunked` → a chunked body in two
/// chunks; `/close` → 200 with `Connection: close`, then the server closes the connection;
/// `/html404` → 404 with a multi-line HTML page (as web servers send).
final class HTTPTestServer: @unchecked Sendable {
    let channel: Channel
    let state: State
    var port: Int { channel.localAddress!.port! }

    final class State: @unchecked Sendable {
        let lock = NSLock()
        var requests = 0
        let stallAt: Int
        let stallMilliseconds: Int64
        init(stallAt: Int, stallMilliseconds: Int64) {
            self.stallAt = stallAt
            self.stallMilliseconds = stallMilliseconds
        }
        func next() -> Int { lock.lock(); defer { lock.unlock() }; requests += 1; return requests }
    }

    static func start(stallAt: Int = 0, stallMilliseconds: Int64 = 500) async throws -> HTTPTestServer {
        let state = State(stallAt: stallAt, stallMilliseconds: stallMilliseconds)
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return HTTPTestServer(channel: ch, state: state)
    }

    init(channel: Channel, state: State) {
        self.channel = channel
        self.state = state
    }

    func stop() async { try? await channel.close() }

    static let html404 = """
    <!DOCTYPE html>
    <html>
    <head><title>Nothing here</title></head>
    <body>
    <h1>Not Found</h1>
    <p>The requested URL was not found on this server. Additionally, a 404 Not Found error was encountered while trying to use an ErrorDocument.</p>
    </body>
    </html>

    """

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: State
        var uri = "/"
        init(state: State) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): uri = h.uri
            case .body: break
            case .end:
                let n = state.next()
                var status = HTTPResponseStatus.ok
                var delay: Int64 = 0
                var text = "hello edgemeter\n"
                if uri == "/html404" {
                    status = .notFound
                    text = HTTPTestServer.html404
                } else if uri.hasPrefix("/status/"), let code = Int(uri.dropFirst("/status/".count)) {
                    status = HTTPResponseStatus(statusCode: code)
                    text = "status \(code)\n"
                } else if uri == "/stall-once", n == state.stallAt {
                    delay = state.stallMilliseconds
                } else if uri == "/slow" {
                    delay = 300
                }
                if uri == "/chunked" {
                    // No Content-Length: NIO frames the body with Transfer-Encoding: chunked.
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "hello ")))), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "chunked edgemeter\n")))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                let close = uri == "/close"
                let respond = {
                    var head = HTTPResponseHead(version: .http1_1, status: status)
                    if close { head.headers.add(name: "Connection", value: "close") }
                    head.headers.add(name: "Content-Length", value: String(text.utf8.count))
                    head.headers.add(name: "Content-Type", value: "text/plain")
                    context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                        if close { context.close(promise: nil) }
                    }
                }
                if delay > 0 {
                    context.eventLoop.scheduleTask(in: .milliseconds(delay)) { respond() }
                } else {
                    respond()
                }
            }
        }
    }
}

final class HTTPTestSupportTests: XCTestCase {
    func testServerAnswers() async throws {
        let server = try await HTTPTestServer.start()
        defer { Task { await server.stop() } }
        XCTAssertGreaterThan(server.port, 0)
    }
}
