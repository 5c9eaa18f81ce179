import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// The container API the startup backends and the capture scenario share, on the real dockerd.
final class DockerEngineTests: XCTestCase {
    func testSpecBodyHasTheCommandOnlyWhenGiven() throws {
        let plain = ContainerSpec(name: "edgemeter-x", image: "img", labels: ["edgemeter": "t"]).body
        XCTAssertNil(plain["Cmd"], "nil keeps the image's own command")
        XCTAssertEqual((plain["HostConfig"] as? [String: Any])?["NetworkMode"] as? String, "bridge")
        XCTAssertNil((plain["HostConfig"] as? [String: Any])?["Ulimits"])
        let full = ContainerSpec(name: "edgemeter-x", image: "img", command: ["/bin/true"], network: "none",
                                 ulimits: [ContainerSpec.Ulimit(name: "nofile", soft: 1024, hard: 1024)]).body
        XCTAssertEqual(full["Cmd"] as? [String], ["/bin/true"])
        let limits = try XCTUnwrap((full["HostConfig"] as? [String: Any])?["Ulimits"] as? [[String: Any]])
        XCTAssertEqual(limits.first?["Name"] as? String, "nofile")
        XCTAssertEqual(limits.first?["Hard"] as? Int, 1024)
        // podman's limits never exceed this process's own hard limits (it may not raise them).
        var rl = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        let nofile = try XCTUnwrap(ContainerSpec.podmanUlimits().first { $0.name == "nofile" })
        XCTAssertLessThanOrEqual(UInt(nofile.hard), UInt(rl.rlim_max))
    }

    /// Create, start, inspect (address on docker0), wait for the exit status, remove: each call
    /// checked against what dockerd reports.
    func testCreateStartInspectWaitRemove() async throws {
        let c = try await DockerBackendTests.clientWithImage()
        let tag = testRunID("de")
        let name = "edgemeter-\(instanceTag(tag))-engine"
        let id = try await c.createContainer(ContainerSpec(name: name, image: DockerBackendTests.image,
                                                           command: ["/bin/sh", "-c", "sleep 0.3; exit 4"],
                                                           labels: ["edgemeter": "startup", "edgemeter.run": instanceTag(tag)]))
        do {
            let created = try await c.inspectContainer(id)
            XCTAssertEqual(created.status, "created")
            XCTAssertFalse(created.hasStarted)
            try await c.startContainer(id)
            let exited = ExitCode()
            let wait = try await c.waitContainer(id) { exited.set($0) }
            defer { wait.close() }
            let running = try await c.inspectContainer(id)
            XCTAssertTrue(running.hasStarted)
            XCTAssertFalse(running.address.isEmpty, "a container on the default bridge has an address")
            let deadline = ContinuousClock.now + .seconds(20)
            while exited.value == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            XCTAssertEqual(exited.value, .some(4), "POST /wait reports the workload's exit status")
            let after = try await c.inspectContainer(id)
            XCTAssertTrue(after.hasExited)
            XCTAssertEqual(after.exitCode, 4)
            try await c.stopContainer(id)   // 304: not running is not an error
        } catch {
            try? await c.removeContainer(id)
            throw error
        }
        try await c.removeContainer(id)
        try await c.removeContainer(id)   // 404: already gone is not an error
        do {
            _ = try await c.inspectContainer(id)
            XCTFail("the container is gone")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.contains("HTTP 404"), e.message)
        }
        do {
            _ = try await c.createContainer(ContainerSpec(name: name + "-x", image: "edgemeter-no-such-image:latest"))
            XCTFail("a missing image must fail")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.hasPrefix("image edgemeter-no-such-image:latest not found"), e.message)
            XCTAssertTrue(e.message.contains("edgemeter image build"), e.message)
        }
    }
}

private final class ExitCode: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int??
    func set(_ v: Int?) { lock.withLock { stored = .some(v) } }
    var value: Int?? { lock.withLock { stored } }

    /// `removeLabNetworks` (used by `edgemeter cleanup`) deletes a network labelled `edgemeter=lab`
    /// that a killed compose deployment left, and leaves an unlabelled network of the same prefix alone.
    func testRemoveLabNetworksDeletesOnlyLabelledOnes() async throws {
        let c = try await requireDocker()
        let tag = instanceTag(testRunID("nw"))
        let labelled = "edgemeter-\(tag)-orphan", plain = "edgemeter-\(tag)-user"
        func create(_ name: String, labels: [String: String]) async throws {
            let r = try await c.request(.POST, "/networks/create", json: ["Name": name, "Driver": "bridge", "Labels": labels] as [String: Any])
            XCTAssertEqual(r.status, 201, "create network \(name): \(r.errorMessage)")
        }
        try await create(labelled, labels: ["edgemeter": "lab", "edgemeter.topology": tag])
        try await create(plain, labels: [:])
        let removed = await c.removeLabNetworks()
        XCTAssertTrue(removed.contains("network \(labelled)"), "removed: \(removed)")
        XCTAssertFalse(removed.contains("network \(plain)"))
        let gone = try await c.request(.GET, "/networks/\(labelled)").status
        let kept = try await c.request(.GET, "/networks/\(plain)").status
        XCTAssertEqual(gone, 404, "the labelled network is gone")
        XCTAssertEqual(kept, 200, "the unlabelled network is untouched")
        _ = try await c.request(.DELETE, "/networks/\(plain)")
    }
}
