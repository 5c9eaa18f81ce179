import XCTest
import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterLab

/// Container, lxc and docker0 nodes without a host: the loader's new keys and errors, the plan's
/// steps for them, the state file and the reach probes. (The real thing: NodeKindsIntegrationTests.)
final class NodeKindsTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    static let mixed = """
        name: mix
        networks:
          - {name: lan, subnet: 10.233.0.0/24, host: 10.233.0.1}
        nodes:
          - name: n1
            interfaces: [{network: lan, address: 10.233.0.11}]
            workload: [busybox, httpd, -f, -p, "8081"]
            ports: [8081]
          - name: c1
            kind: container
            interfaces: [{network: lan, address: 10.233.0.12}]
            routes: [{to: default, via: 10.233.0.1}]
            workload: [httpd, -f, -p, "8082", -h, /]
            ports: [8082]
          - name: l1
            kind: lxc
            interfaces: [{network: lan, address: 10.233.0.13}]
            workload: [httpd, -f, -p, "8083", -h, /]
            ports: [8083]
        """

    func docker0() throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/docker0.yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: "docker0.yaml")
    }

    func testLoaderReadsDockerNetworksAndContainerNodes() throws {
        let t = try docker0()
        let net = try XCTUnwrap(t.network("docker0"))
        XCTAssertEqual(net.docker, .bridge)
        XCTAssertTrue(net.isDocker)
        XCTAssertNil(net.hostAddress)
        for name in ["c1", "c2"] {
            let n = try XCTUnwrap(t.node(name))
            XCTAssertEqual(n.kind, .container)
            XCTAssertEqual(n.interfaces.map(\.network), ["docker0"])
            XCTAssertNil(n.interfaces[0].address, "dockerd assigns it")
            XCTAssertEqual(n.ports, [8080])
        }
        let m = try TopologyLoader.load(yaml: Self.mixed, file: "mix.yaml")
        XCTAssertEqual(m.nodes.map(\.kind), [.netns, .container, .lxc])
        XCTAssertEqual(m.node("c1")?.address(on: "lan")?.description, "10.233.0.12")
    }

    /// testdata/invalid-nodes.yaml lists its expected errors; this pins the ones about node kinds
    /// and docker networks by content as well, so a rename of the file does not hide them.
    func testLoaderErrorsForDockerNetworksNameLineWhatIsWrongAndWhatToDo() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata", withExtension: nil))
        let text = try String(contentsOf: dir.appendingPathComponent("invalid-nodes.yaml"), encoding: .utf8)
        XCTAssertThrowsError(try TopologyLoader.load(yaml: text, file: "invalid-nodes.yaml")) { e in
            let s = "\(e)"
            for line in [
                "invalid-nodes.yaml:12: network \"d0\": `subnet` cannot be set on a docker network: dockerd chooses the subnet and the host is on it through docker0; remove `subnet`",
                "invalid-nodes.yaml:13: network \"d1\": `docker` must be `bridge` (dockerd's default network, docker0), got \"host\"",
                "invalid-nodes.yaml:14: network \"again\": dockerd's default bridge is already network \"d0\" (line 12); declare it once",
                "invalid-nodes.yaml:21: node \"c1\": the interface on the docker network \"d0\" must be the node's first (dockerd makes it eth0); move it to the top of `interfaces`",
                "invalid-nodes.yaml:25: node \"c2\": dockerd assigns addresses on \"d0\"; remove `address` (reach names the node instead of its address)",
                "invalid-nodes.yaml:25: node \"c2\": links on the docker network \"d0\" cannot be impaired; remove `impair`",
                "invalid-nodes.yaml:28: node \"n1\": only container nodes can join the docker network \"d0\"; make it `kind: container` or attach it to a lab network",
                "invalid-nodes.yaml:31: node \"l1\": lxc nodes are made from LXC's busybox template, which takes no image; remove `image`",
            ] {
                XCTAssertTrue(s.contains(line), "missing: \(line)\nin:\n\(s)")
            }
        }
    }

    func testContainerAndLXCNodesStartWithoutNetworkThenTheirNamespaceIsAttachedAndWiredAsANetnsNode() throws {
        let plan = TopologyPlan(try TopologyLoader.load(yaml: Self.mixed, file: "mix.yaml"))
        let cmds = plan.steps.map { $0.commandLine.joined(separator: " ") }
        // A netns node gets `netns add`; container and lxc nodes do not.
        XCTAssertTrue(cmds.contains("ip netns add edgemeter-mix-n1"))
        XCTAssertFalse(cmds.contains("ip netns add edgemeter-mix-c1"))
        XCTAssertFalse(cmds.contains("ip netns add edgemeter-mix-l1"))
        // The container step, then the attach, each recording its object before it runs.
        let start = try XCTUnwrap(plan.steps.firstIndex { if case .startNode(let l) = $0.action { return l.node == "c1" }; return false })
        guard case .startNode(let l) = plan.steps[start].action else { return XCTFail() }
        XCTAssertEqual(l.engine, .docker)
        XCTAssertEqual(l.name, "edgemeter-mix-c1")
        XCTAssertEqual(l.image, "edgemeter-base:latest")
        XCTAssertEqual(l.networkMode, "none")
        XCTAssertEqual(l.labels, ["edgemeter": "lab", "edgemeter.topology": "mix", "edgemeter.node": "c1"])
        XCTAssertEqual(l.dockerCommand, ["/bin/sh", "-c", TopologyPlan.NodeLaunch.waitScript, "sh", "httpd", "-f", "-p", "8082", "-h", "/"])
        XCTAssertEqual(plan.steps[start].creates, .container("edgemeter-mix-c1"))
        XCTAssertEqual(plan.steps[start + 1].action, .attachNamespace(netns: "edgemeter-mix-c1", engine: .docker, container: "edgemeter-mix-c1"))
        XCTAssertEqual(plan.steps[start + 1].creates, .namespace("edgemeter-mix-c1"))
        // After the attach, the same wiring as a netns node: veth into the namespace, address, up, route.
        let after = cmds[(start + 2)...].joined(separator: "\n")
        XCTAssertTrue(after.contains("ip -n edgemeter-mix.fabric link add em-\(plan.tag)-1-0 type veth peer name eth0 netns edgemeter-mix-c1"), after)
        XCTAssertTrue(after.contains("ip -n edgemeter-mix-c1 addr add 10.233.0.12/24 dev eth0"), after)
        XCTAssertTrue(after.contains("ip -n edgemeter-mix-c1 route add default via 10.233.0.1"), after)
        // lxc: the same two steps with the lxc engine.
        let lxc = try XCTUnwrap(plan.steps.firstIndex { $0.creates == .lxc("edgemeter-mix-l1") })
        guard case .startNode(let ll) = plan.steps[lxc].action else { return XCTFail() }
        XCTAssertEqual(ll.engine, .lxc)
        XCTAssertNil(ll.image)
        XCTAssertEqual(plan.steps[lxc + 1].action, .attachNamespace(netns: "edgemeter-mix-l1", engine: .lxc, container: "edgemeter-mix-l1"))
        // Teardown: the attach name goes before its container (the executor removes containers first anyway).
        let down = plan.teardown.map { $0.commandLine.joined(separator: " ") }
        let nsDel = try XCTUnwrap(down.firstIndex(of: "ip netns del edgemeter-mix-c1"))
        let rm = try XCTUnwrap(down.firstIndex(of: "docker rm -f edgemeter-mix-c1"))
        XCTAssertLessThan(nsDel, rm)
        XCTAssertTrue(down.contains("lxc-stop -k -n edgemeter-mix-l1 && lxc-destroy -n edgemeter-mix-l1"))
        for o in plan.createdObjects { XCTAssertTrue(Names.isEdgemeterName(o.name), "\(o)") }
    }

    func testDocker0HasNoLabBridgeNoVethAndTheContainersJoinDockersDefaultNetwork() throws {
        let plan = TopologyPlan(try docker0())
        XCTAssertEqual(plan.interfaceNames, [], "no lab bridge, no veth: dockerd makes eth0")
        let cmds = plan.steps.map { $0.commandLine.joined(separator: " ") }
        XCTAssertFalse(cmds.contains { $0.contains("type bridge") || $0.contains("type veth") || $0.contains("addr add") }, "\(cmds)")
        let launches = plan.steps.compactMap { s -> TopologyPlan.NodeLaunch? in if case .startNode(let l) = s.action { return l }; return nil }
        XCTAssertEqual(launches.map(\.networkMode), ["bridge", "bridge"])
        XCTAssertEqual(plan.createdObjects, [.namespace("edgemeter-docker0.fabric"),
                                            .container("edgemeter-docker0-c1"), .namespace("edgemeter-docker0-c1"),
                                            .container("edgemeter-docker0-c2"), .namespace("edgemeter-docker0-c2")])
        let ports = plan.ports(of: try XCTUnwrap(plan.topology.node("c1")))
        XCTAssertEqual(ports.map(\.device), ["eth0"])
        XCTAssertEqual(ports.map(\.isDocker), [true])
    }

    func testStateRecordsContainersAndDocker0AsTheHostLinkAndRoundTrips() throws {
        let plan = TopologyPlan(try docker0())
        var s = LabState(plan: plan)
        XCTAssertEqual(s.networks.map(\.hostLink), ["docker0"])
        XCTAssertEqual(s.hostLinks, ["docker0"], "reach from the host: docker0 counts as the lab's link for this topology")
        XCTAssertEqual(s.node("c1")?.engine, "docker")
        XCTAssertEqual(s.node("c1")?.container, "edgemeter-docker0-c1")
        s.objects = plan.createdObjects + [.lxc("edgemeter-docker0-x")]
        s.nodes[0].interfaces[0].address = "172.17.0.2"
        let data = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(LabState.self, from: data), s)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains(#""kind":"container""#) && text.contains(#""kind":"lxc""#), text)
        // A state file written before these fields existed still reads.
        let old = #"{"topology":"t","file":"t.yaml","tag":"abcd","fabric":"edgemeter-t.fabric","status":"up","started":"x","objects":[{"kind":"namespace","name":"edgemeter-t-a"}],"networks":[{"name":"n","subnet":"10.1.0.0/24","bridge":"em-abcd-n0"}],"nodes":[{"name":"a","kind":"netns","namespace":"edgemeter-t-a","interfaces":[{"network":"n","device":"eth0","bridgePort":"em-abcd-0-0","address":"10.1.0.2","prefixLength":24}],"workload":[],"ports":[]}]}"#
        let decoded = try JSONDecoder().decode(LabState.self, from: Data(old.utf8))
        XCTAssertNil(decoded.nodes[0].engine)
        XCTAssertFalse(decoded.nodes[0].interfaces[0].isDocker)
    }

    func testReachNamesDockerAssignedTargetsByNodeSoTheMatrixDoesNotDependOnTheAddress() throws {
        let t = try docker0()
        var s = LabState(plan: TopologyPlan(t))
        s.nodes[0].interfaces[0].address = "172.17.0.2"
        s.nodes[1].interfaces[0].address = "172.17.0.3"
        let probes = ReachPlan.probes(state: s, topology: t)
        XCTAssertEqual(probes.map { "\($0.from),\($0.to),\($0.probe)" }, [
            "(host),c1,icmp c1", "(host),c1,tcp c1:8080", "(host),c2,icmp c2", "(host),c2,tcp c2:8080",
            "c1,c2,icmp c2", "c1,c2,tcp c2:8080", "c2,c1,icmp c1", "c2,c1,tcp c1:8080",
        ])
        XCTAssertEqual(probes.first { $0.to == "c2" }?.address, "172.17.0.3", "sent to the address dockerd assigned")
        // The shipped expectation lists exactly these probes.
        let csv = try String(contentsOf: root.appendingPathComponent("benchmarks/topologies/expected/docker0.csv"), encoding: .utf8)
        let e = try ReachExpectation.parse(csv, file: "docker0.csv")
        XCTAssertEqual(Set(e.rows.keys), Set(probes.map(\.key)))
        XCTAssertTrue(e.rows.values.allSatisfy { $0 })
    }

    func testLXCInitWaitsForTheGoFileThenExecsTheWorkloadAndConfigHasNoNetwork() {
        let script = LabExecutor.lxcInitScript(workload: ["edgemeter", "serve", "calculator", "--role", "it's"])
        XCTAssertEqual(script, "#!/bin/sh\nexec >/edgemeter.log 2>&1\nset -- '/usr/local/bin/edgemeter' 'serve' 'calculator' '--role' 'it'\\''s'\n"
            + TopologyPlan.NodeLaunch.waitScript + "\n")
        XCTAssertTrue(TopologyPlan.NodeLaunch.waitScript.hasPrefix("while [ ! -e /edgemeter-go ]"))
        let template = """
            lxc.net.0.type = veth
            lxc.net.0.link = lxcbr0
            lxc.net.0.flags = up
            lxc.rootfs.path = dir:/var/lib/lxc/x/rootfs
            lxc.mount.entry = /lib lib none ro,bind 0 0
            """
        let c = LabExecutor.lxcConfig(template: template, binary: "/b/edgemeter", libraryDirectories: ["/opt/swift/usr/lib/swift/linux"])
        XCTAssertFalse(c.contains("veth") || c.contains("lxcbr0"), c)
        XCTAssertTrue(c.contains("lxc.net.0.type = empty\n"), c)
        XCTAssertTrue(c.contains("lxc.init.cmd = /edgemeter-node\n"), c)
        XCTAssertTrue(c.contains("lxc.mount.entry = /b/edgemeter usr/local/bin/edgemeter none ro,bind,create=file 0 0\n"), c)
        XCTAssertTrue(c.contains("lxc.mount.entry = /opt/swift/usr/lib/swift/linux opt/swift/usr/lib/swift/linux none ro,bind,create=dir,optional 0 0\n"), c)
        XCTAssertTrue(c.contains("lxc.rootfs.path = dir:/var/lib/lxc/x/rootfs"), c)
    }

    func testDockerLogFramesAreDemultiplexed() {
        let frame: (UInt8, String) -> [UInt8] = { stream, text in
            let b = Array(text.utf8)
            return [stream, 0, 0, 0, 0, 0, UInt8(b.count >> 8), UInt8(b.count & 0xff)] + b
        }
        XCTAssertEqual(LabExecutor.demultiplex(frame(1, "listening\n") + frame(2, "bind: in use\n")), "listening\nbind: in use\n")
        XCTAssertEqual(LabExecutor.demultiplex(Array("plain".utf8)), "plain", "a TTY log has no frames")
    }

    static let vm = """
        name: vmx
        networks:
          - {name: lan, subnet: 10.237.0.0/24, host: 10.237.0.1}
        nodes:
          - name: n1
            interfaces: [{network: lan, address: 10.237.0.11}]
          - name: v1
            kind: vm
            interfaces: [{network: lan, address: 10.237.0.12}]
            routes: [{to: default, via: 10.237.0.1}]
            workload: [httpd, -f, -p, "8080", -h, /]
            ports: [8080]
        """

    func testVMGuestOwnsTheAddressBehindBr0AndTap0AndGetsTheRoutesInItsInit() throws {
        let plan = TopologyPlan(try TopologyLoader.load(yaml: Self.vm, file: "vmx.yaml"))
        let cmds = plan.steps.map { $0.commandLine.joined(separator: " ") }
        let ns = "edgemeter-vmx-v1"
        XCTAssertTrue(cmds.contains("ip netns add \(ns)"))
        XCTAssertFalse(cmds.contains { $0.hasPrefix("ip -n \(ns) addr add") }, "the namespace holds no address: the guest does")
        XCTAssertFalse(cmds.contains { $0.hasPrefix("ip -n \(ns) route") }, "routes are the guest's")
        for c in ["ip -n \(ns) link add br0 type bridge", "ip -n \(ns) link set eth0 master br0", "ip -n \(ns) tuntap add dev tap0 mode tap",
                  "ip -n \(ns) link set tap0 master br0 up", "ip -n \(ns) link set br0 up"] {
            XCTAssertTrue(cmds.contains(c), "missing \(c) in \(cmds)")
        }
        let initScript = LabExecutor.vmInitScript(address: "10.237.0.12", prefixLength: 24, routes: [(to: "default", via: "10.237.0.1")],
                                                  workload: ["httpd", "-f", "-p", "8080", "-h", "/"], ports: [8080])
        XCTAssertTrue(initScript.contains("ip addr add 10.237.0.12/24 dev eth0\nip route add default via 10.237.0.1\n'httpd' '-f' '-p' '8080' '-h' '/' &\n"), initScript)
        XCTAssertTrue(initScript.contains("grep -q ':8080 '"), "the marker waits for the port: \(initScript)")
        XCTAssertTrue(initScript.hasSuffix("echo edgemeter-vm-ready\nwhile :; do sleep 3600; done\n"), initScript)
    }

    func testVMNodesTakeOneInterfaceBusyboxWorkloadsAndNoImage() {
        let yaml = """
            name: k
            networks: [{name: a, subnet: 10.9.0.0/24}, {name: b, subnet: 10.10.0.0/24}]
            nodes:
              - name: v1
                kind: vm
                image: debian
                interfaces: [{network: a, address: 10.9.0.2}, {network: b, address: 10.10.0.2}]
                workload: [edgemeter, serve, calculator]
            """
        XCTAssertThrowsError(try TopologyLoader.load(yaml: yaml, file: "k.yaml")) { e in
            XCTAssertEqual("\(e)", """
                k.yaml:6: node "v1": a vm node boots the cached kernel with a busybox initramfs and takes no `image`; remove it
                k.yaml:7: node "v1": a vm node has one interface (its guest's eth0); give it one network, or use a router to join more
                k.yaml:8: node "v1": a vm's guest runs busybox only; its workload must be a busybox command such as [httpd, -f, -p, "8080"], not edgemeter
                """)
        }
    }
}
