import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// Real LXC busybox containers on a bridge the test run creates (`edgemeter-bt*`) and removes.
final class LXCBackendTests: XCTestCase {
    func run(_ backend: LXCBackend, _ ready: ReadyCheck, runs: Int = 1, stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "lxc-test", runs: runs, ready: ready, readyTimeout: .seconds(30)),
                                    runID: "test", sink: sink, stop: stop)
        return sink.samples
    }

    func leftovers(_ backend: LXCBackend) async throws -> [String] {
        let r = try await runCommand(["lxc-ls", "-1"])
        return r.stdout.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.hasPrefix("edgemeter-\(backend.runTag)-") }
    }

    func testEveryReadyKindOnABridgeTheRunCreates() async throws {
        try requireLXC()
        let bridge = "edgemeter-bt\(Int.random(in: 0..<99))"
        let existed = try await IPRoute().linkExists(bridge)
        XCTAssertFalse(existed)
        for ready in [ReadyCheck.exit, .marker(ReadyCheck.defaultMarker), .tcp(port: 2222), .http(port: 8080, path: "/"), .icmp] {
            let backend = LXCBackend(runID: testRunID("lx"), bridge: bridge, bridgeAddress: "10.213.78.1")
            let samples = try await run(backend, ready, runs: ready == .exit ? 2 : 1)
            assertPhases(samples, runs: ready == .exit ? 2 : 1)
            XCTAssertEqual(samples.first?.labels["bridge"], bridge)
            XCTAssertEqual(samples.first?.labels["address"], "10.213.78.10")
            let left = try await leftovers(backend)
            XCTAssertEqual(left, [])
            let bridgeLeft = try await IPRoute().linkExists(bridge)
            XCTAssertFalse(bridgeLeft, "the bridge the run created must be removed")
        }
    }

    /// ready=exit is the workload's exit status, not just the state STOPPED: a failing workload
    /// fails `ready` with its status, and every later phase is still recorded.
    func testExitReadyReportsTheWorkloadsStatus() async throws {
        try requireLXC()
        let bridge = "edgemeter-bx\(Int.random(in: 0..<99))"
        for (script, status) in [("exit 3", 3), ("/bin/false", 1), ("echo working; true", 0)] {
            let backend = LXCBackend(runID: testRunID("lf"), bridge: bridge, bridgeAddress: "10.213.80.1", script: script)
            let samples = try await run(backend, .exit)
            try assertWorkloadExit(samples, script: script, status: status)
            let left = try await leftovers(backend)
            XCTAssertEqual(left, [])
        }
        let bridgeLeft = try await IPRoute().linkExists(bridge)
        XCTAssertFalse(bridgeLeft)
    }

    /// The SIGTERM of `lxc-stop` still reaches the workload's trap through the init wrapper:
    /// `stop` is a clean exit well inside lxc-stop's 2 s grace time, not a kill after it.
    func testStopReachesTheWorkloadsTrap() async throws {
        try requireLXC()
        let bridge = "edgemeter-bs\(Int.random(in: 0..<99))"
        let backend = LXCBackend(runID: testRunID("ls"), bridge: bridge, bridgeAddress: "10.213.81.1")
        let samples = try await run(backend, .marker(ReadyCheck.defaultMarker))
        assertPhases(samples, runs: 1)
        XCTAssertLessThan(try XCTUnwrap(value(samples, .stop)), 1500, "stop waited for lxc-stop's timeout: SIGTERM did not reach the trap")
        let left = try await leftovers(backend)
        XCTAssertEqual(left, [])
    }

    func testInterruptedRunLeavesNoContainerOrBridge() async throws {
        try requireLXC()
        let bridge = "edgemeter-bi\(Int.random(in: 0..<99))"
        let backend = LXCBackend(runID: testRunID("li"), bridge: bridge, bridgeAddress: "10.213.79.1",
                                 script: "trap 'exit 0' TERM\nsleep 60 &\nwait\n")
        let stop = StopFlag()
        Task { try await Task.sleep(for: .seconds(2)); stop.stop(reason: "SIGINT") }
        let samples = try await run(backend, .marker("NEVER-PRINTED"), runs: 3, stop: stop)
        assertPhases(samples, runs: 1, ok: false)
        XCTAssertTrue(samples.first { $0.phase == "ready" }!.reason.contains("interrupted"))
        let left = try await leftovers(backend)
        XCTAssertEqual(left, [])
        let bridgeLeft = try await IPRoute().linkExists(bridge)
        XCTAssertFalse(bridgeLeft)
    }

    func testMissingLXCNamesThePackage() async throws {
        // Simulates a machine without LXC: nothing on PATH (restored afterwards).
        let saved = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        setenv("PATH", "/nonexistent", 1)
        defer { setenv("PATH", saved, 1) }
        guard which("lxc-create") == nil else { throw XCTSkip("lxc-create is found outside PATH (/usr/sbin or /sbin)") }
        let backend = LXCBackend(runID: testRunID("ln"))
        do {
            try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "x", runs: 1, ready: .exit), runID: "x",
                                        sink: MemorySink(), stop: StopFlag())
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertEqual(e.message, "lxc-create not found: install LXC (apt-get install -y lxc)")
        }
    }
}
