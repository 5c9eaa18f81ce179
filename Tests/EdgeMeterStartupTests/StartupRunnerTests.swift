import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// A backend whose every phase takes a fixed virtual time on a `ManualClock`: the runner's phase
/// bookkeeping (durations, timeouts, failures, stop requests) tested deterministically, with no
/// engine and no real sleep.
final class FakeBackend: StartupBackend, @unchecked Sendable {
    let clock: ManualClock
    /// Virtual time each phase takes (ready: from the end of `running` until the marker is logged).
    var durations: [StartupPhase: Duration] = [.create: .milliseconds(100), .start: .milliseconds(200), .running: .milliseconds(50),
                                               .ready: .milliseconds(250), .stop: .milliseconds(30), .remove: .milliseconds(20)]
    /// The phase that throws (after taking its time).
    var failing: StartupPhase?
    /// nil: the marker is never printed.
    var printsMarker = true
    /// The workload's exit, this long after `running` ended (nil: it never exits).
    var exitsAfter: (Duration, Int)?
    var address = InstanceAddress(host: "127.0.0.1")
    let name = "fake"
    var labels: [String: String] { ["engine": "fake"] }
    private let lock = NSLock()
    private(set) var instances: [FakeInstance] = []
    private(set) var cleanups = 0

    init(clock: ManualClock) { self.clock = clock }

    func prepare(stop: StopFlag) async throws {}

    func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        let inst = FakeInstance(backend: self, name: "edgemeter-fake-\(index + 1)")
        lock.withLock { instances.append(inst) }
        try inst.take(.create)
        return inst
    }

    func cleanup() async { lock.withLock { cleanups += 1 } }
}

final class FakeInstance: StartupInstance, @unchecked Sendable {
    let backend: FakeBackend
    let name: String
    /// Virtual times (monotonic ns) at which each phase method was called.
    private(set) var calledAt: [StartupPhase: Int64] = [:]
    private var runningEnded: Int64?
    var labels: [String: String] { ["fake": "yes"] }

    init(backend: FakeBackend, name: String) {
        self.backend = backend
        self.name = name
    }

    var clock: ManualClock { backend.clock }

    func take(_ phase: StartupPhase) throws {
        calledAt[phase] = clock.monotonicNanoseconds()
        clock.advance(by: backend.durations[phase] ?? .zero)
        if backend.failing == phase { throw StartupError("\(phase.rawValue) refused by the fake engine") }
    }

    func start() async throws { try take(.start) }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        try take(.running)
        runningEnded = clock.monotonicNanoseconds()
    }

    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress { backend.address }

    private func since(_ d: Duration) -> Bool {
        guard let t = runningEnded else { return false }
        return clock.monotonicNanoseconds() - t >= d.nanoseconds
    }

    func workloadState() async throws -> WorkloadState {
        if let (after, status) = backend.exitsAfter, since(after) { return .exited(status: status) }
        return .running
    }

    func log() async throws -> String {
        var text = "booting\n"
        if backend.printsMarker, since(backend.durations[.ready] ?? .zero) { text += "\(ReadyCheck.defaultMarker)\n" }
        return text
    }

    func stop() async throws { try take(.stop) }
    func remove() async throws { try take(.remove) }
}

final class StartupRunnerTests: XCTestCase {
    let marker = ReadyCheck.marker(ReadyCheck.defaultMarker)

    func run(_ backend: FakeBackend, ready: ReadyCheck? = nil, runs: Int = 1, timeout: Duration = .seconds(2),
             stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "fake", runs: runs, ready: ready ?? marker, readyTimeout: timeout),
                                    runID: "r", sink: sink, stop: stop, clock: backend.clock)
        return sink.samples
    }

    /// Phase → (value, status, reason) of attempt `run` (1-based).
    func phases(_ samples: [Sample], run: Int = 1) -> [String: (value: Double?, status: SampleStatus, reason: String)] {
        Dictionary(uniqueKeysWithValues: samples.filter { $0.labels["run"] == String(run) }.map { ($0.phase, ($0.value, $0.status, $0.reason)) })
    }

    func testEveryPhaseIsTheVirtualTimeSpent() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        let samples = try await run(backend, runs: 2)
        XCTAssertEqual(samples.map(\.phase), (StartupPhase.allCases + StartupPhase.allCases).map(\.rawValue), "one row per phase, in order")
        for r in 1...2 {
            let p = phases(samples, run: r)
            XCTAssertEqual(p["create"]?.value, 100)
            XCTAssertEqual(p["start"]?.value, 200)
            XCTAssertEqual(p["running"]?.value, 50)
            XCTAssertEqual(p["ready"]?.value, 250, "the marker appears 250 ms after running ended; polled every 1 ms")
            XCTAssertEqual(p["stop"]?.value, 30)
            XCTAssertEqual(p["remove"]?.value, 20)
            XCTAssertEqual(p["total"]?.value, 600, "create through ready")
            XCTAssertTrue(p.values.allSatisfy { $0.status == .ok && $0.reason.isEmpty })
        }
        // Timestamps from the injected clock's wall time: attempt 2 began 650 ms after attempt 1.
        let starts = samples.filter { $0.phase == "create" }.map(\.timestamp)
        XCTAssertEqual(starts[1].timeIntervalSince(starts[0]), 0.65, accuracy: 1e-6)
        XCTAssertEqual(samples.first?.labels["clock"], "monotonic")
        XCTAssertEqual(samples.first?.labels["fake"], "yes", "the instance's labels are on every sample")
        XCTAssertEqual(backend.cleanups, 1)
    }

    func testReadyThatNeverPassesEndsAtTheTimeout() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        backend.printsMarker = false
        let samples = try await run(backend, timeout: .seconds(2))
        let p = phases(samples)
        XCTAssertEqual(p["ready"]?.status, .timeout)
        XCTAssertNil(p["ready"]?.value)
        XCTAssertEqual(p["ready"]?.reason, "no marker \"EDGEMETER-READY\" in the log of edgemeter-fake-1 before the timeout")
        // The deadline counts from create: stop was called exactly 2 s after create was.
        let inst = try XCTUnwrap(backend.instances.first)
        XCTAssertEqual((inst.calledAt[.stop] ?? 0) - (inst.calledAt[.create] ?? 0), 2_000_000_000)
        XCTAssertEqual(p["stop"]?.value, 30, "stop and remove are still measured")
        XCTAssertEqual(p["remove"]?.value, 20)
        XCTAssertEqual(p["total"]?.status, .error)
        XCTAssertTrue(p["total"]?.reason.hasPrefix("not ready: ready: no marker") == true, p["total"]?.reason ?? "")
    }

    func testFailedPhaseStillReportsEveryPhase() async throws {
        let backend = FakeBackend(clock: ManualClock())
        backend.failing = .start
        let samples = try await run(backend)
        XCTAssertEqual(samples.map(\.phase), StartupPhase.allCases.map(\.rawValue), "the same columns as a successful attempt")
        let p = phases(samples)
        XCTAssertEqual(p["create"]?.value, 100)
        XCTAssertEqual(p["start"]?.status, .error)
        XCTAssertEqual(p["start"]?.reason, "start refused by the fake engine")
        XCTAssertEqual(p["running"]?.reason, "not reached: start failed")
        XCTAssertEqual(p["ready"]?.reason, "not reached: start failed")
        XCTAssertEqual(p["stop"]?.value, 30, "a created instance is still stopped and removed, and both are timed")
        XCTAssertEqual(p["remove"]?.value, 20)
        XCTAssertEqual(p["total"]?.reason, "not ready: start: start refused by the fake engine")
        XCTAssertTrue(samples.allSatisfy { $0.status == .ok ? $0.value != nil : $0.value == nil })

        let failedCreate = FakeBackend(clock: ManualClock())
        failedCreate.failing = .create
        let q = phases(try await run(failedCreate))
        XCTAssertEqual(q["create"]?.reason, "create refused by the fake engine")
        XCTAssertEqual(q["stop"]?.reason, "not reached: create failed", "no instance: nothing to stop")
        XCTAssertEqual(q["remove"]?.reason, "not reached: create failed")
    }

    func testStopRequestMidRunEndsThePhaseAndStartsNoFurtherAttempt() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)
        backend.printsMarker = false
        let stop = StopFlag()
        // Attempt 2 begins at 2.05 s (attempt 1 times out at 2 s, then stop + remove); its ready
        // wait starts at 2.40 s. The "signal" arrives at 2.50 s.
        clock.onSleep = { t in if t >= 1_000_000_000 + 2_500_000_000 { stop.stop(reason: "SIGINT") } }
        let samples = try await run(backend, runs: 3, timeout: .seconds(2), stop: stop)
        XCTAssertEqual(backend.instances.count, 2, "no third attempt after the stop")
        XCTAssertEqual(samples.count, 2 * StartupPhase.allCases.count)
        let p = phases(samples, run: 2)
        XCTAssertEqual(p["ready"]?.status, .error)
        XCTAssertEqual(p["ready"]?.reason, "interrupted (SIGINT) while waiting for marker \"EDGEMETER-READY\" in the log of edgemeter-fake-2")
        XCTAssertEqual(p["stop"]?.value, 30, "the interrupted attempt still stops and removes its instance")
        XCTAssertEqual(p["remove"]?.value, 20)
        let inst = backend.instances[1]
        XCTAssertEqual((inst.calledAt[.stop] ?? 0) - 1_000_000_000, 2_500_000_000, "the wait ended at the stop request")
        XCTAssertEqual(backend.cleanups, 1)
    }

    func testExitReadyReportsTheWorkloadsStatus() async throws {
        let ok = FakeBackend(clock: ManualClock())
        ok.exitsAfter = (.milliseconds(40), 0)
        let okSamples = try await run(ok, ready: .exit)
        XCTAssertEqual(phases(okSamples)["ready"]?.value, 40)

        let failing = FakeBackend(clock: ManualClock())
        failing.exitsAfter = (.milliseconds(40), 3)
        let p = phases(try await run(failing, ready: .exit))
        XCTAssertEqual(p["ready"]?.status, .error)
        XCTAssertEqual(p["ready"]?.reason, "the workload exited with status 3: log: booting")
        XCTAssertEqual(p["total"]?.reason, "not ready: ready: the workload exited with status 3: log: booting")
    }

    func testMarkerNeverPrintedByAnEndedWorkloadFailsWithoutWaitingForTheTimeout() async throws {
        let backend = FakeBackend(clock: ManualClock())
        backend.printsMarker = false
        backend.exitsAfter = (.milliseconds(30), 0)
        let p = phases(try await run(backend, timeout: .seconds(60)))
        XCTAssertEqual(p["ready"]?.status, .error)
        XCTAssertEqual(p["ready"]?.reason, "the workload exited with status 0 before the marker \"EDGEMETER-READY\" appeared; its log ends: booting")
        let inst = try XCTUnwrap(backend.instances.first)
        // Noticed at the first exit check (every 100 ms of the wait), not at the 60 s timeout.
        XCTAssertEqual((inst.calledAt[.stop] ?? 0) - (inst.calledAt[.running] ?? 0), 50_000_000 + 100_000_000)
    }

    func testNetworkChecksUseTheInstanceAddress() async throws {
        // A loopback listener stands for the workload: the tcp check connects to the address the
        // instance exposes and records it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }, 0)
        XCTAssertEqual(listen(fd, 8), 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))

        let backend = FakeBackend(clock: ManualClock())
        let samples = try await run(backend, ready: .tcp(port: port))
        XCTAssertEqual(phases(samples)["ready"]?.status, .ok, phases(samples)["ready"]?.reason ?? "")
        XCTAssertEqual(samples.first?.labels["address"], "127.0.0.1")

        // Behind NAT there is no route for an echo: refused at once, whatever the backend.
        let nat = FakeBackend(clock: ManualClock())
        nat.address = InstanceAddress(host: "127.0.0.1", forwardedPort: port)
        let p = phases(try await run(nat, ready: .icmp))
        XCTAssertEqual(p["ready"]?.status, .error)
        XCTAssertTrue(p["ready"]?.reason.hasPrefix("ready=icmp is not available for edgemeter-fake-1: it sits behind user-mode NAT") == true,
                      p["ready"]?.reason ?? "")
    }

    func testMarkerMatchesAWholeWordAtTheEndOfALine() {
        XCTAssertTrue(ReadyProbes.containsMarker("a\nEDGEMETER-READY\n", "EDGEMETER-READY"))
        XCTAssertTrue(ReadyProbes.containsMarker("a\r\n[    1.2] EDGEMETER-READY\r\n", "EDGEMETER-READY"))
        XCTAssertFalse(ReadyProbes.containsMarker("NOT-EDGEMETER-READY\n", "EDGEMETER-READY"))
        XCTAssertFalse(ReadyProbes.containsMarker("EDGEMETER-READY later\n", "EDGEMETER-READY"))
        XCTAssertFalse(ReadyProbes.containsMarker("anything", ""))
    }
}
