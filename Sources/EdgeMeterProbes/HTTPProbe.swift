import Foundation
import NIOCore
import NIOPosix
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem

/// One HTTP exchange on a new connection, with monotonic timestamps for each phase (nanoseconds,
/// CLOCK_MONOTONIC) and the failure if any. Phases (blackbox_exporter's split):
/// - `resolve`: getaddrinfo for the host, on NIO's thread pool (≈0 for an IP literal);
/// - `connect`: CLOCK_MONOTONIC from just before `connect()` on a non-blocking socket until
///   `poll()` reports it writable with no error (the handshake completed), exactly as `tcping`
///   measures it; excludes name resolution and NIO's channel setup (the connected socket is
///   handed to NIO afterwards);
/// - `first_byte`: from handing the request to the socket until the first response byte is read
///   (server processing plus one round trip);
/// - `total`: from the start of name resolution until the last byte of the response body.
public struct HTTPExchange: Sendable {
    public var startedAt: Date
    public var resolveNanoseconds: Int64?
    public var connectNanoseconds: Int64?
    public var firstByteNanoseconds: Int64?
    public var totalNanoseconds: Int64?
    public var response: HTTPResponseInfo?
    public var error: HTTPClientError?
    /// The phase in which `error` happened (`resolve`, `connect`, `first_byte`, `total`).
    public var failedPhase: String?
    /// The connection's local (client) port, once connected: the `local_port` label that pairs
    /// the sample with the same connection in a packet capture.
    public var localPort: Int?

    public init(startedAt: Date, resolveNanoseconds: Int64? = nil, connectNanoseconds: Int64? = nil, firstByteNanoseconds: Int64? = nil,
                totalNanoseconds: Int64? = nil, response: HTTPResponseInfo? = nil, error: HTTPClientError? = nil,
                failedPhase: String? = nil, localPort: Int? = nil) {
        (self.startedAt, self.resolveNanoseconds, self.connectNanoseconds, self.firstByteNanoseconds, self.totalNanoseconds) = (startedAt, resolveNanoseconds, connectNanoseconds, firstByteNanoseconds, totalNanoseconds)
        (self.response, self.error, self.failedPhase, self.localPort) = (response, error, failedPhase, localPort)
    }
}

/// What `edgemeter http` checks and how often.
public struct HTTPProbeOptions: Sendable {
    public var request: HTTPRequestSpec
    /// Attempt k is due at start + k·interval; an attempt longer than the interval delays the next.
    public var schedule: Schedule
    /// Limit for the connect, and separately for the whole exchange after it.
    public var timeout: Duration = .seconds(5)
    /// Statuses that count as success; nil means any 2xx or 3xx.
    public var expectedStatuses: [Int]?
    /// Text the body must contain.
    public var expectedBody: String?

    public init(request: HTTPRequestSpec, schedule: Schedule, timeout: Duration = .seconds(5),
                expectedStatuses: [Int]? = nil, expectedBody: String? = nil) {
        (self.request, self.schedule, self.timeout) = (request, schedule, timeout)
        (self.expectedStatuses, self.expectedBody) = (expectedStatuses, expectedBody)
    }

    /// `count` attempts (at least 1), `interval` apart.
    public init(request: HTTPRequestSpec, count: Int = 10, interval: Duration = .seconds(1), timeout: Duration = .seconds(5),
                expectedStatuses: [Int]? = nil, expectedBody: String? = nil) {
        self.init(request: request, schedule: Schedule(count: max(1, count), interval: interval), timeout: timeout,
                  expectedStatuses: expectedStatuses, expectedBody: expectedBody)
    }
}

/// One HTTP exchange as the http and calc probes make it; `HTTPProbe.exchange` is the real one,
/// tests pass a fake where the network is not the point.
public typealias HTTPExchangeFunction = @Sendable (_ target: HTTPTarget, _ request: HTTPRequestSpec, _ timeout: Duration,
                                                   _ clock: any MeasurementClock) async -> HTTPExchange

/// What the http and calc probes share: the target, the run and scenario of their samples, the
/// terminal lines, the exchange, and their attempt loop.
public struct HTTPAttempts: Sendable {
    public var target: HTTPTarget
    public var scope: SampleScope
    /// One line per attempt (`seq=3 status=200 total=1.234 ms`, `seq=4 failed: <reason>`).
    public var onLine: (@Sendable (String) -> Void)?
    /// Whether a failed attempt's line is followed by the whole response body (`-v`).
    public var fullBody: Bool
    var exchange: HTTPExchangeFunction

    public init(target: HTTPTarget, scope: SampleScope, onLine: (@Sendable (String) -> Void)? = nil, fullBody: Bool = false,
                exchange: @escaping HTTPExchangeFunction = { await HTTPProbe.exchange($0, request: $1, timeout: $2, clock: $3) }) {
        (self.target, self.scope, self.onLine, self.fullBody, self.exchange) = (target, scope, onLine, fullBody, exchange)
    }

    /// One exchange of `request` per round of `schedule`, each on a new connection; `judge`
    /// turns it into its samples, its failure (nil on success) and its line. The totals count
    /// each attempt once, by its failure's status.
    func run(request: HTTPRequestSpec, timeout: Duration, schedule: Schedule, clock: any MeasurementClock, stop: StopFlag,
             sink: SampleSink, judge: (_ seq: Int, _ x: HTTPExchange) -> (rows: [Sample], failure: String?, line: String)) async -> [ProbeTotals] {
        var totals = ProbeTotals(name: target.description, address: target.description)
        await runSchedule(schedule, clock: clock, stop: stop) { round in
            let x = await exchange(target, request, timeout, clock)
            let (rows, failure, line) = judge(round.sequence, x)
            rows.forEach(sink.record)
            totals.add(failure == nil ? .ok : (x.error?.sampleStatus ?? .error), at: x.startedAt)
            onLine?(line)
        }
        return [totals]
    }
}

/// A probe made of its options and the `HTTPAttempts` it shares with the other (http and calc).
public protocol HTTPAttemptProbe: Probe {
    associatedtype Options: Sendable
    init(options: Options, attempts: HTTPAttempts)
    /// The rounds `options` ask for: attempt k is due at start + k·interval.
    static func schedule(of options: Options) -> Schedule
}

extension HTTPAttemptProbe {
    /// Runs the attempts `options` ask for (or until `stop`) on the real clock: builds the probe and
    /// runs it. Returns the attempts made and how many succeeded (answered as expected).
    @discardableResult
    public static func run(target: HTTPTarget, options: Options, runID: String, scenario: String,
                           sink: SampleSink, stop: StopFlag, progress: (@Sendable (String) -> Void)? = nil,
                           fullBody: Bool = false) async -> (attempts: Int, succeeded: Int) {
        let attempts = HTTPAttempts(target: target, scope: SampleScope(runID: runID, scenario: scenario), onLine: progress, fullBody: fullBody)
        let t = await Self(options: options, attempts: attempts).run(schedule: schedule(of: options), clock: SystemClock(), stop: stop, sink: sink)
        return (t[0].attempts, t[0].succeeded)
    }
}

/// `edgemeter http`: one request at a time, each on a new connection, every phase recorded.
///
/// Samples (probe `http`), per attempt: `latency/resolve`, `connect`, `first_byte`, `total`
/// (`HTTPProbe.samples`), labels `seq` (from 1, as ping's), `method`, `clock=monotonic`,
/// `connection=new`, `http_status`, `local_port`. A failed attempt's line gives the reason (status
/// and first body line); with `fullBody` the whole response body follows it.
public struct HTTPProbe: HTTPAttemptProbe {
    public static let phases = ["resolve", "connect", "first_byte", "total"]

    public var options: HTTPProbeOptions
    public var attempts: HTTPAttempts

    public init(options: HTTPProbeOptions, attempts: HTTPAttempts) { (self.options, self.attempts) = (options, attempts) }

    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) async -> [ProbeTotals] {
        let options = self.options, scope = attempts.scope, target = attempts.target, fullBody = attempts.fullBody
        return await attempts.run(request: options.request, timeout: options.timeout, schedule: schedule, clock: clock, stop: stop, sink: sink) { seq, x in
            let bad = x.response.flatMap { Self.mismatch($0, expectedStatuses: options.expectedStatuses, expectedBody: options.expectedBody) }
            let rows = Self.samples(x, mismatch: bad, runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, target: target.description,
                                    labels: ["seq": String(seq), "method": options.request.method])
            let line: String
            if let total = x.totalNanoseconds, x.error == nil, bad == nil, let r = x.response {
                line = "seq=\(seq) status=\(r.status) total=\(String(format: "%.3f", Double(total) / 1e6)) ms"
            } else {
                line = "seq=\(seq) failed: \(x.error?.description ?? bad ?? "?")" + (fullBody ? Self.bodyBlock(x.response) : "")
            }
            return (rows, x.error?.description ?? bad, line)
        }
    }

    public static func schedule(of options: HTTPProbeOptions) -> Schedule { options.schedule }

    /// Performs one exchange (new connection, request, whole response, close). `startedAt` is
    /// `clock`'s wall time; the phase durations are the monotonic stamps of `HTTPConnection`
    /// (NIO's uptime clock, CLOCK_MONOTONIC, the clock `SystemClock` reads), so they are real
    /// time whatever `clock` is.
    public static func exchange(_ target: HTTPTarget, request: HTTPRequestSpec, timeout: Duration,
                                clock: any MeasurementClock = SystemClock()) async -> HTTPExchange {
        var x = HTTPExchange(startedAt: clock.wallNow())
        let t0 = monotonicNanos()
        let address: SocketAddress
        do {
            address = try await HTTPConnection.resolve(host: target.host, port: target.port)
        } catch {
            x.error = (error as? HTTPClientError) ?? .resolve("cannot resolve \(target.host) (\(describe(error))); check the host name")
            x.failedPhase = "resolve"
            return x
        }
        let t1 = monotonicNanos()
        x.resolveNanoseconds = Int64(t1 - t0)
        let amount = TimeAmount.nanoseconds(timeout.nanoseconds)
        let conn: HTTPConnection
        do {
            conn = try await HTTPConnection.connect(to: address, targetName: "\(target.host):\(target.port)", timeout: amount)
        } catch {
            x.error = (error as? HTTPClientError) ?? .other("connect to \(target.host):\(target.port) failed: \(describe(error))")
            x.failedPhase = "connect"
            return x
        }
        x.connectNanoseconds = conn.connectNanoseconds
        x.localPort = conn.localPort ?? conn.channel.localAddress?.port
        defer { conn.close() }
        do {
            let r = try await conn.send(request, host: target.hostHeader, keepAlive: false, timeout: amount)
            x.response = r.response
            x.firstByteNanoseconds = Int64(r.firstByteAt) - Int64(r.sentAt)
            x.totalNanoseconds = Int64(r.endAt) - Int64(t0)
        } catch {
            x.error = (error as? HTTPClientError) ?? .other("the exchange with \(target.host):\(target.port) failed: \(describe(error))")
            x.failedPhase = conn.collector.firstByteAt == 0 ? "first_byte" : "total"
            if conn.collector.firstByteAt != 0 {
                x.firstByteNanoseconds = Int64(conn.collector.firstByteAt) - Int64(conn.collector.sentAt)
            }
        }
        return x
    }

    /// Checks a response against the expectations; returns the reason when it does not match:
    /// the status with its reason phrase and the first line of the body (see `firstLine`).
    public static func mismatch(_ r: HTTPResponseInfo, expectedStatuses: [Int]?, expectedBody: String?) -> String? {
        let ok = expectedStatuses.map { $0.contains(r.status) } ?? (200..<400).contains(r.status)
        if !ok {
            let want = expectedStatuses.map { $0.map(String.init).joined(separator: " or ") } ?? "2xx or 3xx"
            return "expected status \(want), got \(r.statusLine)" + (firstLine(r.bodyText).map { ": \($0)" } ?? "")
        }
        if let want = expectedBody, !r.bodyText.contains(want) {
            return "the body (\(r.body.readableBytes) bytes) does not contain \"\(want)\""
        }
        return nil
    }

    /// The first line of a body that has text once HTML tags are removed, trimmed and cut at a
    /// word before `limit` characters ("…" marks a cut); nil for an empty body. For an HTML error
    /// page that is usually its title.
    public static func firstLine(_ body: String, limit: Int = 120) -> String? {
        for raw in body.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            var text = ""
            var inTag = false
            for c in raw {
                if c == "<" { inTag = true; continue }
                if c == ">" && inTag { inTag = false; continue }
                if !inTag { text.append(c) }
            }
            let line = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            if line.isEmpty { continue }
            if line.count <= limit { return line }
            var cut = String(line.prefix(limit))
            if let space = cut.lastIndex(of: " "), cut.distance(from: cut.startIndex, to: space) > limit / 2 { cut = String(cut[..<space]) }
            return cut + "…"
        }
        return nil
    }

    /// Turns an exchange into one sample per phase. Phases completed before a failure keep their
    /// value; the failed phase and all later ones carry the status and reason. A response that
    /// fails the expectations keeps resolve/connect/first_byte and fails `total`.
    public static func samples(_ x: HTTPExchange, mismatch: String?, runID: String, scenario: String, probe: String,
                               target: String, labels: [String: String]) -> [Sample] {
        var labels = labels
        labels["clock"] = "monotonic"
        labels["connection"] = "new"
        if let r = x.response { labels["http_status"] = String(r.status) }
        if let p = x.localPort { labels["local_port"] = String(p) }
        let values: [String: Int64?] = ["resolve": x.resolveNanoseconds, "connect": x.connectNanoseconds,
                                        "first_byte": x.firstByteNanoseconds, "total": x.totalNanoseconds]
        let failIndex: Int? = x.failedPhase.flatMap { phases.firstIndex(of: $0) } ?? (mismatch != nil ? 3 : nil)
        let status: SampleStatus = x.error?.sampleStatus ?? .error
        let reason = x.error?.description ?? mismatch ?? ""
        return phases.enumerated().map { i, phase in
            if let f = failIndex, i >= f {
                return Sample(runID: runID, scenario: scenario, probe: probe, target: target, metric: "latency", phase: phase,
                              value: nil, unit: "ms", timestamp: x.startedAt, status: status,
                              reason: i == f ? reason : "\(phases[f]) failed: \(reason)", labels: labels)
            }
            let v = values[phase].flatMap { $0 }.map { Double($0) / 1e6 }
            return Sample(runID: runID, scenario: scenario, probe: probe, target: target, metric: "latency", phase: phase,
                          value: v, unit: "ms", timestamp: x.startedAt, status: v == nil ? .error : .ok,
                          reason: v == nil ? "not measured" : "", labels: labels)
        }
    }

    /// The whole response body, indented, for `-v` (empty when there is no body).
    public static func bodyBlock(_ r: HTTPResponseInfo?) -> String {
        guard let r, r.body.readableBytes > 0 else { return "" }
        let text = r.bodyText.trimmingCharacters(in: .newlines)
        return "\n  response body (\(r.body.readableBytes) bytes):\n" + text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    }
}

extension HTTPProbe: WireMatchable {
    public static let probeName = "http"
    public static let wireKeys = [WireKey(phase: "connect", match: .tcpHandshake), WireKey(phase: "first_byte", match: .httpFirstByte)]
}
