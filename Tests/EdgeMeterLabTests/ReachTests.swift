import XCTest
@testable import EdgeMeterLab

/// The pure parts of `reach`: which probes it plans, how it reads `ip route get` and ping output,
/// the expected-matrix files and the differences it lists. The real runs are in ReachIntegrationTests.
final class ReachTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func load(_ name: String) throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.lastPathComponent)
    }

    func testPlanCoversEveryOtherNodeItsPortsAndTheForwards() throws {
        let topo = try load("nat")
        let probes = ReachPlan.probes(state: LabState(plan: TopologyPlan(topo)), topology: topo)
        let texts = Set(probes.map { "\($0.from)>\($0.to) \($0.probe)" })
        XCTAssertTrue(texts.contains("peer>guest icmp 10.0.2.15"))
        XCTAssertTrue(texts.contains("peer>guest tcp 10.0.2.15:22"))
        XCTAssertTrue(texts.contains("peer>host tcp 10.201.0.1:1234"), "the port forward is probed")
        XCTAssertTrue(texts.contains("guest>host icmp 10.201.0.1") && texts.contains("guest>host icmp 10.0.2.2"), "each router address")
        XCTAssertTrue(texts.contains("(host)>guest icmp 10.0.2.15"), "the host is a source")
        XCTAssertFalse(texts.contains { $0.hasPrefix("host>host") }, "the router does not probe its own forward")
        XCTAssertFalse(probes.contains { $0.from == $0.to }, "no node probes itself")
        // 3 node sources + host; per source: icmp to each address of the others, tcp to their ports, forwards.
        XCTAssertEqual(probes.filter { $0.from == "peer" }.count, 2 /* host icmp */ + 2 /* guest icmp+tcp */ + 1 /* forward */)
        XCTAssertEqual(Set(probes.map(\.key)).count, probes.count)
    }

    func testRouteGetDecidesWhetherAnythingIsSent() {
        let lab: Set<String> = ["eth0", "eth1"]
        XCTAssertEqual(ReachRunner.classifyRoute(status: 0, output: "10.0.2.2 dev eth0 src 10.0.2.15 uid 0 \\    cache", labDevices: lab), .intoLab(device: "eth0"))
        XCTAssertEqual(ReachRunner.classifyRoute(status: 0, output: "8.8.8.8 via 172.17.0.1 dev ens3 src 172.17.0.5 uid 0", labDevices: lab),
                       .leavesLab(device: "ens3"))
        if case .noRoute = ReachRunner.classifyRoute(status: 2, output: "RTNETLINK answers: Network is unreachable", labDevices: lab) {} else { XCTFail("no route") }
        if case .noRoute = ReachRunner.classifyRoute(status: 0, output: "unreachable 10.9.0.1 table main uid 0", labDevices: lab) {} else { XCTFail("unreachable route") }
    }

    func testPingOutputToReachability() {
        let p = ReachProbe(from: "a", to: "b", kind: .icmp, address: "10.0.0.2")
        let ok = ReachRunner.parsePing(probe: p, stdout: """
            PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
            64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.090 ms
            64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.050 ms
            64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=0.070 ms
            """, stderr: "")
        XCTAssertTrue(ok.reachable)
        XCTAssertEqual(ok.rttP50Milliseconds ?? 0, 0.070, accuracy: 1e-9)
        let host = ReachRunner.parsePing(probe: p, stdout: "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable\n", stderr: "")
        XCTAssertEqual(host.reason, .hostUnreachable)
        let net = ReachRunner.parsePing(probe: p, stdout: "From 192.168.1.1 icmp_seq=1 Destination Net Unreachable\n", stderr: "")
        XCTAssertEqual(net.reason, .noRoute)
        XCTAssertEqual(ReachRunner.parsePing(probe: p, stdout: "", stderr: "ping: connect: Network is unreachable\n").reason, .noRoute)
        let silent = ReachRunner.parsePing(probe: p, stdout: "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 406ms\n", stderr: "")
        XCTAssertFalse(silent.reachable)
        XCTAssertEqual(silent.reason, .timeout)
    }

    func matrix(_ rows: [(String, String, String, Bool, ReachResult.Reason?)]) -> ReachMatrix {
        ReachMatrix(topology: "t", results: rows.map { r in
            let parts = r.2.split(separator: " ")
            let kind = ReachProbe.Kind(rawValue: String(parts[0]))!
            let addr = parts[1].split(separator: ":")
            return ReachResult(probe: ReachProbe(from: r.0, to: r.1, kind: kind, address: String(addr[0]), port: addr.count > 1 ? Int(addr[1]) : nil),
                               reachable: r.3, reason: r.4, rttP50Milliseconds: r.3 ? 0.1 : nil)
        }, wallTime: .milliseconds(1500))
    }

    func testCSVRoundTripsAsAnExpectationAndDifferencesAreListed() throws {
        let m = matrix([("guest", "peer", "icmp 10.201.0.20", true, nil), ("peer", "guest", "tcp 10.0.2.15:22", false, .noRoute)])
        XCTAssertTrue(m.csv.hasPrefix(ReachMatrix.csvHeader + "\n"))
        XCTAssertTrue(m.csv.contains("peer,guest,tcp 10.0.2.15:22,no,no route,\n"), m.csv)
        let same = try ReachExpectation.parse(m.csv, file: "reach.csv")
        XCTAssertEqual(same.differences(m), [])

        let e = try ReachExpectation.parse("""
            # golden
            from,to,probe,reachable
            guest,peer,icmp 10.201.0.20,yes
            peer,guest,tcp 10.0.2.15:22,yes
            peer,host,tcp 10.201.0.1:1234,yes
            """, file: "x.csv")
        let got = matrix([("guest", "peer", "icmp 10.201.0.20", false, .timeout), ("peer", "guest", "tcp 10.0.2.15:22", false, .noRoute),
                          ("(host)", "guest", "icmp 10.0.2.15", false, .leavesLab)])
        XCTAssertEqual(e.differences(got), [
            "from (host) to guest icmp 10.0.2.15: not in the expected matrix, got not probed: the route leaves the lab; add a row for it",
            "from guest to peer icmp 10.201.0.20: expected reachable, got timeout",
            "from peer to guest tcp 10.0.2.15:22: expected reachable, got no route",
            "from peer to host tcp 10.201.0.1:1234: expected reachable, but reach has no such probe (renamed node or address?)",
        ])
    }

    func testYAMLExpectationAndBadFiles() throws {
        let y = try ReachExpectation.parse("""
            - {from: guest, to: peer, probe: icmp 10.201.0.20, reachable: yes}
            - from: peer
              to: guest
              probe: "tcp 10.0.2.15:22"
              reachable: false
            """, file: "x.yaml")
        XCTAssertEqual(y.rows, [ReachKey(from: "guest", to: "peer", probe: "icmp 10.201.0.20"): true,
                                ReachKey(from: "peer", to: "guest", probe: "tcp 10.0.2.15:22"): false])
        XCTAssertThrowsError(try ReachExpectation.parse("from,to,probe,reachable\na,b,icmp 1.2.3.4,maybe\n", file: "e.csv")) {
            XCTAssertEqual("\($0)", "e.csv:2: `reachable` must be yes or no, got \"maybe\"")
        }
        XCTAssertThrowsError(try ReachExpectation.parse("a,b,c\n", file: "e.csv")) {
            XCTAssertEqual("\($0)", "e.csv:1: the header must name the columns from, to, probe, reachable; got \"a,b,c\"")
        }
        XCTAssertThrowsError(try ReachExpectation.parse("- {from: a, to: b, reachable: yes}\n", file: "e.yaml")) {
            XCTAssertEqual("\($0)", "e.yaml:1: each entry needs from, to, probe and reachable; got from, reachable, to")
        }
        XCTAssertThrowsError(try ReachExpectation.parse("from,to,probe,reachable\na,b,icmp 1.2.3.4,yes\na,b,icmp 1.2.3.4,no\n", file: "e.csv"))
    }

    func testMarkdownGridCountsAndListsFailures() {
        let m = matrix([("a", "b", "icmp 10.0.0.2", true, nil), ("a", "b", "tcp 10.0.0.2:80", false, .refused), ("(host)", "b", "icmp 10.0.0.2", true, nil)])
        let md = m.markdown
        XCTAssertTrue(md.contains("| a | **1/2** |"), md)
        XCTAssertTrue(md.contains("| (host) | 1/1 |"), md)
        XCTAssertTrue(md.contains("- a → b tcp 10.0.0.2:80: refused"), md)
        XCTAssertTrue(md.contains("3 probes, 2 reachable, 1 not; wall time 1.50 s."), md)
    }
}
