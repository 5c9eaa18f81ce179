// libFuzzer entry point for HTTP1Parser (not part of the package or CI: built by run.sh with
// `swiftc -sanitize=fuzzer,address` together with Sources/EdgeMeterHTTP/HTTP1Parser.swift).
//
// The first input byte picks the kind (even: request, odd: response) and a split point; the rest
// is the stream. Each input is parsed three ways: whole with headers kept, split in two pieces
// without headers, and one byte at a time. Any crash, any event outside the stream, offsets that
// go backwards, or a difference between the three (framing events, error message and offset) stops
// the run with the input saved by libFuzzer.

struct Trace: Equatable {
    var events: [String] = []
    var error: String?
}

func run(_ data: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind, cuts: [Int], keepHeaders: Bool) -> Trace {
    var p = HTTP1Parser(kind: kind, maxHeadBytes: 4096, keepHeaders: keepHeaders)
    var t = Trace()
    var last = -1
    var start = 0
    func check(_ ok: Bool, _ what: String) { if !ok { fatalError("invariant broken: \(what)") } }
    do {
        for c in cuts + [data.count] where c >= start && c <= data.count {
            let piece = UnsafeRawBufferPointer(rebasing: data[start..<c])
            try p.feed(piece) { e in
                switch e {
                case .start(let o):
                    check(o >= last && o < data.count, "start \(o) after \(last)"); last = o
                    t.events.append("start \(o)")
                case .head(let h):
                    check(h.startOffset >= last && h.endOffset <= data.count && h.startOffset < h.endOffset, "head \(h.startOffset)-\(h.endOffset)")
                    last = h.endOffset
                    t.events.append("head \(h.method) \(h.target) \(h.status) \(h.contentLength ?? -1) \(h.chunked) \(h.keepAlive) \(h.startOffset)-\(h.endOffset)")
                case .body(let r, let at):
                    check(r.lowerBound >= 0 && r.upperBound <= piece.count && at >= last, "body \(r) at \(at)")
                    last = at + r.count
                case .end(let o):
                    check(o >= last && o <= data.count, "end \(o) after \(last)"); last = o
                    t.events.append("end \(o)")
                }
            }
            start = c
        }
        try p.finishStream { e in if case .end(let o) = e { t.events.append("end \(o)") } }
    } catch {
        t.error = "\(error)"
    }
    return t
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 1 else { return 0 }
    let kind: HTTP1Parser.Kind = bytes[0] & 1 == 0 ? .request : .response
    let data = UnsafeRawBufferPointer(start: bytes + 1, count: count - 1)
    let cut = Int(bytes[0] >> 1) % data.count
    let whole = run(data, kind: kind, cuts: [], keepHeaders: true)
    let split = run(data, kind: kind, cuts: [cut], keepHeaders: false)
    if whole != split { fatalError("split at \(cut) / keepHeaders false differs:\n\(whole)\n\(split)") }
    if data.count <= 512 {
        let bytewise = run(data, kind: kind, cuts: Array(1..<data.count), keepHeaders: false)
        if whole != bytewise { fatalError("byte-at-a-time differs:\n\(whole)\n\(bytewise)") }
    }
    return 0
}
