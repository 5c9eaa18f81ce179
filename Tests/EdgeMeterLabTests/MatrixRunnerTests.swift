import XCTest
import EdgeMeterCore
@testable import EdgeMeterLab

/// `edgemeter matrix`'s plan (pure, on edge-cloud's state as `lab up` would record it): one prober
/// per node in its own namespace, each aiming at every other node's address on the shared network,
/// and the round trips the declared impairments inject.
final class MatrixRunnerTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func edgeCloud() throws -> (Topology, LabState) {
        let url = root.appendingPathComponent("benchmarks/topologies/edge-cloud.yaml")
        let t = try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
        return (t, LabState(plan: TopologyPlan(t)))
    }

    func testEveryNodeProbesEveryOtherFromItsOwnNamespace() throws {
        let (t, s) = try edgeCloud()
        let plans = try MatrixRunner.plan(state: s, topology: t)
        XCTAssertEqual(plans.map(\.node), ["vehicle", "node_1", "node_2", "node_3", "cloud"])
        XCTAssertEqual(Set(plans.map(\.namespace)).count, 5, "one namespace per prober")
        XCTAssertEqual(plans[0].namespace, s.node("vehicle")!.namespace)
        let n1 = plans[1]
        XCTAssertEqual(n1.targets.map(\.node), ["vehicle", "node_2", "node_3", "cloud"])
        XCTAssertEqual(n1.targets.map(\.address), ["10.204.0.10", "10.204.0.2", "10.204.0.3", "10.204.0.100"])
        let options = MatrixRunner.Options(binary: "/x/edgemeter", count: 7, intervalMilliseconds: 50, directory: "/tmp/m")
        let argv = MatrixRunner.command(n1, options: options)
        XCTAssertEqual(argv, ["ip", "netns", "exec", n1.namespace, "/x/edgemeter", "agent", "--config", "/tmp/m/node_1/agent.yaml", "--rounds", "7"])
        // The generated agent configuration (loaded by the agent's own loader in
        // AgentConfigTests.testMatrixGeneratedConfigLoads): origin node_1, the four others by name at
        // the addresses node_1 reaches them by, one ping probe, pushes to the collector.
        XCTAssertEqual(MatrixRunner.agentConfig(n1, options: options, collector: "http://127.0.0.1:40123"), """
            # Written by `edgemeter matrix`: the agent on node node_1 (netns \(n1.namespace)), run with --rounds 7.
            listen: 127.0.0.1:0
            node: "node_1"
            interval: 50ms
            nodes:
              "vehicle": "10.204.0.10"
              "node_2": "10.204.0.2"
              "node_3": "10.204.0.3"
              "cloud": "10.204.0.100"
            controller:
              url: http://127.0.0.1:40123
            probes:
              - name: matrix
                kind: ping
                targets: ["vehicle", "node_2", "node_3", "cloud"]

            """)
        // a subset, and the errors
        XCTAssertEqual(try MatrixRunner.plan(state: s, topology: t, nodes: ["cloud", "node_3"]).map { $0.targets.map(\.node) }, [["node_3"], ["cloud"]])
        XCTAssertThrowsError(try MatrixRunner.plan(state: s, topology: t, nodes: ["cloud"])) { e in
            XCTAssertEqual("\(e)", "a delay matrix needs at least two nodes; edge-cloud gives 1")
        }
        XCTAssertThrowsError(try MatrixRunner.plan(state: s, topology: t, nodes: ["cloud", "nope"])) { e in
            XCTAssertTrue("\(e)".hasPrefix("topology edge-cloud has no node nope; its nodes: vehicle, node_1"), "\(e)")
        }
    }

    func testExpectedRoundTripIsTwiceBothLinksDelays() throws {
        let (t, _) = try edgeCloud()
        let e = MatrixRunner.expectedRoundTripMilliseconds(topology: t, nodes: ["vehicle", "node_1", "node_2", "node_3", "cloud"])
        XCTAssertEqual(e.count, 20)
        XCTAssertEqual(e[.init(from: "vehicle", to: "node_1")], 10)
        XCTAssertEqual(e[.init(from: "node_1", to: "vehicle")], 10)
        XCTAssertEqual(e[.init(from: "node_1", to: "node_2")], 70)
        XCTAssertEqual(e[.init(from: "node_3", to: "cloud")], 240)
        XCTAssertEqual(e[.init(from: "vehicle", to: "cloud")], 80)
    }
}
