import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

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
            XCTAssertEqual(backend.initramfsBuilds, 1, "one initramfs, built in prepare")
            XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty)
            XCTAssertFalse(FileManager.default.fileExists(atPath: backend.workDirectory))
        }
    }

    /// The expectation comes from the host, not from the result: where /dev/kvm opens, KVM guests
    /// hang after the kernel decompressor (nested KVM), so the probe must run, time out and pick TCG.
    func testAutoAccelProbesKVMAndFallsBackToTCGOnThisHost() async throws {
        try requireQEMU()
        let fd = open("/dev/kvm", O_RDWR)
        let kvmOpens = fd >= 0
        if fd >= 0 { close(fd) }
        let backend = QEMUBackend(runID: testRunID("qk"), accel: .auto, hostPort: freePort(), kvmProbeTimeout: .seconds(4))
        let t0 = ContinuousClock.now
        let samples = try await run(backend, .marker(ReadyCheck.defaultMarker))
        let elapsed = ContinuousClock.now - t0
        assertPhases(samples, runs: 1)
        for s in samples {
            XCTAssertEqual(s.labels["accel"], "tcg", "accel recorded on every sample")
            if kvmOpens {
                XCTAssertEqual(s.labels["accel_note"], "kvm probe guest did not boot within the 4.0 s probe timeout (no marker on its console); tcg used")
            } else {
                XCTAssertEqual(s.labels["accel_note"], "kvm unavailable (/dev/kvm does not open); tcg used")
            }
        }
        if kvmOpens {
            // The probe guest really ran for the whole probe timeout before TCG was chosen.
            XCTAssertGreaterThanOrEqual(elapsed, .seconds(4), "the KVM probe must wait its full timeout")
        }
        XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty, "the KVM probe guest must not be left running")
    }

    /// The initramfs is built in prepare: it exists before the first create, and create builds none
    /// (the first attempt's create used to include building it).
    func testInitramfsIsBuiltInPrepareNotInCreate() async throws {
        try requireQEMU()
        let backend = QEMUBackend(runID: testRunID("qp"), accel: .tcg, hostPort: freePort())
        XCTAssertNil(backend.preparedInitramfs(for: .exit))
        try await backend.prepare(for: .exit, stop: StopFlag())
        let path = try XCTUnwrap(backend.preparedInitramfs(for: .exit), "prepare must build the initramfs for the ready check")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(backend.initramfsBuilds, 1)
        let built = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
        let instance = try await backend.create(index: 0, ready: .exit)
        XCTAssertEqual(backend.initramfsBuilds, 1, "create must not build an initramfs")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date, built)
        let vm = try XCTUnwrap(instance as? QEMUInstance)
        let i = try XCTUnwrap(vm.arguments.firstIndex(of: "-initrd"))
        XCTAssertEqual(vm.arguments[i + 1], path, "the VM boots the initramfs prepare built")
        await backend.cleanup()
        XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty)
    }

    func testCreateWithoutPrepareIsRefused() async throws {
        let backend = QEMUBackend(runID: testRunID("qn"), accel: .tcg, hostPort: freePort())
        do {
            _ = try await backend.create(index: 0, ready: .exit)
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.contains("the initramfs is built in prepare"), e.message)
        }
        XCTAssertEqual(backend.initramfsBuilds, 0)
        await backend.cleanup()
    }

    /// ready=exit is the workload's own exit status, carried out on the console: a failing
    /// workload fails `ready` (QEMU itself exits 0 on every guest power-off).
    func testExitReadyReportsTheWorkloadsStatus() async throws {
        try requireQEMU()
        for (script, status) in [("exit 3", 3), ("/bin/false", 1), ("echo working; true", 0)] {
            let backend = QEMUBackend(runID: testRunID("qx"), accel: .tcg, hostPort: freePort(), script: script)
            let samples = try await run(backend, .exit)
            XCTAssertEqual(backend.initramfsBuilds, 1)
            try assertWorkloadExit(samples, script: script, status: status)
            if status != 0 {
                // The runner's exit check adds the end of the log: here the serial console with the init's status line.
                let reason = samples.first { $0.phase == "ready" }?.reason ?? ""
                XCTAssertTrue(reason.hasPrefix("the workload exited with status \(status): log: "), "\(script): \(reason)")
                XCTAssertTrue(reason.contains("\(Initramfs.exitStatusPrefix)\(status)"), "\(script): \(reason)")
            }
            XCTAssertTrue(qemuProcesses(prefix: "edgemeter-\(backend.runTag)").isEmpty)
            XCTAssertFalse(FileManager.default.fileExists(atPath: backend.workDirectory))
        }
    }

    func testInitPrintsTheWorkloadsExitStatus() {
        let script = Initramfs().initScript(ready: .exit, network: false)
        XCTAssertTrue(script.contains("sh /workload\necho edgemeter-exit-status=$?\npoweroff -f\n"), script)
        XCTAssertEqual(Initramfs.workloadExitStatus(console: "EDGEMETER-READY\r\nedgemeter-exit-status=3\r\n"), 3)
        XCTAssertEqual(Initramfs.workloadExitStatus(console: "edgemeter-exit-status=0\n"), 0)
        // The init's line comes last: a workload printing the prefix itself cannot mask it.
        XCTAssertEqual(Initramfs.workloadExitStatus(console: "edgemeter-exit-status=0\nedgemeter-exit-status=2\n"), 2)
        XCTAssertNil(Initramfs.workloadExitStatus(console: "Kernel panic - not syncing\n"))
        XCTAssertNil(Initramfs.workloadExitStatus(console: "edgemeter-exit-status=\n"))
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
