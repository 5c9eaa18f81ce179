import Foundation
import NIOCore
import NIOPosix
import Histogram
import EdgeMeterCore
import EdgeMeterHTTP

/// Settings of a load run. A run is always bounded: by `duration`, by `requestCount` (then also by
/// `maxDuration`), and by the stop flag.
public struct LoadOptions: Sendable {
    public var request: HTTPRequestSpec
    /// Keep-alive connections; each has at most one request in flight (no pipelining).
    public var connections: Int = 10
    /// Open loop: requests per second on a fixed schedule (wrk2). nil: closed loop (wrk).
    public var rate: Double?
    /// Measured time after the warm-up. One of `duration` and `requestCount` must be set.
    public var duration: Duration?
    /// Measured requests (after the warm-up), split evenly over the connections.
    public var requestCount: Int?
    /// Upper bound on a `requestCount` run's measured time.
    public var maxDuration: Duration = .seconds(600)
    /// Requests whose (intended) send time falls in the first `warmup` are sent but not recorded.
    /// With `.zero` every request sent is recorded: the connections open during a 20 ms lead-in
    /// before the first request, and no request is sent in it.
    public var warmup: Duration = .zero
    /// A request without a complete response within this is an error of kind `timeout` (detected
    /// within 50 ms after the limit; recorded in the histograms at the timeout value, as wrk2
    /// does); its connection is closed and reopened.
    public var timeout: Duration = .seconds(2)
    /// Threads the generator uses: epoll threads (closed loop) or swift-nio event loops (open loop).
    public var threads: Int = System.coreCount
    /// Statuses that count as success; nil means 2xx and 3xx.
    public var expectedStatuses: [Int]?
    /// Text every response body must contain.
    public var expectedBody: String?

    public init(request: HTTPRequestSpec, connections: Int = 10, rate: Double? = nil, duration: Duration? = nil,
                requestCount: Int? = nil, warmup: Duration = .zero, timeout: Duration = .seconds(2)) {
        self.request = request
        self.connections = connections
        self.rate = rate
        self.duration = duration
        self.requestCount = requestCount
        self.warmup = warmup
        self.timeout = timeout
    }

    /// A sentence saying what is wrong with the options, or nil: the generator's own precondition.
    /// Users' values are checked (and named as they wrote them) by the `load` kind's declaration.
    public var problem: String? {
        if connections < 1 { return "the load needs at least 1 connection, got \(connections)" }
        if duration == nil && requestCount == nil { return "the load needs a duration or a request count so it is bounded" }
        if let r = rate, !(r > 0 && r.isFinite) { return "the request rate must be a positive number of requests per second, got \(r)" }
        if let c = requestCount, c < 1 { return "the request count must be at least 1, got \(c)" }
        if let d = duration, d <= .zero { return "the load duration must be positive" }
        if threads < 1 { return "the load needs at least 1 thread, got \(threads)" }
        return nil
    }
}

/// Error kinds the load generator counts.
public enum LoadErrorKind: String, CaseIterable, Sendable {
    /// The TCP connection could not be opened (refused, unreachable, connect timeout).
    case connect
    /// No complete response within the timeout.
    case timeout
    /// The connection closed or was reset while a request was in flight.
    case reset
    /// A response with a status outside the expected ones (default 2xx/3xx).
    case status
    /// A response whose body lacks the expected text, or that is not valid HTTP.
    case body
}

/// The outcome of a load run. Latencies are in nanoseconds (CLOCK_MONOTONIC).
///
/// - `corrected`: from each request's **intended** send time (its slot on the fixed schedule) to
///   the last byte of its response: wrk2's coordinated-omission correction. Equal to `uncorrected`
///   in a closed loop, where the intended time is the actual send time.
/// - `uncorrected`: from handing the request to the socket to the last byte of the response.
/// Both include every response (any status), as wrk does, and every timed-out request at the
/// timeout value (corrected: the timeout plus the request's lag behind its slot). The corrected
/// histogram also holds the `unsent` requests (open loop) at end − intended send time.
/// `errors` counts the failures by kind.
public struct LoadResult: Sendable {
    public var target: String
    public var openLoop: Bool
    public var requestedRate: Double?
    public var connections: Int
    public var threads: Int
    public var corrected: Histogram<UInt64>
    public var uncorrected: Histogram<UInt64>
    /// Responses received for measured requests.
    public var responses: Int
    public var statusCounts: [Int: Int]
    public var errors: [LoadErrorKind: Int]
    /// Bytes read for measured responses (status line, headers, body).
    public var bytesRead: Int
    /// Length of the measured window in seconds (after the warm-up).
    public var measuredSeconds: Double
    public var warmupRequests: Int
    /// Responses completed in each second of the measured window.
    public var perSecond: [Int]
    public var stopReason: String?
    /// Open loop: measured requests whose slot on the schedule fell before the end of the run but
    /// that were never sent (their connection was still waiting for a slow response, or
    /// reconnecting, when the run ended). Each is in `corrected` at end − intended send time: the
    /// least it would have waited. Not an error kind: nothing failed, the generator could not send.
    /// Slots that never had a connection count connect errors instead. Always 0 in a closed loop.
    public var unsent: Int = 0
    /// The per-request timeout the run used (timed-out requests are recorded at this value).
    public var timeoutNanoseconds: UInt64 = 0
    /// The warm-up before the measured window, seconds (0: none).
    public var warmupSeconds: Double = 0

    /// Responses per second of the measured window; nil when there is no measured window (see
    /// `noWindowReason`): reports use this one.
    public var measuredRate: Double? { measuredSeconds > 0 ? Double(responses) / measuredSeconds : nil }
    /// `measuredRate`, or 0 without a measured window (for progress lines only, not a measurement).
    public var achievedRate: Double { measuredRate ?? 0 }
    /// Bytes read per second of the measured window; nil when there is no measured window.
    public var transferRate: Double? { measuredSeconds > 0 ? Double(bytesRead) / measuredSeconds : nil }
    public var totalErrors: Int { errors.values.reduce(0, +) }
    /// Measured responses that met the expectations (status, body).
    public var succeeded: Int { responses - (errors[.status] ?? 0) - (errors[.body] ?? 0) }
    /// Why there is no measured window (nil when there is one).
    public var noWindowReason: String? {
        guard measuredSeconds <= 0 else { return nil }
        if let why = stopReason { return "no measured window: the run stopped before it began (\(why))" }
        return "no measured window: no request completed after the warm-up"
    }
}

/// Whether any connection was ever opened, and the last connect error (a dead target ends the
/// run early instead of counting connect errors until the end).
/// The first connect failure is reported at once through `notice`.
final class LoadConnectState: @unchecked Sendable {
    let targetName: String
    let notice: (@Sendable (String) -> Void)?
    init(targetName: String, notice: (@Sendable (String) -> Void)? = nil) {
        self.targetName = targetName
        self.notice = notice
    }
    private let lock = NSLock()
    private var connected = false
    private var lastError: String?
    private var failures = 0
    func markConnected() { lock.lock(); connected = true; lock.unlock() }
    func noteError(_ e: String) {
        lock.lock()
        lastError = e
        failures += 1
        let first = failures == 1
        lock.unlock()
        if first { notice?("first connect failure: \(e) (the generator keeps retrying every 10 ms; errors are counted as `connect`)") }
    }
    var snapshot: (connected: Bool, lastError: String?) { lock.lock(); defer { lock.unlock() }; return (connected, lastError) }
}

/// Per event loop statistics; touched only on that loop's thread (so without run-time
/// exclusivity checks), merged after the run.
final class LoopStats: @unchecked Sendable {
    /// Where the latencies are recorded (HdrHistogram's buckets in a plain array, sized for an
    /// hour); `corrected` and `uncorrected` are their histograms.
    let correctedLatencies = LatencyRecorder()
    let uncorrectedLatencies = LatencyRecorder()
    var corrected: Histogram<UInt64> { correctedLatencies.histogram }
    var uncorrected: Histogram<UInt64> { uncorrectedLatencies.histogram }
    @exclusivity(unchecked) var responses = 0
    /// Indexed by status code (0-999).
    @exclusivity(unchecked) var statusCounts = [Int](repeating: 0, count: 1000)
    /// Indexed like `LoadErrorKind.allCases`.
    @exclusivity(unchecked) var errors = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
    @exclusivity(unchecked) var bytesRead = 0
    @exclusivity(unchecked) var warmupRequests = 0
    @exclusivity(unchecked) var unsent = 0
    @exclusivity(unchecked) var perSecond: [Int] = []
    @exclusivity(unchecked) var lastCompletion: UInt64 = 0

    @inline(__always) func count(_ kind: LoadErrorKind) {
        switch kind {
        case .connect: errors[0] += 1
        case .timeout: errors[1] += 1
        case .reset: errors[2] += 1
        case .status: errors[3] += 1
        case .body: errors[4] += 1
        }
    }
}

/// The load generator's channel handler: writes the request's prebuilt bytes and frames the
/// responses with `HTTP1Parser` (status line, `Content-Length`, `Transfer-Encoding: chunked`,
/// `Connection`, bodiless statuses and HEAD, 1xx skipped). The parser runs with
/// `keepHeaders: false` over the received buffer in place: no header strings, no copy of a head
/// that arrives whole, no per-response allocation.
///
/// Hot path (one per request): `channelRead` → parser events → `complete` → the slot records and
/// sends the next request through `send`. The fields it touches are only ever used on this
/// channel's event loop and never overlap (see `channelInactive`), so their run-time exclusivity
/// checks are off.
final class LoadChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Strong: the slot drops its reference to this handler when the channel closes.
    let slot: LoadSlot
    let keepBody: Bool
    @exclusivity(unchecked) private var parser: HTTP1Parser
    /// Status and keep-alive of the response being read (the last head seen).
    @exclusivity(unchecked) private var status = 0
    @exclusivity(unchecked) private var keepAlive = true
    @exclusivity(unchecked) private var body = ByteBuffer()
    /// True while `channelRead` feeds the parser.
    @exclusivity(unchecked) private var feeding = false
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    static let maxHeadBytes = 64 * 1024

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Writes the request from this handler's position (the shortest path to the socket).
    @inline(__always) func send(_ bytes: ByteBuffer) -> Bool {
        guard let context else { return false }
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        return true
    }

    init(slot: LoadSlot) {
        self.slot = slot
        keepBody = slot.rules.keepsBody
        parser = slot.rules.parser
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let incoming = unwrapInboundIn(data)
        slot.pendingBytes &+= incoming.readableBytes
        // Completing a response can close the channel (or fail the next write), and a close
        // re-enters this handler (`channelInactive`) while the parser is being fed: `feeding`
        // tells it to leave the parser alone.
        feeding = true
        let ok: Bool = incoming.withUnsafeReadableBytes { raw in
            do {
                try parser.feed(raw) { event in
                    switch event {
                    case .start:
                        break
                    case .head(let head):
                        status = head.status
                        keepAlive = head.keepAlive
                    case .body(let range, _):
                        if keepBody { body.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range])) }
                    case .end:
                        // An interim 1xx (not 101): the real response follows.
                        if status < 100 || status >= 200 || status == 101 { complete() }
                    }
                }
                return true
            } catch {
                return false
            }
        }
        feeding = false
        if !ok {
            slot.protocolError()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A response delimited by the close ends here; its connection cannot be reused. A close
        // that re-enters during a feed comes from this handler's own completion of a response
        // (or a failed write of the next request), never from the peer ending a body: skip it.
        if !feeding && parser.bodyEndsAtClose {
            try? parser.finishStream { _ in }
            keepAlive = false
            complete()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func complete() {
        let ok = keepBody ? body.withUnsafeReadableBytes { slot.rules.bodyMatches($0) } : true
        if keepBody { body.clear() }
        slot.responseComplete(status: status, bodyOK: ok, keepAlive: keepAlive)
    }
}

/// One connection slot: keeps one keep-alive connection open (reopening it after errors) and
/// sends its share of the requests, closed or open loop, as its `LoadPacer` says; the pacer holds
/// every timing rule, the slot the I/O. Lives on one event loop; no locks. The slot is its own
/// timer callback (open loop: one per request), so waiting for a slot allocates nothing.
final class LoadSlot: NIOScheduledCallbackHandler, @unchecked Sendable {
    let loop: EventLoop
    /// This event loop's statistics (shared by its slots).
    let stats: LoopStats
    let address: SocketAddress
    /// The request, encoded once per run.
    let requestBytes: ByteBuffer
    /// What every response is checked against (the run's, shared with the epoll engine's code).
    let rules: LoadResponseRules
    let done: EventLoopPromise<Void>
    let connectState: LoadConnectState
    var everConnected = false
    /// Touched only on `loop` (as every field here), so without run-time exclusivity checks.
    @exclusivity(unchecked) var pacer: LoadPacer

    @exclusivity(unchecked) var channel: Channel?
    @exclusivity(unchecked) var handler: LoadChannelHandler?
    var pendingHandler: LoadChannelHandler?
    var connecting = false
    /// Bytes read since the request in flight was sent.
    @exclusivity(unchecked) var pendingBytes = 0

    init(loop: EventLoop, pacer: LoadPacer, stats: LoopStats, address: SocketAddress,
         requestBytes: ByteBuffer, rules: LoadResponseRules, connectState: LoadConnectState) {
        (self.loop, self.pacer, self.stats) = (loop, pacer, stats)
        (self.address, self.requestBytes, self.rules, self.connectState) = (address, requestBytes, rules, connectState)
        done = loop.makePromise()
    }

    func start() {
        loop.execute { self.connect() }
    }

    func stop(at now: UInt64) {
        loop.execute { self.pacer.stop(at: now) }
    }

    func connect() {
        if pacer.finished { return }
        guard pacer.shouldConnect(now: monotonicNanos()) else { finish(); return }
        connecting = true
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(pacer.timeoutNanos)))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [unowned self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let h = LoadChannelHandler(slot: self)
                    try channel.pipeline.syncOperations.addHandler(h)
                    self.pendingHandler = h
                }
            }
        bootstrap.connect(to: address).hop(to: loop).whenComplete { result in
            self.connecting = false
            switch result {
            case .success(let ch):
                if self.pacer.finished {
                    self.pendingHandler = nil
                    ch.close(promise: nil)
                    return
                }
                self.channel = ch
                self.handler = self.pendingHandler
                self.pendingHandler = nil
                if !self.everConnected {
                    self.everConnected = true
                    self.connectState.markConnected()
                }
                ch.closeFuture.whenComplete { _ in self.channelClosed(ch) }
                self.sendNext()
            case .failure(let error):
                self.pendingHandler = nil
                self.pacer.connectFailed(at: monotonicNanos(), into: self.stats)
                self.connectState.noteError(HTTPClientError.connectFailure(error, target: self.connectState.targetName).description)
                // Back off briefly so a dead server does not turn the generator into a SYN flood.
                self.loop.scheduleTask(in: .milliseconds(10)) { self.connect() }
            }
        }
    }

    /// Sends the next request when the pacer says it is due (now, or by a timer at its slot).
    func sendNext() {
        let now = monotonicNanos()
        switch pacer.next(now: now) {
        case .nothing:
            return
        case .finish:
            finish()
        case .wait(let due):
            // Fails only while the event loop shuts down, which happens after the run.
            if (try? loop.scheduleCallback(at: .uptimeNanoseconds(due), handler: self)) == nil { finish() }
        case .send(let intended):
            guard channel != nil, let handler else {
                if !connecting && channel == nil { connect() }
                return
            }
            pacer.sent(intended: intended, at: now)
            pendingBytes = 0
            if !handler.send(requestBytes) { channel?.close(promise: nil) }
        }
    }

    /// A `.wait` ended: the slot's time has come.
    func handleScheduledCallback(eventLoop: some EventLoop) { sendNext() }

    func responseComplete(status: Int, bodyOK: Bool, keepAlive: Bool) {
        let now = monotonicNanos()
        guard pacer.completed(at: now, status: status, failure: rules.failure(status: status, bodyOK: bodyOK),
                              bytes: pendingBytes, into: stats) else { return }
        if keepAlive {
            sendNext()
        } else {
            channel?.close(promise: nil) // channelClosed reconnects
        }
    }

    func checkTimeout() {
        if pacer.timedOut(at: monotonicNanos(), into: stats) { channel?.close(promise: nil) }
    }

    func protocolError() {
        pacer.protocolError(into: stats)
    }

    func channelClosed(_ ch: Channel) {
        guard channel === ch else { return }
        channel = nil
        handler = nil
        pacer.connectionLost(into: stats)
        if !pacer.finished { connect() }
    }

    func finish() {
        if pacer.finished { return }
        pacer.finish(everConnected: everConnected, into: stats)
        channel?.close(promise: nil)
        done.succeed(())
    }

    /// Ends the slot at once (after the grace period for in-flight requests).
    func abort() {
        loop.execute {
            if self.pacer.finished { return }
            self.pacer.abort(everConnected: self.everConnected, into: self.stats)
            self.channel?.close(promise: nil)
            self.done.succeed(())
        }
    }
}

/// Looks for timed-out requests on every slot of one event loop every `period` (a quarter of the
/// timeout, at most 50 ms), until all of them have finished: one timer per loop, rescheduled as a
/// callback on itself (no allocation), instead of a repeated task per connection.
final class LoadTimeoutChecker: NIOScheduledCallbackHandler, @unchecked Sendable {
    let loop: EventLoop
    let slots: [LoadSlot]
    let period: TimeAmount

    init(loop: EventLoop, slots: [LoadSlot], timeoutNanos: UInt64) {
        self.loop = loop
        self.slots = slots
        period = .nanoseconds(Int64(min(timeoutNanos / 4, 50_000_000)))
    }

    func start() {
        loop.execute { self.schedule() }
    }

    private func schedule() {
        _ = try? loop.scheduleCallback(in: period, handler: self)
    }

    func handleScheduledCallback(eventLoop: some EventLoop) {
        var running = false
        for s in slots where !s.pacer.finished {
            s.checkTimeout()
            running = true
        }
        if running { schedule() }
    }
}

/// What both engines check in every response of a run, built once per run from `LoadOptions`
/// (the one place that turns the options into per-response rules): which statuses count as
/// success, the text every body must contain, whether the requests are HEAD (responses without a
/// body), the request timeout, and the response parser every connection starts from.
struct LoadResponseRules: Sendable {
    /// Indexed by status code (0-999): whether it counts as success (`expectedStatuses`, or 2xx and 3xx).
    let statusOK: [Bool]
    /// Bytes every response body must contain; nil: bodies are not kept.
    let expectedBody: [UInt8]?
    /// A request without a complete response within this many ns is a `timeout`.
    let timeoutNanos: UInt64
    /// A fresh response parser for one connection: `keepHeaders: false` (no header strings), HEAD
    /// framing when the run's method is HEAD.
    let parser: HTTP1Parser

    init(_ options: LoadOptions) {
        statusOK = LoadGenerator.statusTable(options.expectedStatuses)
        expectedBody = options.expectedBody.map { Array($0.utf8) }
        timeoutNanos = UInt64(options.timeout.nanoseconds)
        var p = HTTP1Parser(kind: .response, maxHeadBytes: LoadChannelHandler.maxHeadBytes, keepHeaders: false)
        p.everyResponseIsToHEAD = options.request.method.uppercased() == "HEAD"
        parser = p
    }

    /// Whether the engines keep each response's body (only to look for `expectedBody`).
    var keepsBody: Bool { expectedBody != nil }

    /// Whether a kept body contains the expected text (true when none is expected).
    func bodyMatches(_ body: UnsafeRawBufferPointer) -> Bool {
        guard let want = expectedBody else { return true }
        return LoadGenerator.contains(body, want)
    }

    /// The error kind a complete response counts as (`status` first, then `body`), nil when it
    /// meets the expectations.
    @inline(__always) func failure(status: Int, bodyOK: Bool) -> LoadErrorKind? {
        !statusOK[min(max(status, 0), 999)] ? .status : (bodyOK ? nil : .body)
    }
}

/// Live figures of a running load, once a second (for a progress line).
public struct LoadLiveFigures: Sendable {
    /// Seconds since the lead-in ended (the first request's time), CLOCK_MONOTONIC.
    public var elapsedSeconds: Double
    /// Responses completed in the last second (warm-up included), per second.
    public var responsesPerSecond: Double
    /// Measured errors so far, all kinds.
    public var errors: Int
    /// Measured errors so far by kind (only kinds with a count).
    public var errorsByKind: [LoadErrorKind: Int]
    /// Whether the warm-up is still going on.
    public var inWarmup: Bool
}

/// `edgemeter load`: HTTP load with HDR latency histograms, closed loop (wrk) or open loop at a
/// fixed rate with coordinated-omission correction (wrk2). Memory is bounded by the histograms
/// (two of 264 KiB per thread) and one counter per measured second, whatever the request count.
///
/// Two engines run the connections, with the same pacing rules (`LoadPacer`), window
/// (`LoadWindow`), statistics (`LoopStats`) and result assembly, so they give the same
/// `LoadResult` for the same run:
/// - closed loop: `EpollLoadEngine`, a plain epoll loop per thread as wrk has (about 2 µs less
///   client CPU per request than NIO's pipeline, which the server gets back when both share the cores);
/// - open loop (`rate`): swift-nio event loops (`LoadSlot`, timers per slot).
/// The environment variable `EDGEMETER_LOAD_ENGINE=nio` runs the closed loop on swift-nio too
/// (the engine before the epoll one, for before/after comparisons and as a fallback);
/// `EDGEMETER_LOAD_ENGINE=epoll` or unset is the default; any other value is an error.
public enum LoadGenerator {
    /// The engine that runs the connections.
    enum Engine: String, Sendable { case epoll, nio }

    /// The engine for `options` given the value of `EDGEMETER_LOAD_ENGINE` (nil: unset).
    static func engine(for options: LoadOptions, environment value: String?) throws -> Engine {
        let forced: Engine?
        switch value?.trimmingCharacters(in: .whitespaces).lowercased() {
        case nil, "": forced = nil
        case "nio": forced = .nio
        case "epoll": forced = .epoll
        case let other?:
            throw HTTPClientError.other("EDGEMETER_LOAD_ENGINE must be `epoll` or `nio`, got \"\(other)\"; "
                                        + "unset it to use the default (epoll for the closed loop, swift-nio for a rate)")
        }
        // The open loop's per-request timers live on NIO's event loops.
        if options.rate != nil { return .nio }
        return forced ?? .epoll
    }

    /// Indexed by status code (0-999): whether it counts as success (`expected`, or 2xx and 3xx).
    static func statusTable(_ expected: [Int]?) -> [Bool] {
        var ok = [Bool](repeating: false, count: 1000)
        if let expected {
            for c in expected where c >= 0 && c < 1000 { ok[c] = true }
        } else {
            for c in 200..<400 { ok[c] = true }
        }
        return ok
    }

    /// Whether `raw` contains `want` (an empty `want` is in every body).
    static func contains(_ raw: UnsafeRawBufferPointer, _ want: [UInt8]) -> Bool {
        if want.isEmpty { return true }
        guard raw.count >= want.count else { return false }
        var i = 0
        while i <= raw.count - want.count {
            var k = 0
            while k < want.count && raw[i + k] == want[k] { k += 1 }
            if k == want.count { return true }
            i += 1
        }
        return false
    }

    /// Each connection's pacer and the thread (event loop) it runs on: connection `i` on
    /// `i % threads`. Count mode splits the requests evenly; a connection with none is left out.
    static func pacers(options: LoadOptions, window: LoadWindow) -> [(thread: Int, pacer: LoadPacer)] {
        var out: [(thread: Int, pacer: LoadPacer)] = []
        for i in 0..<options.connections {
            var quota: Int?
            if let c = options.requestCount {
                quota = c / options.connections + (i < c % options.connections ? 1 : 0)
                if quota == 0 { continue }
            }
            let pacer = LoadPacer(t0: window.t0, measureStart: window.measureStart, end: window.end, rate: options.rate,
                                  connections: options.connections, index: i, quota: quota,
                                  timeoutNanos: UInt64(options.timeout.nanoseconds))
            out.append((i % options.threads, pacer))
        }
        return out
    }

    /// Runs the load. `progress` gets notices that matter at once (the first connect failure, with
    /// its reason); `live` gets the figures once a second while the run goes on. The engine is
    /// chosen as the type's documentation says (`EDGEMETER_LOAD_ENGINE`).
    public static func run(target: HTTPTarget, options: LoadOptions, stop: StopFlag,
                           progress: (@Sendable (String) -> Void)? = nil,
                           live: (@Sendable (LoadLiveFigures) -> Void)? = nil) async throws -> LoadResult {
        try await run(target: target, options: options, stop: stop,
                      engine: engine(for: options, environment: ProcessInfo.processInfo.environment["EDGEMETER_LOAD_ENGINE"]),
                      progress: progress, live: live)
    }

    /// Runs the load on the given engine (the tests compare the two on the same run).
    static func run(target: HTTPTarget, options: LoadOptions, stop: StopFlag, engine: Engine,
                    progress: (@Sendable (String) -> Void)? = nil,
                    live: (@Sendable (LoadLiveFigures) -> Void)? = nil) async throws -> LoadResult {
        if let p = options.problem { throw HTTPClientError.other(p) }
        if engine == .epoll && options.rate != nil { throw HTTPClientError.other("the epoll engine runs only the closed loop (no rate)") }
        let address = try await HTTPConnection.resolve(host: target.host, port: target.port)

        var spec = options.request
        spec.path = target.path
        let bytes = spec.wireBytes(host: target.hostHeader)

        // Connections open in a 20 ms lead-in; no request is sent in it (closed loop: the first
        // request waits for t0; open loop: the schedule starts at t0). It is not part of the warm-up.
        var window = LoadWindow(t0: monotonicNanos() + 20_000_000, warmupNanos: UInt64(options.warmup.nanoseconds),
                                durationNanos: options.duration.map { UInt64($0.nanoseconds) },
                                maxDurationNanos: UInt64(options.maxDuration.nanoseconds),
                                timeoutNanos: UInt64(options.timeout.nanoseconds))
        let t0 = window.t0

        let connectState = LoadConnectState(targetName: "\(target.host):\(target.port)", notice: progress)
        let plan = pacers(options: options, window: window)
        let running: RunningLoad
        switch engine {
        case .epoll:
            running = try EpollLoadEngine.start(address: address, request: bytes, options: options, pacers: plan, connectState: connectState)
        case .nio:
            running = NIOLoadRun(address: address, request: bytes, options: options, pacers: plan, connectState: connectState)
        }

        var stopReason: String?
        var lastReport = t0
        var lastCompleted = 0
        let giveUp = max(UInt64(5_000_000_000), 2 * UInt64(options.timeout.nanoseconds))
        var aborted = false
        while !running.isFinished {
            try? await Task.sleep(for: .milliseconds(20))
            let now = monotonicNanos()
            if stop.isStopped && stopReason == nil {
                stopReason = stop.reason ?? "stop requested"
                window.stop(at: now)
                running.stop(at: now)
            }
            // A target that never accepts a connection ends the run after the give-up time.
            if stopReason == nil && now > t0 + giveUp {
                let c = connectState.snapshot
                if !c.connected {
                    stopReason = "no connection to \(target.host):\(target.port) could be opened in \(giveUp / 1_000_000_000) s"
                        + (c.lastError.map { " (last error: \($0))" } ?? "")
                    window.stop(at: now)
                    running.stop(at: now)
                }
            }
            if !aborted && window.graceOver(at: now) {
                aborted = true
                running.abort()
            }
            if let live, now > t0, now &- lastReport >= 1_000_000_000, !running.isFinished {
                let c = await running.counters()
                let seconds = Double(now &- lastReport) / 1e9
                var byKind: [LoadErrorKind: Int] = [:]
                for (k, kind) in LoadErrorKind.allCases.enumerated() where c.errors[k] > 0 { byKind[kind] = c.errors[k] }
                live(LoadLiveFigures(elapsedSeconds: Double(now &- t0) / 1e9,
                                     responsesPerSecond: Double(c.completed - lastCompleted) / seconds,
                                     errors: c.errors.reduce(0, +), errorsByKind: byKind, inWarmup: now < window.measureStart))
                lastCompleted = c.completed
                lastReport = now
            }
        }
        let statsByThread = await running.collect()
        return LoadResult(merging: statsByThread, window: window, target: target.description, options: options, stopReason: stopReason)
    }
}

/// A started load engine, as `LoadGenerator.run`'s control loop drives it (polled every 20 ms).
protocol RunningLoad: AnyObject, Sendable {
    /// Every connection has finished its part of the run.
    var isFinished: Bool { get }
    /// A stop request (or the give-up on a dead target) at `now`: no request is sent after it.
    func stop(at now: UInt64)
    /// The grace period after the end is over: requests in flight are timeouts, connections close.
    func abort()
    /// Responses completed so far (warm-up included) and measured errors by kind (indexed like
    /// `LoadErrorKind.allCases`), for the live figures.
    func counters() async -> (completed: Int, errors: [Int])
    /// Each thread's statistics, once every connection has finished.
    func collect() async -> [LoopStats]
}

/// A run on swift-nio event loops: one `LoadSlot` per connection, a `LoadTimeoutChecker` per loop.
final class NIOLoadRun: RunningLoad, @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let loops: [EventLoop]
    let statsByLoop: [LoopStats]
    let slots: [LoadSlot]
    let allDone: EventLoopFuture<Void>
    let finished = StopFlag()

    init(address: SocketAddress, request: ByteBuffer, options: LoadOptions, pacers: [(thread: Int, pacer: LoadPacer)],
         connectState: LoadConnectState) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        let loops = Array(group.makeIterator())
        let statsByLoop = loops.map { _ in LoopStats() }
        self.loops = loops
        self.statsByLoop = statsByLoop
        let rules = LoadResponseRules(options)
        slots = pacers.map { p in
            LoadSlot(loop: loops[p.thread], pacer: p.pacer, stats: statsByLoop[p.thread], address: address,
                     requestBytes: request, rules: rules, connectState: connectState)
        }
        for s in slots { s.start() }
        for l in loops {
            let mine = slots.filter { $0.loop === l }
            if !mine.isEmpty { LoadTimeoutChecker(loop: l, slots: mine, timeoutNanos: rules.timeoutNanos).start() }
        }
        allDone = EventLoopFuture.andAllComplete(slots.map { $0.done.futureResult }, on: loops[0])
        allDone.whenComplete { [finished] _ in finished.stop(reason: "all connections finished") }
    }

    var isFinished: Bool { finished.isStopped }
    func stop(at now: UInt64) { for s in slots { s.stop(at: now) } }
    func abort() { for s in slots { s.abort() } }

    func counters() async -> (completed: Int, errors: [Int]) {
        // Read each loop's counters on its own thread (they are not locked).
        var completed = 0
        var errors = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
        for (l, st) in zip(loops, statsByLoop) {
            if let c = try? await l.submit({ (st.responses + st.warmupRequests, st.errors) }).get() {
                completed += c.0
                for k in errors.indices { errors[k] += c.1[k] }
            }
        }
        return (completed, errors)
    }

    func collect() async -> [LoopStats] {
        try? await allDone.get()
        // Let the loops finish their last callbacks before reading their statistics.
        for l in loops { try? await l.submit {}.get() }
        group.shutdownGracefully { _ in }
        return statsByLoop
    }
}

extension LoadResult {
    /// Merges the event loops' statistics into the result of a run bounded by `window` (pure: no
    /// clock read). Closed loop: the intended send time is the actual one, so `corrected` is
    /// `uncorrected`. A partial last second (count mode, stop) would read as a throughput dip, so
    /// `perSecond` holds only the whole seconds of the measured window.
    init(merging statsByLoop: [LoopStats], window: LoadWindow, target: String, options: LoadOptions, stopReason: String?) {
        var corrected = statsByLoop[0].corrected
        var uncorrected = statsByLoop[0].uncorrected
        self.init(target: target, openLoop: options.rate != nil, requestedRate: options.rate,
                  connections: options.connections, threads: options.threads, corrected: corrected,
                  uncorrected: uncorrected, responses: 0, statusCounts: [:], errors: [:], bytesRead: 0,
                  measuredSeconds: 0, warmupRequests: 0, perSecond: [], stopReason: stopReason)
        timeoutNanoseconds = UInt64(options.timeout.nanoseconds)
        warmupSeconds = Double(options.warmup.nanoseconds) / 1e9
        var lastCompletion: UInt64 = 0
        for (i, s) in statsByLoop.enumerated() {
            if i > 0 {
                corrected.add(s.corrected)
                uncorrected.add(s.uncorrected)
            }
            responses += s.responses
            for (code, n) in s.statusCounts.enumerated() where n > 0 { statusCounts[code, default: 0] += n }
            for (k, kind) in LoadErrorKind.allCases.enumerated() where s.errors[k] > 0 { errors[kind, default: 0] += s.errors[k] }
            bytesRead += s.bytesRead
            warmupRequests += s.warmupRequests
            unsent += s.unsent
            for (j, c) in s.perSecond.enumerated() {
                while perSecond.count <= j { perSecond.append(0) }
                perSecond[j] += c
            }
            lastCompletion = max(lastCompletion, s.lastCompletion)
        }
        self.corrected = options.rate == nil ? uncorrected : corrected
        self.uncorrected = uncorrected
        measuredSeconds = Double(window.measuredNanoseconds(lastCompletion: lastCompletion)) / 1e9
        let whole = Int(measuredSeconds)
        if perSecond.count > whole { perSecond.removeLast(perSecond.count - whole) }
    }
}
