import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterCore
import EdgeMeterSystem

/// The collector `edgemeter matrix` serves to its agents: the controller's `POST /delays` (the
/// summary rows `edgemeter feed` and the agent's pushes post) and the `GET /status` a poster reads
/// first, on one listening socket per origin node, each made inside that node's network namespace
/// on 127.0.0.1 (a socket stays in the namespace it was made in). The agent on node X therefore
/// pushes to `http://127.0.0.1:PORT` of its own namespace, exactly as it would push to a controller
/// on its host, and every row arriving on X's socket has origin X: the origin is where the row
/// came from, not what its body claims (a `from` that disagrees is refused).
///
/// `GET /status` answers one service judged on `ping_rtt` whose nodes are X's destinations, so
/// the poster keeps exactly the rows of the matrix. `POST /delays` needs `Authorization: Bearer
/// TOKEN`. One request per connection (the posters send `Connection: close`); HTTP/1.1 only as far
/// as these two requests need it.
public final class MatrixCollector: @unchecked Sendable {
    /// One origin's listening socket.
    public struct Endpoint: Sendable {
        public var node: String
        public var namespace: String
        public var port: Int
        public var url: String { "http://127.0.0.1:\(port)" }
    }

    public private(set) var endpoints: [Endpoint] = []
    let token: String
    let destinations: [String: [String]]
    private let lock = NSLock()
    private var rowsByOrigin: [String: [DelayRow]] = [:]
    private var arrivals: [String: Date] = [:]
    private var refusals: [String] = []
    private var stopping = false
    private var listeners: [Int32] = []
    private let done = DispatchGroup()

    /// Opens one socket per origin inside its namespace and serves them until `stop`.
    /// `origins`: node, its namespace, and the nodes it reports on.
    public init(origins: [(node: String, namespace: String, destinations: [String])], token: String) throws {
        self.token = token
        self.destinations = Dictionary(origins.map { ($0.node, $0.destinations) }, uniquingKeysWith: { a, _ in a })
        for o in origins {
            let (fd, port): (Int32, Int)
            do {
                (fd, port) = try NamespaceThread.run(in: o.namespace) { try Self.listenLoopback() }
            } catch {
                stop()
                throw LabError(.stepFailed, "cannot open the matrix collector in node \(o.node)'s namespace \(o.namespace): \(error); is the topology up (`edgemeter lab status`)?")
            }
            listeners.append(fd)
            endpoints.append(Endpoint(node: o.node, namespace: o.namespace, port: port))
            done.enter()
            let t = Thread { [self] in
                serve(fd, origin: o.node)
                done.leave()
            }
            t.name = "matrix collector \(o.node)"
            t.start()
        }
    }

    /// The rows posted so far, origin by origin, and when each origin's last post arrived.
    public var rows: [DelayRow] { lock.lock(); defer { lock.unlock() }; return endpoints.flatMap { rowsByOrigin[$0.node] ?? [] } }
    public func arrival(of origin: String) -> Date? { lock.lock(); defer { lock.unlock() }; return arrivals[origin] }
    /// Requests refused (bad token, bad body), each as one line naming the origin and why.
    public var refused: [String] { lock.lock(); defer { lock.unlock() }; return refusals }

    /// Stops serving and closes every socket (waits for the threads).
    public func stop() {
        lock.lock()
        let first = !stopping
        stopping = true
        lock.unlock()
        guard first else { return }
        _ = done.wait(timeout: .now() + 5)
        for fd in listeners { close(fd) }
        listeners = []
    }

    var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    /// A TCP socket listening on 127.0.0.1, port chosen by the kernel, in the calling thread's namespace.
    static func listenLoopback() throws -> (Int32, Int) {
        // SOCK_STREAM | SOCK_CLOEXEC by value: Glibc's names are not found in this module (see NamespaceConnect).
        let fd = socket(AF_INET, 1 | 0o2000000, 0)
        guard fd >= 0 else { throw SystemError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw SystemError("bind/listen on 127.0.0.1: \(e) (is loopback up in the namespace?)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    func serve(_ fd: Int32, origin: String) {
        while !isStopping {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let (status, body) = Self.read(c).map { answer($0, origin: origin) } ?? (400, #"{"error": "not an HTTP/1.1 request"}"#)
            Self.write(c, status: status, body: body)
            close(c)
        }
    }

    struct Request { var method: String; var path: String; var headers: [String: String]; var body: [UInt8] }

    /// One request: the head up to 64 KiB, then Content-Length bytes of body (up to 8 MiB).
    static func read(_ c: Int32) -> Request? {
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        var request: Request?
        var length = 0
        while true {
            if headEnd == nil, let r = find(buf, [13, 10, 13, 10]) {
                headEnd = r + 4
                let lines = String(decoding: buf[0..<r], as: UTF8.self).components(separatedBy: "\r\n")
                let start = lines[0].split(separator: " ")
                guard start.count == 3, start[2].hasPrefix("HTTP/1.") else { return nil }
                var headers: [String: String] = [:]
                for l in lines.dropFirst() {
                    guard let colon = l.firstIndex(of: ":") else { return nil }
                    headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                length = Int(headers["content-length"] ?? "0") ?? -1
                guard (0...8 << 20).contains(length) else { return nil }
                request = Request(method: String(start[0]), path: String(start[1]), headers: headers, body: [])
            }
            if let h = headEnd, buf.count - h >= length {
                request!.body = Array(buf[h..<(h + length)])
                return request
            }
            if headEnd == nil && buf.count > 65536 { return nil }
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            buf += chunk[0..<n]
        }
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return i }
        return nil
    }

    static func write(_ c: Int32, status: Int, body: String) {
        let reason = [200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        let bytes = Array(body.utf8)
        let out = Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n".utf8) + bytes
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    static func json(_ o: Any) -> String {
        (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The answer to one request arriving on `origin`'s socket.
    func answer(_ r: Request, origin: String) -> (Int, String) {
        let path = r.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? r.path
        switch (r.method, path) {
        case ("GET", "/status"):
            let nodes = (destinations[origin] ?? []).map { ["name": $0] }
            return (200, Self.json(["services": [["name": "matrix", "metric": "ping_rtt", "nodes": nodes]]]))
        case ("POST", "/delays"):
            guard r.headers["authorization"] == "Bearer \(token)" else {
                return refuse(origin, 401, "POST /delays without the matrix's bearer token")
            }
            do {
                let rows = try Self.rows(r.body, origin: origin, destinations: destinations[origin] ?? [])
                lock.lock()
                var kept = (rowsByOrigin[origin] ?? []).filter { old in !rows.contains { $0.to == old.to && $0.metric == old.metric } }
                kept += rows
                rowsByOrigin[origin] = kept
                arrivals[origin] = Date()
                lock.unlock()
                return (200, Self.json(["accepted": rows.count, "origin": origin]))
            } catch {
                return refuse(origin, 400, "\(error)")
            }
        case (_, "/status"), (_, "/delays"):
            return (405, Self.json(["error": "\(r.method) \(path): use GET /status or POST /delays"]))
        default:
            return (404, Self.json(["error": "\(path): the matrix collector serves GET /status and POST /delays only"]))
        }
    }

    func refuse(_ origin: String, _ status: Int, _ why: String) -> (Int, String) {
        lock.lock(); refusals.append("from \(origin): \(why)"); lock.unlock()
        return (status, Self.json(["error": why]))
    }

    /// The summary rows of a `POST /delays` body (`DelayFeed.post`'s form) as delays.csv rows with
    /// origin `origin`; a row for a node outside `destinations`, or claiming another origin, is an error.
    public static func rows(_ body: [UInt8], origin: String, destinations: [String]) throws -> [DelayRow] {
        guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], let list = o["delays"] as? [[String: Any]] else {
            throw LabError(.refused, "the body must be {\"delays\": [ROW, ...]} as `edgemeter feed` posts")
        }
        return try list.enumerated().map { i, d in
            func number(_ k: String) -> Double? { (d[k] as? NSNumber)?.doubleValue }
            func time(_ k: String) throws -> Date {
                guard let s = d[k] as? String, let t = Format.parseTimestamp(s) else {
                    throw LabError(.refused, "delays[\(i)].\(k) is missing or not a UTC timestamp: the agent posts window times")
                }
                return t
            }
            guard let to = d["node"] as? String, destinations.contains(to) else {
                throw LabError(.refused, "delays[\(i)].node \(d["node"] ?? "(missing)") is not a destination of \(origin): \(destinations.joined(separator: ", "))")
            }
            if let from = d["from"] as? String, from != origin {
                throw LabError(.refused, "delays[\(i)].from \(from) arrived on \(origin)'s socket: each agent posts to its own node's collector")
            }
            guard let metric = d["metric"] as? String, let samples = (d["samples"] as? NSNumber)?.intValue, samples > 0 else {
                throw LabError(.refused, "delays[\(i)] needs metric and a positive samples count")
            }
            let loss = number("loss_percent") ?? 0
            let received = (d["received"] as? NSNumber)?.intValue ?? (samples - Int((Double(samples) * loss / 100).rounded()))
            return DelayRow(from: origin, to: to, target: d["target"] as? String ?? to, metric: metric, p50Milliseconds: number("p50_ms"),
                            p90Milliseconds: number("p90_ms"), p99Milliseconds: number("p99_ms"), lossPercent: loss, samples: samples,
                            received: received, windowStart: try time("window_start"), windowEnd: try time("window_end"))
        }
    }
}
