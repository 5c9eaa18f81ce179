import XCTest
import EdgeMeterSystem
@testable import EdgeMeterLab

final class TopologyPlanTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func load(_ name: String) throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.lastPathComponent)
    }

    func commands(_ plan: TopologyPlan) -> [String] { plan.steps.map { $0.commandLine.joined(separator: " ") } }

    /// A topology with many nodes and interfaces, for the name-length limits.
    func wide(nodes: Int, interfacesEach: Int) throws -> Topology {
        var yaml = "name: abcdefghijkl\nnetworks:\n"
        for k in 0..<interfacesEach { yaml += "  - {name: n\(k), subnet: 10.\(k + 1).0.0/16, host: 10.\(k + 1).255.254}\n" }
        yaml += "nodes:\n"
        for i in 0..<nodes {
            yaml += "  - name: node_\(i)\n    interfaces:\n"
            for k in 0..<interfacesEach { yaml += "      - {network: n\(k), address: 10.\(k + 1).\(i / 250).\(i % 250 + 1)}\n" }
        }
        return try TopologyLoader.load(yaml: yaml, file: "wide.yaml")
    }

    func testInterfaceNamesFitTheKernelAreUniqueAndCarryThePrefix() throws {
        for topo in try ["nat", "bridged", "two-subnet", "edge-cloud"].map(load) + [wide(nodes: 300, interfacesEach: 3)] {
            let plan = TopologyPlan(topo)
            let names = plan.interfaceNames
            XCTAssertEqual(Set(names).count, names.count, "\(topo.name): duplicate names in \(names)")
            for n in names {
                XCTAssertLessThanOrEqual(n.utf8.count, 15, "\(topo.name): \(n)")
                XCTAssertTrue(n.hasPrefix("em-\(plan.tag)-"), n)
                XCTAssertNoThrow(try Names.checkInterface(n))
            }
            for o in plan.createdObjects { XCTAssertTrue(Names.isEdgemeterName(o.name), "\(o)") }
            // Every `link add` in the plan names one of the checked interface names.
            for step in plan.steps {
                let c = step.commandLine
                if let i = c.firstIndex(of: "add"), i > 0, c[i - 1] == "link" { XCTAssertTrue(names.contains(c[i + 1]), "\(c)") }
            }
        }
    }

    func testPlanIsDeterministicAndTagsDiffer() throws {
        let a = TopologyPlan(try load("two-subnet")), b = TopologyPlan(try load("two-subnet"))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.tag, TopologyPlan.tag(for: "two-subnet"))
        XCTAssertEqual(a.tag.count, 4)
        XCTAssertNotEqual(TopologyPlan.tag(for: "two-subnet"), TopologyPlan.tag(for: "nat"))
        XCTAssertEqual(a.namespace(of: "front"), "edgemeter-two-subnet-front")
        XCTAssertEqual(a.fabric, "edgemeter-two-subnet.fabric")
    }

    func testReverseDeletesEverythingCreatedLastFirst() throws {
        for name in ["nat", "bridged", "two-subnet", "edge-cloud"] {
            let plan = TopologyPlan(try load(name))
            let created = plan.createdObjects
            let topo = plan.topology
            // One namespace per node plus the fabric; one host link per network with `host:`.
            XCTAssertEqual(created.filter { if case .namespace = $0 { return true }; return false }.count, topo.nodes.count + 1, name)
            XCTAssertEqual(created.filter { if case .hostLink = $0 { return true }; return false }.count,
                           topo.networks.filter { $0.hostAddress != nil }.count, name)
            let deleted = plan.teardown.map { $0.commandLine }
            XCTAssertEqual(deleted.count, created.count)
            for (step, object) in zip(deleted, created.reversed()) {
                switch object {
                case .namespace(let n): XCTAssertEqual(step, ["ip", "netns", "del", n])
                case .hostLink(let l): XCTAssertEqual(step, ["ip", "link", "del", l])
                case .container, .lxc: XCTFail("\(name) has no container nodes: \(object)")
                }
            }
            // Everything else the plan makes lives inside those namespaces or on those links.
            let nsNames = Set(created.map(\.name))
            for step in plan.steps where step.creates == nil {
                switch step.action {
                case .ip(let args, let ns):
                    if let ns { XCTAssertTrue(nsNames.contains(ns), "\(step)") } else {
                        XCTAssertTrue(args.contains { a in created.contains { $0 == .hostLink(a) } }, "a host-side step outside the lab's links: \(step)")
                    }
                case .exec(let ns, _): XCTAssertTrue(nsNames.contains(ns), "\(step)")
                case .startNode, .attachNamespace, .removeNode: XCTFail("\(name) has no container nodes: \(step)")
                }
            }
            // The fabric comes first and goes last.
            XCTAssertEqual(created.first, .namespace(plan.fabric))
            XCTAssertEqual(deleted.last, ["ip", "netns", "del", plan.fabric])
        }
    }

    func testTwoSubnetStepsRoutersNATFloatingAddressAndSecurityGroup() throws {
        let plan = TopologyPlan(try load("two-subnet"))
        let c = commands(plan)
        let f = plan.fabric, t = plan.tag
        XCTAssertTrue(c.contains("ip -n \(f) link add em-\(t)-n0 type bridge"), "\(c)")
        for i in 0..<3 { XCTAssertTrue(c.contains("ip -n \(f) link set em-\(t)-n\(i) type bridge nf_call_iptables 0")) }
        // The host joins ext (10.203.0.1/24) through its own link.
        XCTAssertTrue(c.contains("ip link add em-\(t)-h0 type veth peer name em-\(t)-x0 netns \(f)"))
        XCTAssertTrue(c.contains("ip addr add 10.203.0.1/24 dev em-\(t)-h0"))
        let rt1 = "edgemeter-two-subnet-rt1"
        XCTAssertTrue(c.contains("ip -n \(f) link add em-\(t)-0-0 type veth peer name eth0 netns \(rt1)"))
        XCTAssertTrue(c.contains("ip netns exec \(rt1) sysctl -q -w net.ipv4.ip_forward=1"))
        XCTAssertTrue(c.contains("ip netns exec \(rt1) sysctl -q -w net.ipv4.icmp_ratelimit=0"))
        XCTAssertFalse(c.contains("ip netns exec edgemeter-two-subnet-front sysctl -q -w net.ipv4.ip_forward=1"), "only routers forward")
        XCTAssertTrue(c.contains("ip netns exec \(rt1) iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE"))
        // The floating address is not rt1's own: rt1 answers for it on ext.
        XCTAssertTrue(c.contains("ip -n \(rt1) addr add 10.203.0.10/32 dev eth0"))
        XCTAssertTrue(c.contains("ip netns exec \(rt1) iptables -t nat -A PREROUTING -d 10.203.0.10/32 -p tcp --dport 50000 -j DNAT --to-destination 192.168.1.6:50000"))
        let allow = try XCTUnwrap(c.firstIndex(of: "ip netns exec \(rt1) iptables -A FORWARD -p tcp -d 192.168.1.6/32 --dport 50000 -j ACCEPT"))
        let drop = try XCTUnwrap(c.firstIndex(of: "ip netns exec \(rt1) iptables -A FORWARD -d 192.168.1.6/32 -j DROP"))
        XCTAssertLessThan(allow, drop, "filter rules keep their order")
        XCTAssertTrue(c.contains("ip -n edgemeter-two-subnet-front route add default via 192.168.1.1"))
        XCTAssertFalse(c.contains { $0.contains("edgemeter-two-subnet-front route add 192.168.2.0/24") }, "front must lack the route to Net2")
        // No step touches the host's iptables.
        XCTAssertFalse(c.contains { $0.hasPrefix("iptables") || $0.hasPrefix("ip iptables") })
        // A route comes after the addresses of its node.
        let addr = try XCTUnwrap(c.firstIndex(of: "ip -n edgemeter-two-subnet-sum addr add 192.168.2.1/24 dev eth0"))
        let route = try XCTUnwrap(c.firstIndex(of: "ip -n edgemeter-two-subnet-sum route add default via 192.168.2.254"))
        XCTAssertLessThan(addr, route)
    }

    func testNATForwardOnTheRoutersOwnAddressAddsNoAddress() throws {
        let plan = TopologyPlan(try load("nat"))
        let c = commands(plan)
        let host = "edgemeter-nat-host"
        XCTAssertTrue(c.contains("ip netns exec \(host) iptables -t nat -A PREROUTING -d 10.201.0.1/32 -p tcp --dport 1234 -j DNAT --to-destination 10.0.2.15:22"))
        XCTAssertFalse(c.contains { $0.contains("addr add 10.201.0.1/32") })
        XCTAssertTrue(c.contains("ip netns exec \(host) iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE"))
        // No network of nat declares `host:`: nothing in the host's namespace at all.
        XCTAssertTrue(plan.steps.allSatisfy { step in
            if case .ip(_, let ns) = step.action, ns == nil { return step.commandLine[1] == "netns" }
            return true
        })
    }

    func testGatewayIsTheRoutersAddressOnASharedNetwork() throws {
        let plan = TopologyPlan(try load("two-subnet"))
        let s = LabState(plan: plan)
        let front = try XCTUnwrap(s.node("front"))
        XCTAssertEqual(try LabExecutor.gateway("rt2", from: front, in: s), "192.168.1.254")
        XCTAssertEqual(try LabExecutor.gateway("192.168.1.254", from: front, in: s), "192.168.1.254")
        XCTAssertThrowsError(try LabExecutor.gateway("sum", from: front, in: s)) { e in
            XCTAssertTrue("\(e)".contains("shares no network with front"), "\(e)")
        }
        XCTAssertThrowsError(try LabExecutor.gateway("192.168.2.254", from: front, in: s))
        XCTAssertThrowsError(try LabExecutor.gateway("nope", from: front, in: s))
    }

    func testStateRoundTripsThroughJSON() throws {
        var s = LabState(plan: TopologyPlan(try load("two-subnet")))
        s.objects = [.namespace("edgemeter-two-subnet.fabric"), .hostLink("em-abcd-h0")]
        s.nodes[2].pid = 4242
        let data = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(LabState.self, from: data), s)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains(#"{"kind":"link","name":"em-abcd-h0"}"#) ||
                      String(decoding: data, as: UTF8.self).contains(#"{"name":"em-abcd-h0","kind":"link"}"#))
    }
}
