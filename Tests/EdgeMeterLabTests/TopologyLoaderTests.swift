import XCTest
import EdgeMeterCore
@testable import EdgeMeterLab

final class TopologyLoaderTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func load(_ name: String) throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.lastPathComponent)
    }

    func testBuiltInsAreValid() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("benchmarks/topologies").path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertTrue(Set(["nat.yaml", "bridged.yaml", "two-subnet.yaml", "edge-cloud.yaml"]).isSubset(of: Set(files)), "\(files)")
        for f in files {
            XCTAssertNoThrow(try load(String(f.dropLast(5))), f)
        }
    }

    func testTwoSubnetIsTheLabsOpenStackLayout() throws {
        let t = try load("two-subnet")
        XCTAssertEqual(t.networks.map(\.name), ["ext", "net1", "net2"])
        XCTAssertEqual(t.network("net2")?.subnet.description, "192.168.2.0/24")
        XCTAssertEqual(t.node("front")?.address(on: "net1")?.description, "192.168.1.6")
        XCTAssertEqual(["sum", "sub", "mul", "div"].compactMap { t.node($0)?.address(on: "net2")?.description },
                       ["192.168.2.1", "192.168.2.2", "192.168.2.3", "192.168.2.4"])
        // As in the lab, the front end has only its default route via RT1: no route to Net2.
        XCTAssertEqual(t.node("front")?.routes.map { $0.to?.description ?? "default" }, ["default"])
        let rt1 = try XCTUnwrap(t.node("rt1"))
        XCTAssertEqual(rt1.kind, .router)
        XCTAssertTrue(rt1.nat.contains(.forward(proto: .tcp, listen: IPv4Address("10.203.0.10")!, port: 50000, to: IPv4Address("192.168.1.6")!, toPort: 50000)))
        XCTAssertEqual(rt1.filter.map(\.action), [.allow, .drop])
    }

    func testEdgeCloudDelays() throws {
        let t = try load("edge-cloud")
        let delays = ["node_1", "node_2", "node_3", "cloud"].map { t.node($0)?.interfaces.first?.impair?.delayNanoseconds }
        XCTAssertEqual(delays, [5_000_000, 30_000_000, 80_000_000, 40_000_000])
    }

    /// Every `testdata/invalid-*.yaml` starts with one `# expect:` line per problem, in order.
    func testInvalidTopologiesListEveryProblem() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("invalid-") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 3)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            let expected = text.split(separator: "\n").prefix { $0.hasPrefix("# expect: ") }
                .map { String($0.dropFirst("# expect: ".count)) }.joined(separator: "\n")
            XCTAssertThrowsError(try TopologyLoader.load(yaml: text, file: f), f) { e in
                XCTAssertEqual("\(e)", expected, f)
            }
        }
    }

    func testAddressesAndPrefixes() {
        XCTAssertNil(IPv4Address("010.1.1.1"), "leading zeros are ambiguous (octal in some tools)")
        XCTAssertNil(IPv4Address("1.2.3"))
        XCTAssertNil(IPv4Address("256.1.1.1"))
        XCTAssertNil(IPv4Prefix("192.168.1.5/24"), "host bits set")
        let p = IPv4Prefix("192.168.1.0/24")!
        XCTAssertTrue(p.isUsableHost(IPv4Address("192.168.1.1")!))
        XCTAssertFalse(p.isUsableHost(IPv4Address("192.168.1.0")!))
        XCTAssertFalse(p.isUsableHost(IPv4Address("192.168.1.255")!))
        XCTAssertFalse(p.isUsableHost(IPv4Address("192.168.2.1")!))
        XCTAssertTrue(p.isLabRange)
        XCTAssertFalse(IPv4Prefix("8.8.8.0/24")!.isLabRange)
        XCTAssertFalse(IPv4Prefix("172.32.0.0/16")!.isLabRange)
        XCTAssertEqual(TopologyLoader.parseRate("10mbit"), 10_000_000)
        XCTAssertNil(TopologyLoader.parseRate("10mb"))
    }
}
