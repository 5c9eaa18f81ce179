import XCTest
import EdgeMeterCore
@testable import EdgeMeterLab

/// The address a node name stands for from a source (pure: the built-ins' state as `lab up` would
/// record it, nothing built): shared network first, then a port forward on the source's network,
/// then the node's only address; ambiguity names the candidates.
final class NodeAddressingTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func load(_ name: String) throws -> (Topology, LabState) {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        let t = try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
        return (t, LabState(plan: TopologyPlan(t)))
    }

    func resolve(_ node: String, port: Int? = nil, from: String?, _ t: (Topology, LabState)) throws -> NodeAddress {
        try NodeAddress.resolve(node, port: port, from: from, state: t.1, topology: t.0)
    }

    func testTwoSubnet() throws {
        let t = try load("two-subnet")
        // From the host (on ext only): the front end's port 50000 through RT1's floating IP.
        let front = try resolve("front", port: 50000, from: nil, t)
        XCTAssertEqual(front, NodeAddress(node: "front", address: "10.203.0.10", port: 50000, via: "rt1", network: "ext"))
        // No port: no forward applies, the front end's only address (the route check then refuses it).
        XCTAssertEqual(try resolve("front", from: nil, t).address, "192.168.1.6")
        // A port nothing forwards: its only address too.
        XCTAssertEqual(try resolve("front", port: 8080, from: nil, t).address, "192.168.1.6")
        // Shared network wins: rt2 from front is on net1.
        XCTAssertEqual(try resolve("rt2", from: "front", t).address, "192.168.1.254")
        XCTAssertEqual(try resolve("rt2", from: "sum", t).address, "192.168.2.254")
        XCTAssertEqual(try resolve("rt1", from: nil, t).address, "10.203.0.2")
        // Routed: sum from front (after `lab route add`) is its only address.
        XCTAssertEqual(try resolve("sum", port: 50001, from: "front", t).hostPort, "192.168.2.1:50001")
        // rt1 from sum: no shared network, two addresses: ambiguous, both named.
        XCTAssertThrowsError(try resolve("rt1", from: "sum", t)) { e in
            XCTAssertEqual("\(e)", "node rt1 is ambiguous from sum: it shares no network with sum and has several addresses: 10.203.0.2 (ext), 192.168.1.1 (net1); write the address instead of the name")
        }
        XCTAssertThrowsError(try resolve("nope", from: nil, t)) { e in XCTAssertTrue("\(e)".contains("has no node nope; its nodes: rt1, rt2, front"), "\(e)") }
        XCTAssertThrowsError(try resolve("sum", from: "nope", t))
    }

    func testEdgeCloudAndNAT() throws {
        let e = try load("edge-cloud")
        XCTAssertEqual(try resolve("node_1", from: "vehicle", e).address, "10.204.0.1")
        XCTAssertEqual(try resolve("cloud", port: 8001, from: "vehicle", e).hostPort, "10.204.0.100:8001")
        let n = try load("nat")
        // The lab's port forward host:1234 → guest:22, from peer (on the outside network).
        let guest = try resolve("guest", port: 22, from: "peer", n)
        XCTAssertEqual(guest.via, "host")
        XCTAssertEqual(guest.port, 1234)
    }

    func testTopologyFilesFindBuiltInsAndSuggest() throws {
        let suites = root.appendingPathComponent("benchmarks/suites").path
        XCTAssertEqual(try TopologyFiles.find("nat", relativeTo: suites), root.appendingPathComponent("benchmarks/topologies/nat.yaml").path)
        XCTAssertThrowsError(try TopologyFiles.find("two-subnt", relativeTo: suites)) { e in
            XCTAssertTrue("\(e)".hasPrefix("no built-in topology named two-subnt (did you mean `two-subnet`?); built-ins: "), "\(e)")
        }
        XCTAssertThrowsError(try TopologyFiles.find("missing/x.yaml", relativeTo: suites)) { e in
            XCTAssertTrue("\(e)".hasPrefix("topology file missing/x.yaml does not exist"), "\(e)")
        }
    }
}
