import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest
import EdgeMeterProbes

/// The template backend with local commands (busybox), run as argument lists.
final class CommandBackendTests: XCTestCase {
    func run(_ backend: CommandBackend, _ ready: ReadyCheck, runs: Int = 1) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "cmd-test", runs: runs, ready: ready, readyTimeout: .seconds(20)),
                                    runID: "test", sink: sink, stop: StopFlag())
        return sink.samples
    }

    func testDetachedServerWithHTTPReadyAndSIGTERMStop() async throws {
        let dir = NSTemporaryDirectory() + "edgemeter-cmdtest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "hello\n".write(toFile: dir + "/index.html", atomically: true, encoding: .utf8)
        let port = freePort()
        let template = CommandTemplate(start: ["busybox", "httpd", "-f", "-p", "127.0.0.1:\(port)", "-h", "{dir}"], detached: true)
        let backend = CommandBackend(template: template, variables: ["dir": dir], runID: testRunID("ch"))
        let samples = try await run(backend, .http(port: port, path: "/"), runs: 2)
        assertPhases(samples, runs: 2)
        XCTAssertEqual(samples.first?.labels["program"], "busybox")
        // The server is gone after stop: connecting now is refused.
        let after = await ReadyProbes.blockingConnectRefused(port: port)
        XCTAssertTrue(after)
    }

    func testCreateStartMarkerRemoveAndReadyCommand() async throws {
        let base = NSTemporaryDirectory() + "edgemeter-cmdtest-\(UUID().uuidString)"
        let template = CommandTemplate(create: ["mkdir", "-p", "{base}/{name}"], start: ["busybox", "echo", "EDGEMETER-READY"],
                                       ready: ["test", "-d", "{base}/{name}"], remove: ["rmdir", "{base}/{name}"])
        let backend = CommandBackend(template: template, variables: ["base": base], runID: testRunID("cm"))
        let samples = try await run(backend, .marker(ReadyCheck.defaultMarker))
        assertPhases(samples, runs: 1)
        XCTAssertEqual(samples.first?.labels["ready"], "command")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        XCTAssertEqual(left, [])
        try? FileManager.default.removeItem(atPath: base)

        let marker = CommandBackend(template: CommandTemplate(start: ["busybox", "echo", "EDGEMETER-READY"]), runID: testRunID("cm"))
        assertPhases(try await run(marker, .marker(ReadyCheck.defaultMarker)), runs: 1)
    }

    func testFailingStartAndMissingVariable() async throws {
        let failing = CommandBackend(template: CommandTemplate(start: ["busybox", "false"]), runID: testRunID("cf"))
        let samples = try await run(failing, .exit)
        assertPhases(samples, runs: 1, ok: false)
        let start = samples.first { $0.phase == "start" }!
        XCTAssertEqual(start.status, .error)
        XCTAssertTrue(start.reason.contains("exited 1"), start.reason)
        XCTAssertEqual(samples.first { $0.phase == "running" }!.reason, "not reached: start failed")

        let missing = CommandBackend(template: CommandTemplate.presets["lxd"]!, runID: testRunID("cv"))
        do {
            _ = try await run(missing, .exit)
            XCTFail("expected an error")
        } catch let e as StartupError {
            // Either LXD's `lxc` is absent, or {image} has no value: both name the fix.
            XCTAssertTrue(e.message.contains("lxc not found") || e.message.contains("--var image="), e.message)
        }
        XCTAssertEqual(Set(CommandTemplate.presets.keys), ["virtualbox", "openstack", "lxd"])
    }
}

extension ReadyProbes {
    /// True when nothing accepts a TCP connection on 127.0.0.1:port any more.
    static func blockingConnectRefused(port: Int) async -> Bool {
        guard let target = try? Resolver.resolve("127.0.0.1", port: UInt16(port)) else { return false }
        let a = TCPConnectProbe(targets: [target], options: TCPConnectOptions(count: 1, timeout: .seconds(1)))
            .attempt(target: 0, sequence: 1)
        return a.connectStatus != .ok
    }
}
