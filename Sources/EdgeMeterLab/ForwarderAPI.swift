import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterCore
import EdgeMeterSystem

// The forwarder's HTTP API, on a unix socket (`/run/edgemeter/lab/<topo>.sock`):
//
//   GET /links                       → 200, JSON array of `ForwarderLinkReport`
//   PUT /links/<node>/<network>      body: `LinkImpairment` JSON → 200 with that link's report
//
// A PUT replaces the link's impairment in both directions (absent fields = none), or in one when
// the body says `"direction": "egress"` (node → network) or `"ingress"` (network → node), and answers once
// the forwarding thread applied it; frames already queued keep their release time (nothing is
// dropped, nothing overtakes them). Errors: 400 (body not understood, with the reason), 404
// (no such link, with the links there are), 405. Every answer closes the connection.

/// A link's impairment in the words of the topology file: `{"delay": "60ms", "jitter": "5ms",
/// "distribution": "normal", "loss": "1%", "rate": "10mbit"}`; every field optional.
public struct LinkImpairment: Codable, Sendable, Equatable {
    public var delay: String?
    public var jitter: String?
    public var distribution: String?
    public var loss: String?
    public var rate: String?
    /// Only in a PUT: restart the link's random draws from this seed (the node → network direction
    /// uses `seed`, the other `seed + 1`), so a measurement meets the same losses and jitter each run.
    public var seed: UInt64?
    /// Only in a PUT: `both` (default), `egress` (node → network) or `ingress` (network → node).
    public var direction: String?

    public init(delay: String? = nil, jitter: String? = nil, distribution: String? = nil, loss: String? = nil, rate: String? = nil,
                seed: UInt64? = nil, direction: String? = nil) {
        (self.delay, self.jitter, self.distribution, self.loss, self.rate, self.seed) = (delay, jitter, distribution, loss, rate, seed)
        self.direction = direction
    }

    /// Which direction(s) a PUT changes; throws `.refused` naming the accepted words.
    public func linkDirection() throws -> LinkDirection {
        guard let direction else { return .both }
        guard let d = LinkDirection(rawValue: direction) else {
            throw LabError(.refused, "`direction` must be both, egress (node → network) or ingress (network → node), got \"\(direction)\"")
        }
        return d
    }

    /// The words for a spec (delay and jitter in ms with up to 3 decimals).
    public init(_ s: ImpairmentSpec) {
        func ms(_ ns: Int64) -> String {
            let v = Double(ns) / 1e6
            return v == v.rounded() ? "\(Int(v))ms" : String(format: "%.3fms", v)
        }
        func pct(_ v: Double) -> String { v == v.rounded() ? "\(Int(v))%" : "\(v)%" }
        delay = ms(s.delayNanoseconds)
        jitter = s.jitterNanoseconds == 0 ? nil : ms(s.jitterNanoseconds)
        distribution = s.jitterNanoseconds == 0 ? nil : s.distribution.rawValue
        switch s.loss {
        case .none: loss = nil
        case .bernoulli(let p): loss = pct(p)
        case .gilbertElliott(let p, let r, let b, let g): loss = "gemodel \(pct(p)) \(pct(r)) \(pct(b)) \(pct(g))"
        }
        rate = s.rateBitsPerSecond.map { r in
            r % 1_000_000_000 == 0 ? "\(r / 1_000_000_000)gbit" : r % 1_000_000 == 0 ? "\(r / 1_000_000)mbit" : r % 1000 == 0 ? "\(r / 1000)kbit" : "\(r)bit"
        }
    }

    /// The spec these words mean; throws `.refused` naming the field and what it accepts.
    public func spec() throws -> ImpairmentSpec {
        var s = ImpairmentSpec()
        func duration(_ text: String?, _ name: String) throws -> Int64 {
            guard let text else { return 0 }
            guard let d = parseDuration(text), d <= .seconds(10), d >= .zero else {
                throw LabError(.refused, "`\(name)` must be a duration up to 10s such as 30ms, got \"\(text)\"")
            }
            return d.nanoseconds
        }
        s.delayNanoseconds = try duration(delay, "delay")
        s.jitterNanoseconds = try duration(jitter, "jitter")
        if let distribution {
            guard let d = JitterDistribution(rawValue: distribution) else { throw LabError(.refused, "`distribution` must be uniform or normal, got \"\(distribution)\"") }
            s.distribution = d
        }
        if let loss {
            guard let l = ImpairmentSpec.parseLoss(loss) else {
                throw LabError(.refused, "`loss` must be a percentage 0-100 such as 1% or `gemodel P R 1-H 1-K` in percent, got \"\(loss)\"")
            }
            s.loss = l
        }
        if let rate {
            guard let r = ImpairmentSpec.parseRate(rate) else { throw LabError(.refused, "`rate` must be a bit rate such as 10mbit, 500kbit or 1gbit, got \"\(rate)\"") }
            s.rateBitsPerSecond = r
        }
        return s
    }

    /// One line: `delay 5ms, jitter 1ms normal, loss 1%, rate 10mbit` (`none` when nothing).
    public var summary: String {
        var parts: [String] = []
        if let delay, delay != "0ms" { parts.append("delay \(delay)") }
        if let jitter { parts.append("jitter \(jitter) \(distribution ?? "uniform")") }
        if let loss { parts.append("loss \(loss)") }
        if let rate { parts.append("rate \(rate)") }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }
}

/// The direction(s) of a link a change applies to, seen from the node.
public enum LinkDirection: String, Sendable, Codable, CaseIterable {
    case both
    /// Node → network (`to_network`).
    case egress
    /// Network → node (`to_node`).
    case ingress

    func includes(toNode: Bool) -> Bool { self == .both || (self == .ingress) == toNode }
}

/// One direction's counters since the forwarder started. `late*`: how long after its release time
/// each forwarded frame was handed to `send()` (CLOCK_MONOTONIC), in µs (bucketed by 1 µs, ≥ 1000 µs
/// counted as 1000); nil before the first frame.
public struct ForwarderDirectionStats: Codable, Sendable, Equatable {
    public var received: Int
    public var forwarded: Int
    public var droppedLoss: Int
    public var droppedQueueFull: Int
    /// Frames larger than 2048 bytes (an offload left on somewhere): not forwarded.
    public var droppedOversize: Int
    public var sendErrors: Int
    public var queued: Int
    public var lateP50Microseconds: Int?
    public var lateP99Microseconds: Int?
    public var lateMaxMicroseconds: Int?

    enum CodingKeys: String, CodingKey {
        case received, forwarded, queued
        case droppedLoss = "dropped_loss", droppedQueueFull = "dropped_queue_full", droppedOversize = "dropped_oversize"
        case sendErrors = "send_errors", lateP50Microseconds = "late_p50_us", lateP99Microseconds = "late_p99_us", lateMaxMicroseconds = "late_max_us"
    }
}

/// What `GET /links` answers per link.
public struct ForwarderLinkReport: Codable, Sendable, Equatable {
    /// `node:network`.
    public var id: String
    public var node: String
    public var network: String
    public var a: String
    public var b: String
    /// The node → network direction's impairment.
    public var impairment: LinkImpairment
    /// The network → node direction's impairment (nil from a forwarder that predates per-direction specs).
    public var impairmentToNode: LinkImpairment?
    /// Frames from the node towards the network.
    public var toNetwork: ForwarderDirectionStats
    /// Frames from the network towards the node.
    public var toNode: ForwarderDirectionStats

    enum CodingKeys: String, CodingKey {
        case id, node, network, a, b, impairment, impairmentToNode = "impairment_to_node", toNetwork = "to_network", toNode = "to_node"
    }

    /// `delay 5ms` when both directions are the same, else `egress delay 5ms; ingress none`.
    public var impairmentSummary: String {
        guard let back = impairmentToNode, back != impairment else { return impairment.summary + " (each direction)" }
        return "egress \(impairment.summary); ingress \(back.summary)"
    }
}

/// Shared between the forwarding thread and the API thread: pending spec changes (with a pipe that
/// wakes the forwarding thread's `ppoll`) and the last published reports.
final class ForwarderControl: @unchecked Sendable {
    let wakeRead: Int32
    let wakeWrite: Int32
    let linkIDs: [String]
    private let lock = NSCondition()
    private var updates: [(Int, ImpairmentSpec, UInt64?, LinkDirection)] = []
    private var published: [PublishedLink] = []
    private var generation = 0

    init(links: [ImpairedLink]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw LabError(.stepFailed, "forwarder: pipe() failed: \(String(cString: strerror(errno)))") }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        _ = fcntl(wakeRead, F_SETFL, fcntl(wakeRead, F_GETFL) | O_NONBLOCK)
        linkIDs = links.map(\.id)
    }

    /// Called by the forwarding thread after a wake: the updates to apply.
    func takeUpdates() -> [(Int, ImpairmentSpec, UInt64?, LinkDirection)] {
        var b = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &b, 64) > 0 {}
        lock.lock(); defer { lock.unlock() }
        let u = updates
        updates = []
        return u
    }

    func publish(_ links: [PublishedLink]) {
        lock.lock()
        published = links
        generation += 1
        lock.broadcast()
        lock.unlock()
    }

    /// The last published links, their quantiles worked out here (on the caller's thread).
    var current: [ForwarderLinkReport] { lock.lock(); let p = published; lock.unlock(); return p.map(\.report) }

    /// Queues a spec for a link and waits (≤ 2 s) until the forwarding thread applied it and
    /// published reports showing it.
    func set(link: Int, spec: ImpairmentSpec, seed: UInt64? = nil, direction: LinkDirection = .both) -> ForwarderLinkReport? {
        lock.lock()
        updates.append((link, spec, seed, direction))
        let g = generation
        lock.unlock()
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
        lock.lock(); defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(2)
        while generation == g || !updates.isEmpty {
            if !lock.wait(until: deadline) { return nil }
        }
        return published.indices.contains(link) ? published[link].report : nil
    }
}

/// A minimal HTTP/1.1 server on a unix socket: one request per connection, answered and closed.
enum ForwarderHTTP {
    static func serve(socketPath: String, control: ForwarderControl) throws {
        unlink(socketPath)
        let fd = socket(AF_UNIX, 1 /* SOCK_STREAM */, 0)
        guard fd >= 0 else { throw LabError(.stepFailed, "forwarder: socket(AF_UNIX) failed: \(String(cString: strerror(errno)))") }
        guard let r = UnixSocketAddress.bind(fd, path: socketPath) else {
            throw LabError(.refused, "forwarder: socket path \(socketPath) is longer than 107 bytes; use a shorter state directory")
        }
        guard r == 0, listen(fd, 16) == 0 else {
            throw LabError(.stepFailed, "forwarder: cannot listen on \(socketPath): \(String(cString: strerror(errno))); is the state directory writable?")
        }
        let thread = Thread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { continue }
                handle(c, control: control)
                close(c)
            }
        }
        thread.start()
    }

    static func handle(_ c: Int32, control: ForwarderControl) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard let (method, path, body) = readRequest(c) else { respond(c, 400, ["error": "malformed HTTP request"]); return }
        let (status, payload) = route(method: method, path: path, body: body, control: control)
        respondData(c, status, payload)
    }

    /// Pure routing over the control object (tested without a socket).
    static func route(method: String, path: String, body: Data, control: ForwarderControl) -> (Int, Data) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        func err(_ s: Int, _ m: String) -> (Int, Data) { (s, (try? enc.encode(["error": m])) ?? Data()) }
        let parts = path.split(separator: "/").map(String.init)
        if parts == ["links"] {
            guard method == "GET" else { return err(405, "use GET /links or PUT /links/<node>/<network>") }
            return (200, (try? enc.encode(control.current)) ?? Data())
        }
        if parts.count == 3, parts[0] == "links" {
            guard method == "PUT" else { return err(405, "use PUT /links/\(parts[1])/\(parts[2]) with a JSON impairment") }
            let id = "\(parts[1]):\(parts[2])"
            guard let index = control.linkIDs.firstIndex(of: id) else {
                return err(404, "no impaired link \(id); links: \(control.linkIDs.joined(separator: ", "))")
            }
            let spec: ImpairmentSpec
            let words: LinkImpairment
            let direction: LinkDirection
            do {
                words = try JSONDecoder().decode(LinkImpairment.self, from: body)
                spec = try words.spec()
                direction = try words.linkDirection()
            } catch let e as LabError {
                return err(400, e.message)
            } catch {
                return err(400, "the body must be JSON such as {\"delay\": \"60ms\", \"jitter\": \"5ms\", \"loss\": \"1%\", \"rate\": \"10mbit\"}: \(error)")
            }
            guard let report = control.set(link: index, spec: spec, seed: words.seed, direction: direction) else { return err(503, "the forwarding thread did not apply the change within 2 s") }
            return (200, (try? enc.encode(report)) ?? Data())
        }
        return err(404, "unknown path \(path); use GET /links or PUT /links/<node>/<network>")
    }

    static func readRequest(_ c: Int32) -> (String, String, Data)? {
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        var headerEnd: Range<Data.Index>?
        while headerEnd == nil {
            let n = read(c, &buf, buf.count)
            guard n > 0, data.count < 65536 else { return nil }
            data.append(contentsOf: buf[0..<n])
            headerEnd = data.range(of: Data("\r\n\r\n".utf8))
        }
        let head = String(decoding: data[..<headerEnd!.lowerBound], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ")
        guard first.count >= 2 else { return nil }
        var length = 0
        for l in lines.dropFirst() {
            let kv = l.split(separator: ":", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == "content-length" { length = Int(kv[1].trimmingCharacters(in: .whitespaces)) ?? 0 }
        }
        var body = Data(data[headerEnd!.upperBound...])
        while body.count < min(length, 65536) {
            let n = read(c, &buf, buf.count)
            guard n > 0 else { return nil }
            body.append(contentsOf: buf[0..<n])
        }
        return (String(first[0]), String(first[1]), body)
    }

    static func respond(_ c: Int32, _ status: Int, _ obj: [String: String]) {
        respondData(c, status, (try? JSONEncoder().encode(obj)) ?? Data())
    }

    static func respondData(_ c: Int32, _ status: Int, _ body: Data) {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][status] ?? "Error"
        var out = Data("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        out.append(body)
        out.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                // MSG_NOSIGNAL: a client that hung up must not kill the forwarder with SIGPIPE.
                let n = Glibc.send(c, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }
}

/// The client `lab link set` and `lab status` use: one request on the forwarder's unix socket.
public enum ForwarderClient {
    /// Sends `method path` with an optional JSON body; returns the status and the body. Throws
    /// `.refused` when nothing answers on the socket.
    public static func request(socketPath: String, method: String, path: String, body: Data? = nil, timeoutSeconds: Int = 5) throws -> (status: Int, body: Data) {
        let fd = socket(AF_UNIX, 1 /* SOCK_STREAM */, 0)
        guard fd >= 0 else { throw LabError(.stepFailed, "socket(AF_UNIX) failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard let r = UnixSocketAddress.connect(fd, path: socketPath) else { throw LabError(.refused, "socket path \(socketPath) is too long") }
        guard r == 0 else {
            throw LabError(.refused, "no impairment forwarder answers on \(socketPath) (\(String(cString: strerror(errno)))): is the topology up with impaired links (`edgemeter lab status`)?")
        }
        var req = Data("\(method) \(path) HTTP/1.1\r\nHost: forwarder\r\nContent-Type: application/json\r\nContent-Length: \(body?.count ?? 0)\r\nConnection: close\r\n\r\n".utf8)
        if let body { req.append(body) }
        _ = req.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        guard let end = data.range(of: Data("\r\n\r\n".utf8)) else {
            throw LabError(.stepFailed, "the forwarder on \(socketPath) answered no HTTP response; its log is in the topology's .logs directory")
        }
        let statusLine = String(decoding: data[..<end.lowerBound], as: UTF8.self).split(separator: " ")
        let status = statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0
        return (status, Data(data[end.upperBound...]))
    }
}
