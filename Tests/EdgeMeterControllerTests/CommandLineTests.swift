import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
@testable import EdgeMeterController

/// The two commands as a user runs them (the built binary).
final class CommandLineTests: XCTestCase {
    func binary() throws -> String {
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        return bin
    }

    func testControllerRefusesToStartWithoutAToken() throws {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "EDGEMETER_CONTROLLER_TOKEN")
        let r = try runCommand(try binary(), ["controller", "--port", "0", "--state", "/tmp/never-created.sqlite"], timeout: 30, environment: env)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--token-file FILE or set EDGEMETER_CONTROLLER_TOKEN"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/never-created.sqlite"))
    }

    func testFeedWritesTheNetworkTopologyOfARunDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try DelayTable.csv(DelayTable.rows(from: DelayFeedTests.labRun)).write(to: dir.appendingPathComponent("delays.csv"), atomically: true, encoding: .utf8)
        let r = try runCommand(try binary(), ["feed", dir.path, "--format", "networktopology", "--name", "edge-cloud"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let golden = try String(contentsOf: try XCTUnwrap(Bundle.module.url(forResource: "networktopology", withExtension: "yaml",
                                                                            subdirectory: "testdata")), encoding: .utf8)
        XCTAssertEqual(r.stdout, golden)
        let missing = try runCommand(try binary(), ["feed", dir.appendingPathComponent("nope").path, "--format", "networktopology"], timeout: 30)
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("delays.csv not found"), missing.stderr)
        let noTarget = try runCommand(try binary(), ["feed", dir.path], timeout: 30)
        XCTAssertEqual(noTarget.status, 2)
        XCTAssertTrue(noTarget.stderr.contains("--controller URL, or --format networktopology"), noTarget.stderr)
        let out = dir.appendingPathComponent("nt.yaml").path
        let written = try runCommand(try binary(), ["feed", dir.path, "--format", "networktopology", "--name", "edge-cloud", "--out", out], timeout: 30)
        XCTAssertEqual(written.status, 0, written.stderr)
        XCTAssertEqual(written.stdout, "wrote \(out)\n")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), golden)
        let badMetric = try runCommand(try binary(), ["feed", dir.path, "--format", "networktopology", "--metric", "jitter"], timeout: 30)
        XCTAssertNotEqual(badMetric.status, 0)
        XCTAssertTrue(badMetric.stderr.contains("--metric must be one of ping_rtt, tcp_connect, http_total, got \"jitter\""), badMetric.stderr)
    }

    /// The kubernetes executor's manifests mode: the files `kubectl apply` takes, in make-before-break order.
    func testK8sManifestsWritesTheDeploymentTheServiceAndTheOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runCommand(try binary(), ["k8s", "migration", "--from", "node_2", "--to", "node_1", "--out", dir, "--k8s-service", "edge-app",
                                              "--k8s-image", "edge-app:1", "--k8s-port", "8000", "--k8s-namespace", "lab"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(names, ["10-deployment-edge-app-node-1.json", "20-service-edge-app.json", "README.txt"])
        func json(_ f: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: (dir as NSString).appendingPathComponent(f)))) as? [String: Any])
        }
        let dep = try json(names[0])
        XCTAssertEqual(dep["kind"] as? String, "Deployment")
        XCTAssertEqual((dep["metadata"] as? [String: Any])?["namespace"] as? String, "lab")
        let pod = (((dep["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        XCTAssertEqual(pod?["nodeSelector"] as? [String: String], ["kubernetes.io/hostname": "node_1"])
        let svc = try json(names[1])
        XCTAssertEqual(svc["kind"] as? String, "Service")
        XCTAssertEqual((svc["spec"] as? [String: Any])?["selector"] as? [String: String], ["app": "edge-app", "edgemeter.io/node": "node_1"])
        let readme = try String(contentsOfFile: (dir as NSString).appendingPathComponent("README.txt"), encoding: .utf8)
        let order = ["apply -f 10-deployment-edge-app-node-1.json", "rollout status deployment/edge-app-node-1", "apply -f 20-service-edge-app.json",
                     "delete deployment edge-app-node-2"].map { readme.range(of: $0)?.lowerBound }
        XCTAssertFalse(order.contains(nil), readme)
        XCTAssertEqual(order.compactMap { $0 }, order.compactMap { $0 }.sorted(), "make-before-break: \(readme)")
        let same = try runCommand(try binary(), ["k8s", "migration", "--from", "node_1", "--to", "node_1", "--out", dir,
                                                 "--k8s-service", "s", "--k8s-image", "i", "--k8s-port", "1"], timeout: 30)
        XCTAssertEqual(same.status, 2)
        XCTAssertTrue(same.stderr.contains("--from and --to are both node_1"), same.stderr)
    }
}
