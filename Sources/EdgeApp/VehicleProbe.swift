import Foundation
import NIOCore
import NIOPosix
import EdgeMeterHTTP

/// What `edgemeter vehicle` sends and how fast.
public struct VehicleOptions: Sendable {
    /// The edge app's `/drive` URL (or whatever stands in front of the nodes).
    public var target: HTTPTarget
    /// Requests per second; request k is due at start + k / rate (open loop).
    public var rate: Double
    /// Requests are due from the start until this much later.
    public var duration: Duration
    /// Longest wait for one request (connect + request + response).
    public var timeout: Duration = .seconds(1)
    /// The distances every request reports.
    public var report = VehicleReport(frontDistance: 30, rearDistance: 50)
    /// At most this many connections (requests in flight); a request due while all are busy waits
    /// for one and keeps its due time. nil: a new connection whenever none is idle.
    public var connections: Int?

    public init(target: HTTPTarget, rate: Double, duration: Duration) {
        (self.target, self.rate, self.duration) = (target, rate, duration)
    }

    /// Why these options cannot run (the flag and what to give), nil when they can.
    public var problem: String? {
        if !(rate.isFinite && rate > 0 && rate <= 10_000) { return "--rate must be from above 0 to 10000 requests/s, such as 50; got \(rate)" }
        if duration <= .zero || duration > .seconds(3600) { return "--duration must be above 0 s and at most 1 h, such as 10s" }
        if timeout <= .zero { return "--timeout must be longer than 0 s, such as 1s" }
        if let c = connections, !(1...10_000).contains(c) { return "--connections must be from 1 to 10000, such as 10; got \(c)" }
        if requestCount > Self.maxRequests {
            return "--rate × --duration is \(requestCount) requests; at most \(Self.maxRequests) are recorded in one run: lower --rate or --duration"
        }
        return nil
    }

    /// Every request is kept in memory (about 100 bytes each).
    public static let maxRequests = 1_000_000

    /// Requests in the run: one per slot before the end.
    public var requestCount: Int {
        let d = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        return Int((d * rate - 1e-9).rounded(.up))
    }
}

/// One request of a vehicle run. Times are CLOCK_MONOTONIC nanoseconds (`monotonicNanos`) from the run's start.
public struct VehicleRecord: Sendable, Equatable {
    /// 0-based; request k was due at k / rate.
    public var sequence: Int
    public var dueNanoseconds: Int64
    /// When the request's bytes were handed to the socket (nil when it never got a connection).
    public var sentNanoseconds: Int64?
    /// When the response's last byte arrived, or the request failed.
    public var endNanoseconds: Int64
    /// The HTTP status (nil when no response).
    public var status: Int?
    /// The node named by the `X-Edgemeter-Node` header of the response.
    public var node: String?
    /// Why the request failed (no response, or a status other than 200).
    public var failure: String?

    /// The end-to-end delay corrected for coordinated omission: from the time the request was due
    /// (not when it was sent) until the response's last byte, in milliseconds.
    public var delayMilliseconds: Double { Double(endNanoseconds - dueNanoseconds) / 1e6 }
    /// The delay as a closed-loop client would see it: from sending to the last byte (nil when never sent).
    public var uncorrectedMilliseconds: Double? { sentNanoseconds.map { Double(endNanoseconds - $0) / 1e6 } }
    public var ok: Bool { failure == nil }
}

/// An open-loop client of the edge app: requests go out on a fixed schedule whatever the answers
/// do (a request whose slot comes while others are in flight goes out on its own connection), each
/// over a keep-alive connection taken from an idle pool or opened. Records every request's
/// delay, answering node and failure.
public enum VehicleProbe {
    public static func run(_ o: VehicleOptions) async -> [VehicleRecord] {
        await run(o, startNanoseconds: Int64(monotonicNanos()) + 5_000_000)
    }

    /// As `run(_:)`, with request 0 due at `startNanoseconds` (CLOCK_MONOTONIC, absolute; record
    /// times are relative to it), and no request due after `stop()` first returned true (the
    /// requests already sent are waited for and recorded).
    public static func run(_ o: VehicleOptions, startNanoseconds start: Int64, stop: (@Sendable () -> Bool)? = nil) async -> [VehicleRecord] {
        let pool = ConnectionPool(target: o.target, limit: o.connections)
        defer { pool.closeAll() }
        let body = Array("{\"front_distance\": \(o.report.frontDistance), \"rear_distance\": \(o.report.rearDistance)}".utf8)
        let request = HTTPRequestSpec(method: "POST", path: o.target.path, headers: [("Content-Type", "application/json")], body: body)
        let timeout = TimeAmount.nanoseconds(o.timeout.components.seconds * 1_000_000_000 + o.timeout.components.attoseconds / 1_000_000_000)
        let count = o.requestCount
        return await withTaskGroup(of: VehicleRecord.self) { group in
            for k in 0..<count {
                if let stop, stop() { break }
                let due = start + Int64((Double(k) * 1e9 / o.rate).rounded())
                let now = Int64(monotonicNanos())
                if due > now { try? await Task.sleep(nanoseconds: UInt64(due - now)) }
                group.addTask {
                    await one(k, due: due, start: start, request: request, pool: pool, timeout: timeout)
                }
            }
            var out: [VehicleRecord] = []
            out.reserveCapacity(count)
            for await r in group { out.append(r) }
            return out.sorted { $0.sequence < $1.sequence }
        }
    }

    static func one(_ k: Int, due: Int64, start: Int64, request: HTTPRequestSpec, pool: ConnectionPool, timeout: TimeAmount) async -> VehicleRecord {
        var r = VehicleRecord(sequence: k, dueNanoseconds: due - start, sentNanoseconds: nil, endNanoseconds: 0, status: nil, node: nil, failure: nil)
        let deadline = NIODeadline.now() + timeout
        do {
            let conn = try await pool.take(timeout: timeout)
            do {
                if NIODeadline.now() >= deadline { throw HTTPClientError.timeout("no connection to \(pool.target) became free within the timeout") }
                let remaining = deadline - NIODeadline.now()
                let x = try await conn.send(request, host: pool.target.hostHeader, timeout: remaining > .zero ? remaining : .milliseconds(1))
                r.sentNanoseconds = Int64(x.sentAt) - start
                r.endNanoseconds = Int64(x.endAt) - start
                r.status = x.response.status
                r.node = x.response.header(edgeNodeHeader)
                if x.response.status != 200 {
                    r.failure = "HTTP \(x.response.status): \(x.response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines).prefix(120))"
                }
                if x.response.keepAlive { pool.giveBack(conn) } else { pool.discard(conn) }
            } catch {
                pool.discard(conn)
                throw error
            }
        } catch {
            r.endNanoseconds = Int64(monotonicNanos()) - start
            r.failure = describe(error)
        }
        return r
    }

    /// Per-node counts and the delay percentiles (nearest rank) of the successful requests.
    public static func summary(_ records: [VehicleRecord], options o: VehicleOptions) -> String {
        let ok = records.filter(\.ok)
        let delays = ok.map(\.delayMilliseconds).sorted()
        func rank(_ p: Double) -> String {
            guard !delays.isEmpty else { return "-" }
            let i = min(delays.count, max(1, Int((p / 100 * Double(delays.count)).nextDown.rounded(.up))))
            return String(format: "%.3f", delays[i - 1])
        }
        var nodes: [String: Int] = [:]
        for r in ok { nodes[r.node ?? "(no node header)", default: 0] += 1 }
        var failures: [String: Int] = [:]
        for r in records where !r.ok { failures[r.failure!, default: 0] += 1 }
        var out = "vehicle \(o.target): \(records.count) requests at \(o.rate)/s, \(ok.count) ok, \(records.count - ok.count) failed\n"
        out += "delay (due → last byte, CO-corrected) p50/p90/p99/max = \(rank(50))/\(rank(90))/\(rank(99))/\(rank(100)) ms\n"
        out += "answered by: " + (nodes.isEmpty ? "none" : nodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) + "\n"
        for (why, n) in failures.sorted(by: { $0.value > $1.value }).prefix(5) { out += "failed \(n)×: \(why)\n" }
        return out
    }

    /// One row per request: sequence, due_ms, sent_ms, end_ms, delay_ms, status, node, failure.
    public static func csv(_ records: [VehicleRecord]) -> String {
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        var out = "sequence,due_ms,sent_ms,end_ms,delay_ms,status,node,failure\n"
        for r in records {
            out += "\(r.sequence),\(String(format: "%.3f", Double(r.dueNanoseconds) / 1e6)),"
                + "\(r.sentNanoseconds.map { String(format: "%.3f", Double($0) / 1e6) } ?? ""),"
                + "\(String(format: "%.3f", Double(r.endNanoseconds) / 1e6)),\(String(format: "%.3f", r.delayMilliseconds)),"
                + "\(r.status.map(String.init) ?? ""),\(field(r.node ?? "")),\(field(r.failure ?? ""))\n"
        }
        return out
    }
}

/// Keep-alive connections to one target: idle ones are reused (most recently used first); with a
/// limit, at most `limit` are open and a caller waits (first come, first served) for one to be
/// given back or discarded.
final class ConnectionPool: @unchecked Sendable {
    let target: HTTPTarget
    let limit: Int?
    private let lock = NSLock()
    private var idle: [HTTPConnection] = []
    private var open = 0
    private var waiters: [CheckedContinuation<HTTPConnection?, Never>] = []
    private var address: SocketAddress?

    init(target: HTTPTarget, limit: Int?) { (self.target, self.limit) = (target, limit) }

    /// An idle connection, a new one, or (at the limit) the next one given back.
    func take(timeout: TimeAmount) async throws -> HTTPConnection {
        let handed: HTTPConnection? = await withCheckedContinuation { k in enqueue(k) }
        if let handed { return handed }
        // nil: a free slot: open a new connection in it.
        do {
            return try await connect(timeout: timeout)
        } catch {
            release()
            throw error
        }
    }

    /// Resumes `k` at once with an idle connection, or with nil after reserving a slot for a new
    /// one; at the limit, queues it for the next connection given back or slot freed.
    private func enqueue(_ k: CheckedContinuation<HTTPConnection?, Never>) {
        lock.lock()
        while let c = idle.popLast() {
            if c.channel.isActive { lock.unlock(); k.resume(returning: c); return }
            open -= 1
        }
        if let limit, open >= limit {
            waiters.append(k)
            lock.unlock()
            return
        }
        open += 1
        lock.unlock()
        k.resume(returning: nil)
    }

    private func cachedAddress() -> SocketAddress? { lock.lock(); defer { lock.unlock() }; return address }
    private func cache(_ a: SocketAddress) { lock.lock(); address = a; lock.unlock() }

    private func connect(timeout: TimeAmount) async throws -> HTTPConnection {
        let a: SocketAddress
        if let known = cachedAddress() { a = known } else {
            a = try await HTTPConnection.resolve(host: target.host, port: target.port)
            cache(a)
        }
        return try await HTTPConnection.connect(to: a, targetName: target.description, timeout: timeout, group: MultiThreadedEventLoopGroup.singleton)
    }

    /// A connection that can take the next request.
    func giveBack(_ c: HTTPConnection) { handToFirstWaiter(c) { idle.append(c) } }

    /// A connection that failed or was closed by the server: its slot goes to a waiter, if any.
    func discard(_ c: HTTPConnection) {
        c.close()
        release()
    }

    private func release() { handToFirstWaiter(nil) { open -= 1 } }

    /// Resumes the longest-waiting caller with `c` (a connection, or nil: a free slot to connect
    /// in); with no caller waiting, runs `otherwise` under the lock instead.
    private func handToFirstWaiter(_ c: HTTPConnection?, otherwise: () -> Void) {
        lock.lock()
        guard !waiters.isEmpty else {
            otherwise()
            lock.unlock()
            return
        }
        let k = waiters.removeFirst()
        lock.unlock()
        k.resume(returning: c)
    }

    func closeAll() {
        lock.lock(); let all = idle; idle = []; lock.unlock()
        for c in all { c.close() }
    }
}
