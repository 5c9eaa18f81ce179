import Foundation
import XCTest
@testable import EdgeMeterController

/// The exact API requests of a Kubernetes migration, against a local server that answers as the API
/// server does, and the rollback after a failure in each step. No real cluster is involved.
final class KubernetesExecutorTests: XCTestCase {
    let deps = "/apis/apps/v1/namespaces/default/deployments"
    let svc = "/api/v1/namespaces/default/services/edge-app"
    let oldSelector = ["app": "edge-app", "edgemeter.io/node": "node_1"]

    func setUp(_ faults: FakeAPIServer.Faults = .init()) async throws -> (FakeAPIServer, KubernetesExecutor) {
        let server = FakeAPIServer(serviceName: "edge-app", selector: oldSelector,
                                   existing: ["edge-app-node-1": ["metadata": ["name": "edge-app-node-1"], "spec": ["replicas": 1]]])
        server.faults = faults
        let port = try await server.start()
        let e = KubernetesExecutor(endpoint: try KubernetesEndpoint(server: "http://127.0.0.1:\(port)", token: "s3cret"),
                                   serviceObject: "edge-app", image: "edgemeter-base:latest", containerPort: 8000)
        e.command = ["edgemeter", "serve", "edge-app", "--host", "0.0.0.0", "--node", "{to}"]
        e.pollInterval = .milliseconds(20)
        e.availableTimeout = .milliseconds(400)
        return (server, e)
    }

    func expectedDeployment() -> NSDictionary {
        let labels = ["app": "edge-app", "edgemeter.io/node": "node_2"]
        let container: [String: Any] = ["name": "edge-app", "image": "edgemeter-base:latest", "ports": [["containerPort": 8000]],
                                        "command": ["edgemeter", "serve", "edge-app", "--host", "0.0.0.0", "--node", "node_2"]]
        let podSpec: [String: Any] = ["nodeSelector": ["kubernetes.io/hostname": "node_2"], "containers": [container]]
        let template: [String: Any] = ["metadata": ["labels": labels], "spec": podSpec]
        let spec: [String: Any] = ["replicas": 1, "selector": ["matchLabels": labels], "template": template]
        let metadata: [String: Any] = ["name": "edge-app-node-2", "namespace": "default",
                                       "labels": labels.merging(["app.kubernetes.io/managed-by": "edgemeter"]) { a, _ in a }]
        let d: [String: Any] = ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec]
        return d as NSDictionary
    }

    func calls(_ s: FakeAPIServer) -> [String] { s.recorded.map { "\($0.method) \($0.path)" } }

    func testMigrationSendsTheseRequestsInThisOrder() async throws {
        let (server, e) = try await setUp(.init(availableAfterGets: 2))
        let r = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
        XCTAssertEqual(r.outcome, .completed)
        XCTAssertEqual(r.phases.map(\.name), ["start_target", "wait_ready", "switch", "stop_old"])
        XCTAssertEqual(calls(server), [
            "POST \(deps)",
            "GET \(deps)/edge-app-node-2", "GET \(deps)/edge-app-node-2",
            "GET \(svc)",
            "PATCH \(svc)",
            "DELETE \(deps)/edge-app-node-1",
        ])
        let rec = server.recorded
        XCTAssertEqual(rec[0].json, expectedDeployment())
        XCTAssertEqual(rec[0].contentType, "application/json")
        XCTAssertEqual(rec[4].contentType, "application/merge-patch+json")
        XCTAssertEqual(rec[4].json, ["spec": ["selector": ["app": "edge-app", "edgemeter.io/node": "node_2"]]] as NSDictionary)
        XCTAssertTrue(rec.allSatisfy { $0.authorization == "Bearer s3cret" })
        XCTAssertEqual(rec[5].body, "")
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-2"])
        XCTAssertEqual(server.currentSelector, ["app": "edge-app", "edgemeter.io/node": "node_2"])
        XCTAssertFalse(r.lines.contains("s3cret"), "the token is never printed")
        print(server.recorded.map { "\($0.method) \($0.path) \($0.body)" }.joined(separator: "\n"))
        await server.stop()
    }

    func testConflictWithAForeignDeploymentTouchesNothing() async throws {
        let (server, e) = try await setUp()
        server.lock.withLock { server.deployments["edge-app-node-2"] = ["metadata": ["name": "edge-app-node-2", "labels": ["app": "someone-else"]]] }
        do {
            _ = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
            XCTFail("409 must fail")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("failed in start_target: HTTP 409"), err.description)
            XCTAssertTrue(err.description.contains("left alone"), err.description)
            XCTAssertEqual(err.migration?.outcome, .rolledBack)
            XCTAssertEqual(err.migration?.rollback.count, 0, "a Deployment this call did not create is not deleted")
        }
        XCTAssertEqual(calls(server), ["POST \(deps)", "GET \(deps)/edge-app-node-2"])
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-1", "edge-app-node-2"])
        XCTAssertEqual(server.currentSelector, oldSelector)
        await server.stop()
    }

    func testConflictWithOwnLeftoverReplacesIt() async throws {
        let (server, e) = try await setUp()
        server.lock.withLock {
            server.deployments["edge-app-node-2"] = ["metadata": ["name": "edge-app-node-2",
                "labels": ["app": "edge-app", "edgemeter.io/node": "node_2", "app.kubernetes.io/managed-by": "edgemeter"]], "spec": ["replicas": 1]]
        }
        let r = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
        XCTAssertEqual(r.outcome, .completed)
        XCTAssertEqual(Array(calls(server).prefix(4)), ["POST \(deps)", "GET \(deps)/edge-app-node-2", "DELETE \(deps)/edge-app-node-2", "POST \(deps)"])
        XCTAssertEqual(server.recorded[3].json, expectedDeployment())
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-2"])
        await server.stop()
    }

    func testOtherCreateFailureIsReported() async throws {
        let (server, e) = try await setUp(.init(createStatus: 403))
        do {
            _ = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
            XCTFail("403 must fail")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("creating Deployment edge-app-node-2: HTTP 403"), err.description)
        }
        XCTAssertEqual(calls(server), ["POST \(deps)"])
        XCTAssertEqual(server.currentSelector, oldSelector)
        await server.stop()
    }

    func testNeverAvailableDeletesTheNewDeployment() async throws {
        let (server, e) = try await setUp(.init(availableAfterGets: nil))
        do {
            _ = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
            XCTFail("must time out")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("failed in wait_ready: Deployment edge-app-node-2 was not available within"), err.description)
            XCTAssertEqual(err.migration?.rollback.map(\.name), ["delete_deployment"])
        }
        let c = calls(server)
        XCTAssertEqual(c.first, "POST \(deps)")
        XCTAssertEqual(c.last, "DELETE \(deps)/edge-app-node-2")
        XCTAssertTrue(c.dropFirst().dropLast().allSatisfy { $0 == "GET \(deps)/edge-app-node-2" }, "\(c)")
        XCTAssertGreaterThanOrEqual(c.count, 5, "polled several times before giving up")
        XCTAssertFalse(c.contains { $0.hasPrefix("PATCH") }, "the Service is never touched")
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-1"])
        XCTAssertEqual(server.currentSelector, oldSelector)
        await server.stop()
    }

    func testForbiddenPatchDeletesTheNewDeploymentAndKeepsTheSelector() async throws {
        let (server, e) = try await setUp(.init(patchStatus: 403))
        do {
            _ = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
            XCTFail("403 must fail")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("failed in switch"), err.description)
            XCTAssertEqual(err.migration?.rollback.map(\.name), ["delete_deployment"])
            XCTAssertTrue(err.description.contains("HTTP 403"), err.description)
            XCTAssertTrue(err.description.contains("Role/RoleBinding"), err.description)
        }
        XCTAssertEqual(calls(server), ["POST \(deps)", "GET \(deps)/edge-app-node-2", "GET \(svc)", "PATCH \(svc)", "DELETE \(deps)/edge-app-node-2"])
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-1"])
        XCTAssertEqual(server.currentSelector, oldSelector)
        await server.stop()
    }

    /// A failure after the switch is not rolled back (the contract): the new pods serve, the old
    /// Deployment is the leftover the report names.
    func testForbiddenDeleteOfTheOldIsALeftover() async throws {
        let (server, e) = try await setUp(.init(deleteStatus: 403))
        server.faultyDelete = "edge-app-node-1"
        let r = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
        XCTAssertEqual(r.outcome, .completedWithLeftover)
        XCTAssertEqual(r.step(.stopOld)?.outcome, .failed)
        XCTAssertTrue(r.error?.contains("deleting the old Deployment edge-app-node-1 (left running): HTTP 403") ?? false, r.error ?? "")
        XCTAssertTrue(r.rollback.isEmpty)
        XCTAssertEqual(calls(server), ["POST \(deps)", "GET \(deps)/edge-app-node-2", "GET \(svc)", "PATCH \(svc)", "DELETE \(deps)/edge-app-node-1"])
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-1", "edge-app-node-2"])
        XCTAssertEqual(server.currentSelector, ["app": "edge-app", "edgemeter.io/node": "node_2"])
        await server.stop()
    }

    /// The selector restore is exercised where a rollback follows a switch: the switch's PATCH
    /// applied, but the API server's answer was lost (timeout), so the executor cannot know; it
    /// restores the selector and deletes the new Deployment.
    func testSwitchAnswerLostRestoresTheSelector() async throws {
        let (server, e) = try await setUp(.init(patchStatus: 500))
        server.patchAppliesBeforeFault = true
        do {
            _ = try await e.migrate(service: "edge-app", from: "node_1", to: "node_2")
            XCTFail("500 must fail")
        } catch let err as ControllerError {
            XCTAssertTrue(err.description.contains("failed in switch"), err.description)
            XCTAssertEqual(err.migration?.outcome, .rolledBack)
            XCTAssertEqual(err.migration?.rollback.map(\.name), ["switch_back", "delete_deployment"])
        }
        XCTAssertEqual(calls(server), ["POST \(deps)", "GET \(deps)/edge-app-node-2", "GET \(svc)", "PATCH \(svc)",
                                       "PATCH \(svc)", "DELETE \(deps)/edge-app-node-2"])
        XCTAssertEqual(server.recorded[4].json, ["spec": ["selector": oldSelector]] as NSDictionary)
        XCTAssertEqual(server.deploymentNames, ["edge-app-node-1"])
        XCTAssertEqual(server.currentSelector, oldSelector)
        await server.stop()
    }

    func testEndpointRulesAndToken() throws {
        XCTAssertThrowsError(try KubernetesEndpoint(server: "https://10.0.0.1:6443")) {
            XCTAssertTrue("\($0)".contains("kubectl proxy --port 8001"), "\($0)")
        }
        XCTAssertThrowsError(try KubernetesEndpoint(server: "127.0.0.1:8001")) { XCTAssertTrue("\($0)".contains("must start with http://")) }
        XCTAssertThrowsError(try KubernetesEndpoint(server: "http://127.0.0.1:8001", namespace: "Bad_NS")) { XCTAssertTrue("\($0)".contains("not a Kubernetes name")) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-token-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data("  abc.def \n".utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try KubernetesEndpoint.token(fromFile: path), "abc.def")
        XCTAssertThrowsError(try KubernetesEndpoint.token(fromFile: path + ".missing")) { XCTAssertTrue("\($0)".contains("cannot read the token file")) }
        XCTAssertEqual(KubernetesExecutor.deploymentName(service: "Edge_App", node: "node_2"), "edge-app-node-2")
    }

    func testManifestsMatchTheRequests() async throws {
        let (server, e) = try await setUp()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-manifests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try e.writeManifests(service: "edge-app", from: "node_1", to: "node_2", directory: dir)
        XCTAssertEqual(files.map { ($0 as NSString).lastPathComponent }, ["10-deployment-edge-app-node-2.json", "20-service-edge-app.json", "README.txt"])
        let dep = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: files[0]))) as? NSDictionary
        XCTAssertEqual(dep, expectedDeployment())
        let readme = try String(contentsOfFile: files[2], encoding: .utf8)
        XCTAssertTrue(readme.contains("delete deployment edge-app-node-1"))
        XCTAssertEqual(server.recorded.count, 0, "writing manifests sends nothing")
        await server.stop()
    }
}
