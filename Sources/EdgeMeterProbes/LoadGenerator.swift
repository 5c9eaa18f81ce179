import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1
import Histogram
import EdgeMeterCore

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
    public var warmup: Duration = .zero
    /// A request without a complete response within this is an error of kind `timeout`; its
    /// connection is closed and reopened.
    public var timeout: Duration = .seconds(2)
    /// Event-loop threads the generator uses.
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

    /// A sentence saying what is wrong with the options, or nil.
    public var problem: String? {
        if connections < 1 { return "--connections must be at least 1" }
        if duration == nil && requestCount == nil { return "give --duration or --requests so the run is bounded" }
        if let r = rate, !(r > 0 && r.isFinite) { return "--rate must be a positive number of requests per second" }
        if let c = requestCount, c < 1 { return "--requests must be at least 1" }
        if let d = duration, d <= .zero { return "--duration must be positive" }
        if threads < 1 { return "--threads must be at least 1" }
        if request.method.uppercased() == "HEAD" { return "load does not send HEAD requests (their responses have no body to frame); use GET" }
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
/// Both include every response (any status), as wrk does; `errors` counts the failures by kind.
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

    public var achievedRate: Double { measuredSeconds > 0 ? Double(responses) / measuredSeconds : 0 }
    public var totalErrors: Int { errors.values.reduce(0, +) }
}

/// Shared run state: the schedule origin and the end, read by every connection.
final class LoadShared: @unchecked Sendable {
    let lock = NSLock()
    let t0: UInt64
    let measureStart: UInt64
    private var end: UInt64
    init(t0: UInt64, measureStart: UInt64, end: UInt64) {
        self.t0 = t0
        self.measureStart = measureStart
        self.end = end
    }
    var endNanos: UInt64 { lock.lock(); defer { lock.unlock() }; return end }
    func stopNow(_ now: UInt64) { lock.lock(); if now < end { end = now }; lock.unlock() }
}

/// Per event loop statistics; touched only on that loop's thread, merged after the run.
final class LoopStats: @unchecked Sendable {
    var corrected: Histogram<UInt64>
    var uncorrected: Histogram<UInt64>
    var responses = 0
    var statusCounts: [Int: Int] = [:]
    var errors: [LoadErrorKind: Int] = [:]
    var bytesRead = 0
    var warmupRequests = 0
    var perSecond: [Int] = []
    var lastCompletion: UInt64 = 0

    init() {
        var h = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        h.autoResize = true
        corrected = h
        uncorrected = h
    }
}

/// Writes the request's prebuilt bytes for each `.head` (the HTTP decoder still observes the head
/// so it can frame the response), and counts the bytes read.
final class PrebuiltRequestEncoder: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer
    let bytes: ByteBuffer
    unowned let slot: LoadSlot
    init(bytes: ByteBuffer, slot: LoadSlot) {
        self.bytes = bytes
        self.slot = slot
    }
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = unwrapOutboundIn(data) {
            context.write(wrapOutboundOut(bytes), promise: promise)
        } else {
            promise?.succeed(())
        }
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        slot.pendingBytes += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }
}

/// Receives responses for one slot's current channel.
final class LoadResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    unowned let slot: LoadSlot
    private var status = 0
    private var keepAlive = true
    private var body: ByteBuffer?
    init(slot: LoadSlot) { self.slot = slot }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            status = Int(h.status.code)
            keepAlive = h.isKeepAlive
            if slot.expectedBody != nil { body = ByteBuffer() }
        case .body(var b):
            if body != nil { body!.writeBuffer(&b) }
        case .end:
            var bodyOK = true
            if let want = slot.expectedBody, let b = body {
                bodyOK = String(buffer: b).contains(want)
            }
            body = nil
            slot.responseComplete(status: status, bodyOK: bodyOK, keepAlive: keepAlive, channel: context.channel)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError || error is NIOHTTPDecoderError {
            slot.protocolError()
        }
        context.close(promise: nil)
    }
}

/// One connection slot: keeps one keep-alive connection open (reopening it after errors) and
/// sends its share of the requests, closed or open loop. Lives on one event loop.
final class LoadSlot: @unchecked Sendable {
    let index: Int
    let loop: EventLoop
    let shared: LoadShared
    let stats: LoopStats
    let address: SocketAddress
    let requestBytes: ByteBuffer
    let head: HTTPRequestHead
    let connections: Int
    let rate: Double?
    let quota: Int?
    let timeout: TimeAmount
    let expectedStatuses: Set<Int>?
    let expectedBody: String?
    let done: EventLoopPromise<Void>

    var channel: Channel?
    var connecting = false
    var seq = 0
    var measuredSent = 0
    var inFlight = false
    var intended: UInt64 = 0
    var sentAt: UInt64 = 0
    var pendingBytes = 0
    var timeoutTask: Scheduled<Void>?
    var finished = false

    init(index: Int, loop: EventLoop, shared: LoadShared, stats: LoopStats, address: SocketAddress, requestBytes: ByteBuffer,
         head: HTTPRequestHead, options: LoadOptions, quota: Int?) {
        self.index = index
        self.loop = loop
        self.shared = shared
        self.stats = stats
        self.address = address
        self.requestBytes = requestBytes
        self.head = head
        self.connections = options.connections
        self.rate = options.rate
        self.quota = quota
        self.timeout = .nanoseconds(options.timeout.nanoseconds)
        self.expectedStatuses = options.expectedStatuses.map(Set.init)
        self.expectedBody = options.expectedBody
        self.done = loop.makePromise()
    }

    func start() { loop.execute { self.connect() } }

    private func isMeasured(_ reference: UInt64) -> Bool { reference >= shared.measureStart }

    func connect() {
        if finished { return }
        if monotonicNanos() >= shared.endNanos && quota == nil { finish(); return }
        if let q = quota, measuredSent >= q, !inFlight { finish(); return }
        if shared.endNanos <= monotonicNanos() { finish(); return }
        connecting = true
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [unowned self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(PrebuiltRequestEncoder(bytes: self.requestBytes, slot: self))
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(LoadResponseHandler(slot: self))
                }
            }
        bootstrap.connect(to: address).hop(to: loop).whenComplete { result in
            self.connecting = false
            switch result {
            case .success(let ch):
                if self.finished { ch.close(promise: nil); return }
                self.channel = ch
                ch.closeFuture.whenComplete { _ in self.channelClosed(ch) }
                self.sendNext()
            case .failure:
                if self.isMeasured(monotonicNanos()) { self.stats.errors[.connect, default: 0] += 1 }
                // Back off briefly so a dead server does not turn the generator into a SYN flood.
                self.loop.scheduleTask(in: .milliseconds(10)) { self.connect() }
            }
        }
    }

    /// Intended send time of this slot's request number `k` on the global fixed schedule.
    @inline(__always) func scheduled(_ k: Int) -> UInt64 {
        guard let rate else { return 0 }
        return shared.t0 + UInt64((Double(k * connections + index) * 1e9 / rate).rounded())
    }

    func sendNext() {
        if finished || inFlight { return }
        if let q = quota, measuredSent >= q { finish(); return }
        let now = monotonicNanos()
        let end = shared.endNanos
        let due = rate == nil ? now : scheduled(seq)
        // Stop at the end in real time (a lagging open loop does not keep sending its backlog),
        // and do not schedule requests whose slot lies after the end.
        if now >= end || due >= end { finish(); return }
        if due > now {
            loop.scheduleTask(deadline: .uptimeNanoseconds(due)) { self.fire(intended: due) }
            return
        }
        fire(intended: due)
    }

    func fire(intended due: UInt64) {
        if finished || inFlight { return }
        guard let ch = channel, ch.isActive else {
            if !connecting && channel == nil { connect() }
            return
        }
        let now = monotonicNanos()
        intended = rate == nil ? now : due
        if now >= shared.endNanos { finish(); return }
        sentAt = now
        inFlight = true
        seq += 1
        if isMeasured(intended) { measuredSent += 1 }
        pendingBytes = 0
        ch.write(HTTPClientRequestPart.head(head), promise: nil)
        ch.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        timeoutTask = loop.scheduleTask(in: timeout) { self.timedOut() }
    }

    func responseComplete(status: Int, bodyOK: Bool, keepAlive: Bool, channel ch: Channel) {
        guard inFlight else { return }
        let now = monotonicNanos()
        inFlight = false
        timeoutTask?.cancel(); timeoutTask = nil
        if isMeasured(intended) {
            _ = stats.corrected.record(now &- intended)
            _ = stats.uncorrected.record(now &- sentAt)
            stats.responses += 1
            stats.statusCounts[status, default: 0] += 1
            stats.bytesRead += pendingBytes
            let ok = expectedStatuses.map { $0.contains(status) } ?? (200..<400).contains(status)
            if !ok { stats.errors[.status, default: 0] += 1 } else if !bodyOK { stats.errors[.body, default: 0] += 1 }
            let second = Int((now &- shared.measureStart) / 1_000_000_000)
            if second >= 0 && second < 1_000_000 {
                while stats.perSecond.count <= second { stats.perSecond.append(0) }
                stats.perSecond[second] += 1
            }
            if now > stats.lastCompletion { stats.lastCompletion = now }
        } else {
            stats.warmupRequests += 1
        }
        if keepAlive {
            sendNext()
        } else {
            ch.close(promise: nil) // channelClosed reconnects
        }
    }

    func timedOut() {
        guard inFlight else { return }
        inFlight = false
        timeoutTask = nil
        if isMeasured(intended) { stats.errors[.timeout, default: 0] += 1 }
        channel?.close(promise: nil)
    }

    func protocolError() {
        guard inFlight else { return }
        inFlight = false
        timeoutTask?.cancel(); timeoutTask = nil
        if isMeasured(intended) { stats.errors[.body, default: 0] += 1 }
    }

    func channelClosed(_ ch: Channel) {
        guard channel === ch else { return }
        channel = nil
        if inFlight {
            inFlight = false
            timeoutTask?.cancel(); timeoutTask = nil
            if isMeasured(intended) { stats.errors[.reset, default: 0] += 1 }
        }
        if !finished { connect() }
    }

    func finish() {
        if finished { return }
        finished = true
        timeoutTask?.cancel(); timeoutTask = nil
        channel?.close(promise: nil)
        done.succeed(())
    }

    /// Ends the slot at once (after the grace period for in-flight requests).
    func abort() {
        loop.execute {
            if self.inFlight, self.isMeasured(self.intended) { self.stats.errors[.timeout, default: 0] += 1 }
            self.inFlight = false
            self.finish()
        }
    }
}

/// `edgemeter load`: HTTP load with HDR latency histograms, closed loop (wrk) or open loop at a
/// fixed rate with coordinated-omission correction (wrk2). Memory is bounded by the histograms
/// (a few hundred KiB per thread) and one counter per measured second, whatever the request count.
public enum LoadGenerator {
    public static func run(target: HTTPTarget, options: LoadOptions, stop: StopFlag,
                           progress: (@Sendable (String) -> Void)? = nil) async throws -> LoadResult {
        if let p = options.problem { throw HTTPClientError.other(p) }
        let address = try await HTTPConnection.resolve(host: target.host, port: target.port)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        defer { group.shutdownGracefully { _ in } }
        let loops = Array(group.makeIterator())
        let statsByLoop = loops.map { _ in LoopStats() }

        var spec = options.request
        spec.path = target.path
        let bytes = spec.wireBytes(host: target.hostHeader)
        let head = spec.head(host: target.hostHeader, keepAlive: true)

        // Connections open in the first 20 ms; the schedule (open loop) starts after that lead.
        let t0 = monotonicNanos() + 20_000_000
        let measureStart = t0 + UInt64(options.warmup.nanoseconds)
        let end: UInt64 = options.duration.map { measureStart + UInt64($0.nanoseconds) }
            ?? measureStart + UInt64(options.maxDuration.nanoseconds)
        let shared = LoadShared(t0: t0, measureStart: measureStart, end: end)

        var slots: [LoadSlot] = []
        for i in 0..<options.connections {
            var quota: Int?
            if let c = options.requestCount {
                quota = c / options.connections + (i < c % options.connections ? 1 : 0)
                if quota == 0 { continue }
            }
            let loopIndex = i % loops.count
            let slot = LoadSlot(index: i, loop: loops[loopIndex], shared: shared, stats: statsByLoop[loopIndex], address: address,
                                requestBytes: bytes, head: head, options: options, quota: quota)
            slots.append(slot)
        }
        for s in slots { s.start() }

        let allDone = EventLoopFuture.andAllComplete(slots.map { $0.done.futureResult }, on: loops[0])
        let finished = StopFlag()
        allDone.whenComplete { _ in finished.stop(reason: "all connections finished") }
        var stopReason: String?
        var lastReport = monotonicNanos()
        let grace = UInt64(options.timeout.nanoseconds) + 500_000_000
        var aborted = false
        while !finished.isStopped {
            try? await Task.sleep(for: .milliseconds(20))
            let now = monotonicNanos()
            if stop.isStopped && stopReason == nil {
                stopReason = stop.reason ?? "stop requested"
                shared.stopNow(now)
            }
            if !aborted && now > shared.endNanos + grace {
                aborted = true
                for s in slots { s.abort() }
            }
            if let progress, now - lastReport >= 5_000_000_000 {
                lastReport = now
                progress(String(format: "%.0f s elapsed", Double(now &- t0) / 1e9))
            }
        }
        try? await allDone.get()
        // Let the loops finish their last callbacks before reading their statistics.
        for l in loops { try? await l.submit {}.get() }

        var corrected = statsByLoop[0].corrected
        var uncorrected = statsByLoop[0].uncorrected
        var result = LoadResult(target: target.description, openLoop: options.rate != nil, requestedRate: options.rate,
                                connections: options.connections, threads: options.threads, corrected: corrected,
                                uncorrected: uncorrected, responses: 0, statusCounts: [:], errors: [:], bytesRead: 0,
                                measuredSeconds: 0, warmupRequests: 0, perSecond: [], stopReason: stopReason)
        var lastCompletion: UInt64 = 0
        for (i, s) in statsByLoop.enumerated() {
            if i > 0 {
                corrected.add(s.corrected)
                uncorrected.add(s.uncorrected)
            }
            result.responses += s.responses
            for (k, v) in s.statusCounts { result.statusCounts[k, default: 0] += v }
            for (k, v) in s.errors { result.errors[k, default: 0] += v }
            result.bytesRead += s.bytesRead
            result.warmupRequests += s.warmupRequests
            for (j, c) in s.perSecond.enumerated() {
                while result.perSecond.count <= j { result.perSecond.append(0) }
                result.perSecond[j] += c
            }
            lastCompletion = max(lastCompletion, s.lastCompletion)
        }
        result.corrected = corrected
        result.uncorrected = uncorrected
        let endUsed = shared.endNanos
        let windowEnd: UInt64
        if options.duration != nil && stopReason == nil {
            windowEnd = endUsed
        } else if options.duration == nil && stopReason == nil {
            windowEnd = max(lastCompletion, measureStart)
        } else {
            windowEnd = max(endUsed, measureStart)
        }
        result.measuredSeconds = Double(windowEnd &- measureStart) / 1e9
        // A partial last second (count mode, stop) would read as a throughput dip: drop it.
        if result.perSecond.count > Int(result.measuredSeconds) { result.perSecond.removeLast(result.perSecond.count - Int(result.measuredSeconds)) }
        return result
    }
}
