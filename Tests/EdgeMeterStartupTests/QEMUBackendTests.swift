import EdgeMeterCore
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// Real QEMU guests (Debian kernel from the setup script's cache + edgemeter's busybox initramfs).
/// TCG boots take a few seconds each, so run counts are 1.
final class QEMUBackendTests: XCTestCase {
    func run(_ backend: QEMUBackend, _ ready: ReadyCheck, runs: Int = 1, stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "qemu-test", runs: runs, ready: ready, readyTimeout: .seconds(90)),
                                    runID: "test", sink: sink, stop: stop)
        return sink.samples
    }

    func testTCGMarkerExitAndTCPThroughHostForward() async throws {
        try requireQEMU()
        for ready in [ReadyCheck.marker(ReadyCheck.defaultMarker), .exit, .tcp(port: 22), .http(port: 80, path: "/")] {
            let port = freePort()
            let backend = QEMUBackend(runID: testRunID("qt"), accel: .tcg, hostPort: port)
            let samples = try await run(backend, ready)
            assertPhases(samples, runs: 1)
            for s in samples { XCTAssertEqual(s.labels["accel"], "tcg") }
            XCTAssertEqual(samples.first?.labels["host_port"], String(port))
            XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty)
            XCTAssertFalse(FileManager.default.fileExists(atPath: backend.workDirectory))
        }
    }

    func testAutoAccelProvesKVMOrFallsBackToTCG() async throws {
        try requireQEMU()
        let backend = QEMUBackend(runID: testRunID("qk"), accel: .auto, hostPort: freePort(), kvmProbeTimeout: .seconds(4))
        let samples = try await run(backend, .marker(ReadyCheck.defaultMarker))
        assertPhases(samples, runs: 1)
        let accel = samples.first?.labels["accel"]
        let note = samples.first?.labels["accel_note"] ?? ""
        if accel == "kvm" {
            XCTAssertEqual(note, "kvm probe guest booted")
        } else {
            XCTAssertEqual(accel, "tcg")
            XCTAssertTrue(note.contains("tcg used"), note)
        }
        for s in samples { XCTAssertEqual(s.labels["accel"], accel, "accel recorded on every sample") }
        XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty, "the KVM probe guest must not be left running")
    }

    func testRestoreFromSavedStateAgainstColdBoot() async throws {
        try requireQEMU()
        let cold = QEMUBackend(runID: testRunID("qc"), accel: .tcg, hostPort: freePort())
        let coldSamples = try await run(cold, .tcp(port: 22))
        assertPhases(coldSamples, runs: 1)
        let snap = QEMUBackend(runID: testRunID("qs"), accel: .tcg, hostPort: freePort(), fromSnapshot: true, snapshotReady: .tcp(port: 22))
        let samples = try await run(snap, .tcp(port: 22))
        assertPhases(samples, runs: 1)
        // The state is saved in prepare, so no timed phase of the clone includes the source's boot.
        XCTAssertLessThan(value(samples, .create)!, value(coldSamples, .ready)! / 2, "create must not include saving the state")
        XCTAssertEqual(samples.first?.target, "qemu-snapshot")
        XCTAssertNotNil(snap.saveMilliseconds)
        // A restored guest skips the boot: its ready phase is far shorter than a cold boot's.
        XCTAssertLessThan(value(samples, .ready)!, value(coldSamples, .ready)!)
        XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(snap.runTag)").isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: snap.workDirectory))
    }

    func testInterruptedRunLeavesNoQEMUProcess() async throws {
        try requireQEMU()
        let backend = QEMUBackend(runID: testRunID("qi"), accel: .tcg, hostPort: freePort())
        let stop = StopFlag()
        Task { try await Task.sleep(for: .seconds(1)); stop.stop(reason: "SIGINT") }
        let samples = try await run(backend, .marker("NEVER-PRINTED"), runs: 3, stop: stop)
        assertPhases(samples, runs: 1, ok: false)
        XCTAssertTrue(samples.first { $0.phase == "ready" }!.reason.contains("interrupted"))
        XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty)
    }

    func testMissingKernelNamesTheSetupScript() async throws {
        try requireQEMU()
        let backend = QEMUBackend(runID: testRunID("qm"), accel: .tcg, kernelCache: KernelCache(directory: "/nonexistent/kernel"))
        do {
            try await run(backend, .marker(ReadyCheck.defaultMarker))
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.contains("no guest kernel in /nonexistent/kernel/boot"), e.message)
            XCTAssertTrue(e.message.contains("scripts/setup-engines.sh"), e.message)
        }
    }
}
