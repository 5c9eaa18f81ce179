import Foundation
import XCTest
import Histogram
import EdgeMeterCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP

/// Drives `LoadPacer`s and a `LoadWindow` on virtual time, the way `LoadSlot` and
/// `LoadGenerator.run` drive them on the event loops: a `ManualClock` jumps from event to event
/// (no sleeps, no sockets), and each connection talks to an ideal server that answers the `n`-th
/// request of the run (in the order sent, from 0) after `service(n)` ns, or never (nil).
/// Connections open at once; a timed-out request is seen 1 ns after its timeout (the real checker
/// looks every 50 ms at most) and its connection reopens at once.
final class VirtualLoadRun {
    let clock = ManualClock(start: 5_000_000_000)
    let options: LoadOptions
    var window: LoadWindow
    var pacers: [LoadPacer] = []
    let stats = LoopStats()
    let service: (Int) -> UInt64?
    /// Every request sent: (intended, actual) send time, in the order sent.
    private(set) var sends: [(intended: UInt64, at: UInt64)] = []

    private var wake: [UInt64?]
    private var answerAt: [UInt64?]
    private var timeoutAt: [UInt64?]
    private var done: [Bool]

    init(_ options: LoadOptions, service: @escaping (Int) -> UInt64?) {
        self.options = options
        self.service = service
        let start = UInt64(clock.monotonicNanoseconds())
        let t0 = start + 20_000_000 // the lead-in, as in the generator
        window = LoadWindow(t0: t0, warmupNanos: UInt64(options.warmup.nanoseconds),
                            durationNanos: options.duration.map { UInt64($0.nanoseconds) },
                            maxDurationNanos: UInt64(options.maxDuration.nanoseconds),
                            timeoutNanos: UInt64(options.timeout.nanoseconds))
        for i in 0..<options.connections {
            var quota: Int?
            if let c = options.requestCount { quota = c / options.connections + (i < c % options.connections ? 1 : 0) }
            pacers.append(LoadPacer(t0: t0, measureStart: window.measureStart, end: window.end, rate: options.rate,
                                    connections: options.connections, index: i, quota: quota,
                                    timeoutNanos: UInt64(options.timeout.nanoseconds)))
        }
        wake = Array(repeating: nil, count: options.connections)
        answerAt = wake
        timeoutAt = wake
        done = Array(repeating: false, count: options.connections)
    }

    var t0: UInt64 { window.t0 }
    var now: UInt64 { UInt64(clock.monotonicNanoseconds()) }

    private func step(_ i: Int) {
        switch pacers[i].next(now: now) {
        case .nothing:
            break
        case .finish:
            pacers[i].finish(everConnected: true, into: stats)
            done[i] = true
        case .wait(let t):
            wake[i] = t
        case .send(let intended):
            pacers[i].sent(intended: intended, at: now)
            let n = sends.count
            sends.append((intended, now))
            if let d = service(n) {
                answerAt[i] = now + d
            } else {
                timeoutAt[i] = now + UInt64(options.timeout.nanoseconds) + 1
            }
        }
    }

    /// Runs to the end; `stopAt`: a stop request at that virtual time.
    func run(stopAt: UInt64? = nil) -> LoadResult {
        for i in pacers.indices { step(i) }
        var stopPending = stopAt
        while done.contains(false) {
            // The earliest event; at equal times answers first, then timeouts, then timers.
            var best: (t: UInt64, rank: Int, i: Int)?
            func consider(_ t: UInt64?, _ rank: Int, _ i: Int) {
                guard let t else { return }
                if best == nil || (t, rank, i) < (best!.t, best!.rank, best!.i) { best = (t, rank, i) }
            }
            for i in pacers.indices where !done[i] {
                consider(answerAt[i], 0, i)
                consider(timeoutAt[i], 1, i)
                consider(wake[i], 2, i)
            }
            consider(stopPending, 3, -1)
            consider(window.effectiveEnd + window.graceNanos + 1, 4, -1)
            guard let e = best else { XCTFail("no event left while connections are running"); break }
            clock.sleep(untilNanoseconds: Int64(e.t), stop: { false })
            switch e.rank {
            case 0:
                answerAt[e.i] = nil
                pacers[e.i].completed(at: now, status: 200, failure: nil, bytes: 100, into: stats)
                step(e.i)
            case 1:
                timeoutAt[e.i] = nil
                if pacers[e.i].timedOut(at: now, into: stats) {
                    // The connection closes and reopens at once.
                    if pacers[e.i].shouldConnect(now: now) { step(e.i) } else {
                        pacers[e.i].finish(everConnected: true, into: stats)
                        done[e.i] = true
                    }
                }
            case 2:
                wake[e.i] = nil
                step(e.i)
            case 3:
                stopPending = nil
                window.stop(at: now)
                for i in pacers.indices { pacers[i].stop(at: now) }
            default:
                for i in pacers.indices where !done[i] {
                    pacers[i].abort(everConnected: true, into: stats)
                    done[i] = true
                }
            }
        }
        return LoadResult(merging: [stats], window: window, target: "virtual", options: options,
                          stopReason: stopAt == nil ? nil : "test")
    }
}

private let ms: UInt64 = 1_000_000

private func histogram(_ values: [UInt64]) -> Histogram<UInt64> {
    var h = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
    h.autoResize = true
    for v in values { h.record(v) }
    return h
}

/// Open-loop pacing and coordinated-omission correction on virtual time: exact counts and
/// latencies, derived by hand in each test.
final class LoadPacerTests: XCTestCase {
    func options(rate: Double?, connections: Int = 1, duration: Duration? = nil, requests: Int? = nil,
                 warmup: Duration = .zero, timeout: Duration = .seconds(2)) -> LoadOptions {
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), connections: connections, rate: rate, duration: duration,
                            requestCount: requests, warmup: warmup, timeout: timeout)
        o.threads = 1
        return o
    }

    /// 100 requests/s on one connection, the server answers in 1 ms, except request 300 (due at
    /// t0 + 3 s), which it holds for 1 s. The 110 requests due while it is held, or while the
    /// backlog drains, go out back to back (each 1 ms) when it ends: request 300 + j leaves at
    /// +1000 + (j−1) ms instead of +10·j ms, so its corrected latency is 1000 − 9·j ms (991 ... 10
    /// ms, j = 1 ... 110); from j = 111 on the schedule is caught up. Uncorrected, only the held
    /// request is slow.
    func testServerStalledForOneSecondYieldsTheCorrectedSamples() {
        let run = VirtualLoadRun(options(rate: 100, duration: .seconds(5))) { n in n == 300 ? 1000 * ms : 1 * ms }
        let r = run.run()
        XCTAssertEqual(r.responses, 500)
        XCTAssertEqual(r.totalErrors, 0)
        XCTAssertEqual(r.unsent, 0, "the schedule caught up long before the end")
        var corrected = [UInt64](repeating: 1 * ms, count: 500 - 111)
        corrected.append(1000 * ms)
        corrected += (1...110).map { (1000 - 9 * UInt64($0)) * ms }
        XCTAssertEqual(r.corrected, histogram(corrected), "corrected: 111 samples of 10-1000 ms, the rest 1 ms")
        XCTAssertEqual(r.corrected.count(within: (5 * ms)...(2000 * ms)), 111)
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 1 * ms, count: 499) + [1000 * ms]),
                       "uncorrected: one 1 s sample, the rest 1 ms (the omission the correction repairs)")
        // The backlog went out back to back, keeping its slots as intended send times.
        guard run.sends.count == 500 else { return XCTFail("\(run.sends.count) requests sent, not 500") }
        XCTAssertEqual(run.sends[301].at - run.sends[301].intended, 990 * ms)
        XCTAssertEqual(run.sends[410].at, run.sends[409].at + 1 * ms)
        XCTAssertEqual(run.sends[411].at, run.sends[411].intended, "request 411 leaves on its slot")
        XCTAssertEqual(r.measuredSeconds, 5)
        // Requests 300-399 (due in the fourth second) all complete in the fifth.
        XCTAssertEqual(r.perSecond, [100, 100, 100, 0, 200])
    }

    /// The same 1 s stall over 4 connections at 400 requests/s: only the held connection's share
    /// is delayed (every 4th slot); the other three keep their slots.
    func testStallOnOneConnectionDelaysOnlyItsShare() {
        // Request n is connection n % 4's (n / 4)-th: all connections go in step at 100/s each.
        let run = VirtualLoadRun(options(rate: 400, connections: 4, duration: .seconds(5))) { n in n == 1201 ? 1000 * ms : 1 * ms }
        let r = run.run()
        XCTAssertEqual(r.responses, 2000)
        // Connection 1 has the same stall as the single connection above: 111 slow samples.
        XCTAssertEqual(r.corrected.count(within: (2 * ms)...(2000 * ms)), 111)
        XCTAssertEqual(r.corrected.max, histogram([1000 * ms]).max)
        XCTAssertEqual(r.uncorrected.count(within: (2 * ms)...(2000 * ms)), 1)
        // Each slot on the global schedule: connection i's k-th request is due at t0 + (4k + i) × 2.5 ms.
        let onTime = run.sends.filter { $0.at == $0.intended }.count
        XCTAssertEqual(onTime, 2000 - 110)
    }

    /// 7 requests/s over 3 connections for 1000 s with a jittery server (0-100 ms, below each
    /// connection's 428 ms spacing): every request leaves exactly on its slot t0 + n/7 s, rounded
    /// to the ns, computed from n, so after 7000 requests nothing has drifted; corrected and
    /// uncorrected are then the same.
    func testScheduleDoesNotDrift() {
        var seed: UInt64 = 42
        let run = VirtualLoadRun(options(rate: 7, connections: 3, duration: .seconds(1000))) { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return (seed >> 33) % (100 * ms)
        }
        let r = run.run()
        XCTAssertEqual(r.responses, 7000)
        XCTAssertEqual(run.sends.count, 7000)
        for (n, s) in run.sends.enumerated() {
            let slot = run.t0 + UInt64((Double(n) * 1e9 / 7).rounded())
            guard s.intended == slot, s.at == slot else {
                XCTFail("request \(n): intended \(s.intended), sent \(s.at), slot \(slot)")
                return
            }
        }
        XCTAssertEqual(r.corrected, r.uncorrected)
        XCTAssertEqual(try XCTUnwrap(r.measuredRate), 7, accuracy: 1e-9)
        XCTAssertEqual(r.perSecond.count, 1000)
        XCTAssertEqual(r.perSecond.reduce(0, +), 7000)
    }

    /// A 1 s warm-up at 100/s: its 100 requests are counted as warm-up and recorded nowhere. A
    /// stall that begins in the warm-up (request 50, due at 0.5 s, held 1 s) delays measured
    /// requests too: requests 51-160 are backlogged (1000 − 9·j ms for request 50 + j); of them
    /// 100-160 (due from 1.0 s on) are measured, so 61 slow corrected samples (550 ... 10 ms).
    func testWarmupIsExcluded() {
        let run = VirtualLoadRun(options(rate: 100, duration: .seconds(2), warmup: .seconds(1))) { n in n == 50 ? 1000 * ms : 1 * ms }
        let r = run.run()
        XCTAssertEqual(r.warmupRequests, 100)
        XCTAssertEqual(r.responses, 200)
        XCTAssertEqual(r.corrected.totalCount, 200)
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 1 * ms, count: 200)), "the held request is warm-up")
        let slow = (50...110).map { (1000 - 9 * UInt64($0)) * ms }
        XCTAssertEqual(r.corrected, histogram([UInt64](repeating: 1 * ms, count: 200 - 61) + slow))
        XCTAssertEqual(r.measuredSeconds, 2)
        XCTAssertEqual(r.perSecond, [100, 100])
    }

    /// A stop request at t0 + 3.0005 s of a 10 s run at 100/s: request 300 (sent at 3.000 s) is in
    /// flight and completes at 3.001 s: it is kept. Nothing is sent after the stop, the window is
    /// 3.0005 s, the partial fourth second is dropped from the per-second counts.
    func testStopAtVirtualTimeEndsTheRunAndKeepsWhatWasMeasured() {
        let run = VirtualLoadRun(options(rate: 100, duration: .seconds(10))) { _ in 1 * ms }
        let r = run.run(stopAt: run.t0 + 3000 * ms + 500_000)
        XCTAssertEqual(run.sends.count, 301)
        XCTAssertEqual(r.responses, 301)
        XCTAssertEqual(r.corrected, histogram([UInt64](repeating: 1 * ms, count: 301)))
        XCTAssertEqual(r.unsent, 0, "the next slot (3.01 s) lies after the stop")
        XCTAssertEqual(r.totalErrors, 0)
        XCTAssertEqual(r.measuredSeconds, 3.0005, accuracy: 1e-12)
        XCTAssertEqual(r.perSecond, [100, 100, 100])
        XCTAssertEqual(r.stopReason, "test")
    }

    /// A stop at 2.5 s while request 200 (sent at 2.0 s) is held by the server: it times out at
    /// 3.0 s (1 s timeout) and is recorded at the timeout; no connection reopens after the stop,
    /// and the 49 slots between 2.0 and the stop (2.01 ... 2.49 s) are unsent, each recorded at
    /// stop − intended (490 ... 10 ms).
    func testStopWithARequestHeldEndsWhenItTimesOut() {
        let run = VirtualLoadRun(options(rate: 100, duration: .seconds(10), timeout: .seconds(1))) { n in n == 200 ? nil : 1 * ms }
        let r = run.run(stopAt: run.t0 + 2500 * ms)
        XCTAssertEqual(UInt64(run.clock.monotonicNanoseconds()), run.t0 + 3000 * ms + 1, "the run ended when the held request timed out")
        XCTAssertEqual(r.responses, 200)
        XCTAssertEqual(r.errors[.timeout], 1)
        XCTAssertEqual(r.unsent, 49)
        let unsent = (1...49).map { (500 - 10 * UInt64($0)) * ms }
        XCTAssertEqual(r.corrected, histogram([UInt64](repeating: 1 * ms, count: 200) + [1000 * ms] + unsent))
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 1 * ms, count: 200) + [1000 * ms]))
        XCTAssertEqual(r.measuredSeconds, 2.5)
    }

    /// After the grace period a request still in flight is recorded as a timeout (lag + timeout
    /// corrected), and the pacer finishes.
    func testAbortRecordsTheRequestInFlightAsATimeout() {
        let stats = LoopStats()
        var p = LoadPacer(t0: 0, measureStart: 0, end: 10 * 1000 * ms, rate: 10, connections: 1, index: 0, quota: nil,
                          timeoutNanos: 200 * ms)
        XCTAssertEqual(p.next(now: 350 * ms), .send(intended: 0), "late: the first slot (0) is due")
        p.sent(intended: 0, at: 350 * ms)
        XCTAssertEqual(p.next(now: 360 * ms), .nothing, "one request in flight at most")
        p.stop(at: 400 * ms)
        p.abort(everConnected: true, into: stats)
        XCTAssertTrue(p.finished)
        XCTAssertEqual(stats.errors, [0, 1, 0, 0, 0])
        XCTAssertEqual(stats.uncorrected, histogram([200 * ms]))
        // Corrected: 350 ms lag + 200 ms timeout; plus slots 1-3 (100, 200, 300 ms) unsent at 400 − due.
        XCTAssertEqual(stats.corrected, histogram([550 * ms, 300 * ms, 200 * ms, 100 * ms]))
        XCTAssertEqual(stats.unsent, 3)
        XCTAssertEqual(p.next(now: 500 * ms), .nothing)
    }

    /// A 600 ms stall just before the end of a 2 s window at 100/s: request 144 (due at 1.44 s)
    /// is answered after the end, so the 55 requests due at 1.45 ... 1.99 s are never sent; each
    /// is unsent and in the corrected histogram at end − intended (550 ... 10 ms).
    func testStallAtTheEndRecordsTheUnsentRequests() {
        let run = VirtualLoadRun(options(rate: 100, duration: .seconds(2))) { n in n == 144 ? 600 * ms : 1 * ms }
        let r = run.run()
        XCTAssertEqual(r.responses, 145, "the held request completes in the grace period and counts")
        XCTAssertEqual(r.unsent, 55)
        let unsent = (145...199).map { UInt64(2000 - 10 * $0) * ms }
        XCTAssertEqual(r.corrected, histogram([UInt64](repeating: 1 * ms, count: 144) + [600 * ms] + unsent))
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 1 * ms, count: 144) + [600 * ms]))
    }

    /// A request the server never answers at 10/s with a 100 ms timeout: seen after 100 ms,
    /// recorded at the timeout (uncorrected) and at lag + timeout (corrected); the connection
    /// reopens and the schedule goes on.
    func testTimeoutIsRecordedAtTheTimeout() {
        let run = VirtualLoadRun(options(rate: 10, duration: .seconds(2), timeout: .milliseconds(100))) { n in n == 5 ? nil : 1 * ms }
        let r = run.run()
        XCTAssertEqual(r.responses, 19)
        XCTAssertEqual(r.errors[.timeout], 1)
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 1 * ms, count: 19) + [100 * ms]))
        XCTAssertEqual(r.corrected, r.uncorrected, "the timed-out request left on its slot: no lag to add")
    }

    /// Closed loop: each connection sends when its last response is complete; intended = actual
    /// send time, so corrected is uncorrected. 4 connections × 1 s / 250 µs = 16 000 responses.
    func testClosedLoopSendsOnCompletion() {
        let run = VirtualLoadRun(options(rate: nil, connections: 4, duration: .seconds(1))) { _ in 250_000 }
        let r = run.run()
        XCTAssertEqual(r.responses, 16_000)
        XCTAssertEqual(run.sends.first?.at, run.t0, "nothing is sent in the lead-in")
        XCTAssertTrue(run.sends.allSatisfy { $0.at == $0.intended })
        XCTAssertEqual(r.corrected, r.uncorrected)
        XCTAssertEqual(r.uncorrected, histogram([UInt64](repeating: 250_000, count: 16_000)))
    }

    /// Count mode: 1000 requests over 3 connections (334, 333, 333); the window ends at the last
    /// completion.
    func testRequestCountSplitsOverTheConnections() {
        let run = VirtualLoadRun(options(rate: 1000, connections: 3, requests: 1000)) { _ in 100_000 }
        let r = run.run()
        XCTAssertEqual(r.responses, 1000)
        XCTAssertEqual(run.pacers.map(\.measuredSent), [334, 333, 333])
        // The last request (n = 999) is due at 0.999 s and answered 0.1 ms later.
        XCTAssertEqual(r.measuredSeconds, 0.9991, accuracy: 1e-12)
    }
}
