import Foundation
import Glibc
import CEdgeMeter
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP

/// The closed-loop load engine on raw epoll, as wrk is built: one OS thread per `threads`, each
/// with its own epoll set and its share of the connections (connection `i` on thread
/// `i % threads`, as the NIO engine splits them over its event loops), non-blocking sockets with
/// TCP_NODELAY. Per request: `send` the pre-encoded request bytes, wait for EPOLLIN
/// (edge-triggered, see `register`), `recv` into the thread's read buffer, feed `HTTP1Parser`
/// straight from it (`keepHeaders: false`: no header strings, no copy of a head that arrives
/// whole), record, send the next.
///
/// Every timing and counting rule is the NIO engine's: each connection has its `LoadPacer`
/// (closed loop), its thread's `LoopStats`, and the run's `LoadWindow` and result assembly are
/// shared. So a request's latency is the same span on the same clock: CLOCK_MONOTONIC read just
/// before the request's bytes are handed to the socket (`send`), to the `recv` that completed its
/// response (the parser's end of message). Responses of any status are recorded; `corrected` is
/// `uncorrected` (closed loop).
///
/// Timers without a timer wheel: the thread's `epoll_wait` never sleeps past its next tick
/// (a quarter of the request timeout, at most 10 ms) or the earliest wake-up of a connection
/// (connect retry 10 ms after a failure, the end of the lead-in). At each tick it looks for
/// timed-out requests and connects, takes the controller's stop and abort requests from its
/// mailbox and publishes its live counters there: one lock per tick, none per request.
enum EpollLoadEngine {
    /// Starts one thread per group of connections. `pacers` pairs each connection's pacer with its
    /// thread index (0..<threads).
    static func start(address: SocketAddress, request: ByteBuffer, options: LoadOptions,
                      pacers: [(thread: Int, pacer: LoadPacer)], connectState: LoadConnectState) throws -> EpollLoadRun {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        address.withSockAddr { sa, len in
            withUnsafeMutableBytes(of: &storage) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(len, dst.count))) }
            length = socklen_t(len)
        }
        let requestBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(request.readableBytes, 1), alignment: 16)
        request.withUnsafeReadableBytes { requestBytes.copyMemory(from: $0) }
        let shared = EpollShared(address: storage, addressLength: length, request: UnsafeRawBufferPointer(rebasing: requestBytes[0..<request.readableBytes]),
                                 requestStorage: requestBytes, options: options, connectState: connectState)
        var workers: [EpollLoadWorker] = []
        for t in 0..<max(options.threads, 1) {
            let mine = pacers.filter { $0.thread == t }.map(\.pacer)
            if mine.isEmpty { continue }
            let w = try EpollLoadWorker(index: t, pacers: mine, shared: shared)
            workers.append(w)
        }
        let run = EpollLoadRun(workers: workers, shared: shared)
        for w in workers {
            let thread = Thread { w.run() }
            thread.name = "edgemeter-load-\(w.index)"
            thread.start()
        }
        return run
    }
}

/// What every thread of one run reads and never writes.
final class EpollShared: @unchecked Sendable {
    /// The target, as `connect` takes it.
    let address: sockaddr_storage
    let addressLength: socklen_t
    /// The request's bytes, encoded once per run (a view of `requestStorage`).
    let request: UnsafeRawBufferPointer
    let requestStorage: UnsafeMutableRawBufferPointer
    let connectState: LoadConnectState
    /// What every response is checked against (the same code as the NIO engine's).
    let rules: LoadResponseRules

    init(address: sockaddr_storage, addressLength: socklen_t, request: UnsafeRawBufferPointer,
         requestStorage: UnsafeMutableRawBufferPointer, options: LoadOptions, connectState: LoadConnectState) {
        (self.address, self.addressLength) = (address, addressLength)
        (self.request, self.requestStorage) = (request, requestStorage)
        self.connectState = connectState
        rules = LoadResponseRules(options)
    }

    deinit { requestStorage.deallocate() }
}

/// Requests between the controller (the async run loop) and one worker thread, and the worker's
/// published figures. Touched once per tick by the worker, every 20 ms by the controller.
final class EpollMailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var stopAt: UInt64?
    private var abortRequested = false
    private var completed = 0
    private var errors = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
    private var finishedFlag = false

    func requestStop(at now: UInt64) { lock.lock(); if stopAt == nil { stopAt = now }; lock.unlock() }
    func requestAbort() { lock.lock(); abortRequested = true; lock.unlock() }
    var finished: Bool { lock.lock(); defer { lock.unlock() }; return finishedFlag }
    var figures: (completed: Int, errors: [Int]) { lock.lock(); defer { lock.unlock() }; return (completed, errors) }

    /// The worker's side: publishes its counters, marks it finished if so, and takes the requests.
    func exchange(completed c: Int, errors e: [Int], finished f: Bool) -> (stopAt: UInt64?, abort: Bool) {
        lock.lock()
        defer { lock.unlock() }
        completed = c
        errors = e
        if f { finishedFlag = true }
        return (stopAt, abortRequested)
    }
}

/// One connection of an epoll worker. Touched only on its worker's thread.
final class EpollLoadConnection {
    /// Position in the worker's list (the epoll user data, with `generation`).
    let slot: Int
    @exclusivity(unchecked) var pacer: LoadPacer
    @exclusivity(unchecked) var parser: HTTP1Parser
    @exclusivity(unchecked) var fd: Int32 = -1
    /// Bumped at every close, so events of a closed socket still in the current batch are ignored.
    @exclusivity(unchecked) var generation: UInt32 = 0
    @exclusivity(unchecked) var connecting = false
    @exclusivity(unchecked) var connectStarted: UInt64 = 0
    /// When to retry a failed connect (0: no retry pending).
    @exclusivity(unchecked) var retryAt: UInt64 = 0
    /// When the pacer said to ask again (0: no wait pending).
    @exclusivity(unchecked) var wakeAt: UInt64 = 0
    /// Status and keep-alive of the response being read (the last head seen).
    @exclusivity(unchecked) var status = 0
    @exclusivity(unchecked) var keepAlive = true
    @exclusivity(unchecked) var body: [UInt8] = []
    /// Bytes read since the request in flight was sent.
    @exclusivity(unchecked) var pendingBytes = 0
    /// Bytes of the request in flight already handed to the socket.
    @exclusivity(unchecked) var written = 0
    @exclusivity(unchecked) var wantWrite = false
    @exclusivity(unchecked) var everConnected = false
    /// True while the parser is fed: a close then waits until the feed returns (`dropPending`).
    @exclusivity(unchecked) var feeding = false
    @exclusivity(unchecked) var dropPending = false
    /// In the worker's send queue (its next request goes out after the current batch of events).
    @exclusivity(unchecked) var sendQueued = false

    init(slot: Int, pacer: LoadPacer, parser: HTTP1Parser) {
        self.slot = slot
        self.pacer = pacer
        self.parser = parser
    }
}

/// One worker thread: its epoll set, its connections and its statistics.
final class EpollLoadWorker: @unchecked Sendable {
    let index: Int
    let shared: EpollShared
    let stats = LoopStats()
    let mailbox = EpollMailbox()
    let conns: [EpollLoadConnection]
    let epfd: Int32
    let tickNanos: UInt64
    static let readBufferBytes = 64 * 1024
    static let maxEvents: Int32 = 64
    @exclusivity(unchecked) private var remaining: Int
    @exclusivity(unchecked) private var earliestWake = UInt64.max
    private var stopApplied = false
    private var abortApplied = false
    private let readBuffer: UnsafeMutableRawPointer
    /// Slots of the connections whose response completed in the current batch of events, in
    /// order; their next requests go out together after the batch (`flushSends`).
    private let sendQueue: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var queuedSends = 0

    init(index: Int, pacers: [LoadPacer], shared: EpollShared) throws {
        self.index = index
        self.shared = shared
        conns = pacers.enumerated().map { EpollLoadConnection(slot: $0.offset, pacer: $0.element, parser: shared.rules.parser) }
        remaining = conns.count
        tickNanos = max(1_000_000, min(shared.rules.timeoutNanos / 4, 10_000_000))
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else {
            throw HTTPClientError.other("the epoll load engine could not create an epoll set (\(String(cString: strerror(errno)))); "
                                        + "raise the open-file limit (ulimit -n) or set EDGEMETER_LOAD_ENGINE=nio")
        }
        epfd = fd
        readBuffer = UnsafeMutableRawPointer.allocate(byteCount: Self.readBufferBytes, alignment: 16)
        sendQueue = UnsafeMutablePointer<Int>.allocate(capacity: max(conns.count, 1))
    }

    deinit {
        close(epfd)
        readBuffer.deallocate()
        sendQueue.deallocate()
    }

    // MARK: the loop

    func run() {
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(Self.maxEvents))
        defer { events.deallocate() }
        for c in conns { connect(c) }
        var nextTick = monotonicNanos() &+ tickNanos
        while remaining > 0 {
            var now = monotonicNanos()
            if now >= nextTick || now >= earliestWake {
                tick(now)
                now = monotonicNanos()
                nextTick = now &+ tickNanos
                if remaining == 0 { break }
            }
            let until = min(nextTick, earliestWake)
            let timeoutMs = until <= now ? 0 : Int32(min((until - now + 999_999) / 1_000_000, 1000))
            let n = epoll_wait(epfd, events, Self.maxEvents, timeoutMs)
            if n < 0 {
                if errno == EINTR { continue }
                // Cannot happen with a valid set; end this thread's part with what it measured.
                for c in conns { abort(c) }
                break
            }
            var k = 0
            while k < Int(n) {
                let ev = events[k]
                k += 1
                let data = ev.data.u64
                let c = conns[Int(data & 0xffff_ffff)]
                if UInt32(truncatingIfNeeded: data >> 32) != c.generation || c.fd < 0 { continue }
                handle(c, ev.events)
            }
            flushSends()
        }
        for c in conns where c.fd >= 0 { closeSocket(c) }
        _ = mailbox.exchange(completed: stats.responses + stats.warmupRequests, errors: stats.errors, finished: true)
    }

    /// Connect and request timeouts, retries and waits that are due, and the mailbox.
    private func tick(_ now: UInt64) {
        let requests = mailbox.exchange(completed: stats.responses + stats.warmupRequests, errors: stats.errors, finished: false)
        if let at = requests.stopAt, !stopApplied {
            stopApplied = true
            for c in conns { c.pacer.stop(at: at) }
        }
        if requests.abort && !abortApplied {
            abortApplied = true
            for c in conns { abort(c) }
            return
        }
        earliestWake = .max
        for c in conns where !c.pacer.finished {
            // The checks against `now` come before this connection's actions below, which stamp
            // later times (a send, a connect) that `now` must not be compared with.
            if c.pacer.timedOut(at: now, into: stats) { drop(c) }
            if c.connecting && now > c.connectStarted && now - c.connectStarted > shared.rules.timeoutNanos {
                connectFailed(c, errnoCode: ETIMEDOUT, timedOut: true)
            }
            if c.retryAt != 0 && now >= c.retryAt {
                c.retryAt = 0
                connect(c)
            }
            if c.wakeAt != 0 && now >= c.wakeAt {
                c.wakeAt = 0
                sendNext(c)
            }
            if c.retryAt != 0 { earliestWake = min(earliestWake, c.retryAt) }
            if c.wakeAt != 0 { earliestWake = min(earliestWake, c.wakeAt) }
        }
    }

    @inline(__always) private func handle(_ c: EpollLoadConnection, _ events: UInt32) {
        if c.connecting {
            if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { connectReady(c) }
            return
        }
        if c.wantWrite && events & EPOLLOUT.rawValue != 0 {
            writeRequest(c)
            if c.fd < 0 { return }
        }
        if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0 {
            readReady(c, untilEnd: events & (EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0)
        }
    }

    // MARK: connections

    private func connect(_ c: EpollLoadConnection) {
        if c.pacer.finished || c.fd >= 0 { return }
        let now = monotonicNanos()
        guard c.pacer.shouldConnect(now: now) else { finish(c); return }
        let family = Int32(shared.address.ss_family)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            c.connecting = false
            connectFailed(c, errnoCode: errno, timedOut: false)
            return
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        c.fd = fd
        c.parser = shared.rules.parser
        c.status = 0
        c.keepAlive = true
        c.body.removeAll(keepingCapacity: true)
        c.written = 0
        c.wantWrite = false
        var address = shared.address
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, shared.addressLength) }
        }
        if r == 0 {
            register(c, EPOLLIN.rawValue | EPOLLRDHUP.rawValue, add: true)
            connected(c)
        } else if errno == EINPROGRESS {
            c.connecting = true
            c.connectStarted = now
            register(c, EPOLLOUT.rawValue, add: true)
        } else {
            connectFailed(c, errnoCode: errno, timedOut: false)
        }
    }

    /// Edge-triggered (EPOLLET): an event is reported once per change (new bytes, the peer's FIN,
    /// room to write), not again at every `epoll_wait` while it holds, so the kernel does not
    /// poll each socket a second time after reporting it. Hence `readReady` reads until the
    /// socket is empty, and `EPOLL_CTL_MOD` (which reports a condition that already holds) is
    /// what switches EPOLLOUT on and off.
    private func register(_ c: EpollLoadConnection, _ events: UInt32, add: Bool) {
        var ev = epoll_event()
        ev.events = events | EPOLLET.rawValue
        ev.data.u64 = UInt64(c.generation) << 32 | UInt64(c.slot)
        _ = epoll_ctl(epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev)
    }

    /// EPOLLOUT (or an error) on a connecting socket: the handshake ended.
    private func connectReady(_ c: EpollLoadConnection) {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { err = errno }
        if err != 0 {
            connectFailed(c, errnoCode: err, timedOut: false)
            return
        }
        c.connecting = false
        register(c, EPOLLIN.rawValue | EPOLLRDHUP.rawValue, add: false)
        connected(c)
    }

    private func connected(_ c: EpollLoadConnection) {
        c.connecting = false
        if !c.everConnected {
            c.everConnected = true
            shared.connectState.markConnected()
        }
        sendNext(c)
    }

    /// A connect attempt failed: a `connect` error once measured, retried after 10 ms (so a dead
    /// server does not turn the generator into a SYN flood), as the NIO engine does.
    private func connectFailed(_ c: EpollLoadConnection, errnoCode: Int32, timedOut: Bool) {
        closeSocket(c)
        let now = monotonicNanos()
        c.pacer.connectFailed(at: now, into: stats)
        let error: Error = timedOut ? ChannelError.connectTimeout(.nanoseconds(Int64(shared.rules.timeoutNanos)))
                                    : IOError(errnoCode: errnoCode, reason: "connect")
        shared.connectState.noteError(HTTPClientError.connectFailure(error, target: shared.connectState.targetName).description)
        c.retryAt = now &+ 10_000_000
        earliestWake = min(earliestWake, c.retryAt)
    }

    private func closeSocket(_ c: EpollLoadConnection) {
        guard c.fd >= 0 else { return }
        close(c.fd) // also removes it from the epoll set
        c.fd = -1
        c.generation &+= 1
        c.connecting = false
        c.wantWrite = false
    }

    /// The connection closed (peer, error, timeout, or `Connection: close`): a request in flight
    /// is a `reset`; reopened at once unless the connection's part of the run is over.
    private func drop(_ c: EpollLoadConnection) {
        if c.feeding { c.dropPending = true; return }
        closeSocket(c)
        c.pacer.connectionLost(into: stats)
        if !c.pacer.finished { connect(c) }
    }

    private func finish(_ c: EpollLoadConnection) { end(c, abort: false) }

    /// Ends the connection at once (after the grace period): a request in flight is a timeout.
    private func abort(_ c: EpollLoadConnection) { end(c, abort: true) }

    /// Settles the connection's pacer (finished, or aborted: in-flight requests become timeouts),
    /// closes its socket and counts it out of the thread's live connections.
    private func end(_ c: EpollLoadConnection, abort: Bool) {
        if c.pacer.finished { return }
        if abort {
            c.pacer.abort(everConnected: c.everConnected, into: stats)
        } else {
            c.pacer.finish(everConnected: c.everConnected, into: stats)
        }
        closeSocket(c)
        c.retryAt = 0
        c.wakeAt = 0
        remaining -= 1
    }

    // MARK: requests and responses

    /// Sends the next request when the pacer says it is due.
    private func sendNext(_ c: EpollLoadConnection) {
        let now = monotonicNanos()
        switch c.pacer.next(now: now) {
        case .nothing:
            return
        case .finish:
            finish(c)
        case .wait(let due):
            c.wakeAt = due
            earliestWake = min(earliestWake, due)
        case .send(let intended):
            guard c.fd >= 0, !c.connecting else {
                if c.fd < 0 && c.retryAt == 0 { connect(c) }
                return
            }
            c.pacer.sent(intended: intended, at: now)
            c.pendingBytes = 0
            c.written = 0
            writeRequest(c)
        }
    }

    private func writeRequest(_ c: EpollLoadConnection) {
        let request = shared.request
        while c.written < request.count {
            let n = send(c.fd, request.baseAddress! + c.written, request.count - c.written, Int32(MSG_NOSIGNAL))
            if n > 0 { c.written += n; continue }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                if !c.wantWrite {
                    c.wantWrite = true
                    register(c, EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue, add: false)
                }
                return
            }
            drop(c)
            return
        }
        if c.wantWrite {
            c.wantWrite = false
            register(c, EPOLLIN.rawValue | EPOLLRDHUP.rawValue, add: false)
        }
    }

    /// Reads until the socket is empty (edge-triggered: no further event comes for bytes that are
    /// already there). A read shorter than the buffer took everything the socket held, unless the
    /// peer's FIN or an error arrived with the bytes (`untilEnd`, from EPOLLRDHUP/HUP/ERR): then it
    /// reads on to the end of the stream, which no later event would report.
    private func readReady(_ c: EpollLoadConnection, untilEnd: Bool) {
        let generation = c.generation
        while true {
            let n = recv(c.fd, readBuffer, Self.readBufferBytes, 0)
            if n > 0 {
                c.pendingBytes &+= n
                feed(c, UnsafeRawBufferPointer(start: readBuffer, count: n))
                // The feed may have closed (and reopened) the connection.
                if c.generation != generation || c.fd < 0 || (n < Self.readBufferBytes && !untilEnd) { return }
                continue
            }
            if n == 0 { peerClosed(c); return }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return }
            peerClosed(c)
            return
        }
    }

    private func feed(_ c: EpollLoadConnection, _ raw: UnsafeRawBufferPointer) {
        let keepBody = shared.rules.keepsBody
        c.feeding = true
        var ok = true
        do {
            try c.parser.feed(raw) { event in
                switch event {
                case .start:
                    break
                case .head(let head):
                    c.status = head.status
                    c.keepAlive = head.keepAlive
                case .body(let range, _):
                    if keepBody { c.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[range])) }
                case .end:
                    // An interim 1xx (not 101): the real response follows.
                    if c.status < 100 || c.status >= 200 || c.status == 101 { complete(c) }
                }
            }
        } catch {
            ok = false
        }
        c.feeding = false
        if !ok { c.pacer.protocolError(into: stats) }
        if !ok || c.dropPending {
            c.dropPending = false
            drop(c)
        }
    }

    /// EOF or a socket error. A response delimited by the close ends here (its connection cannot
    /// be reused); then the connection is dropped (a request still in flight is a `reset`).
    private func peerClosed(_ c: EpollLoadConnection) {
        if c.parser.bodyEndsAtClose {
            try? c.parser.finishStream { _ in }
            c.keepAlive = false
            c.feeding = true
            complete(c)
            c.feeding = false
            c.dropPending = false
        }
        drop(c)
    }

    /// Sends the next request of every connection queued by `complete` in this batch of events.
    /// Reads first, then the writes together, as wrk's loop does (it writes when the next
    /// `epoll_wait` reports the sockets writable): the server, woken by the first request, finds
    /// the others already there instead of being woken once per request between our reads. Each
    /// request's send time is still read just before its own `send` (`sendNext`), so what a
    /// latency covers does not change; only the client's turnaround includes the rest of the batch
    /// (a few µs), which it did for wrk.
    private func flushSends() {
        var q = 0
        while q < queuedSends {
            let c = conns[sendQueue[q]]
            q += 1
            c.sendQueued = false
            // A connection closed (and maybe reopened) since it was queued: `sendNext` finds its
            // request in flight, its connect pending or its part finished, and does nothing.
            sendNext(c)
        }
        queuedSends = 0
    }

    /// The response in flight is complete: record it, then queue the next request (sent after
    /// this batch of events, `flushSends`) or reconnect.
    private func complete(_ c: EpollLoadConnection) {
        var bodyOK = true
        if shared.rules.keepsBody {
            bodyOK = c.body.withUnsafeBytes { shared.rules.bodyMatches($0) }
            c.body.removeAll(keepingCapacity: true)
        }
        let now = monotonicNanos()
        guard c.pacer.completed(at: now, status: c.status, failure: shared.rules.failure(status: c.status, bodyOK: bodyOK),
                                bytes: c.pendingBytes, into: stats) else { return }
        if c.keepAlive {
            if !c.sendQueued {
                c.sendQueued = true
                sendQueue[queuedSends] = c.slot
                queuedSends += 1
            }
        } else {
            drop(c)
        }
    }
}

/// A started epoll run, as `LoadGenerator.run`'s control loop drives it.
final class EpollLoadRun: RunningLoad, @unchecked Sendable {
    let workers: [EpollLoadWorker]
    let shared: EpollShared

    init(workers: [EpollLoadWorker], shared: EpollShared) {
        self.workers = workers
        self.shared = shared
    }

    var isFinished: Bool { workers.allSatisfy { $0.mailbox.finished } }
    func stop(at now: UInt64) { for w in workers { w.mailbox.requestStop(at: now) } }
    func abort() { for w in workers { w.mailbox.requestAbort() } }

    func counters() async -> (completed: Int, errors: [Int]) {
        var completed = 0
        var errors = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
        for w in workers {
            let f = w.mailbox.figures
            completed += f.completed
            for k in errors.indices { errors[k] += f.errors[k] }
        }
        return (completed, errors)
    }

    /// The threads' statistics, once every thread has ended (its mailbox said so under the lock,
    /// which also makes its last writes visible here).
    func collect() async -> [LoopStats] {
        while !isFinished { try? await Task.sleep(for: .milliseconds(5)) }
        return workers.map(\.stats)
    }
}
