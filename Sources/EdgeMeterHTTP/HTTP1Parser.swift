/// HTTP/1.1 message framing as a pure state machine over bytes (RFC 9112 §6): where each message's
/// head ends, how long its body is (Content-Length, chunked, or until the connection closes), and
/// where the message ends. No I/O, no Foundation, no copies of body bytes: the caller feeds whatever
/// bytes arrived (split anywhere, several pipelined messages at once) and gets events with absolute
/// stream offsets, so a capture analyser can map them to packet timestamps and a client can map them
/// to receive times.
///
/// One parser follows one direction of one connection. For responses, the framing of a response to
/// HEAD (no body whatever its headers say) depends on the request: call `expectResponse(toHEAD:)` once
/// per request sent, in order.
public struct HTTP1Parser: Sendable {
    public enum Kind: Sendable { case request, response }

    /// What the parser found, in stream order.
    public enum Event: Sendable, Equatable {
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

    /// Absolute offset of the next byte to be fed.
    public private(set) var offset = 0
    /// True while a message is between its first byte and its end.
    public var inMessage: Bool { state != .idle }
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
    }
    var state: State = .idle
    var headBytes: [UInt8] = []
    var headStart = 0
    var chunkLine: [UInt8] = []
    var trailerLineLength = 0
    var headQueue: [Bool] = []
    var headQueueStart = 0
    var currentIsHEADResponse = false

    public init(kind: Kind, maxHeadBytes: Int = 65_536) {
        self.kind = kind
        self.maxHeadBytes = maxHeadBytes
    }

    /// Tells a response parser that a request was sent; `toHEAD` when its method is HEAD.
    public mutating func expectResponse(toHEAD: Bool) {
        headQueue.append(toHEAD)
    }

    /// Feeds the next bytes of the stream; `onEvent` sees every event they complete, in order.
    /// Throws (and stays failed) on bytes that cannot be HTTP/1.x framing; events before the bad byte
    /// were already delivered.
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
                case .head:
                    // Copy up to and including the blank line that ends the head.
                    var j = i
                    var end = -1
                    while j < n {
                        if bytes[j] == 0x0a {
                            let had = headBytes.count
                            @inline(__always) func at(_ k: Int) -> UInt8 {
                                k >= i ? bytes[k] : (had + (k - i) >= 0 ? headBytes[had + (k - i)] : 0)
                            }
                            // "\r\n\r\n", or a bare "\n\n" as RFC 9112 §2.2 lets recipients accept.
                            if (at(j - 1) == 0x0d && at(j - 2) == 0x0a && at(j - 3) == 0x0d) || at(j - 1) == 0x0a {
                                end = j + 1
                                break
                            }
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
                    if end >= 0 { try headComplete(onEvent) }
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
        case .idle:
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

    mutating func headComplete(_ onEvent: (Event) throws -> Void) throws {
        var head = try headBytes.withUnsafeBytes { try HTTPHead.parse($0, kind: kind, startOffset: headStart) }
        head.endOffset = offset
        if kind == .response {
            let informational = (100..<200).contains(head.status) && head.status != 101
            if !informational {
                currentIsHEADResponse = headQueueStart < headQueue.count ? headQueue[headQueueStart] : false
                if headQueueStart < headQueue.count { headQueueStart += 1 }
                if headQueueStart > 64 && headQueueStart * 2 > headQueue.count {
                    headQueue.removeFirst(headQueueStart)
                    headQueueStart = 0
                }
            }
            head.isHEADResponse = !informational && currentIsHEADResponse
        }
        try onEvent(.head(head))
        // Body length, RFC 9112 §6.3.
        if kind == .response {
            if (100..<200).contains(head.status) || head.status == 204 || head.status == 304 || head.isHEADResponse {
                return try finish(onEvent)
            }
        }
        if head.chunked {
            state = .chunkSize
            chunkLine.removeAll(keepingCapacity: true)
        } else if let length = head.contentLength {
            if length == 0 { return try finish(onEvent) }
            state = .fixed(length)
        } else if kind == .request {
            try finish(onEvent) // a request without either has no body
        } else {
            state = .untilClose
        }
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
    /// Response: the reason phrase as sent.
    public var reason: String = ""
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    public var minorVersion: Int = 1
    /// Every header in order, names as sent.
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

    static func parse(_ raw: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind, startOffset: Int) throws -> HTTPHead {
        var head = HTTPHead()
        head.startOffset = startOffset
        // Split into lines (CRLF or bare LF), dropping the final empty line(s).
        var lines: [Range<Int>] = []
        var s = 0
        for k in 0..<raw.count where raw[k] == 0x0a {
            var e = k
            if e > s && raw[e - 1] == 0x0d { e -= 1 }
            lines.append(s..<e)
            s = k + 1
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let first = lines.first else { throw HTTPParseError(offset: startOffset, "an empty message head") }
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: raw[r]), as: UTF8.self) }
        let startLine = text(first)
        let parts = startLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        func version(_ v: Substring) throws -> Int {
            guard v.count == 8, v.hasPrefix("HTTP/1."), let minor = Int(String(v.last!)), minor == 0 || minor == 1 else {
                throw HTTPParseError(offset: startOffset, "not HTTP/1.0 or HTTP/1.1: \"\(startLine.prefix(60))\"")
            }
            return minor
        }
        switch kind {
        case .request:
            guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
                  parts[0].allSatisfy({ $0.isLetter && $0.isUppercase || $0 == "-" }) else {
                throw HTTPParseError(offset: startOffset, "malformed request line: \"\(startLine.prefix(60))\" (expected METHOD TARGET HTTP/1.1)")
            }
            head.method = String(parts[0])
            head.target = String(parts[1])
            head.minorVersion = try version(parts[2])
        case .response:
            guard parts.count >= 2, parts[1].count == 3, let status = Int(parts[1]), status >= 100 else {
                throw HTTPParseError(offset: startOffset, "malformed status line: \"\(startLine.prefix(60))\" (expected HTTP/1.1 CODE REASON)")
            }
            head.minorVersion = try version(parts[0])
            head.status = status
            head.reason = parts.count == 3 ? String(parts[2]) : ""
        }
        head.keepAlive = head.minorVersion == 1
        var sawContentLength = false
        for r in lines.dropFirst() {
            var colon = r.lowerBound
            while colon < r.upperBound && raw[colon] != 0x3a { colon += 1 }
            guard colon < r.upperBound, colon > r.lowerBound else {
                throw HTTPParseError(offset: startOffset + r.lowerBound, "a header line without a name and ':': \"\(text(r).prefix(60))\"")
            }
            if raw[colon - 1] == 0x20 || raw[colon - 1] == 0x09 {
                throw HTTPParseError(offset: startOffset + colon, "white space before ':' in a header name (RFC 9112 §5.1 forbids it)")
            }
            let name = text(r.lowerBound..<colon)
            let value = text((colon + 1)..<r.upperBound).trimmingSpaces()
            head.headers.append((name, value))
            switch name.lowercased() {
            case "content-length":
                guard !value.isEmpty, value.count <= 15, value.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(value) else {
                    throw HTTPParseError(offset: startOffset + r.lowerBound, "Content-Length must be a decimal number of bytes, got \"\(value.prefix(40))\"")
                }
                if sawContentLength && head.contentLength != n {
                    throw HTTPParseError(offset: startOffset + r.lowerBound, "two different Content-Length values (\(head.contentLength!) and \(n))")
                }
                sawContentLength = true
                head.contentLength = n
            case "transfer-encoding":
                let codings = value.lowercased().split(separator: ",").map { $0.trimmingCharacters() }
                head.chunked = codings.last == "chunked"
            case "connection":
                let tokens = value.lowercased().split(separator: ",").map { $0.trimmingCharacters() }
                if tokens.contains("close") { head.keepAlive = false } else if tokens.contains("keep-alive") { head.keepAlive = true }
            default:
                break
            }
        }
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 point 3).
        if head.chunked { head.contentLength = nil }
        return head
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
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
    func trimmingCharacters() -> String { trimmingSpaces() }
}
