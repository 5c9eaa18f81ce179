import XCTest
import EdgeMeterCore
import NIOCore
@testable import EdgeMeterProbes
@testable import EdgeMeterHTTP
import EdgeMeterSystem

/// The TCP connect, HTTP and calc probes on a virtual clock: schedule, timeout budgets and the
/// stop path, with exact times and no sleeps. Where the network is not the point the attempt is
/// a fake; the TCP tests use real loopback sockets with the kernel's wait replaced.
final class ProbeClockTests: XCTestCase {
    let ms: Int64 = 1_000_000

    /// A listening socket on 127.0.0.1 that never accepts, with a backlog of one already used:
    /// a further connect's SYN is dropped, so the connect stays in progress.
    final class FullListener {
        let server: SilentServer
        let filler: Int32
        var address: SocketAddr { server.address }
        init() throws {
            server = try SilentServer(backlog: 0)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var b = server.address
            _ = withUnsafePointer(to: &b.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, b.length) } }
            filler = fd
        }
        func close() { Glibc.close(filler); server.close() }
    }

    /// The kernel's wait replaced: a wait for readability (or a connect) "times out" by moving the
    /// virtual clock by its whole timeout; `realConnect` lets a connect's wait go to the kernel.
    func virtualPoll(_ clock: ManualClock, realConnect: Bool, log: Recorder<Int32>) -> PollOne {
        { p, timeoutMs in
            if realConnect && p.events & Int16(POLLOUT) != 0 { return poll(&p, 1, 1_000) }
            log.add(timeoutMs)
            clock.advance(by: Int64(timeoutMs) * 1_000_000)
            return 0
        }
    }

    func testConnectWithoutSYNACKTimesOutAtExactlyItsBudget() throws {
        let listener = try FullListener()
        defer { listener.close() }
        let clock = ManualClock(start: 0)
        let waits = Recorder<Int32>()
        let probe = TCPConnectProbe(targets: [ResolvedTarget(name: "full", address: listener.address, resolveNanoseconds: 0, resolvedAt: Date())],
                                    options: TCPConnectOptions(count: 1, timeout: .milliseconds(120)))
        probe.pollOne = virtualPoll(clock, realConnect: false, log: waits)
        let a = probe.attempt(target: 0, sequence: 1, clock: clock)
        XCTAssertEqual(a.connectStatus, .timeout, a.reason)
        XCTAssertEqual(a.reason, "no SYN-ACK within 120 ms")
        XCTAssertNil(a.connectNanoseconds)
        XCTAssertEqual(clock.monotonicNanoseconds(), 120 * ms, "gave up at the budget, not a slice later")
        XCTAssertEqual(waits.items, [50, 50, 20], "waited in slices of at most 50 ms, the last one cut to the budget")
    }

    func testFirstByteWaitsExactlyItsOwnBudget() throws {
        let clock = ManualClock(start: 0)
        let waits = Recorder<Int32>()
        let silent = try SilentServer()
        defer { silent.close() }
        let probe = TCPConnectProbe(targets: [ResolvedTarget(name: "silent", address: silent.address, resolveNanoseconds: 0, resolvedAt: Date())],
                                    options: TCPConnectOptions(count: 1, timeout: .milliseconds(300), payload: Array("hi\n".utf8)))
        probe.pollOne = virtualPoll(clock, realConnect: true, log: waits)
        let a = probe.attempt(target: 0, sequence: 1, clock: clock)
        XCTAssertEqual(a.connectStatus, .ok, a.reason)
        XCTAssertEqual(a.connectNanoseconds, 0, "the virtual clock did not move during the connect")
        XCTAssertEqual(a.firstByteStatus, .timeout, a.firstByteReason)
        XCTAssertEqual(a.firstByteReason, "no reply byte within 300 ms (or the peer closed)")
        XCTAssertEqual(clock.monotonicNanoseconds(), 300 * ms)
        XCTAssertEqual(waits.items, [50, 50, 50, 50, 50, 50])
    }

    /// tcping on a virtual clock against a real loopback listener: the stop set at 250 ms ends the
    /// run; the attempts of 0, 100 and 200 ms are all in the sink, with their samples as the CLI
    /// records them; none after.
    func testTCPingStopsAtTheNextCheckWithEverythingMeasuredRecorded() throws {
        let l = try LoopbackListener(host: "127.0.0.1")
        defer { l.close() }
        let clock = ManualClock(start: 0, wall: Date(timeIntervalSince1970: 1_800_000_000))
        let stop = StopFlag()
        clock.onSleep = { t in if t >= 250 * 1_000_000 { stop.stop(reason: "SIGINT") } }
        let target = try Resolver.resolve("127.0.0.1", port: l.address.port, clock: clock)
        let sink = MemorySink()
        let lines = Recorder<String>()
        let probe = TCPConnectProbe(targets: [target], options: TCPConnectOptions(count: 100, interval: .milliseconds(100)),
                                    scope: SampleScope(runID: "r1", scenario: "tcp"), onLine: { lines.add($0) })
        let totals = probe.run(schedule: probe.options.schedule, clock: clock, stop: stop, sink: sink)
        XCTAssertEqual(sink.samples.map { $0.labels["seq"] }, ["1", "2", "3"])
        XCTAssertEqual(sink.samples.map(\.timestamp.timeIntervalSince1970), [1_800_000_000, 1_800_000_000.1, 1_800_000_000.2])
        for s in sink.samples {
            XCTAssertEqual([s.runID, s.scenario, s.probe, s.metric, s.phase, s.unit], ["r1", "tcp", "tcping", "latency", "connect", "ms"])
            XCTAssertEqual(s.status, .ok, s.reason)
            XCTAssertEqual(s.value, 0, "connect measured on the virtual clock")
            XCTAssertEqual(s.labels["clock"], "monotonic")
            XCTAssertEqual(s.labels["family"], "ipv4")
            XCTAssertEqual(s.labels["address"], l.address.hostPort)
            XCTAssertNotNil(s.labels["local_port"])
        }
        XCTAssertEqual(lines.items, (1...3).map { "connected to \(l.address.hostPort): seq=\($0) time=0.000 ms" })
        XCTAssertEqual(totals.map(\.attempts), [3])
        XCTAssertEqual(totals.map(\.succeeded), [3])
        XCTAssertEqual(clock.monotonicNanoseconds(), 300 * ms)
    }

    /// HTTP with attempts slower than the interval: no overlap, the grid kept, every phase of every
    /// attempt recorded, totals and lines as the CLI prints them.
    func testHTTPAttemptsLongerThanTheIntervalKeepTheGrid() async {
        let clock = ManualClock(start: 0, wall: Date(timeIntervalSince1970: 1_800_000_000))
        let calls = Recorder<Int64>()
        let lines = Recorder<String>()
        let target = HTTPTarget(host: "127.0.0.1", port: 8080, path: "/")
        let probe = HTTPProbe(options: HTTPProbeOptions(request: HTTPRequestSpec(path: "/"), count: 4, interval: .milliseconds(100)),
                              attempts: HTTPAttempts(target: target, scope: SampleScope(runID: "r", scenario: "h"), onLine: { lines.add($0) }, exchange: { _, _, _, c in
            let clock = c as! ManualClock
            let start = clock.wallNow()
            let t0 = clock.monotonicNanoseconds()
            calls.add(t0)
            clock.advance(by: (t0 < 200 * 1_000_000 ? 150 : 20) * 1_000_000)
            return Self.okExchange(startedAt: start, total: clock.monotonicNanoseconds() - t0)
        }))
        let sink = MemorySink()
        let totals = await probe.run(schedule: probe.options.schedule, clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(lines.items, ["seq=1 status=200 total=150.000 ms", "seq=2 status=200 total=150.000 ms",
                                     "seq=3 status=200 total=20.000 ms", "seq=4 status=200 total=20.000 ms"])
        XCTAssertEqual(calls.items, [0, 150, 300, 320].map { $0 * ms }, "late attempts start when the previous ended; then back on the grid")
        XCTAssertEqual(sink.samples.count, 16)
        XCTAssertEqual(sink.samples.map(\.phase), Array(repeating: HTTPProbe.phases, count: 4).flatMap { $0 })
        XCTAssertEqual(sink.samples.filter { $0.phase == "total" }.map(\.value), [150, 150, 20, 20])
        XCTAssertEqual(sink.samples.filter { $0.phase == "total" }.map { $0.labels["seq"] }, ["1", "2", "3", "4"])
        XCTAssertEqual(totals.map(\.attempts), [4])
        XCTAssertEqual(totals.map(\.succeeded), [4])
        XCTAssertEqual(clock.sleeps, [], "never ahead of the schedule: never slept")
    }

    /// The stop path for HTTP: set at 250 ms during the wait; the attempts at 0, 100, 200 ms are
    /// recorded (a failed one with its status and reason in every phase from the failure on).
    func testHTTPStopDuringAWaitKeepsWhatWasMeasured() async {
        let clock = ManualClock(start: 0)
        let stop = StopFlag()
        clock.onSleep = { t in if t >= 250 * 1_000_000 { stop.stop(reason: "SIGINT") } }
        let probe = HTTPProbe(options: HTTPProbeOptions(request: HTTPRequestSpec(path: "/"), count: 10, interval: .milliseconds(100)),
                              attempts: HTTPAttempts(target: HTTPTarget(host: "127.0.0.1", port: 1, path: "/"), scope: SampleScope(runID: "r", scenario: "h"), exchange: { _, _, _, c in
            let clock = c as! ManualClock
            if clock.monotonicNanoseconds() == 100 * 1_000_000 {
                return HTTPExchange(startedAt: clock.wallNow(), resolveNanoseconds: 1_000, error: .refused("connection refused by 127.0.0.1:1"),
                                    failedPhase: "connect")
            }
            return Self.okExchange(startedAt: clock.wallNow(), total: 1_000_000)
        }))
        let sink = MemorySink()
        let totals = await probe.run(schedule: probe.options.schedule, clock: clock, stop: stop, sink: sink)
        XCTAssertEqual(sink.samples.count, 12)
        XCTAssertEqual(Set(sink.samples.compactMap { $0.labels["seq"] }), ["1", "2", "3"])
        let second = sink.samples.filter { $0.labels["seq"] == "2" }
        XCTAssertEqual(second.map(\.status), [.ok, .refused, .refused, .refused])
        XCTAssertEqual(second.map(\.reason), ["", "connection refused by 127.0.0.1:1", "connect failed: connection refused by 127.0.0.1:1",
                                              "connect failed: connection refused by 127.0.0.1:1"])
        XCTAssertEqual(totals[0].attempts, 3)
        XCTAssertEqual(totals[0].succeeded, 2)
        XCTAssertEqual(totals[0].count(.refused), 1)
        XCTAssertEqual(clock.monotonicNanoseconds(), 300 * ms)
    }

    /// calc on the same loop: the hop phases follow each attempt's http phases, and a wrong answer
    /// fails `total` and every hop with the reason.
    func testCalcRecordsHopsPerAttemptOnTheSchedule() async {
        let clock = ManualClock(start: 0)
        let answers = Recorder<Int64>()
        let probe = CalcProbe(options: CalcProbeOptions(expression: "(5+6)*2", expected: 22, hops: ["sum", "mul"], count: 2, interval: .milliseconds(50)),
                              attempts: HTTPAttempts(target: HTTPTarget(host: "127.0.0.1", port: 50000, path: "/calculate"),
                                                     scope: SampleScope(runID: "r", scenario: "c"), exchange: { _, request, _, c in
            XCTAssertEqual(request.method, "POST")
            XCTAssertEqual(request.body, Array("(5+6)*2".utf8))
            let clock = c as! ManualClock
            let first = clock.monotonicNanoseconds() == 0
            answers.add(clock.monotonicNanoseconds())
            let body = first ? #"{"result":22}"# : #"{"result":23}"#
            return Self.okExchange(startedAt: clock.wallNow(), total: 2_000_000, body: body,
                                   headers: [("Server-Timing", #"sum;dur=0.5;desc="5 + 6", mul;dur=0.25;desc="11 * 2""#)])
        }))
        let sink = MemorySink()
        let totals = await probe.run(schedule: probe.options.schedule, clock: clock, stop: StopFlag(), sink: sink)
        XCTAssertEqual(answers.items, [0, 50 * ms])
        XCTAssertEqual(sink.samples.map(\.phase), Array(repeating: HTTPProbe.phases + ["hop1_sum", "hop2_mul"], count: 2).flatMap { $0 })
        XCTAssertEqual(sink.samples.prefix(6).map(\.value), [0.001, 0.1, 0.5, 2, 0.5, 0.25])
        XCTAssertEqual(sink.samples.suffix(3).map(\.status), [.error, .error, .error])
        XCTAssertEqual(sink.samples.last?.reason, "wrong answer for (5+6)*2: expected 22.0, got 23.0")
        XCTAssertEqual(sink.samples.last?.labels["source"], "server-timing")
        XCTAssertTrue(sink.samples.allSatisfy { $0.probe == "calc" })
        XCTAssertEqual(totals[0].attempts, 2)
        XCTAssertEqual(totals[0].succeeded, 1)
    }

    func testEveryProbeDeclaresItsWireKeys() {
        func keys<P: Probe>(_: P.Type) -> String { "\(P.probeName): " + P.wireKeys.map { "\($0.phase)=\($0.match)" }.joined(separator: ",") }
        XCTAssertEqual(keys(ICMPProbe.self), "ping: echo=icmpEcho")
        XCTAssertEqual(keys(TCPConnectProbe.self), "tcping: connect=tcpHandshake")
        XCTAssertEqual(keys(HTTPProbe.self), "http: connect=tcpHandshake,first_byte=httpFirstByte")
        XCTAssertEqual(keys(CalcProbe.self), "calc: connect=tcpHandshake,first_byte=httpFirstByte")
    }

    static func okExchange(startedAt: Date, total: Int64, body: String = "ok", headers: [(String, String)] = []) -> HTTPExchange {
        HTTPExchange(startedAt: startedAt, resolveNanoseconds: 1_000, connectNanoseconds: 100_000, firstByteNanoseconds: 500_000,
                     totalNanoseconds: total,
                     response: HTTPResponseInfo(status: 200, headers: headers, body: ByteBuffer(string: body), wireBytes: 100, reasonPhrase: "OK"),
                     localPort: 40_000)
    }
}

/// Collects values from closures that may be called from other threads.
final class Recorder<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [T] = []
    func add(_ x: T) { lock.lock(); stored.append(x); lock.unlock() }
    var items: [T] { lock.lock(); defer { lock.unlock() }; return stored }
}

/// A loopback TCP listener that nobody accepts from: connections complete in the kernel's queue
/// (up to its backlog) and never receive a byte.
final class SilentServer {
    let fd: Int32
    let address: SocketAddr
    init(backlog: Int32 = 16) throws {
        let t = try Resolver.resolve("127.0.0.1")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = t.address
        _ = withUnsafePointer(to: &a.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, a.length) } }
        listen(fd, backlog)
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        address = SocketAddr(storage: bound, length: len)
    }
    func close() { Glibc.close(fd) }
}
