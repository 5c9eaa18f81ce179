import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// Real dockerd through the Engine API. The image under test is `edgemeter-test:latest`, built by
/// `ImageBuilder` (busybox + a dynamically linked binary with its ldd libraries) and removed at the end.
final class DockerBackendTests: XCTestCase {
    static let image = "edgemeter-test:latest"
    nonisolated(unsafe) static var built = false

    func client() async throws -> DockerAPIClient {
        try await Self.clientWithImage()
    }

    /// The daemon, with the test image built once per test process.
    static func clientWithImage() async throws -> DockerAPIClient {
        let c = try await requireDocker()
        if !Self.built {
            // /usr/bin/hyperfine is dynamic (libc, libgcc_s, libm, the loader): proves ldd collection works.
            let builder = ImageBuilder(reference: Self.image, binaries: [(source: "/usr/bin/env", destination: "/usr/local/bin/env-dyn")])
            let built = try await builder.build(client: c)
            XCTAssertTrue(built.files.contains("/bin/busybox"))
            XCTAssertTrue(built.files.contains { $0.hasSuffix("ld-linux-x86-64.so.2") }, "\(built.files)")
            XCTAssertTrue(built.files.contains { $0.contains("libc.so") }, "\(built.files)")
            XCTAssertTrue(built.imageID.hasPrefix("sha256:"), built.imageID)
            Self.built = true
        }
        return c
    }

    override class func tearDown() {
        built = false
        let done = DispatchSemaphore(value: 0)
        Task {
            if let c = try? DockerAPIClient() { _ = try? await c.request(.DELETE, "/images/\(queryEscape(image))?force=1") }
            done.signal()
        }
        done.wait()
    }

    func run(_ backend: DockerBackend, _ ready: ReadyCheck, runs: Int = 1, stop: StopFlag = StopFlag()) async throws -> [Sample] {
        let sink = MemorySink()
        try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "docker-test", runs: runs, ready: ready, readyTimeout: .seconds(30)),
                                    runID: "test", sink: sink, stop: stop)
        return sink.samples
    }

    func assertNoContainers(_ c: DockerAPIClient, tag: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let filters = queryEscape("{\"label\":[\"edgemeter.run=\(tag)\"]}")
        let r = try await c.request(.GET, "/containers/json?all=1&filters=\(filters)")
        XCTAssertEqual((r.json as? [Any])?.count, 0, "containers left: \(r.text)", file: file, line: line)
    }

    func testImageRunsDynamicBinaryAndExitReady() async throws {
        let c = try await client()
        let runID = testRunID("dx")
        let backend = DockerBackend(client: c, image: Self.image, command: ["/usr/local/bin/env-dyn", "true"], runID: runID)
        let samples = try await run(backend, .exit, runs: 2)
        assertPhases(samples, runs: 2)
        let start = samples.first { $0.phase == "start" }!
        XCTAssertEqual(start.labels["backend"], "docker")
        XCTAssertEqual(start.labels["ready"], "exit")
        // Cross-check with the engine's events: create, start, die, destroy seen with nanosecond times.
        let events = start.labels["engine_events"] ?? ""
        for action in ["create", "start", "die", "destroy"] { XCTAssertTrue(events.contains(action), events) }
        let engine = Double(start.labels["engine_create_to_start_ms"] ?? "")
        XCTAssertNotNil(engine)
        // The engine's create→start span cannot exceed what the client saw from create's start to start's end.
        XCTAssertLessThanOrEqual(engine ?? .infinity, (value(samples, .create) ?? 0) + (value(samples, .start) ?? 0) + 1)
        try await assertNoContainers(c, tag: backend.runTag)
    }

    func testMarkerTCPHTTPAndICMPReady() async throws {
        let c = try await client()
        let docker0 = try await Self.docker0Subnet()
        for ready in [ReadyCheck.marker(ReadyCheck.defaultMarker), .tcp(port: 7000), .http(port: 8080, path: "/"), .icmp] {
            let backend = DockerBackend(client: c, image: Self.image, runID: testRunID("dm"))
            let samples = try await run(backend, ready)
            assertPhases(samples, runs: 1)
            XCTAssertEqual(samples.first?.labels["ready"], ready.kind)
            if ready == .marker(ReadyCheck.defaultMarker) {
                XCTAssertNil(samples.first?.labels["address"], "a --network none container has no address")
            } else {
                // The address the check used is a host on docker0's subnet (as `ip -4 addr show docker0` says).
                let address = try XCTUnwrap(samples.first?.labels["address"], "\(ready): no address label")
                XCTAssertTrue(docker0.contains(address), "\(address) is not inside docker0's \(docker0)")
                XCTAssertNotEqual(address, docker0.address, "the bridge's own address is not the container's")
            }
            try await assertNoContainers(c, tag: backend.runTag)
        }
    }

    /// The address is taken from the inspect that ended `running`: the `ready` window sends no Engine
    /// API request (it used to inspect again), and the address is the one the engine reports for
    /// the running container.
    func testReadyWindowSendsNoEngineAPIRequest() async throws {
        _ = try await client()
        for ready in [ReadyCheck.tcp(port: 7000), .http(port: 8080, path: "/"), .icmp] {
            let c = try DockerAPIClient()   // this backend's own client: its counter sees only its requests
            let backend = DockerBackend(client: c, image: Self.image, runID: testRunID("dw"))
            let stop = StopFlag()
            let deadline = Deadline.after(.seconds(30))
            try await backend.prepare(for: ready, stop: stop)
            let instance = try await backend.create(index: 0, ready: ready)
            let docker = try XCTUnwrap(instance as? DockerInstance)
            try await instance.start()
            try await instance.waitRunning(until: deadline, stop: stop)
            let before = c.requestCount
            _ = try await ReadyProbes.wait(for: ready, on: instance, until: deadline, stop: stop)
            XCTAssertEqual(c.requestCount - before, 0, "\(ready): Engine API requests inside the ready window")
            let r = try await c.request(.GET, "/containers/\(docker.id)/json")
            let settings = try XCTUnwrap((r.json as? [String: Any])?["NetworkSettings"] as? [String: Any])
            let engineAddress = try XCTUnwrap(settings["IPAddress"] as? String)
            XCTAssertFalse(engineAddress.isEmpty)
            XCTAssertEqual(instance.labels["address"], engineAddress, "\(ready): the address is the running container's")
            try await instance.stop()
            try await instance.remove()
            await backend.cleanup()
            try await assertNoContainers(c, tag: backend.runTag)
        }
    }

    struct IPv4Subnet: CustomStringConvertible {
        var address: String
        var prefix: Int
        var description: String { "\(address)/\(prefix)" }
        static func value(_ s: String) -> UInt32? {
            let p = s.split(separator: ".").compactMap { UInt32($0) }
            guard p.count == 4, p.allSatisfy({ $0 < 256 }) else { return nil }
            return p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]
        }
        func contains(_ other: String) -> Bool {
            guard let a = Self.value(address), let b = Self.value(other), (1...32).contains(prefix) else { return false }
            let mask: UInt32 = prefix == 32 ? .max : ~(UInt32.max >> UInt32(prefix))
            return a & mask == b & mask
        }
    }

    /// docker0's address and prefix from `ip -4 -o addr show docker0` (independent of the Engine API).
    static func docker0Subnet() async throws -> IPv4Subnet {
        let r = try await runCommand(["ip", "-4", "-o", "addr", "show", "docker0"])
        let words = r.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        guard r.ok, let i = words.firstIndex(of: "inet"), i + 1 < words.count else {
            throw XCTSkip("docker0 has no IPv4 address (`ip -4 addr show docker0`: \(r.combined)): dockerd's default bridge is needed")
        }
        let parts = words[i + 1].split(separator: "/")
        guard parts.count == 2, let prefix = Int(parts[1]) else { throw StartupError("cannot parse docker0's address from: \(r.stdout)") }
        return IPv4Subnet(address: String(parts[0]), prefix: prefix)
    }

    func testFailedRunRecordsEveryPhaseWithReason() async throws {
        let c = try await client()
        let backend = DockerBackend(client: c, image: Self.image, command: ["/bin/false"], runID: testRunID("df"))
        let samples = try await run(backend, .exit)
        assertPhases(samples, runs: 1, ok: false)
        let ready = samples.first { $0.phase == "ready" }!
        XCTAssertEqual(ready.status, .error)
        XCTAssertNil(ready.value)
        XCTAssertTrue(ready.reason.contains("exited with status 1"), ready.reason)
        let total = samples.first { $0.phase == "total" }!
        XCTAssertEqual(total.status, .error)
        XCTAssertTrue(total.reason.contains("ready"), total.reason)
        // Stop and remove still ran and were measured.
        XCTAssertNotNil(value(samples, .stop))
        XCTAssertNotNil(value(samples, .remove))
        try await assertNoContainers(c, tag: backend.runTag)
    }

    func testSnapshotCloneSeesCommittedState() async throws {
        let c = try await client()
        let cold = DockerBackend(client: c, image: Self.image, runID: testRunID("dc"))
        let coldSamples = try await run(cold, .marker(ReadyCheck.defaultMarker))
        assertPhases(coldSamples, runs: 1)
        // The clone's command succeeds only if the file the source container wrote is in the snapshot.
        let clone = DockerBackend(client: c, image: Self.image, command: ["/bin/grep", "-q", "cloned-state", "/edgemeter-state"],
                                  runID: testRunID("ds"), fromSnapshot: true)
        let t0 = ContinuousClock.now
        let samples = try await run(clone, .exit)
        let wallMs = Double((ContinuousClock.now - t0).nanoseconds) / 1e6
        assertPhases(samples, runs: 1)
        XCTAssertEqual(samples.first?.target, "docker-snapshot")
        XCTAssertEqual(samples.first?.labels["source"], "snapshot")
        // The commit figure is measured, and only around POST /commit: at most the wall time of
        // the run outside the attempt's phases (prepare + cleanup), and at least the engine's own
        // span from pausing the source to the commit event (dockerd's nanosecond event times).
        let commit = try XCTUnwrap(clone.commitMilliseconds)
        let phasesMs = samples.compactMap(\.value).reduce(0, +) - (value(samples, .total) ?? 0)
        XCTAssertGreaterThan(commit, 0)
        XCTAssertLessThan(commit, wallMs - phasesMs, "commit must fit in the time the run spent outside its phases")
        let source = try XCTUnwrap(clone.sourceContainer)
        let engine = clone.events.actions(for: source)
        let pause = try XCTUnwrap(engine["pause"], "no pause event for the source: \(clone.events.sequence(for: source))")
        let committed = try XCTUnwrap(engine["commit"], "no commit event for the source: \(clone.events.sequence(for: source))")
        let engineMs = Double(committed - pause) / 1e6
        XCTAssertGreaterThan(engineMs, 0)
        XCTAssertGreaterThanOrEqual(commit + 1, engineMs, "the client's commit figure must cover the engine's pause→commit span")
        try await assertNoContainers(c, tag: clone.runTag)
        let images = try await c.request(.GET, "/images/json")
        XCTAssertFalse(images.text.contains("edgemeter-snap-\(clone.runTag)"), "snapshot image left behind")
    }

    func testInterruptedRunLeavesNoContainer() async throws {
        let c = try await client()
        for ready in [ReadyCheck.exit, .marker("NEVER-PRINTED")] {
            let backend = DockerBackend(client: c, image: Self.image, command: ["/bin/sleep", "60"], runID: testRunID("di"))
            let stop = StopFlag()
            Task { try await Task.sleep(for: .seconds(1)); stop.stop(reason: "SIGINT") }
            let t0 = ContinuousClock.now
            let samples = try await run(backend, ready, runs: 3, stop: stop)
            XCTAssertLessThan((ContinuousClock.now - t0).seconds, 15, "the stop flag must end the wait promptly")
            assertPhases(samples, runs: 1, ok: false)
            let r = samples.first { $0.phase == "ready" }!
            XCTAssertTrue(r.reason.contains("interrupted"), r.reason)
            try await assertNoContainers(c, tag: backend.runTag)
        }
    }

    func testMissingEngineNamesTheFix() async throws {
        let endpoint = try DockerEndpoint.fromEnvironment(["DOCKER_HOST": "unix:///nonexistent/docker.sock"])
        XCTAssertEqual(endpoint, .unix(path: "/nonexistent/docker.sock"))
        let backend = DockerBackend(client: DockerAPIClient(endpoint: endpoint), runID: testRunID("dn"))
        do {
            try await StartupRunner.run(backend: backend, plan: StartupPlan(scenario: "x", runs: 1, ready: .exit), runID: "x",
                                        sink: MemorySink(), stop: StopFlag())
            XCTFail("expected an error")
        } catch let e as StartupError {
            XCTAssertTrue(e.message.hasPrefix("cannot reach dockerd at unix:///nonexistent/docker.sock"), e.message)
            XCTAssertTrue(e.message.contains("scripts/setup-engines.sh"), e.message)
        }
        XCTAssertThrowsError(try DockerEndpoint.fromEnvironment(["DOCKER_HOST": "ssh://host"])) { e in
            XCTAssertTrue("\(e)".contains("unix:///"), "\(e)")
        }
    }
}
