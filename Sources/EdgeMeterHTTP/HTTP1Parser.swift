#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// HTTP/1.1 message framing as a pure state machine over bytes (RFC 9112 §6): where each message's
/// head ends, how long its body is (Content-Length, chunked, or until the connection closes), and
/// where the message ends. No I/O, no Foundation, no copies of body bytes: the caller feeds whatever
/// bytes arrived (split anywhere, several pipelined messages at once) and gets events with absolute
/// stream offsets, so a capture analyser can map them to packet timestamps and a client can map them
/// to receive times.
///
/// One parser follows one direction of one connection. For responses, the framing of a response to
/// HEAD (no body whatever its headers say) depends on the request: call `expectResponse(toHEAD:)` once
/// per request sent, in order (or set `everyResponseIsToHEAD` for a client that sends only HEAD).
/// After a `101 Switching Protocols` response the stream is no longer HTTP: a response parser then
/// consumes the rest without events (`switchedProtocols`).
///
/// With `keepHeaders: false` a head is validated exactly as with `true` (same errors at the same
/// offsets) but no `String` is made for the header lines or the reason phrase: once its buffers have
/// grown to the largest head seen, framing a response allocates nothing.
public struct HTTP1Parser: Sendable {
    public enum Kind: Sendable { case request, response }

    /// What the parser found, in stream order.
    public enum Event: Sendable, Equatable {
        /// A message's first byte (after any stray CRLF between messages) was fed: `offset` is its
        /// absolute stream offset. Every message gets one, before its `head`.
        case start(offset: Int)
        /// A message head ended; `head.startOffset` is its first byte, `endOffset` the byte after its blank line.
        case head(HTTPHead)
        /// Body bytes: `range` indexes the buffer given to this `feed` call (not the stream), so the
        /// caller can copy or hash them; `streamOffset` is the absolute offset of the first one.
        case body(range: Range<Int>, streamOffset: Int)
        /// The message ended at `endOffset` (absolute offset of the byte after its last byte).
        case end(endOffset: Int)
    }

    public let kind: Kind
    /// The longest head accepted (request/status line plus headers), in bytes.
    public let maxHeadBytes: Int
    /// Whether heads carry `headers` and `reason` (see the type's documentation).
    public let keepHeaders: Bool
    /// A response with no `expectResponse(toHEAD:)` queued for it answers a HEAD request (a client
    /// that sends only HEAD sets this instead of queueing one entry per request).
    public var everyResponseIsToHEAD = false

    /// Absolute offset of the next byte to be fed.
    public private(set) var offset = 0
    /// True while a message is between its first byte and its end.
    public var inMessage: Bool { state != .idle && state != .switched }
    /// True while the current message's body ends only when the connection closes (a response
    /// without Content-Length or chunked framing): `finishStream` ends it.
    public var bodyEndsAtClose: Bool { state == .untilClose }
    /// True after a final `101 Switching Protocols` response: the rest of the stream is another
    /// protocol, consumed without events.
    public var switchedProtocols: Bool { state == .switched }
    /// After an error the parser stays failed: framing is lost for the rest of the stream.
    public private(set) var failure: HTTPParseError?

    enum State: Equatable {
        case idle
        case head
        case fixed(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataCR
        case chunkDataLF
        case trailers
        case untilClose
        case switched
    }
    var state: State = .idle
    var headBytes: [UInt8] = []
    var headStart = 0
    var chunkLine: [UInt8] = []
    var trailerLineLength = 0
    /// Expected responses not yet seen, in order: first `plainQueued` answers to requests other
    /// than HEAD (a count, so the usual traffic allocates nothing here), then `headQueue` from
    /// `headQueueStart`.
    var plainQueued = 0
    var headQueue: [Bool] = []
    var headQueueStart = 0
    var currentIsHEADResponse = false

    public init(kind: Kind, maxHeadBytes: Int = 65_536, keepHeaders: Bool = true) {
        self.kind = kind
        self.maxHeadBytes = maxHeadBytes
        self.keepHeaders = keepHeaders
    }

    /// Tells a response parser that a request was sent; `toHEAD` when its method is HEAD.
    public mutating func expectResponse(toHEAD: Bool) {
        if !toHEAD && headQueueStart == headQueue.count {
            plainQueued += 1
        } else {
            headQueue.append(toHEAD)
        }
    }

    /// Feeds the next bytes of the stream; `onEvent` sees every event they complete, in order.
    /// Throws (and stays failed) on bytes that cannot be HTTP/1.x framing; events before the bad byte
    /// were already delivered. An error thrown by `onEvent` stops the feed and is rethrown as is
    /// (the parser does not fail; its offset is then not meaningful for further feeds).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onEvent: (Event) throws -> Void) throws {
        if let failure { throw failure }
        var i = 0
        let n = bytes.count
        do {
            while i < n {
                switch state {
                case .idle:
                    // Stray CRLF between messages is allowed (RFC 9112 §2.2).
                    if bytes[i] == 0x0d || bytes[i] == 0x0a { i += 1; offset += 1; continue }
                    state = .head
                    headStart = offset
                    headBytes.removeAll(keepingCapacity: true)
                    try onEvent(.start(offset: offset))
                case .head:
                    if headBytes.isEmpty,
                       let whole = HTTPHead.parseWhole(UnsafeRawBufferPointer(rebasing: bytes[i..<n]), kind: kind,
                                                       startOffset: headStart, keepHeaders: keepHeaders, limit: maxHeadBytes) {
                        // The whole head is in this buffer (the usual case): found and parsed in
                        // place in one pass over its lines, no copy.
                        offset += whole.length
                        i += whole.length
                        if whole.length > maxHeadBytes {
                            throw HTTPParseError(offset: headStart + maxHeadBytes, "the message head is longer than \(maxHeadBytes) bytes")
                        }
                        var head = try whole.head.get()
                        try headComplete(&head, onEvent)
                        continue
                    }
                    // A head split over feeds: copy up to and including the blank line that ends it.
                    var j = i
                    var end = -1
                    while j < n {
                        // From one LF to the next (memchr), not byte by byte.
                        j = HTTPHead.indexOfLF(bytes, from: j)
                        if j >= n { break }
                        let had = headBytes.count
                        @inline(__always) func at(_ k: Int) -> UInt8 {
                            k >= i ? bytes[k] : (had + (k - i) >= 0 ? headBytes[had + (k - i)] : 0)
                        }
                        // "\r\n\r\n", or a bare "\n\n" as RFC 9112 §2.2 lets recipients accept.
                        if (at(j - 1) == 0x0d && at(j - 2) == 0x0a && at(j - 3) == 0x0d) || at(j - 1) == 0x0a {
                            end = j + 1
                            break
                        }
                        j += 1
                    }
                    let stop = end < 0 ? n : end
                    headBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<stop]))
                    offset += stop - i
                    i = stop
                    if headBytes.count > maxHeadBytes {
                        throw HTTPParseError(offset: headStart + maxHeadBytes, "the message head is longer than \(maxHeadBytes) bytes")
                    }
                    if end >= 0 {
                        let (k, start, keep) = (kind, headStart, keepHeaders)
                        var head = try headBytes.withUnsafeBytes { try HTTPHead.parse($0, kind: k, startOffset: start, keepHeaders: keep) }
                        try headComplete(&head, onEvent)
                    }
                case .fixed(let left):
                    let take = min(left, n - i)
                    try onEvent(.body(range: i..<(i + take), streamOffset: offset))
                    i += take
                    offset += take
                    if take == left {
                        try finish(onEvent)
                    } else {
                        state = .fixed(left - take)
                    }
                case .chunkSize:
                    let c = bytes[i]
                    i += 1
                    offset += 1
                    if c == 0x0a {
                        let size = try chunkSize()
                        chunkLine.removeAll(keepingCapacity: true)
                        if size == 0 {
                            state = .trailers
                            trailerLineLength = 0
                        } else {
                            state = .chunkData(size)
                        }
                    } else {
                        chunkLine.append(c)
                        if chunkLine.count > 1024 {
                            throw HTTPParseError(offset: offset, "a chunk-size line is longer than 1024 bytes")
                        }
                    }
                case .chunkData(let left):
                    let take = min(left, n - i)
                    try onEvent(.body(range: i..<(i + take), streamOffset: offset))
                    i += take
                    offset += take
                    state = take == left ? .chunkDataCR : .chunkData(left - take)
                case .chunkDataCR:
                    guard bytes[i] == 0x0d || bytes[i] == 0x0a else {
                        throw HTTPParseError(offset: offset, "chunk data is not followed by CRLF (the chunk size does not match the data)")
                    }
                    state = bytes[i] == 0x0d ? .chunkDataLF : .chunkSize
                    i += 1
                    offset += 1
                case .chunkDataLF:
                    guard bytes[i] == 0x0a else { throw HTTPParseError(offset: offset, "CR after chunk data is not followed by LF") }
                    state = .chunkSize
                    i += 1
                    offset += 1
                case .trailers:
                    let c = bytes[i]
                    i += 1
                    offset += 1
                    if c == 0x0a {
                        if trailerLineLength == 0 { try finish(onEvent) } else { trailerLineLength = 0 }
                    } else if c != 0x0d {
                        trailerLineLength += 1
                        if trailerLineLength > maxHeadBytes { throw HTTPParseError(offset: offset, "a trailer line is too long") }
                    }
                case .untilClose:
                    try onEvent(.body(range: i..<n, streamOffset: offset))
                    offset += n - i
                    i = n
                case .switched:
                    offset += n - i
                    i = n
                }
            }
        } catch let e as HTTPParseError {
            failure = e
            throw e
        }
    }

    /// The connection closed: a body delimited by the close ends here; a message cut short is an error.
    public mutating func finishStream(_ onEvent: (Event) throws -> Void) throws {
        if let failure { throw failure }
        switch state {
        case .idle, .switched:
            return
        case .untilClose:
            try finish(onEvent)
        default:
            let e = HTTPParseError(offset: offset, "the connection closed in the middle of a message (\(stateName))")
            failure = e
            throw e
        }
    }

    var stateName: String {
        switch state {
        case .idle: return "between messages"
        case .head: return "in its head"
        case .fixed(let left): return "\(left) body bytes missing"
        case .chunkSize, .chunkData, .chunkDataCR, .chunkDataLF: return "in a chunked body"
        case .trailers: return "in the trailers"
        case .untilClose: return "body until close"
        case .switched: return "after 101 Switching Protocols"
        }
    }

    mutating func finish(_ onEvent: (Event) throws -> Void) throws {
        state = .idle
        try onEvent(.end(endOffset: offset))
    }

    mutating func chunkSize() throws -> Int {
        var size = 0
        var digits = 0
        for c in chunkLine {
            if c == 0x3b || c == 0x20 || c == 0x09 || c == 0x0d { break } // extensions, BWS, CR
            let v: Int
            switch c {
            case 0x30...0x39: v = Int(c - 0x30)
            case 0x41...0x46: v = Int(c - 0x41 + 10)
            case 0x61...0x66: v = Int(c - 0x61 + 10)
            default: throw HTTPParseError(offset: offset, "a chunk size must be hexadecimal, got byte 0x\(String(c, radix: 16))")
            }
            digits += 1
            if digits > 15 { throw HTTPParseError(offset: offset, "a chunk size has more than 15 hex digits") }
            size = size * 16 + v
        }
        guard digits > 0 else { throw HTTPParseError(offset: offset, "a chunk-size line has no size") }
        return size
    }

    /// `head` (parsed from the bytes up to `offset`) ended: decides the body's framing.
    mutating func headComplete(_ head: inout HTTPHead, _ onEvent: (Event) throws -> Void) throws {
        head.endOffset = offset
        if kind == .response {
            let informational = (100..<200).contains(head.status) && head.status != 101
            if !informational {
                if plainQueued > 0 {
                    plainQueued -= 1
                    currentIsHEADResponse = false
                } else if headQueueStart < headQueue.count {
                    currentIsHEADResponse = headQueue[headQueueStart]
                    headQueueStart += 1
                    if headQueueStart == headQueue.count {
                        headQueue.removeAll(keepingCapacity: true)
                        headQueueStart = 0
                    } else if headQueueStart > 64 && headQueueStart * 2 > headQueue.count {
                        headQueue.removeFirst(headQueueStart)
                        headQueueStart = 0
                    }
                } else {
                    currentIsHEADResponse = everyResponseIsToHEAD
                }
            }
            head.isHEADResponse = !informational && currentIsHEADResponse
        }
        // Body length, RFC 9112 §6.3.
        if kind == .response {
            if head.status == 101 {
                // The message ends with its head; the bytes after it are another protocol.
                state = .idle
                try onEvent(.head(head))
                try finish(onEvent)
                state = .switched
                return
            }
            if (100..<200).contains(head.status) || head.status == 204 || head.status == 304 || head.isHEADResponse {
                state = .idle
                try onEvent(.head(head))
                return try finish(onEvent)
            }
        }
        if head.chunked {
            state = .chunkSize
            chunkLine.removeAll(keepingCapacity: true)
        } else if let length = head.contentLength, length > 0 {
            state = .fixed(length)
        } else if head.contentLength != nil || kind == .request {
            state = .idle // an empty body; a request without either has no body
        } else {
            state = .untilClose
        }
        try onEvent(.head(head))
        if state == .idle { try finish(onEvent) }
    }
}

/// A message head: the request or status line and the headers that matter for framing and reports.
public struct HTTPHead: Sendable, Equatable {
    /// Request: the method (`GET`); response: empty.
    public var method: String = ""
    /// Request: the request target (`/sum?a=5&b=6`); response: empty.
    public var target: String = ""
    /// Response: the status code; request: 0.
    public var status: Int = 0
    /// Response: the reason phrase as sent (empty when the parser has `keepHeaders: false`).
    public var reason: String = ""
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    public var minorVersion: Int = 1
    /// Every header in order, names as sent (empty when the parser has `keepHeaders: false`).
    public var headers: [(name: String, value: String)] = []
    public var contentLength: Int?
    public var chunked = false
    /// Whether the connection stays open after this message (HTTP/1.1 default unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive = true
    /// A response to a HEAD request (no body whatever its headers say).
    public var isHEADResponse = false
    /// Absolute stream offsets of the head's first byte and of the byte after its blank line.
    public var startOffset = 0
    public var endOffset = 0

    public init() {}

    /// The first header with this name (case-insensitive), or nil.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    public static func == (a: HTTPHead, b: HTTPHead) -> Bool {
        a.method == b.method && a.target == b.target && a.status == b.status && a.reason == b.reason
            && a.minorVersion == b.minorVersion && a.headers.map(\.name) == b.headers.map(\.name)
            && a.headers.map(\.value) == b.headers.map(\.value) && a.contentLength == b.contentLength
            && a.chunked == b.chunked && a.keepAlive == b.keepAlive && a.isHEADResponse == b.isHEADResponse
            && a.startOffset == b.startOffset && a.endOffset == b.endOffset
    }

    /// The index of the first LF at or after `from` (`raw.count` when there is none), found with
    /// libc's `memchr` (word-at-a-time) instead of a byte loop: the head scan is the parser's
    /// largest cost per response in a load run.
    @inline(__always) static func indexOfLF(_ raw: UnsafeRawBufferPointer, from: Int) -> Int {
        guard from < raw.count, let base = raw.baseAddress, let p = memchr(base + from, 0x0a, raw.count - from) else { return raw.count }
        return base.distance(to: UnsafeRawPointer(p))
    }

    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5a ? c | 0x20 : c }
    @inline(__always) static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }

    /// Whether `raw[r]` equals `word` (lowercase ASCII), ignoring ASCII case. Inlined: each header
    /// line is compared with three names, and most differ in length, which is checked first.
    @inline(__always) static func equalsIgnoringCase(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>, _ word: StaticString) -> Bool {
        guard r.count == word.utf8CodeUnitCount else { return false }
        let w = word.utf8Start
        var k = 0
        while k < r.count {
            if lower(raw[r.lowerBound + k]) != w[k] { return false }
            k += 1
        }
        return true
    }

    /// `r` without leading and trailing SP/HTAB.
    @inline(__always) static func trimmed(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int> {
        var lo = r.lowerBound, hi = r.upperBound
        while lo < hi && isBlank(raw[lo]) { lo += 1 }
        while hi > lo && isBlank(raw[hi - 1]) { hi -= 1 }
        return lo..<hi
    }

    /// Calls `body` with each non-empty comma-separated element of `raw[r]`, trimmed; stops when it returns false.
    static func forEachListElement(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>, _ body: (Range<Int>) -> Bool) {
        var s = r.lowerBound
        var k = r.lowerBound
        while k <= r.upperBound {
            if k == r.upperBound || raw[k] == 0x2c {
                if k > s && !body(trimmed(raw, s..<k)) { return }
                s = k + 1
            }
            k += 1
        }
    }

    static func text(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: raw[r]), as: UTF8.self)
    }

    /// Where line `s..<k` ends without its optional CR (`k` is the index of its LF).
    @inline(__always) static func lineEnd(_ raw: UnsafeRawBufferPointer, _ s: Int, _ k: Int) -> Int {
        k > s && raw[k - 1] == 0x0d ? k - 1 : k
    }

    /// Parses a complete head straight from its bytes. With `keepHeaders` false it makes no String
    /// for responses (and only the method and target for requests) and no array.
    static func parse(_ raw: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind, startOffset: Int, keepHeaders: Bool) throws -> HTTPHead {
        // The feed ends every head with LF and starts it with a byte other than CR and LF.
        var lines = HeadLines(kind: kind, startOffset: startOffset, keepHeaders: keepHeaders)
        var s = 0
        var k = 0
        while k < raw.count {
            k = indexOfLF(raw, from: k)
            if k >= raw.count { break }
            try lines.add(raw, s..<lineEnd(raw, s, k))
            s = k + 1
            k += 1
        }
        return try lines.finish()
    }

    /// A head that starts at `raw`'s first byte (not CR or LF), if its blank line is in `raw`: its
    /// length (through the blank line's LF) and the head, or the error `parse` would have thrown
    /// for those bytes; nil when the head goes on past `raw` or past `limit` bytes without its end
    /// (the caller's copying path then says what is wrong, as before). One pass: each line is parsed as the
    /// scan for the blank line reaches it (the same end rule as the feed: "\r\n\r\n" or "\n\n"),
    /// and an error is only reported once the head's end is known, as `parse` reports it.
    static func parseWhole(_ raw: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind, startOffset: Int,
                           keepHeaders: Bool, limit: Int) -> (length: Int, head: Result<HTTPHead, HTTPParseError>)? {
        var lines = HeadLines(kind: kind, startOffset: startOffset, keepHeaders: keepHeaders)
        var failed: HTTPParseError?
        var s = 0
        var k = 0
        while true {
            k = indexOfLF(raw, from: k)
            if k >= raw.count || k >= limit { return nil }
            if failed == nil {
                do { try lines.add(raw, s..<lineEnd(raw, s, k)) } catch { failed = HTTPParseError.from(error, offset: startOffset) }
            }
            let isEnd = (k >= 1 && raw[k - 1] == 0x0a) || (k >= 3 && raw[k - 1] == 0x0d && raw[k - 2] == 0x0a && raw[k - 3] == 0x0d)
            s = k + 1
            k += 1
            if isEnd {
                if let failed { return (k, .failure(failed)) }
                do { return (k, .success(try lines.finish())) } catch { return (k, .failure(HTTPParseError.from(error, offset: startOffset))) }
            }
        }
    }

    /// The line-by-line rules of a head, fed one line at a time (without its LF and optional CR):
    /// the first non-empty line is the start line, the others header lines; empty lines at the
    /// end (the blank line) are dropped, an empty line before a non-empty one is a malformed
    /// header line.
    struct HeadLines {
        let kind: HTTP1Parser.Kind
        let startOffset: Int
        let keepHeaders: Bool
        var head = HTTPHead()
        var sawStartLine = false
        var pendingEmpty: Int?
        var sawContentLength = false

        init(kind: HTTP1Parser.Kind, startOffset: Int, keepHeaders: Bool) {
            (self.kind, self.startOffset, self.keepHeaders) = (kind, startOffset, keepHeaders)
            head.startOffset = startOffset
        }

        @inline(__always) mutating func add(_ raw: UnsafeRawBufferPointer, _ line: Range<Int>) throws {
            if line.isEmpty {
                if pendingEmpty == nil { pendingEmpty = line.lowerBound }
                return
            }
            if let empty = pendingEmpty {
                throw HTTPParseError(offset: startOffset + empty, "a header line without a name and ':': \"\"")
            }
            if !sawStartLine {
                sawStartLine = true
                try HTTPHead.parseStartLine(raw, line, kind: kind, startOffset: startOffset, keepHeaders: keepHeaders, into: &head)
                return
            }
            try HTTPHead.parseHeaderLine(raw, line, startOffset: startOffset, keepHeaders: keepHeaders, sawContentLength: &sawContentLength, into: &head)
        }

        mutating func finish() throws -> HTTPHead {
            guard sawStartLine else { throw HTTPParseError(offset: startOffset, "an empty message head") }
            // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 point 3).
            if head.chunked { head.contentLength = nil }
            return head
        }
    }

    static func parseStartLine(_ raw: UnsafeRawBufferPointer, _ line: Range<Int>, kind: HTTP1Parser.Kind, startOffset: Int,
                               keepHeaders: Bool, into head: inout HTTPHead) throws {
        // Split at the first two spaces: [sp1, sp2) delimit the middle part.
        var sp1 = line.lowerBound
        while sp1 < line.upperBound && raw[sp1] != 0x20 { sp1 += 1 }
        var sp2 = sp1 < line.upperBound ? sp1 + 1 : sp1
        while sp2 < line.upperBound && raw[sp2] != 0x20 { sp2 += 1 }
        let hasSecond = sp1 < line.upperBound
        let hasThird = hasSecond && sp2 < line.upperBound
        func startLine() -> String { String(text(raw, line).prefix(60)) }
        func version(_ r: Range<Int>) throws -> Int {
            // Exactly "HTTP/1.0" or "HTTP/1.1" (the name is case-sensitive, RFC 9112 §2.3).
            let prefix: StaticString = "HTTP/1."
            var ok = r.count == 8
            var x = 0
            while ok && x < 7 { ok = raw[r.lowerBound + x] == prefix.utf8Start[x]; x += 1 }
            if ok, raw[r.lowerBound + 7] == 0x30 || raw[r.lowerBound + 7] == 0x31 { return Int(raw[r.lowerBound + 7] - 0x30) }
            throw HTTPParseError(offset: startOffset, "not HTTP/1.0 or HTTP/1.1: \"\(startLine())\"")
        }
        switch kind {
        case .request:
            var methodOK = hasThird && sp1 > line.lowerBound && sp2 > sp1 + 1
            if methodOK {
                for x in line.lowerBound..<sp1 where !((raw[x] >= 0x41 && raw[x] <= 0x5a) || raw[x] == 0x2d) { methodOK = false; break }
            }
            guard methodOK else {
                throw HTTPParseError(offset: startOffset, "malformed request line: \"\(startLine())\" (expected METHOD TARGET HTTP/1.1)")
            }
            head.method = text(raw, line.lowerBound..<sp1)
            head.target = text(raw, (sp1 + 1)..<sp2)
            head.minorVersion = try version((sp2 + 1)..<line.upperBound)
        case .response:
            var status = 0
            var statusOK = hasSecond && sp2 - sp1 == 4
            if statusOK {
                for x in (sp1 + 1)..<sp2 {
                    let d = raw[x]
                    guard d >= 0x30 && d <= 0x39 else { statusOK = false; break }
                    status = status * 10 + Int(d - 0x30)
                }
            }
            guard statusOK, status >= 100 else {
                throw HTTPParseError(offset: startOffset, "malformed status line: \"\(startLine())\" (expected HTTP/1.1 CODE REASON)")
            }
            head.minorVersion = try version(line.lowerBound..<sp1)
            head.status = status
            if keepHeaders && hasThird { head.reason = text(raw, (sp2 + 1)..<line.upperBound) }
        }
        head.keepAlive = head.minorVersion == 1
    }

    static func parseHeaderLine(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>, startOffset: Int, keepHeaders: Bool,
                                sawContentLength: inout Bool, into head: inout HTTPHead) throws {
        // The first ':' (memchr), or the line's end when there is none.
        var colon = r.upperBound
        if !r.isEmpty, let base = raw.baseAddress, let p = memchr(base + r.lowerBound, 0x3a, r.count) {
            colon = base.distance(to: UnsafeRawPointer(p))
        }
        guard colon < r.upperBound, colon > r.lowerBound else {
            throw HTTPParseError(offset: startOffset + r.lowerBound, "a header line without a name and ':': \"\(text(raw, r).prefix(60))\"")
        }
        if isBlank(raw[colon - 1]) {
            throw HTTPParseError(offset: startOffset + colon, "white space before ':' in a header name (RFC 9112 §5.1 forbids it)")
        }
        let name = r.lowerBound..<colon
        let value = trimmed(raw, (colon + 1)..<r.upperBound)
        if keepHeaders { head.headers.append((text(raw, name), text(raw, value))) }
        if equalsIgnoringCase(raw, name, "content-length") {
            var n = 0
            var ok = !value.isEmpty && value.count <= 15
            if ok {
                for x in value {
                    let d = raw[x]
                    guard d >= 0x30 && d <= 0x39 else { ok = false; break }
                    n = n * 10 + Int(d - 0x30)
                }
            }
            guard ok else {
                throw HTTPParseError(offset: startOffset + r.lowerBound, "Content-Length must be a decimal number of bytes, got \"\(text(raw, value).prefix(40))\"")
            }
            if sawContentLength && head.contentLength != n {
                throw HTTPParseError(offset: startOffset + r.lowerBound, "two different Content-Length values (\(head.contentLength!) and \(n))")
            }
            sawContentLength = true
            head.contentLength = n
        } else if equalsIgnoringCase(raw, name, "transfer-encoding") {
            // The last coding decides (RFC 9112 §6.3 point 4).
            var last: Range<Int>?
            forEachListElement(raw, value) { last = $0; return true }
            head.chunked = last.map { equalsIgnoringCase(raw, $0, "chunked") } ?? false
        } else if equalsIgnoringCase(raw, name, "connection") {
            var close = false, keep = false
            forEachListElement(raw, value) { t in
                if equalsIgnoringCase(raw, t, "close") { close = true }
                if equalsIgnoringCase(raw, t, "keep-alive") { keep = true }
                return true
            }
            if close { head.keepAlive = false } else if keep { head.keepAlive = true }
        }
    }
}

/// Bytes that cannot be HTTP/1.x framing, with the absolute stream offset of the problem.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public init(offset: Int, _ message: String) {
        self.offset = offset
        self.message = message
    }
    public var description: String { "HTTP framing error at byte \(offset): \(message)" }

    /// `error` as this type (the head parser throws nothing else; anything else is named at `offset`).
    static func from(_ error: Error, offset: Int) -> HTTPParseError {
        error as? HTTPParseError ?? HTTPParseError(offset: offset, "\(error)")
    }
}
