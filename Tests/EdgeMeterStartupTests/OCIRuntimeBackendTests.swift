import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// An OCI runtime binary, required when installed; skipped only when it is truly absent.
func requireRuntime(_ name: String) throws -> String {
    guard let path = which(name) else {
        throw XCTSkip("\(name) is not installed: apt-get install -y \(name)" + (name == "runc" ? " (it comes with docker.io)" : ""))
    }
    guard geteuid() == 0 else { throw XCTSkip("\(name) containers need root: run the tests as root") }
    return path
}

/// Real runc and crun driven directly (no daemon): every phase, the exit status reaped from the
/// container process, marker on the passed-through output, tcp/http/icmp over a veth, and
/// nothing left (no runtime container, no bundle, no process) after a run, a failure or a stop.
final class OCIRuntimeBackendTests: XCTestCase {
    func run(_ backend: OCIRuntimeBackend, _ ready: ReadyCheck, runs: Int = 1, stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "oci-test", runs: runs, ready: ready, readyTimeout: .seconds(30)),
                                    runID: "test", sink: sink, stop: stop)
        return sink.samples
    }

    /// The runtime's own list of containers whose ID starts with this run's prefix.
    func leftovers(_ backend: OCIRuntimeBackend) async throws -> [String] {
        let r = try await runCommand([backend.runtime, "list", "-q"])
        XCTAssertTrue(r.ok, r.combined)
        return r.stdout.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.hasPrefix("edgemeter-\(backend.runTag)-") }
    }

    func assertNothingLeft(_ backend: OCIRuntimeBackend, file: StaticString = #filePath, line: UInt = #line) async throws {
        let left = try await leftovers(backend)
        XCTAssertEqual(left, [], "\(backend.runtimeName) containers left", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: backend.bundleRoot), "bundle \(backend.bundleRoot) left", file: file, line: line)
    }

    func exerciseExitAndMarker(_ name: String) async throws {
        let runtime = try requireRuntime(name)
        let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID(name))
        let exit = try await run(backend, .exit, runs: 2)
        assertPhases(exit, runs: 2)
        XCTAssertTrue(exit.allSatisfy { $0.target == name && $0.labels["exit_status"] == "0" }, "\(exit.map(\.labels))")
        XCTAssertTrue(exit[0].labels["runtime"]?.contains(name) == true, "\(exit[0].labels)")
        XCTAssertNotNil(exit[0].labels["bundle_ms"])
        try await assertNothingLeft(backend)

        let marker = try await run(backend, .marker(ReadyCheck.defaultMarker), runs: 2)
        assertPhases(marker, runs: 2)
        // The default marker workload keeps running until stop sends SIGTERM; it exits 0 on it.
        XCTAssertTrue(marker.allSatisfy { $0.labels["exit_status"] == "0" && $0.labels["stop"] == nil }, "\(marker.map(\.labels))")
        try await assertNothingLeft(backend)
    }

    func testRuncExitAndMarker() async throws { try await exerciseExitAndMarker("runc") }

    func testCrunExitAndMarker() async throws { try await exerciseExitAndMarker("crun") }

    func testFailingWorkloadGivesItsExitStatusAndEveryPhase() async throws {
        let runtime = try requireRuntime("runc")
        let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID("of"), command: ["/bin/sh", "-c", "echo oops; exit 3"])
        let samples = try await run(backend, .exit)
        assertPhases(samples, runs: 1, ok: false)
        let ready = samples.first { $0.phase == "ready" }!
        XCTAssertEqual(ready.status, .error)
        XCTAssertTrue(ready.reason.hasPrefix("the workload exited with status 3"), ready.reason)
        XCTAssertTrue(ready.reason.contains("oops"), "the container's output is in the reason: \(ready.reason)")
        XCTAssertEqual(samples.first { $0.phase == "total" }?.status, .error)
        XCTAssertEqual(samples.first { $0.phase == "remove" }?.status, .ok)
        try await assertNothingLeft(backend)
    }

    func testMissingProgramInTheBundleFailsAtStartAndCleansUp() async throws {
        let runtime = try requireRuntime("crun")
        let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID("om"), command: ["/no/such/program"])
        let samples = try await run(backend, .exit)
        assertPhases(samples, runs: 1, ok: false)
        let failed = samples.first { $0.status != .ok && $0.reason.contains("/no/such/program") }
        XCTAssertNotNil(failed, "a phase names the missing program: \(samples.map { "\($0.phase): \($0.reason)" })")
        try await assertNothingLeft(backend)
    }

    /// tcp, http and icmp reach the container over a veth into the bridge the run creates; the
    /// namespaces, the veths and the bridge are gone afterwards.
    func testTCPHTTPAndICMPReadyOverAVethTheRunCreates() async throws {
        for name in ["runc", "crun"] {
            let runtime = try requireRuntime(name)
            let bridgeExisted = FileManager.default.fileExists(atPath: "/sys/class/net/\(OCIRuntimeBackend.bridge)")
            let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID("nt"))
            for ready in [ReadyCheck.tcp(port: 22), .http(port: 80, path: "/"), .icmp] {
                let samples = try await run(backend, ready)
                assertPhases(samples, runs: 1)
                XCTAssertEqual(samples[0].labels["address"], "10.213.78.10", "\(samples[0].labels)")
                XCTAssertEqual(samples[0].labels["network"], "veth into edgemeter-oci0")
                try await assertNothingLeft(backend)
                let netns = try await runCommand(["ip", "netns", "list"])
                XCTAssertFalse(netns.stdout.contains("edgemeter-\(backend.runTag)-"), netns.stdout)
                let links = try await runCommand(["ip", "-br", "link"])
                XCTAssertFalse(links.stdout.contains("eo\(backend.runTag.prefix(8))"), "veth left: \(links.stdout)")
                if !bridgeExisted {
                    XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/class/net/\(OCIRuntimeBackend.bridge)"), "bridge left")
                }
            }
        }
    }

    func testInterruptedRunLeavesNothingBehind() async throws {
        // runc waits for a marker, crun for a TCP port nobody listens on (its namespace and veth must go too).
        for (name, ready) in [("runc", ReadyCheck.marker("NEVER-PRINTED")), ("crun", .tcp(port: 9))] {
            let runtime = try requireRuntime(name)
            let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID("oi"), command: ["/bin/sleep", "60"])
            let stop = StopFlag()
            Task { try await Task.sleep(for: .seconds(1)); stop.stop(reason: "SIGINT") }
            let t0 = ContinuousClock.now
            let samples = try await run(backend, ready, runs: 3, stop: stop)
            XCTAssertLessThan((ContinuousClock.now - t0).seconds, 10, "the stop flag must end the wait promptly")
            assertPhases(samples, runs: 1, ok: false)
            let ready = samples.first { $0.phase == "ready" }!
            XCTAssertTrue(ready.reason.contains("interrupted (SIGINT)"), ready.reason)
            // `sleep` ignores nothing: SIGTERM from stop ends it; the process was reaped.
            XCTAssertNotNil(samples[0].labels["exit_status"], "\(samples[0].labels)")
            try await assertNothingLeft(backend)
            let sleepers = sleepingChildren()
            XCTAssertEqual(sleepers, [], "container processes left")
            let netns = try await runCommand(["ip", "netns", "list"])
            XCTAssertFalse(netns.stdout.contains("edgemeter-\(backend.runTag)-"), netns.stdout)
        }
    }

    /// A killed run (no cleanup) leaves a created container and its bundle: `removeLeftovers` (what
    /// `edgemeter cleanup` calls) deletes them.
    func testCleanupRemovesLeftoversOfAKilledRun() async throws {
        let runtime = try requireRuntime("runc")
        let backend = OCIRuntimeBackend(runtime: runtime, runID: testRunID("ok"), command: ["/bin/sleep", "60"])
        try await backend.prepare(stop: StopFlag())
        let instance = try await backend.create(index: 0, ready: .exit)
        try await instance.start()
        let before = try await leftovers(backend)
        XCTAssertEqual(before, ["edgemeter-\(backend.runTag)-1"])
        let removed = await OCIRuntimeBackend.removeLeftovers(runtimes: [runtime], prefix: "edgemeter-\(backend.runTag)-")
        XCTAssertEqual(removed, ["runc container edgemeter-\(backend.runTag)-1"])
        let after = try await leftovers(backend)
        XCTAssertEqual(after, [])
        await backend.cleanup()
        XCTAssertFalse(FileManager.default.fileExists(atPath: backend.bundleRoot))
    }

    func testMissingRuntimeNamesThePackage() async throws {
        let backend = OCIRuntimeBackend(runtime: "/nonexistent/crun", runID: testRunID("ox"))
        do {
            try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "x", runs: 1, ready: .exit), runID: "x",
                                        sink: MemorySink(), stop: StopFlag())
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertEqual(e.message, "/nonexistent/crun not found: apt-get install -y crun")
        }
    }

    func testConfigIsAnArgumentListWithNoShell() throws {
        let c = OCIRuntimeBackend.config(args: ["/bin/echo", "a b;c"], rootfs: "/r", hostname: "edgemeter-x-1")
        let process = c["process"] as! [String: Any]
        XCTAssertEqual(process["args"] as? [String], ["/bin/echo", "a b;c"])
        XCTAssertEqual((c["root"] as? [String: Any])?["readonly"] as? Bool, true)
        let ns = ((c["linux"] as? [String: Any])?["namespaces"] as? [[String: String]])?.compactMap { $0["type"] }
        XCTAssertEqual(ns, ["pid", "network", "ipc", "uts", "mount"])
        let withNet = OCIRuntimeBackend.config(args: ["/bin/true"], rootfs: "/r", hostname: "h", netns: "/var/run/netns/edgemeter-x-1")
        let net = ((withNet["linux"] as? [String: Any])?["namespaces"] as? [[String: String]])?.first { $0["type"] == "network" }
        XCTAssertEqual(net?["path"], "/var/run/netns/edgemeter-x-1")
    }
}

/// `sleep 60` processes whose parent is this test process (container processes we reaped would be gone).
func sleepingChildren() -> [Int32] {
    let me = getpid()
    let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return procs.compactMap { Int32($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, Int32(fields[1]) == me else { return false }
        let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
        return cmd.hasPrefix("/bin/sleep")
    }
}
