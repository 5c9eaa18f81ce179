import Foundation
import NIOCore
import NIOPosix
import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP

/// A raw TCP server on 127.0.0.1 (ephemeral port) that answers each request head with canned
/// bytes chosen by the request's path, written one byte per flush when the path starts with
/// `/bytewise`, so the load generator's framing meets exactly the wire forms it must handle.
final class RawHTTPServer: @unchecked Sendable {
    let channel: Channel
    var port: Int { channel.localAddress!.port! }

    static let responses: [String: (bytes: String, closeAfter: Bool)] = [
        "/head": ("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false),
        "/interim": ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nafter interim!", false),
        "/until-close": ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody delimited by the close", true),
        "/not-http": ("HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n", false),
        // Larger than the epoll engine's 64 KiB read buffer (several full reads per response),
        // with the marker the test looks for at the very end of the body.
        "/large": ("HTTP/1.1 200 OK\r\nContent-Length: 200011\r\n\r\n" + String(repeating: "x", count: 200_000) + "tail-marker", false),
        "/large-until-close": ("HTTP/1.0 200 OK\r\n\r\n" + String(repeating: "y", count: 150_000) + "tail-marker", true),
        "/bytewise": ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n6;x=y\r\nbyte b\r\n2\r\ny \r\n4\r\nbyte\r\n0\r\nTrailer: t\r\n\r\n", false),
    ]

    static func start() async throws -> RawHTTPServer {
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawHTTPServer(channel: ch)
    }

    init(channel: Channel) { self.channel = channel }
    func stop() async { try? await channel.close() }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var pending = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buf = unwrapInboundIn(data)
            pending += buf.readString(length: buf.readableBytes) ?? ""
            while let end = pending.range(of: "\r\n\r\n") {
                let head = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
                guard let (text, close) = RawHTTPServer.responses[path] else { context.close(promise: nil); return }
                if path.hasPrefix("/bytewise") {
                    for b in text.utf8 { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [b])), promise: nil) }
                } else {
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                }
                if close { context.close(promise: nil); return }
            }
        }
    }
}

/// The load generator frames responses with HTTP1Parser: HEAD, interim 1xx, bodies delimited by
/// the close, bytes that are not HTTP, responses arriving one byte at a time.
final class LoadGeneratorFramingTests: XCTestCase {
    func run(_ server: RawHTTPServer, _ path: String, method: String = "GET", expectedBody: String? = nil,
             requests: Int = 40) async throws -> LoadResult {
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)\(path)")
        var o = LoadOptions(request: HTTPRequestSpec(method: method, path: path), connections: 2, requestCount: requests,
                            timeout: .milliseconds(500))
        o.threads = 1
        o.expectedBody = expectedBody
        return try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
    }

    func testHEADResponseEndsWithItsHeadWhateverItsContentLength() async throws {
        let server = try await RawHTTPServer.start()
        let r = try await run(server, "/head", method: "HEAD")
        await server.stop()
        XCTAssertEqual(r.responses, 40)
        XCTAssertEqual(r.totalErrors, 0, "waiting for 1234 body bytes would time out: \(r.errors)")
        // The same bytes answering a GET leave the response incomplete: every request times out.
        let server2 = try await RawHTTPServer.start()
        let g = try await run(server2, "/head", requests: 4)
        await server2.stop()
        XCTAssertEqual(g.responses, 0)
        XCTAssertEqual(g.errors[.timeout], 4, "\(g.errors)")
    }

    func testInterimResponseIsSkippedAndTheFinalOneCounts() async throws {
        let server = try await RawHTTPServer.start()
        let r = try await run(server, "/interim", expectedBody: "after interim!")
        await server.stop()
        XCTAssertEqual(r.responses, 40)
        XCTAssertEqual(r.statusCounts, [200: 40], "the 100 Continue is not a response of its own")
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(r.bytesRead, 40 * RawHTTPServer.responses["/interim"]!.bytes.utf8.count)
    }

    func testBodyDelimitedByTheCloseEndsAtTheClose() async throws {
        let server = try await RawHTTPServer.start()
        let r = try await run(server, "/until-close", expectedBody: "delimited by the close", requests: 20)
        await server.stop()
        XCTAssertEqual(r.responses, 20)
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        let server2 = try await RawHTTPServer.start()
        let bad = try await run(server2, "/until-close", expectedBody: "absent", requests: 20)
        await server2.stop()
        XCTAssertEqual(bad.errors[.body], 20, "the body up to the close is what is matched: \(bad.errors)")
    }

    func testBytesThatAreNotHTTPAreBodyErrors() async throws {
        let server = try await RawHTTPServer.start()
        let r = try await run(server, "/not-http", requests: 10)
        await server.stop()
        XCTAssertEqual(r.responses, 0)
        XCTAssertEqual(r.errors[.body], 10, "\(r.errors)")
        XCTAssertEqual(r.errors[.timeout] ?? 0, 0)
    }

    /// Responses longer than the read buffer: the edge-triggered epoll engine reads each socket
    /// until it is empty (one event for all the bytes already there), through to the close when
    /// the body is delimited by it; a read that stopped early would leave the end unread until the
    /// timeout (a `timeout` error, a body error for the marker at the end).
    func testResponsesLargerThanTheReadBufferAreReadWhole() async throws {
        for path in ["/large", "/large-until-close"] {
            let server = try await RawHTTPServer.start()
            let started = monotonicNanos()
            let r = try await run(server, path, expectedBody: "tail-marker", requests: 20)
            let seconds = Double(monotonicNanos() - started) / 1e9
            await server.stop()
            XCTAssertEqual(r.responses, 20, path)
            XCTAssertEqual(r.totalErrors, 0, "\(path): \(r.errors)")
            XCTAssertEqual(r.bytesRead, 20 * RawHTTPServer.responses[path]!.bytes.utf8.count, path)
            XCTAssertLessThan(r.uncorrected.max, 400_000_000, "\(path): no response waited for the 500 ms timeout")
            XCTAssertLessThan(seconds, 5, path)
        }
    }

    func testChunkedResponseArrivingOneByteAtATime() async throws {
        let server = try await RawHTTPServer.start()
        let r = try await run(server, "/bytewise", expectedBody: "byte by byte", requests: 20)
        await server.stop()
        XCTAssertEqual(r.responses, 20)
        XCTAssertEqual(r.totalErrors, 0, "\(r.errors)")
        XCTAssertEqual(r.bytesRead, 20 * RawHTTPServer.responses["/bytewise"]!.bytes.utf8.count)
    }
}
