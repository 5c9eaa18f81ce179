import Foundation
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The fixed-rate client of the restart measurement: one thread per request (plain sockets, no
/// event loop or thread pool a hanging connect could queue the next requests behind), a new
/// connection each, `GET path`, good when the status line says 200. Each request has one deadline
/// (`timeout`) for connect, send and the status line together.
public final class FootprintRestartClient: @unchecked Sendable {
    private let lock = NSLock()
    private var address: (storage: sockaddr_storage, length: socklen_t, hostHeader: String)
    private var records: [RestartProbeRecord] = []
    private let path: String
    private let timeoutNanoseconds: Int64
    private let stopFlag = StopFlag()
    private var inFlight = 0
    private let finished = DispatchGroup()

    public init(host: String, port: Int, path: String, timeout: Duration = .seconds(1)) throws {
        guard let a = TimedTCPConnect.numericAddress(host: host, port: port) else {
            throw StartupError("the restart client needs a numeric address, got \(host)")
        }
        self.address = (a.storage, a.length, host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        self.path = path
        self.timeoutNanoseconds = timeout.nanoseconds
    }

    /// Sends from now on to `host:port` (a container that came back at a new address).
    public func retarget(host: String, port: Int) {
        guard let a = TimedTCPConnect.numericAddress(host: host, port: port) else { return }
        lock.withLock { address = (a.storage, a.length, host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)") }
    }

    public var all: [RestartProbeRecord] { lock.withLock { records } }

    /// Starts a request every `interval` on its own thread until `stop()`; at most `maxInFlight`
    /// in flight (beyond that a slot is skipped, not queued).
    public func start(interval: Duration, maxInFlight: Int = 1000) {
        let step = UInt64(interval.nanoseconds)
        let t = Thread { [self] in
            var next = monotonicNanos()
            while !stopFlag.isStopped {
                let now = monotonicNanos()
                if now < next {
                    var ts = timespec(tv_sec: Int((next - now) / 1_000_000_000), tv_nsec: Int((next - now) % 1_000_000_000))
                    nanosleep(&ts, nil)
                }
                next += step
                let busy = lock.withLock { () -> Bool in
                    if inFlight >= maxInFlight { return true }
                    inFlight += 1
                    return false
                }
                if busy { continue }
                finished.enter()
                let worker = Thread { [self] in
                    let r = once()
                    lock.withLock { records.append(r); inFlight -= 1 }
                    finished.leave()
                }
                worker.stackSize = 256 << 10
                worker.start()
            }
            finished.leave()
        }
        finished.enter()
        t.start()
    }

    /// Stops sending and waits for the requests in flight (each ends within its timeout).
    public func stop() async {
        stopFlag.stop(reason: "window over")
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            finished.notify(queue: .global()) { c.resume() }
        }
    }

    func once() -> RestartProbeRecord {
        let a = lock.withLock { address }
        let sent = monotonicNanos()
        let deadline = Int64(sent) + timeoutNanoseconds
        func done(_ ok: Bool) -> RestartProbeRecord {
            RestartProbeRecord(sentNanoseconds: sent, doneNanoseconds: monotonicNanos(), ok: ok)
        }
        guard case .success(let c) = TimedTCPConnect.open(storage: a.storage, length: a.length, timeoutNanoseconds: timeoutNanoseconds) else {
            return done(false)
        }
        defer { close(c.fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(a.hostHeader)\r\nConnection: close\r\n\r\n".utf8)
        let w = request.withUnsafeBytes { send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard w == request.count else { return done(false) }
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while !got.contains(10) {
            let left = deadline - Int64(monotonicNanos())
            if left <= 0 { return done(false) }
            var p = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, Int32(max(1, left / 1_000_000)))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return done(false) }
            let r = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if r <= 0 { return done(false) }
            got += buf[0..<r]
        }
        let line = String(decoding: got.prefix { $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        return done(parts.count >= 2 && parts[0].hasPrefix("HTTP/1.") && parts[1] == "200")
    }
}
