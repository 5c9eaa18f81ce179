import XCTest
@testable import EdgeMeterHTTP

final class HTTP1ParserTests: XCTestCase {
    /// A parse as a flat list of events, body ranges turned into the bytes they cover.
    enum Seen: Equatable {
        case head(HTTPHead)
        case body([UInt8], at: Int)
        case end(Int)
    }

    /// Feeds `data` in pieces cut at `cuts` and returns what the parser saw, merging adjacent body pieces.
    func parse(_ data: [UInt8], kind: HTTP1Parser.Kind, cuts: [Int] = [], heads: [Bool] = []) throws -> [Seen] {
        var p = HTTP1Parser(kind: kind)
        for h in heads { p.expectResponse(toHEAD: h) }
        var seen: [Seen] = []
        func add(_ e: HTTP1Parser.Event, _ buf: UnsafeRawBufferPointer) {
            switch e {
            case .head(let h): seen.append(.head(h))
            case .body(let r, let at):
                let bytes = Array(buf[r])
                if case .body(let prev, let start)? = seen.last, start + prev.count == at {
                    seen[seen.count - 1] = .body(prev + bytes, at: start)
                } else if !bytes.isEmpty {
                    seen.append(.body(bytes, at: at))
                }
            case .end(let o): seen.append(.end(o))
            }
        }
        var start = 0
        for c in (cuts + [data.count]).sorted() where c >= start {
            try data[start..<c].withUnsafeBytes { buf in try p.feed(buf) { add($0, buf) } }
            start = c
        }
        return seen
    }

    func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testSimpleResponseAtEverySplitPoint() throws {
        let msg = b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello")
        let whole = try parse(msg, kind: .response)
        guard case .head(let h)? = whole.first else { return XCTFail("\(whole)") }
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(h.reason, "OK")
        XCTAssertEqual(h.contentLength, 5)
        XCTAssertEqual(h.header("server"), "x")
        XCTAssertEqual(h.startOffset, 0)
        XCTAssertEqual(h.endOffset, msg.count - 5)
        XCTAssertEqual(Array(whole.dropFirst()), [.body(b("hello"), at: msg.count - 5), .end(msg.count)])
        for cut in 1..<msg.count {
            XCTAssertEqual(try parse(msg, kind: .response, cuts: [cut]), whole, "cut at \(cut)")
        }
        // One byte at a time.
        XCTAssertEqual(try parse(msg, kind: .response, cuts: Array(1..<msg.count)), whole)
    }

    func testPipelinedRequestsWithAndWithoutBodies() throws {
        let a = "GET /sum?a=5&b=6 HTTP/1.1\r\nHost: x\r\n\r\n"
        let c = "POST /calculate HTTP/1.1\r\nContent-Length: 7\r\n\r\n(5+6)*2"
        let d = "GET /healthz HTTP/1.0\r\n\r\n"
        let data = b(a + c + d)
        let seen = try parse(data, kind: .request)
        let heads = seen.compactMap { if case .head(let h) = $0 { return h } else { return nil } }
        XCTAssertEqual(heads.map(\.method), ["GET", "POST", "GET"])
        XCTAssertEqual(heads.map(\.target), ["/sum?a=5&b=6", "/calculate", "/healthz"])
        XCTAssertEqual(heads.map(\.keepAlive), [true, true, false])
        XCTAssertEqual(heads.map(\.startOffset), [0, a.utf8.count, a.utf8.count + c.utf8.count])
        let ends = seen.compactMap { if case .end(let o) = $0 { return o } else { return nil } }
        XCTAssertEqual(ends, [a.utf8.count, a.utf8.count + c.utf8.count, data.count])
        XCTAssertTrue(seen.contains(.body(b("(5+6)*2"), at: a.utf8.count + c.utf8.count - 7)))
        // Every two-piece split gives the same events.
        for cut in stride(from: 1, to: data.count, by: 3) {
            XCTAssertEqual(try parse(data, kind: .request, cuts: [cut]), seen, "cut at \(cut)")
        }
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let msg = b("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 999\r\n\r\n5;name=v\r\nhello\r\n0A\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        let seen = try parse(msg, kind: .response)
        let heads = seen.compactMap { if case .head(let h) = $0 { return h } else { return nil } }
        XCTAssertEqual(heads.map(\.status), [200, 204])
        XCTAssertTrue(heads[0].chunked)
        XCTAssertNil(heads[0].contentLength, "Transfer-Encoding overrides Content-Length")
        let body = seen.flatMap { if case .body(let bytes, _) = $0 { return bytes } else { return [] } }
        XCTAssertEqual(String(decoding: body, as: UTF8.self), "hello, world!!!")
        XCTAssertEqual(seen.filter { if case .end = $0 { return true } else { return false } }.count, 2)
        for cut in 1..<msg.count {
            let split = try parse(msg, kind: .response, cuts: [cut])
            let splitBody = split.flatMap { if case .body(let bytes, _) = $0 { return bytes } else { return [] } }
            XCTAssertEqual(splitBody, body, "cut at \(cut)")
            XCTAssertEqual(split.filter { if case .end = $0 { return true } else { return false } }.count, 2)
        }
    }

    func testResponsesWithoutBodies() throws {
        // HEAD: Content-Length describes what GET would send; no body follows.
        let head = b("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let seen = try parse(head, kind: .response, heads: [true, false, false])
        let heads = seen.compactMap { if case .head(let h) = $0 { return h } else { return nil } }
        XCTAssertEqual(heads.map(\.status), [200, 304, 100, 200])
        XCTAssertEqual(heads.map(\.isHEADResponse), [true, false, false, false])
        XCTAssertEqual(seen.last, .end(head.count))
    }

    func testBodyUntilClose() throws {
        var p = HTTP1Parser(kind: .response)
        var ends: [Int] = []
        var bodyBytes = 0
        let msg = b("HTTP/1.0 200 OK\r\n\r\nsome body")
        try msg.withUnsafeBytes { buf in try p.feed(buf) { e in
            if case .body(let r, _) = e { bodyBytes += r.count }
            if case .end(let o) = e { ends.append(o) }
        } }
        XCTAssertEqual(ends, [])
        XCTAssertTrue(p.inMessage)
        try p.finishStream { if case .end(let o) = $0 { ends.append(o) } }
        XCTAssertEqual(ends, [msg.count])
        XCTAssertEqual(bodyBytes, 9)
    }

    func testCutShortMessageIsAnErrorAtClose() throws {
        var p = HTTP1Parser(kind: .response)
        try b("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").withUnsafeBytes { buf in try p.feed(buf) { _ in } }
        XCTAssertThrowsError(try p.finishStream { _ in }) { e in
            XCTAssertEqual("\(e)", "HTTP framing error at byte 42: the connection closed in the middle of a message (7 body bytes missing)")
        }
    }

    func testMalformedInputNamesTheProblemAndOffset() {
        let cases: [(String, HTTP1Parser.Kind, String)] = [
            ("HTTP/1.1 2x0 OK\r\n\r\n", .response, "at byte 0: malformed status line: \"HTTP/1.1 2x0 OK\" (expected HTTP/1.1 CODE REASON)"),
            ("HTTP/2 200 OK\r\n\r\n", .response, "at byte 0: not HTTP/1.0 or HTTP/1.1: \"HTTP/2 200 OK\""),
            ("get / HTTP/1.1\r\n\r\n", .request, "at byte 0: malformed request line: \"get / HTTP/1.1\" (expected METHOD TARGET HTTP/1.1)"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .response, "at byte 17: Content-Length must be a decimal number of bytes, got \"-1\""),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", .response, "at byte 36: two different Content-Length values (1 and 2)"),
            ("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", .response, "at byte 17: a header line without a name and ':': \"no colon here\""),
            ("HTTP/1.1 200 OK\r\nHost : x\r\n\r\n", .response, "at byte 22: white space before ':' in a header name (RFC 9112 §5.1 forbids it)"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .response, "a chunk size must be hexadecimal, got byte 0x7a"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", .response, "chunk data is not followed by CRLF (the chunk size does not match the data)"),
        ]
        for (text, kind, expected) in cases {
            var p = HTTP1Parser(kind: kind)
            XCTAssertThrowsError(try Array(text.utf8).withUnsafeBytes { buf in try p.feed(buf) { _ in } }, text) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(text): \(e)")
            }
            // The parser stays failed.
            XCTAssertThrowsError(try Array("HTTP/1.1 200 OK\r\n\r\n".utf8).withUnsafeBytes { buf in try p.feed(buf) { _ in } })
        }
    }

    func testHeadLimit() {
        var p = HTTP1Parser(kind: .request, maxHeadBytes: 100)
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        XCTAssertThrowsError(try Array(big.utf8).withUnsafeBytes { buf in try p.feed(buf) { _ in } }) { e in
            XCTAssertTrue("\(e)".contains("the message head is longer than 100 bytes"), "\(e)")
        }
    }

    /// Seeded random mutations of valid traffic: the parser never crashes or loops, every event's
    /// offsets stay inside the stream and increase, and the events do not depend on where the bytes
    /// were split (the same prefix of events until an error, the same error offset).
    func testSeededMutationFuzz() throws {
        var rng = SplitMix64(seed: 0x5EED_ED6E)
        let seeds = [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "POST /calculate HTTP/1.1\r\nContent-Length: 7\r\n\r\n(5+6)*2GET / HTTP/1.1\r\n\r\n",
        ].map { Array($0.utf8) }
        let iterations = Int(ProcessInfo.processInfo.environment["EDGEMETER_FUZZ_ITERATIONS"] ?? "") ?? 3000
        for it in 0..<iterations {
            var data = seeds[Int(rng.next() % UInt64(seeds.count))]
            let kind: HTTP1Parser.Kind = data.starts(with: Array("HTTP".utf8)) ? .response : .request
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let pos = Int(rng.next() % UInt64(data.count))
                switch rng.next() % 4 {
                case 0: data[pos] = UInt8(truncatingIfNeeded: rng.next())
                case 1: data.insert(UInt8(truncatingIfNeeded: rng.next()), at: pos)
                case 2: if data.count > 1 { data.remove(at: pos) }
                default: data.insert(contentsOf: [0x0d, 0x0a], at: pos)
                }
            }
            func run(_ cuts: [Int]) -> (events: [String], error: Int?) {
                var p = HTTP1Parser(kind: kind, maxHeadBytes: 4096)
                var events: [String] = []
                var last = -1
                var start = 0
                do {
                    for c in (cuts + [data.count]).sorted() where c >= start {
                        try data[start..<c].withUnsafeBytes { buf in try p.feed(buf) { e in
                            switch e {
                            case .head(let h):
                                XCTAssertGreaterThanOrEqual(h.startOffset, last); last = h.endOffset
                                events.append("head \(h.method)\(h.status) \(h.startOffset)-\(h.endOffset)")
                            case .body(let r, let at):
                                XCTAssertTrue(r.lowerBound >= 0 && r.upperBound <= buf.count)
                                XCTAssertGreaterThanOrEqual(at, last); last = at + r.count
                                events.append("body")
                            case .end(let o):
                                XCTAssertLessThanOrEqual(o, data.count); XCTAssertGreaterThanOrEqual(o, last); last = o
                                events.append("end \(o)")
                            }
                        } }
                        start = c
                    }
                    return (events.filter { $0 != "body" }, nil)
                } catch let e as HTTPParseError {
                    return (events.filter { $0 != "body" }, e.offset)
                } catch {
                    XCTFail("unexpected \(error)"); return ([], nil)
                }
            }
            let whole = run([])
            let cut = Int(rng.next() % UInt64(max(1, data.count)))
            let split = run([cut])
            XCTAssertEqual(whole.events, split.events, "iteration \(it), cut \(cut): \(String(decoding: data, as: UTF8.self).debugDescription)")
            XCTAssertEqual(whole.error, split.error, "iteration \(it), cut \(cut)")
        }
    }
}

/// A small deterministic generator, so a failing fuzz case reproduces from the seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
