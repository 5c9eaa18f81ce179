import Foundation
import XCTest
import EdgeMeterHTTP
import EdgeMeterStartup
import EdgeMeterTestSupport
import EdgeApp
@testable import EdgeMeterController

/// The docker executor for real: the edge app in containers on docker0 (one per node), cloud-db in
/// a container beside them, the vehicle client at 50 requests/s through the proxy on loopback while
/// the service moves from node_a to node_b. Only loopback and the containers this test created.
final class DockerExecutorTests: XCTestCase {
    static let image = "edgemeter-executors-test:edgeapp"

    func requireDocker() async throws -> DockerAPIClient {
        guard getuid() == 0 else { throw XCTSkip("the docker executor test needs root (the Docker socket): run the tests as root") }
        let client = DockerAPIClient(endpoint: .unix(path: DockerEndpoint.defaultSocket))
        do { try await client.ping() } catch {
            throw XCTSkip("dockerd does not answer on \(DockerEndpoint.defaultSocket) (\(error)): run scripts/setup.sh")
        }
        return client
    }

    /// busybox + the edgemeter binary built beside these tests, so the containers run the code under test.
    nonisolated(unsafe) static var imageBuilt = false

    func buildImage(_ client: DockerAPIClient) async throws {
        if Self.imageBuilt { return }
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` first (or set EDGEMETER_BIN)")
        }
        _ = try await ImageBuilder(reference: Self.image, binaries: [(source: bin, destination: "/usr/local/bin/edgemeter")]).build(client: client)
        Self.imageBuilt = true
    }

    struct Fixture {
        var client: DockerAPIClient
        var proxy: SwitchableProxy
        var proxyPort: Int
        var executor: DockerExecutor
        var cloudID: String
        var runID: String
    }

    func makeFixture(readyTimeout: Duration = .seconds(20)) async throws -> Fixture {
        let client = try await requireDocker()
        try await buildImage(client)
        let runID = "exec\(UInt32.random(in: 0...UInt32.max))"
        let cloudID = try await client.createContainer(ContainerSpec(
            name: "edgemeter-\(runID)-cloud-db", image: Self.image,
            command: ["/usr/local/bin/edgemeter", "serve", "cloud-db", "--host", "0.0.0.0", "--port", "8001"],
            labels: ["edgemeter": "migration", "edgemeter.run": runID]))
        try await client.startContainer(cloudID)
        let cloudIP = try await client.inspectContainer(cloudID).address
        XCTAssertFalse(cloudIP.isEmpty)
        let proxy = SwitchableProxy()
        let port = try await proxy.start()
        var config = DockerExecutor.Configuration(
            image: Self.image,
            command: ["/usr/local/bin/edgemeter", "serve", "edge-app", "--host", "0.0.0.0", "--port", "8000", "--node", "{to}",
                      "--cloud", "http://\(cloudIP):8001/status"],
            servicePort: 8000, namePrefix: runID)
        config.readyTimeout = readyTimeout
        return Fixture(client: client, proxy: proxy, proxyPort: port, executor: DockerExecutor(client: client, proxy: proxy, configuration: config),
                       cloudID: cloudID, runID: runID)
    }

    func tearDown(_ f: Fixture) async {
        await f.executor.removeAll()
        try? await f.client.removeContainer(f.cloudID)
        _ = await f.client.removeLabelled("edgemeter.run=\(f.runID)")
        await f.proxy.stop()
    }

    func containers(_ f: Fixture) async throws -> [String] {
        let filters = "%7B%22label%22%3A%5B%22edgemeter.run%3D\(f.runID)%22%5D%7D"
        let r = try await f.client.request(.GET, "/containers/json?all=1&filters=\(filters)")
        return ((r.json as? [[String: Any]]) ?? []).compactMap { ($0["Names"] as? [String])?.first }.sorted()
    }

    func testMigrationUnderFixedRateLoadLosesNoRequest() async throws {
        let f = try await makeFixture()
        do {
            let deployed = try await f.executor.deploy(service: "edge-app", on: "node_a")
            XCTAssertEqual(deployed.phases.map(\.name), ["start_target", "wait_ready", "switch"])

            var o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: f.proxyPort, path: "/drive"), rate: 50, duration: .seconds(6))
            o.timeout = .seconds(2)
            let run = Task { await VehicleProbe.run(o) }
            try await Task.sleep(for: .seconds(1))
            let report = try await f.executor.migrate(service: "edge-app", from: "node_a", to: "node_b")
            let records = await run.value
            print(report.lines)
            print(VehicleProbe.summary(records, options: o))

            XCTAssertEqual(report.outcome, .completed)
            XCTAssertEqual(report.phases.map(\.name), ["start_target", "wait_ready", "switch", "stop_old"])
            XCTAssertTrue(report.phases.allSatisfy { $0.outcome == .ok }, report.lines)
            XCTAssertEqual(records.count, 300)
            XCTAssertEqual(records.filter { !$0.ok }.count, 0, records.filter { !$0.ok }.map { "#\($0.sequence) due \($0.dueNanoseconds / 1_000_000) ms: \($0.failure!)" }.joined(separator: "; ")
                           + " switch at \(report.step(.switchPath)!.startNanoseconds / 1_000_000) ms (monotonic)")
            let nodes = records.compactMap(\.node)
            XCTAssertEqual(nodes.first, "node_a")
            XCTAssertEqual(nodes.last, "node_b")
            XCTAssertGreaterThan(nodes.filter { $0 == "node_a" }.count, 10)
            XCTAssertGreaterThan(nodes.filter { $0 == "node_b" }.count, 10)
            // Client-side interruption: from the last answer by node_a to the first by node_b
            // (response ends, CLOCK_MONOTONIC); negative when they overlap. Bounded by the request
            // spacing (20 ms) plus one request's time when no request waits for the move.
            let lastA = records.filter { $0.node == "node_a" }.map(\.endNanoseconds).max()!
            let firstB = records.filter { $0.node == "node_b" }.map(\.endNanoseconds).min()!
            let gapMilliseconds = Double(firstB - lastA) / 1e6
            print(String(format: "interruption (last node_a answer → first node_b answer): %.3f ms", gapMilliseconds))
            XCTAssertLessThan(gapMilliseconds, 500, "a move must not stall the client path")
            XCTAssertEqual(f.executor.placement(of: "edge-app")?.node, "node_b")
            // The old container is gone; the new one and cloud-db remain.
            let left = try await containers(f)
            XCTAssertEqual(left, ["/edgemeter-\(f.runID)-cloud-db", "/edgemeter-\(f.runID)-edge-app-node_b"])
        } catch {
            await tearDown(f)
            throw error
        }
        await tearDown(f)
        let after = try await containers(f)
        XCTAssertEqual(after, [], "every container of the test is removed")
    }

    func testTargetNeverReadyRollsBackAndTheOldNodeKeepsAnswering() async throws {
        let f = try await makeFixture(readyTimeout: .seconds(3))
        do {
            _ = try await f.executor.deploy(service: "edge-app", on: "node_a")
            do {
                // `--node` refuses "bad!node": the app exits at once, so the target never becomes
                // ready. Depending on how fast it exits, start_target sees it exited (no address
                // left) or wait_ready times out; either way nothing is switched.
                _ = try await f.executor.migrate(service: "edge-app", from: "node_a", to: "bad!node")
                XCTFail("a target that is never ready must not be switched to")
            } catch let e as ControllerError {
                XCTAssertTrue(e.description.contains("failed in wait_ready: http://")
                              || e.description.contains("failed in start_target: container edgemeter-\(f.runID)-edge-app-bad-node exited right after starting (status 2)"),
                              e.description)
                XCTAssertNil(e.migration?.step(.switchPath), "never switched")
                XCTAssertTrue(e.description.contains("still runs on node_a"), e.description)
                XCTAssertEqual(e.migration?.outcome, .rolledBack)
                XCTAssertEqual(e.migration?.rollback.map(\.name), ["stop_target"])
            }
            XCTAssertEqual(f.proxy.backend?.name, "node_a")
            XCTAssertEqual(f.executor.placement(of: "edge-app")?.node, "node_a")
            let o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: f.proxyPort, path: "/drive"), rate: 50, duration: .milliseconds(200))
            let records = await VehicleProbe.run(o)
            XCTAssertEqual(records.filter(\.ok).count, 10)
            XCTAssertEqual(Set(records.compactMap(\.node)), ["node_a"])
            let left = try await containers(f)
            XCTAssertEqual(left, ["/edgemeter-\(f.runID)-cloud-db", "/edgemeter-\(f.runID)-edge-app-node_a"])
        } catch {
            await tearDown(f)
            throw error
        }
        await tearDown(f)
    }
}
