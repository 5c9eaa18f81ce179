import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// Podman through its Docker-compatible API (`podman system service`, started by
/// scripts/setup-engines.sh), with the same DockerBackend code as dockerd. The test image is built in
/// dockerd by `ImageBuilder` and copied into podman by the backend (`/images/NAME/get` →
/// `/images/load`), which is the path a user takes after `edgemeter image build`.
final class PodmanBackendTests: XCTestCase {
    static let image = "edgemeter-podman-test:latest"
    nonisolated(unsafe) static var built = false

    /// podman's API is required when podman is installed: an unanswered socket fails the test.
    func client() async throws -> DockerAPIClient {
        guard which("podman") != nil else {
            throw XCTSkip("podman is not installed: apt-get install -y podman crun, then scripts/setup-engines.sh")
        }
        let podman = DockerAPIClient(endpoint: .unix(path: DockerBackend.podmanSocket))
        do {
            try await podman.ping()
        } catch {
            XCTFail("podman is installed but its API does not answer on \(DockerBackend.podmanSocket): run scripts/setup-engines.sh (\(error))")
            throw error
        }
        if !Self.built {
            let docker = try await requireDocker()
            _ = try await ImageBuilder(reference: Self.image).build(client: docker)
            _ = try? await podman.request(.DELETE, "/images/\(queryEscape(Self.image))?force=1")
            Self.built = true
        }
        return podman
    }

    override class func tearDown() {
        built = false
        let done = DispatchSemaphore(value: 0)
        Task {
            _ = try? await DockerAPIClient(endpoint: .unix(path: DockerBackend.podmanSocket)).request(.DELETE, "/images/\(queryEscape(image))?force=1")
            if let c = try? DockerAPIClient() { _ = try? await c.request(.DELETE, "/images/\(queryEscape(image))?force=1") }
            done.signal()
        }
        done.wait()
    }

    func run(_ backend: DockerBackend, _ ready: ReadyCheck, runs: Int = 1, stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "podman-test", runs: runs, ready: ready, readyTimeout: .seconds(30)),
                                    runID: "test", sink: sink, stop: stop)
        return sink.samples
    }

    func assertNoContainers(_ c: DockerAPIClient, tag: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let filters = queryEscape("{\"label\":[\"edgemeter.run=\(tag)\"]}")
        let r = try await c.request(.GET, "/containers/json?all=1&filters=\(filters)")
        XCTAssertEqual(r.status, 200, r.text, file: file, line: line)
        XCTAssertEqual((r.json as? [Any])?.count, 0, "podman containers left: \(r.text)", file: file, line: line)
    }

    func testExitAndMarkerWithTheImageCopiedFromDockerd() async throws {
        let c = try await client()
        let before = try await c.request(.GET, "/images/\(queryEscape(Self.image))/json")
        XCTAssertEqual(before.status, 404, "the test starts without the image in podman")
        let backend = DockerBackend(client: c, image: Self.image, runID: testRunID("pe"), engine: "podman")
        let exit = try await run(backend, .exit, runs: 2)
        assertPhases(exit, runs: 2)
        XCTAssertTrue(exit.allSatisfy { $0.target == "podman" }, "\(exit.map(\.target))")
        XCTAssertTrue(exit[0].labels["engine"]?.hasPrefix("podman unix:///run/podman/podman.sock") == true, "\(exit[0].labels)")
        XCTAssertNotNil(exit[0].labels["runtime"], "the engine's OCI runtime is recorded: \(exit[0].labels)")
        let after = try await c.request(.GET, "/images/\(queryEscape(Self.image))/json")
        XCTAssertEqual(after.status, 200, "prepare loaded the image from dockerd")
        let marker = try await run(backend, .marker(ReadyCheck.defaultMarker), runs: 1)
        assertPhases(marker, runs: 1)
        try await assertNoContainers(c, tag: backend.runTag)
    }

    /// tcp and http go to the container's address on podman's default bridge network (podman's
    /// own, like docker0), which the container joined in this run.
    func testTCPAndHTTPReadyOnPodmansBridge() async throws {
        let c = try await client()
        let backend = DockerBackend(client: c, image: Self.image, runID: testRunID("pt"), engine: "podman")
        for ready in [ReadyCheck.tcp(port: 2222), .http(port: 8080, path: "/")] {
            let samples = try await run(backend, ready)
            assertPhases(samples, runs: 1)
            XCTAssertNotNil(samples[0].labels["address"], "\(samples[0].labels)")
        }
        try await assertNoContainers(c, tag: backend.runTag)
    }

    /// The lab's "CT3 from a snapshot of CT2" on podman: commit of a running container (podman's
    /// API needs a JSON body for it), the clone sees the committed file, the image is removed after.
    func testSnapshotCloneSeesCommittedState() async throws {
        let c = try await client()
        let clone = DockerBackend(client: c, image: Self.image, command: ["/bin/grep", "-q", "cloned-state", "/edgemeter-state"],
                                  runID: testRunID("ps"), fromSnapshot: true, engine: "podman")
        let samples = try await run(clone, .exit)
        assertPhases(samples, runs: 1)
        XCTAssertEqual(samples.first?.target, "podman-snapshot")
        XCTAssertGreaterThan(clone.commitMilliseconds ?? 0, 0)
        try await assertNoContainers(c, tag: clone.runTag)
        let images = try await c.request(.GET, "/images/json")
        XCTAssertFalse(images.text.contains("edgemeter-snap-\(clone.runTag)"), "snapshot image left behind")
    }

    func testFailingWorkloadIsRecordedWithEveryPhase() async throws {
        let c = try await client()
        let backend = DockerBackend(client: c, image: Self.image, command: ["/bin/sh", "-c", "exit 4"], runID: testRunID("pf"), engine: "podman")
        let samples = try await run(backend, .exit)
        assertPhases(samples, runs: 1, ok: false)
        XCTAssertEqual(samples.first { $0.phase == "ready" }?.reason, "the workload exited with status 4")
        try await assertNoContainers(c, tag: backend.runTag)
    }

    func testInterruptedRunLeavesNoContainer() async throws {
        let c = try await client()
        let backend = DockerBackend(client: c, image: Self.image, command: ["/bin/sleep", "60"], runID: testRunID("pi"), engine: "podman")
        let stop = StopFlag()
        Task { try await Task.sleep(for: .seconds(2)); stop.stop(reason: "SIGINT") }
        let t0 = ContinuousClock.now
        let samples = try await run(backend, .marker("NEVER-PRINTED"), runs: 3, stop: stop)
        XCTAssertLessThan((ContinuousClock.now - t0).seconds, 20, "the stop flag must end the wait promptly")
        assertPhases(samples, runs: 1, ok: false)
        let ready = samples.first { $0.phase == "ready" }!
        XCTAssertTrue(ready.reason.contains("interrupted (SIGINT)"), ready.reason)
        try await assertNoContainers(c, tag: backend.runTag)
        let ps = try await runCommand(["podman", "ps", "-a", "--format", "{{.Names}}"])
        XCTAssertFalse(ps.stdout.contains("edgemeter-\(backend.runTag)-"), ps.stdout)
    }

    func testUnansweredSocketNamesTheServiceCommand() async throws {
        let c = DockerAPIClient(endpoint: .unix(path: "/tmp/edgemeter-no-podman-\(UUID().uuidString).sock"))
        let backend = DockerBackend(client: c, runID: testRunID("px"), engine: "podman")
        do {
            try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "x", runs: 1, ready: .exit), runID: "x",
                                        sink: MemorySink(), stop: StopFlag())
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.hasPrefix("cannot reach podman's Docker-compatible API at unix:///tmp/edgemeter-no-podman-"), e.message)
            XCTAssertTrue(e.message.hasSuffix("start it with `scripts/setup-engines.sh` (or `podman system service --time=0 unix:///run/podman/podman.sock &`)"), e.message)
        }
    }
}
