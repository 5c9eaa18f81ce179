import Foundation
import XCTest
import NIOCore
import NIOPosix
@testable import EdgeMeterHTTP

/// The HTTP client's response reading through `HTTP1Parser`, against a real loopback server that
/// writes scripted bytes (split anywhere, pipelined, chunked, malformed) with pauses between writes.
final class HTTPClientTests: XCTestCase {
    func connect(_ server: ScriptedServer) async throws -> HTTPConnection {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: server.port)
        return try await HTTPConnection.connect(to: address, targetName: "127.0.0.1:\(server.port)", timeout: .seconds(2))
    }

    func testResponseSplitAcrossWritesIsReadWholeWithTimesOfFirstAndLastByte() async throws {
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Test: split\r\n\r\nhello world"
        let bytes = Array(response.utf8)
        // Cuts inside the status line, inside a header name and inside the body.
        let server = try ScriptedServer([.request, .write(Array(bytes[0..<7])), .sleep(30), .write(Array(bytes[7..<30])), .sleep(30),
                                         .write(Array(bytes[30..<(bytes.count - 4)])), .sleep(30), .write(Array(bytes[(bytes.count - 4)...]))])
        let c = try await connect(server)
        defer { c.close() }
        let r = try await c.send(HTTPRequestSpec(path: "/x"), host: "h", timeout: .seconds(5))
        XCTAssertEqual(r.response.status, 200)
        XCTAssertEqual(r.response.reasonPhrase, "OK")
        XCTAssertEqual(r.response.header("x-test"), "split")
        XCTAssertEqual(r.response.bodyText, "hello world")
        XCTAssertEqual(r.response.wireBytes, bytes.count)
        XCTAssertTrue(r.response.keepAlive)
        XCTAssertGreaterThan(r.firstByteAt, r.sentAt)
        // The first byte came with the first write, the end with the fourth: three 30 ms pauses between.
        XCTAssertGreaterThanOrEqual(r.endAt - r.firstByteAt, 85_000_000, "end should be stamped at the last write, not the first")
        XCTAssertEqual(server.requests.first.map { String(decoding: $0, as: UTF8.self) }, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    }

    func testChunkedBodyWithExtensionsAndTrailersThenASecondRequestOnTheSameConnection() async throws {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        let bytes = Array(chunked.utf8)
        let second = "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
        let server = try ScriptedServer([.request, .write(Array(bytes[0..<50])), .sleep(20), .write(Array(bytes[50...])),
                                         .request, .write(Array(second.utf8))])
        let c = try await connect(server)
        defer { c.close() }
        let r1 = try await c.send(HTTPRequestSpec(path: "/a"), host: "h", timeout: .seconds(5))
        XCTAssertEqual(r1.response.bodyText, "hello world")
        XCTAssertEqual(r1.response.wireBytes, bytes.count)
        let r2 = try await c.send(HTTPRequestSpec(path: "/b"), host: "h", timeout: .seconds(5))
        XCTAssertEqual(r2.response.status, 404)
        XCTAssertEqual(r2.response.statusLine, "404 Not Found")
        XCTAssertEqual(r2.response.bodyText, "nope")
    }

    /// The same chunked response cut at every byte: each cut gives the same response.
    func testEverySplitPointOfAChunkedResponse() async throws {
        let bytes = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n".utf8)
        for cut in 1..<bytes.count {
            let server = try ScriptedServer([.request, .write(Array(bytes[..<cut])), .sleep(2), .write(Array(bytes[cut...]))])
            let c = try await connect(server)
            defer { c.close() }
            let r = try await c.send(HTTPRequestSpec(path: "/"), host: "h", timeout: .seconds(5))
            XCTAssertEqual(r.response.bodyText, "abcde", "cut at \(cut)")
            XCTAssertEqual(r.response.wireBytes, bytes.count, "cut at \(cut)")
        }
    }

    func testPipelinedRequestsGetTheirOwnResponsesFromOneWrite() async throws {
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" + "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"
        let server = try ScriptedServer([.request, .request, .write(Array(both.utf8))])
        let c = try await connect(server)
        defer { c.close() }
        async let a = c.send(HTTPRequestSpec(path: "/1"), host: "h", timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(20)) // the requests leave in this order
        async let b = c.send(HTTPRequestSpec(path: "/2"), host: "h", timeout: .seconds(5))
        let (ra, rb) = try await (a, b)
        XCTAssertEqual(ra.response.status, 200)
        XCTAssertEqual(ra.response.bodyText, "one")
        XCTAssertEqual(rb.response.status, 201)
        XCTAssertEqual(rb.response.bodyText, "two")
    }

    func testInterimResponseIsSkippedAndHEADResponseHasNoBody() async throws {
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        let server = try ScriptedServer([.request, .write(Array(interim.utf8)), .request, .write(Array(head.utf8))])
        let c = try await connect(server)
        defer { c.close() }
        let r = try await c.send(HTTPRequestSpec(method: "POST", path: "/p", body: Array("x".utf8)), host: "h", timeout: .seconds(5))
        XCTAssertEqual(r.response.status, 200)
        XCTAssertEqual(r.response.bodyText, "ok")
        // A HEAD response's Content-Length announces no body: it ends with its head.
        let h = try await c.send(HTTPRequestSpec(method: "HEAD", path: "/h"), host: "h", timeout: .seconds(2))
        XCTAssertEqual(h.response.status, 200)
        XCTAssertEqual(h.response.body.readableBytes, 0)
        XCTAssertEqual(server.requests.first.map { String(decoding: $0, as: UTF8.self) },
                       "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx")
    }

    func testBodyDelimitedByCloseEndsAtClose() async throws {
        let server = try ScriptedServer([.request, .write(Array("HTTP/1.0 200 OK\r\n\r\nuntil".utf8)), .sleep(20),
                                         .write(Array(" close".utf8)), .close])
        let c = try await connect(server)
        defer { c.close() }
        let r = try await c.send(HTTPRequestSpec(path: "/"), host: "h", keepAlive: false, timeout: .seconds(5))
        XCTAssertEqual(r.response.bodyText, "until close")
        XCTAssertFalse(r.response.keepAlive)
    }

    func testMalformedResponsesAreProtocolErrorsThatSayWhatWasWrong() async throws {
        let cases: [(String, String)] = [
            ("HTTP/1.1 abc OK\r\n\r\n", "malformed status line"),
            ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed status line"),
            ("HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length must be a decimal number"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size must be hexadecimal"),
        ]
        for (bytes, expected) in cases {
            let server = try ScriptedServer([.request, .write(Array(bytes.utf8)), .sleep(500)])
            let c = try await connect(server)
            defer { c.close() }
            do {
                let r = try await c.send(HTTPRequestSpec(path: "/"), host: "h", timeout: .seconds(2))
                XCTFail("\(bytes.debugDescription): expected a protocol error, got \(r.response.status)")
            } catch let e as HTTPClientError {
                guard case .protocolError(let m) = e else { XCTFail("\(bytes.debugDescription): \(e)"); continue }
                XCTAssertTrue(m.contains(expected), "\(m)")
                XCTAssertTrue(m.contains("is this port an HTTP server"), m)
                XCTAssertEqual(e.sampleStatus, .error)
            }
        }
    }

    func testCutShortResponseIsAResetAndSilenceATimeout() async throws {
        let server = try ScriptedServer([.request, .write(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8)), .close])
        let c = try await connect(server)
        do {
            _ = try await c.send(HTTPRequestSpec(path: "/"), host: "h", timeout: .seconds(2))
            XCTFail("a response cut short must fail")
        } catch let e as HTTPClientError {
            guard case .reset = e else { return XCTFail("\(e)") }
            XCTAssertEqual(c.collector.firstByteAt != 0, true, "the first byte arrived before the close")
        }
        let silent = try ScriptedServer([.request, .sleep(1000)])
        let s = try await connect(silent)
        defer { s.close() }
        do {
            _ = try await s.send(HTTPRequestSpec(path: "/"), host: "h", timeout: .milliseconds(100))
            XCTFail("no answer must time out")
        } catch let e as HTTPClientError {
            guard case .timeout = e else { return XCTFail("\(e)") }
            XCTAssertEqual(e.sampleStatus, .timeout)
        }
    }

    func testRequestBytesAreTheLoadGeneratorsBytes() {
        let spec = HTTPRequestSpec(method: "POST", path: "/calculate", headers: [("Content-Type", "text/plain"), ("content-length", "99")],
                                   body: Array("1+2".utf8))
        XCTAssertEqual(String(buffer: spec.wireBytes(host: "127.0.0.1:50000", keepAlive: false)),
                       "POST /calculate HTTP/1.1\r\nHost: 127.0.0.1:50000\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n1+2")
        XCTAssertEqual(String(buffer: HTTPRequestSpec(path: "/").wireBytes(host: "h")), "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    }
}

/// A one-connection loopback server (127.0.0.1, ephemeral port) on a thread of its own that plays
/// a script: wait for a request head, write bytes, pause, close.
final class ScriptedServer: @unchecked Sendable {
    enum Step {
        case request
        case write([UInt8])
        case sleep(Int)
        case close
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var seen: [[UInt8]] = []
    var requests: [[UInt8]] { lock.lock(); defer { lock.unlock() }; return seen }

    init(_ script: [Step]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 4) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: sin.sin_port))
        Thread { [self] in self.play(script, listener: fd) }.start()
    }

    private func play(_ script: [Step], listener: Int32) {
        let conn = accept(listener, nil, nil)
        close(listener)
        guard conn >= 0 else { return }
        var buffered: [UInt8] = []
        var closed = false
        for step in script where !closed {
            switch step {
            case .request:
                // One request: its head, then Content-Length bytes of body.
                while true {
                    if let end = Self.requestEnd(buffered) {
                        lock.lock(); seen.append(Array(buffered[..<end])); lock.unlock()
                        buffered.removeFirst(end)
                        break
                    }
                    var chunk = [UInt8](repeating: 0, count: 4096)
                    let n = read(conn, &chunk, chunk.count)
                    if n <= 0 { closed = true; break }
                    buffered += chunk[..<n]
                }
            case .write(let bytes):
                _ = bytes.withUnsafeBytes { write(conn, $0.baseAddress, $0.count) }
            case .sleep(let ms):
                usleep(useconds_t(ms * 1000))
            case .close:
                closed = true
            }
        }
        close(conn)
    }

    static func requestEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 3..<b.count where b[i - 3] == 13 && b[i - 2] == 10 && b[i - 1] == 13 && b[i] == 10 {
            let head = String(decoding: b[...i], as: UTF8.self).lowercased()
            var length = 0
            if let r = head.range(of: "content-length: ") {
                length = Int(head[r.upperBound...].prefix { $0.isNumber }) ?? 0
            }
            return b.count >= i + 1 + length ? i + 1 + length : nil
        }
        return nil
    }
}
