import XCTest
import EdgeMeterCore
@testable import EdgeMeterProbes

/// The ICMP probe's echo loop (schedule, replies, expiry, stop, deadline) on a virtual clock with a
/// scripted transport standing in for the sockets: every time is exact and nothing sleeps. The
/// real sockets are tested on loopback in ICMPProbeTests.
final class ICMPEchoLoopTests: XCTestCase {
    let ms: Int64 = 1_000_000

    /// Answers each echo after `replyAfter(target, seq)` of virtual time (nil: never). Waiting
    /// for replies sleeps on the manual clock, so the clock's `onSleep` sees every wait.
    final class ScriptedTransport: EchoTransport {
        let clock: ManualClock
        let replyAfter: (Int, UInt16) -> Int64?
        var sendErrno: (Int, UInt16) -> Int32? = { _, _ in nil }
        private(set) var sends: [(target: Int, sequence: UInt16, at: Int64)] = []
        private var inFlight: [(at: Int64, target: Int, sequence: UInt16)] = []

        init(clock: ManualClock, replyAfter: @escaping (Int, UInt16) -> Int64?) {
            self.clock = clock
            self.replyAfter = replyAfter
        }

        func send(target: Int, sequence: UInt16) -> EchoSend {
            if let e = sendErrno(target, sequence) { return .failed(errno: e) }
            let now = clock.monotonicNanoseconds()
            sends.append((target, sequence, now))
            if let d = replyAfter(target, sequence) { inFlight.append((now + d, target, sequence)) }
            return .sent(mono: now, real: 0)
        }

        func receive(waitNanoseconds: Int64, arrived: (EchoArrival) -> Void) {
            let now = clock.monotonicNanoseconds()
            let until = min(now + waitNanoseconds, inFlight.map(\.at).min() ?? Int64.max)
            if until > now { clock.sleep(untilNanoseconds: until, stop: { false }) }
            let t = clock.monotonicNanoseconds()
            let due = inFlight.filter { $0.at <= t }.sorted { $0.at < $1.at }
            inFlight.removeAll { $0.at <= t }
            for d in due {
                arrived(EchoArrival(target: d.target, sequence: d.sequence, kind: .reply(bytes: 64, ttl: 64), source: "127.0.0.1",
                                    receivedMono: t, kernelRealtime: nil, controlTTL: nil))
            }
        }
    }

    struct Seen {
        var result: ICMPEchoResult
        /// Virtual time the loop reported it.
        var at: Int64
        var description: String {
            switch result.outcome {
            case .reply(let rtt, _, _, _, _): return "\(result.targetIndex)/\(result.sequence) reply \(rtt / 1_000_000) ms"
            case .timeout(let r): return "\(result.targetIndex)/\(result.sequence) timeout: \(r)"
            case .unreachable(let r): return "\(result.targetIndex)/\(result.sequence) unreachable: \(r)"
            case .error(let r): return "\(result.targetIndex)/\(result.sequence) error: \(r)"
            }
        }
    }

    func run(_ transport: ScriptedTransport, targets: Int = 1, schedule: Schedule, timeout: Duration, stop: StopFlag = StopFlag()) -> [Seen] {
        var seen: [Seen] = []
        ICMPProbe.echoes(transport: transport, identifiers: (0..<targets).map { UInt16(100 + $0) }, timeout: timeout, spin: .off,
                         schedule: schedule, clock: transport.clock, stop: stop) { r in
            seen.append(Seen(result: r, at: transport.clock.monotonicNanoseconds()))
        }
        return seen
    }

    /// An echo unanswered for its timeout is reported as a timeout exactly `timeout` after its
    /// send, while the replies around it keep their RTTs (monotonic, from the run clock).
    func testUnansweredEchoTimesOutAtExactlyItsTimeout() {
        let clock = ManualClock(start: 0, wall: Date(timeIntervalSince1970: 1_800_000_000))
        let transport = ScriptedTransport(clock: clock) { _, seq in seq == 2 ? nil : (seq == 1 ? 10 : 5) * 1_000_000 }
        let seen = run(transport, schedule: Schedule(count: 3, interval: .milliseconds(100)), timeout: .milliseconds(250))
        XCTAssertEqual(seen.map(\.description), ["0/1 reply 10 ms", "0/3 reply 5 ms", "0/2 timeout: no reply within 250 ms"])
        XCTAssertEqual(seen.map(\.at), [10, 205, 350].map { $0 * ms }, "seq 2 was sent at 100 ms: it expires at 350 ms, not before, not after")
        XCTAssertEqual(transport.sends.map(\.at), [0, 100, 200].map { $0 * ms })
        XCTAssertEqual(seen[2].result.sentAt.timeIntervalSince1970, 1_800_000_000.1, accuracy: 1e-6, "the timeout carries its request's send time")
        guard case .reply(_, _, _, let kernel, _) = seen[0].result.outcome else { return XCTFail("no reply") }
        XCTAssertFalse(kernel, "no kernel stamp: the monotonic figure")
        XCTAssertEqual(clock.monotonicNanoseconds(), 350 * ms, "the run ends when the last echo is settled")
    }

    /// Several targets per round, and an echo answered after the next send (interval < RTT):
    /// replies are paired by target and sequence, not by order.
    func testRepliesSlowerThanTheIntervalArePairedBySequence() {
        let clock = ManualClock(start: 0)
        let transport = ScriptedTransport(clock: clock) { target, seq in (target == 0 ? 150 : 20) * 1_000_000 + Int64(seq) * 1_000 }
        let seen = run(transport, targets: 2, schedule: Schedule(count: 3, interval: .milliseconds(100)), timeout: .seconds(1))
        XCTAssertEqual(transport.sends.map { "\($0.target)/\($0.sequence)@\($0.at / 1_000_000)" },
                       ["0/1@0", "1/1@0", "0/2@100", "1/2@100", "0/3@200", "1/3@200"])
        XCTAssertEqual(seen.map(\.description), ["1/1 reply 20 ms", "1/2 reply 20 ms", "0/1 reply 150 ms", "1/3 reply 20 ms",
                                                 "0/2 reply 150 ms", "0/3 reply 150 ms"])
        for s in seen { if case .reply(let rtt, _, _, _, _) = s.result.outcome { XCTAssertEqual(rtt % 1_000_000, Int64(s.result.sequence) * 1_000) } }
        XCTAssertEqual(seen.map(\.result.identifier), [101, 101, 100, 101, 100, 100])
    }

    /// The SIGINT path: a stop set at virtual time T (from the clock's sleep hook, where the
    /// signal would land) ends sending at once; echoes already sent get at most min(timeout,
    /// 100 ms) more, answered ones are recorded, the rest reported as stopped; nothing is sent after T.
    func testStopEndsSendingAndSettlesOutstandingEchoes() {
        let clock = ManualClock(start: 0)
        let stop = StopFlag()
        clock.onSleep = { t in if t >= 250 * 1_000_000 { stop.stop(reason: "SIGINT") } }
        // seq 3 (sent at 200 ms) is answered at 280 ms, after the stop; seq 4 would never be.
        let transport = ScriptedTransport(clock: clock) { _, seq in seq == 3 ? 80 * 1_000_000 : seq >= 4 ? nil : 1_000_000 }
        let seen = run(transport, schedule: Schedule(count: nil, interval: .milliseconds(100)), timeout: .seconds(1), stop: stop)
        XCTAssertEqual(transport.sends.map(\.at), [0, 100, 200].map { $0 * ms }, "nothing sent after the stop at 250 ms")
        XCTAssertEqual(seen.map(\.description), ["0/1 reply 1 ms", "0/2 reply 1 ms", "0/3 reply 80 ms"])
        XCTAssertEqual(seen.last?.at, 280 * ms, "the in-flight reply arrived within the grace and was kept")

        // The same, with seq 3 never answered: it is settled at stop + 100 ms, as stopped.
        let clock2 = ManualClock(start: 0)
        let stop2 = StopFlag()
        clock2.onSleep = { t in if t >= 250 * 1_000_000 { stop2.stop(reason: "SIGINT") } }
        let silent = ScriptedTransport(clock: clock2) { _, seq in seq >= 3 ? nil : 1_000_000 }
        let seen2 = run(silent, schedule: Schedule(count: nil, interval: .milliseconds(100)), timeout: .seconds(1), stop: stop2)
        XCTAssertEqual(seen2.map(\.description), ["0/1 reply 1 ms", "0/2 reply 1 ms", "0/3 timeout: run stopped before a reply arrived"])
        XCTAssertEqual(seen2.last?.at, 350 * ms)
        XCTAssertTrue(seen2.allSatisfy { $0.result.sentAt.timeIntervalSince1970 < 1_800_000_000.25 }, "every echo recorded was sent before the stop")
    }

    /// The deadline ends sending and settles every outstanding echo then, whatever its timeout.
    func testDeadlineSettlesOutstandingEchoes() {
        let clock = ManualClock(start: 0)
        let transport = ScriptedTransport(clock: clock) { _, seq in seq == 1 ? 3_000_000 : nil }
        let seen = run(transport, schedule: Schedule(count: 10, interval: .milliseconds(100), deadline: .milliseconds(250)), timeout: .seconds(5))
        XCTAssertEqual(seen.map(\.description), ["0/1 reply 3 ms", "0/2 timeout: deadline reached before a reply",
                                                 "0/3 timeout: deadline reached before a reply"])
        XCTAssertEqual(seen.dropFirst().map(\.at), [250 * ms, 250 * ms])
        XCTAssertEqual(clock.monotonicNanoseconds(), 250 * ms)
    }

    /// After the last round the loop waits for the stragglers, each until its own timeout only.
    func testAfterTheCountTheLoopWaitsOnlyForOutstandingEchoes() {
        let clock = ManualClock(start: 0)
        let transport = ScriptedTransport(clock: clock) { _, _ in 2_000_000 }
        let seen = run(transport, schedule: Schedule(count: 2, interval: .seconds(1)), timeout: .seconds(1))
        XCTAssertEqual(seen.map(\.at), [2 * ms, 1_002 * ms])
        XCTAssertEqual(clock.monotonicNanoseconds(), 1_002 * ms, "no wait for a third interval")
    }

    func testFailedSendIsReportedAtOnceAndNotAwaited() {
        let clock = ManualClock(start: 0)
        let transport = ScriptedTransport(clock: clock) { _, _ in 1_000_000 }
        transport.sendErrno = { _, seq in seq == 2 ? ENETUNREACH : seq == 3 ? EPERM : nil }
        let seen = run(transport, schedule: Schedule(count: 3, interval: .milliseconds(10)), timeout: .seconds(1))
        XCTAssertEqual(seen.map(\.description), ["0/1 reply 1 ms", "0/2 unreachable: sendto failed: \(String(cString: strerror(ENETUNREACH)))",
                                                 "0/3 error: sendto failed: \(String(cString: strerror(EPERM)))"])
        XCTAssertEqual(seen.map(\.at), [1, 10, 20].map { $0 * ms })
    }

    /// The pure bookkeeping: expiry at exactly send + timeout, oldest first; late replies ignored.
    func testOutstandingEchoesBookkeeping() {
        var book = OutstandingEchoes(targets: 2)
        let d = Date()
        book.sent(target: 0, sequence: 1, .init(sendMono: 100, sendReal: 0, sentAt: d))
        book.sent(target: 1, sequence: 1, .init(sendMono: 100, sendReal: 0, sentAt: d))
        book.sent(target: 0, sequence: 2, .init(sendMono: 200, sendReal: 0, sentAt: d))
        XCTAssertEqual(book.nextExpiry(timeoutNanoseconds: 50), 150)
        XCTAssertTrue(book.expire(now: 149, timeoutNanoseconds: 50).isEmpty)
        XCTAssertEqual(book.expire(now: 150, timeoutNanoseconds: 50).map { "\($0.target)/\($0.sequence)" }, ["0/1", "1/1"])
        XCTAssertNil(book.answer(target: 0, sequence: 1), "already expired: a late reply is ignored")
        XCTAssertNotNil(book.answer(target: 0, sequence: 2))
        XCTAssertNil(book.answer(target: 0, sequence: 2), "a duplicate reply is ignored")
        XCTAssertTrue(book.isEmpty)
        XCTAssertNil(book.nextExpiry(timeoutNanoseconds: 50))
    }
}
