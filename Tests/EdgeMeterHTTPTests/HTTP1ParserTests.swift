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
    func parse(_ data: [UInt8], kind: HTTP1Parser.Kind, cuts: [Int] = [], heads: [Bool] = [], keepHeaders: Bool = true) throws -> [Seen] {
        var p = HTTP1Parser(kind: kind, keepHeaders: keepHeaders)
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
            case .start: break // tested on its own below
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
            "HTTP/1.0 200 OK\r\nConnection: keep-alive, x\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nbody until close",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip , chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nHEAD /b HTTP/1.0\n\n",
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
            func run(_ cuts: [Int], keepHeaders: Bool = true) -> (events: [String], error: String?) {
                var p = HTTP1Parser(kind: kind, maxHeadBytes: 4096, keepHeaders: keepHeaders)
                var events: [String] = []
                var last = -1
                var start = 0
                do {
                    for c in (cuts + [data.count]).sorted() where c >= start {
                        try data[start..<c].withUnsafeBytes { buf in try p.feed(buf) { e in
                            switch e {
                            case .start(let o):
                                XCTAssertGreaterThanOrEqual(o, last); last = o
                                events.append("start \(o)")
                            case .head(let h):
                                XCTAssertGreaterThanOrEqual(h.startOffset, last); last = h.endOffset
                                events.append("head \(h.method) \(h.target) \(h.status) \(h.contentLength ?? -1) \(h.chunked) \(h.keepAlive) \(h.startOffset)-\(h.endOffset)")
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
                    return (events.filter { $0 != "body" }, "\(e)")
                } catch {
                    XCTFail("unexpected \(error)"); return ([], nil)
                }
            }
            let whole = run([])
            let cut = Int(rng.next() % UInt64(max(1, data.count)))
            // Split, and without header strings: the same framing, the same error offset.
            let split = run([cut], keepHeaders: false)
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

/// What the parser adds for its users: start events, heads without header strings, HEAD-only
/// clients, protocol switches, bodies that end at the close.
final class HTTP1ParserOptionsTests: XCTestCase {
    func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Every event of a parse, as text, the buffer given to each feed cut at `cuts`.
    func events(_ data: [UInt8], _ p: inout HTTP1Parser, cuts: [Int] = []) throws -> [String] {
        var out: [String] = []
        var start = 0
        for c in (cuts + [data.count]).sorted() where c >= start {
            try data[start..<c].withUnsafeBytes { buf in try p.feed(buf) { e in
                switch e {
                case .start(let o): out.append("start \(o)")
                case .head(let h): out.append("head \(h.method)\(h.status) \(h.startOffset)-\(h.endOffset)")
                case .body(let r, let at): out.append("body \(at) \(String(decoding: UnsafeRawBufferPointer(rebasing: buf[r]), as: UTF8.self))")
                case .end(let o): out.append("end \(o)")
                }
            } }
            start = c
        }
        return out
    }

    func testStartEventMarksEachMessagesFirstByteAfterStrayCRLF() throws {
        let a = "GET /a HTTP/1.1\r\n\r\n"
        let c = "POST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        let data = b(a + "\r\n" + c)
        var p = HTTP1Parser(kind: .request)
        let whole = try events(data, &p)
        let s2 = a.utf8.count + 2
        XCTAssertEqual(whole, ["start 0", "head GET0 0-\(a.utf8.count)", "end \(a.utf8.count)",
                               "start \(s2)", "head POST0 \(s2)-\(data.count - 2)", "body \(data.count - 2) hi", "end \(data.count)"])
        // The start comes with the first byte, even when the rest of the head comes later.
        for cut in 1..<data.count {
            var q = HTTP1Parser(kind: .request)
            let split = try events(data, &q, cuts: [cut]).filter { !$0.hasPrefix("body") }
            XCTAssertEqual(split, whole.filter { !$0.hasPrefix("body") }, "cut at \(cut)")
        }
        var q = HTTP1Parser(kind: .request)
        var firstFeed: [String] = []
        try data[0..<1].withUnsafeBytes { buf in try q.feed(buf) { if case .start(let o) = $0 { firstFeed.append("start \(o)") } } }
        XCTAssertEqual(firstFeed, ["start 0"])
    }

    func testHeadersNotKeptGiveTheSameFramingWithoutStrings() throws {
        let msg = b("HTTP/1.0 503 Service Unavailable Right Now\r\nConnection: Keep-Alive\r\nX-Long-Header-Name: a value longer than fifteen bytes\r\nContent-Length: 3\r\n\r\nabc")
        var full = HTTP1Parser(kind: .response)
        var lean = HTTP1Parser(kind: .response, keepHeaders: false)
        var heads: [HTTPHead] = []
        for i in 0..<2 {
            try msg.withUnsafeBytes { buf in
                if i == 0 { try full.feed(buf) { if case .head(let h) = $0 { heads.append(h) } } }
                else { try lean.feed(buf) { if case .head(let h) = $0 { heads.append(h) } } }
            }
        }
        XCTAssertEqual(heads.count, 2)
        XCTAssertEqual(heads[0].reason, "Service Unavailable Right Now")
        XCTAssertEqual(heads[0].headers.count, 3)
        XCTAssertEqual(heads[1].reason, "")
        XCTAssertEqual(heads[1].headers.count, 0)
        for h in heads {
            XCTAssertEqual(h.status, 503)
            XCTAssertEqual(h.minorVersion, 0)
            XCTAssertTrue(h.keepAlive, "HTTP/1.0 with Connection: Keep-Alive")
            XCTAssertEqual(h.contentLength, 3)
            XCTAssertEqual(h.endOffset, msg.count - 3)
        }
        // Requests keep method and target (a capture needs them), not the headers.
        var req = HTTP1Parser(kind: .request, keepHeaders: false)
        var r: HTTPHead?
        try b("DELETE /items/42?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").withUnsafeBytes { buf in
            try req.feed(buf) { if case .head(let h) = $0 { r = h } }
        }
        XCTAssertEqual(r?.method, "DELETE")
        XCTAssertEqual(r?.target, "/items/42?x=1")
        XCTAssertEqual(r?.keepAlive, false)
        XCTAssertEqual(r?.headers.count, 0)
        // Malformed heads fail the same way in both modes.
        for bad in ["HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n: v\r\n\r\n"] {
            var e1: String?, e2: String?
            var p1 = HTTP1Parser(kind: .response), p2 = HTTP1Parser(kind: .response, keepHeaders: false)
            do { try b(bad).withUnsafeBytes { buf in try p1.feed(buf) { _ in } } } catch { e1 = "\(error)" }
            do { try b(bad).withUnsafeBytes { buf in try p2.feed(buf) { _ in } } } catch { e2 = "\(error)" }
            XCTAssertNotNil(e1, bad)
            XCTAssertEqual(e1, e2, bad)
        }
    }

    func testEveryResponseIsToHEADAndQueuedEntriesComeFirst() throws {
        let data = b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
        var p = HTTP1Parser(kind: .response)
        p.everyResponseIsToHEAD = true
        p.expectResponse(toHEAD: false) // the first answers a GET
        let seen = try events(data, &p)
        XCTAssertEqual(seen.filter { $0.hasPrefix("end") }.count, 4, "\(seen)")
        XCTAssertEqual(seen.last, "end \(data.count)")
        XCTAssertFalse(p.inMessage)
        // Without the flag the last response would wait for 9 body bytes.
        var q = HTTP1Parser(kind: .response)
        q.expectResponse(toHEAD: false)
        q.expectResponse(toHEAD: true)
        _ = try events(data, &q)
        XCTAssertTrue(q.inMessage)
    }

    /// A long pipelined mix of HEAD and GET answers: each response is framed by its own request
    /// (the queue keeps its order across the count of plain answers and its compaction).
    func testLongQueueOfHEADAndGETAnswersKeepsItsOrder() throws {
        var rng = SplitMix64(seed: 42)
        var p = HTTP1Parser(kind: .response)
        var data: [UInt8] = []
        var expectedEnds: [Int] = []
        for _ in 0..<300 {
            let head = rng.next() % 3 == 0
            p.expectResponse(toHEAD: head)
            data += b("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
            if !head { data += b("body") }
            expectedEnds.append(data.count)
        }
        var ends: [Int] = []
        var heads: [Bool] = []
        try data.withUnsafeBytes { buf in try p.feed(buf) { e in
            if case .end(let o) = e { ends.append(o) }
            if case .head(let h) = e { heads.append(h.isHEADResponse) }
        } }
        XCTAssertEqual(ends, expectedEnds)
        XCTAssertFalse(p.inMessage)
        // A message without its 4 body bytes answered a HEAD.
        let bodiless = zip([0] + expectedEnds, expectedEnds).filter { $1 - $0 < 42 }.count
        XCTAssertGreaterThan(bodiless, 50)
        XCTAssertEqual(heads.filter { $0 }.count, bodiless)
    }

    func testSwitchingProtocolsEndsTheHTTPStream() throws {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        let data = b(head) + [0x81, 0x05] + b("hello HTTP/1.1 garbage\r\n\r\n")
        var p = HTTP1Parser(kind: .response)
        let seen = try events(data, &p, cuts: [head.utf8.count + 1])
        XCTAssertEqual(seen, ["start 0", "head 101 0-\(head.utf8.count)", "end \(head.utf8.count)"])
        XCTAssertTrue(p.switchedProtocols)
        XCTAssertFalse(p.inMessage)
        XCTAssertEqual(p.offset, data.count)
        XCTAssertNoThrow(try p.finishStream { _ in XCTFail("no event after a protocol switch") })
    }

    func testBodyEndsAtClose() throws {
        var p = HTTP1Parser(kind: .response)
        try b("HTTP/1.1 200 OK\r\nServer: s\r\n\r\npartial").withUnsafeBytes { buf in try p.feed(buf) { _ in } }
        XCTAssertTrue(p.bodyEndsAtClose)
        var ends: [Int] = []
        try p.finishStream { if case .end(let o) = $0 { ends.append(o) } }
        XCTAssertEqual(ends, [p.offset])
        XCTAssertFalse(p.bodyEndsAtClose)
        var q = HTTP1Parser(kind: .response)
        try b("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart").withUnsafeBytes { buf in try q.feed(buf) { _ in } }
        XCTAssertFalse(q.bodyEndsAtClose)
    }

    /// An error thrown by the caller's handler stops the feed without failing the parser.
    func testHandlerErrorsPassThrough() throws {
        struct Stop: Error {}
        var p = HTTP1Parser(kind: .request)
        XCTAssertThrowsError(try b("GET / HTTP/1.1\r\n\r\n").withUnsafeBytes { buf in try p.feed(buf) { _ in throw Stop() } }) { e in
            XCTAssertTrue(e is Stop)
        }
        XCTAssertNil(p.failure)
    }
}
