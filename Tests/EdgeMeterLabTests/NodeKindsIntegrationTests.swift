import XCTest
import EdgeMeterSystem
import EdgeMeterTestSupport
@testable import EdgeMeterLab

/// Container and lxc nodes for real (dockerd, LXC), through the CLI: `lab up`, `reach --expect`,
/// `lab down`, and the host's inventory before and after (also after a SIGKILL of `lab up` while a
/// container is being made, then `edgemeter cleanup`). Traffic goes only to the lab's own
/// addresses: the host probes through its own lab link, or docker0 for the docker0 topology,
/// whose containers this run created.
final class NodeKindsIntegrationTests: XCTestCase {
    let stateDir = "/run/edgemeter/lab"
    var bin = ""

    override func setUpWithError() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard which("busybox") != nil, which("ping") != nil else { throw XCTSkip("needs busybox and ping: apt-get install busybox iputils-ping") }
        guard let b = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        bin = b
    }

    /// Skips unless dockerd answers and has edgemeter-base:latest.
    func requireDocker() throws {
        guard FileManager.default.fileExists(atPath: "/var/run/docker.sock"), which("docker") != nil else {
            throw XCTSkip("container nodes need dockerd on /var/run/docker.sock: run scripts/setup-engines.sh")
        }
        let r = try runCommand("/usr/bin/env", ["docker", "image", "inspect", "edgemeter-base:latest"], timeout: 30)
        if r.status != 0 { throw XCTSkip("container nodes run edgemeter-base:latest, which dockerd does not have: `edgemeter image build` (scripts/setup-engines.sh)") }
    }

    func requireLXC() throws {
        guard which("lxc-create") != nil, FileManager.default.fileExists(atPath: "/usr/share/lxc/templates/lxc-busybox") else {
            throw XCTSkip("lxc nodes need LXC and its busybox template: apt-get install lxc busybox-static (scripts/setup.sh)")
        }
    }

    @discardableResult
    func edgemeter(_ args: [String], timeout: TimeInterval = 120) throws -> EdgeMeterTestSupport.CommandResult {
        let r = try runCommand(bin, args, timeout: timeout)
        print("$ edgemeter \(args.joined(separator: " ")) -> \(r.status)\n\(r.stdout)\(r.stderr)")
        return r
    }

    func snapshot() async -> HostInventory { await HostInventory.collect(binary: bin) }

    /// The inventory differences that concern topology `topo` (its names, tag, state files, its
    /// containers, this binary's processes); other users of the host are printed, not compared.
    func leftovers(_ before: HostInventory, _ topo: String, _ when: String) async -> [String] {
        let tag = TopologyPlan.tag(for: topo)
        let all = HostInventory.diff(before, await snapshot()).filter { !$0.hasPrefix("not checked") }
        if !all.isEmpty { print("inventory diff \(when) (all):\n  " + all.joined(separator: "\n  ")) }
        return all.filter { line in
            let entry = ["left behind: ", "gone: "].first { line.hasPrefix($0) }.map { String(line.dropFirst($0.count)) } ?? line
            let words = entry.split(separator: " ", maxSplits: 1).map(String.init)
            guard words.count == 2 else { return true }
            switch words[0] {
            case "netns", "link", "bridge", "docker", "lxc": return words[1].hasPrefix("edgemeter-\(topo)") || words[1].hasPrefix("em-\(tag)")
            case "qemu": return words[1].contains("edgemeter-\(topo)")
            case "file": return words[1].hasPrefix("\(stateDir)/\(topo).")
            case "process": return true
            default: return false
            }
        }
    }

    func downIfUp(_ topo: String) throws {
        if FileManager.default.fileExists(atPath: "\(stateDir)/\(topo).json") { try edgemeter(["lab", "down", topo]) }
    }

    func write(_ yaml: String, _ name: String, ext: String = "yaml") throws -> String {
        let file = NSTemporaryDirectory() + "\(name)-\(getpid()).\(ext)"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// One netns, one container and one lxc node on one network with the host: every node reaches
    /// every other by ICMP and TCP to its workload's port, and the host reaches all three.
    func testNetnsContainerAndLXCNodesOnOneNetworkReachEachOtherAndLeaveNothing() async throws {
        try requireDocker()
        try requireLXC()
        let topo = "mix"
        try downIfUp(topo)
        let file = try write(NodeKindsTests.mixed, "mix")
        defer { try? FileManager.default.removeItem(atPath: file) }
        var expected = "from,to,probe,reachable\n"
        let nodes = [("n1", "10.233.0.11", 8081), ("c1", "10.233.0.12", 8082), ("l1", "10.233.0.13", 8083)]
        for (from, _, _) in nodes + [("(host)", "", 0)] {
            for (to, addr, port) in nodes where to != from {
                expected += "\(from),\(to),icmp \(addr),yes\n\(from),\(to),tcp \(addr):\(port),yes\n"
            }
        }
        let expect = try write(expected, "mix-expected", ext: "csv")
        defer { try? FileManager.default.removeItem(atPath: expect) }
        let before = await snapshot()

        let up = try edgemeter(["lab", "up", file])
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { try downIfUp(topo); return }
        // The container and the lxc container exist, named after the node, and the node's
        // namespace is theirs: the workload's pid lives in it.
        let during = await leftovers(before, topo, "while up")
        XCTAssertTrue(during.contains("left behind: docker edgemeter-mix-c1"), "\(during)")
        XCTAssertTrue(during.contains("left behind: lxc edgemeter-mix-l1"), "\(during)")
        let s = try LabExecutor().state(topo)
        for name in ["c1", "l1"] {
            let n = try XCTUnwrap(s.node(name))
            let pid = try XCTUnwrap(n.pid)
            let pids = try runCommand("/usr/bin/env", ["ip", "netns", "pids", n.namespace]).stdout.split(separator: "\n").map(String.init)
            XCTAssertTrue(pids.contains(String(pid)), "\(name): pid \(pid) not in \(n.namespace): \(pids)")
            // The workload runs on the container's files, not the host's: the go file `lab up`
            // wrote through /proc/PID/root is in the container's root, not in the host's.
            XCTAssertTrue(FileManager.default.fileExists(atPath: "/proc/\(pid)/root/edgemeter-go"), "\(name): no go file in its root")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/edgemeter-go"), "\(name) shares the host's root")
        }
        let reach = try edgemeter(["reach", topo, "--expect", expect, "--out", NSTemporaryDirectory() + "reach-mix-\(getpid())"])
        XCTAssertEqual(reach.status, 0, reach.stdout + reach.stderr)
        XCTAssertTrue(reach.stdout.contains("18 probes as expected"), reach.stdout)

        let down = try edgemeter(["lab", "down", topo])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertTrue(down.stdout.contains("container edgemeter-mix-c1") && down.stdout.contains("lxc container edgemeter-mix-l1"), down.stdout)
        let left = await leftovers(before, topo, "after lab down")
        XCTAssertEqual(left, [])
    }

    /// A container whose workload cannot start: `lab up` fails quoting the container's own output
    /// (its log through the Engine API), undoes everything; a missing image is refused before building.
    func testAFailingContainerWorkloadIsQuotedAndAMissingImageRefusedNothingLeft() async throws {
        try requireDocker()
        let topo = "badc"
        try downIfUp(topo)
        let before = await snapshot()
        let file = try write("""
            name: badc
            networks: [{name: lan, subnet: 10.236.0.0/24}]
            nodes:
              - {name: c1, kind: container, interfaces: [{network: lan, address: 10.236.0.12}], workload: [nosuchprogram, --x], ports: [8080]}
            """, "badc")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try edgemeter(["lab", "up", file])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("node c1: its workload exited before port 8080 answered; its output: sh: exec: line 0: nosuchprogram: not found"), r.stderr)
        XCTAssertTrue(r.stderr.contains("(everything built so far was removed again)"), r.stderr)
        var left = await leftovers(before, topo, "after a failed workload")
        XCTAssertEqual(left, [])

        try "name: badc\nnetworks: [{name: lan, subnet: 10.236.0.0/24}]\nnodes:\n  - {name: c2, kind: container, image: \"nosuch:latest\", interfaces: [{network: lan, address: 10.236.0.13}]}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let img = try edgemeter(["lab", "up", file])
        XCTAssertEqual(img.status, 2)
        XCTAssertTrue(img.stderr.contains("image nosuch:latest is not in dockerd"), img.stderr)
        left = await leftovers(before, topo, "after a missing image")
        XCTAssertEqual(left, [])
    }

    /// The vm topology of this test: a netns node serving TCP 8081 and a vm node serving 8080. The
    /// guest has only its connected route (no default), so an address outside 10.237.0.0/24 has no
    /// route in it and nothing is sent there.
    static let vmReach = """
        name: vmx
        networks:
          - {name: lan, subnet: 10.237.0.0/24, host: 10.237.0.1}
        nodes:
          - name: n1
            interfaces: [{network: lan, address: 10.237.0.11}]
            workload: [busybox, httpd, -f, -p, "8081", -h, /]
            ports: [8081]
          - name: v1
            kind: vm
            interfaces: [{network: lan, address: 10.237.0.12}]
            workload: [httpd, -f, -p, "8080", -h, /]
            ports: [8080]
        """

    /// A vm node (QEMU TCG, busybox initramfs) next to a netns node: the guest owns its address,
    /// answers ICMP and TCP on its workload's port from the netns node and from the host; probes
    /// from the vm go through its command channel (ttyS1 on a unix socket): ICMP and TCP to the
    /// netns node are reachable, with the guest's ping RTT; an address with no route in the guest is
    /// "no route", a closed port "refused"; QEMU and the channel's socket go at `lab down`.
    func testVMNodeIsReachableAsATargetAndProbesFromItGoThroughItsCommandChannel() async throws {
        guard which("qemu-system-x86_64") != nil, FileManager.default.fileExists(atPath: "/var/cache/edgemeter/kernel/modules/e1000.ko"),
              which("cpio") != nil else {
            throw XCTSkip("vm nodes need qemu-system-x86_64, cpio and the guest kernel cache: scripts/setup-engines.sh")
        }
        let topo = "vmx"
        try downIfUp(topo)
        let file = try write(Self.vmReach, "vmx")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expect = try write("""
            from,to,probe,reachable
            (host),n1,icmp 10.237.0.11,yes
            (host),n1,tcp 10.237.0.11:8081,yes
            (host),v1,icmp 10.237.0.12,yes
            (host),v1,tcp 10.237.0.12:8080,yes
            n1,v1,icmp 10.237.0.12,yes
            n1,v1,tcp 10.237.0.12:8080,yes
            v1,n1,icmp 10.237.0.11,yes
            v1,n1,tcp 10.237.0.11:8081,yes
            """, "vmx-expected", ext: "csv")
        defer { try? FileManager.default.removeItem(atPath: expect) }
        let before = await snapshot()
        let up = try edgemeter(["lab", "up", file], timeout: 180)
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { try downIfUp(topo); return }
        let socket = LabExecutor.vmCommandSocket(logDirectory: LabExecutor().logDirectory(topo), node: "v1")
        XCTAssertTrue(FileManager.default.fileExists(atPath: socket), "QEMU serves the command channel on \(socket)")
        let during = await leftovers(before, topo, "while up")
        XCTAssertTrue(during.contains { $0.hasPrefix("left behind: qemu ") || $0.contains("qemu-system") }, "the guest's QEMU is seen: \(during)")
        let out = NSTemporaryDirectory() + "reach-vmx-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let reach = try edgemeter(["reach", topo, "--expect", expect, "--out", out])
        XCTAssertEqual(reach.status, 0, reach.stdout + reach.stderr)
        XCTAssertFalse(reach.stdout.contains("not probed"), reach.stdout)
        // The vm's ICMP cell carries the guest's own ping timing.
        let csv = (try? String(contentsOfFile: out + "/reach.csv", encoding: .utf8)) ?? ""
        let row = csv.split(separator: "\n").first { $0.hasPrefix("v1,n1,icmp 10.237.0.11,yes,,") }
        let rtt = row.flatMap { Double($0.split(separator: ",", omittingEmptySubsequences: false).last ?? "") }
        XCTAssertNotNil(rtt, "v1 → n1 icmp has an RTT in \(out)/reach.csv: \(csv)")
        XCTAssertGreaterThan(rtt ?? 0, 0)

        // Straight through the runner: no route in the guest for 10.238.0.9 (nothing is sent), and a
        // port nothing listens on in n1 is refused.
        let probes = [ReachProbe(from: "v1", to: "x", kind: .icmp, address: "10.238.0.9"),
                      ReachProbe(from: "v1", to: "x", kind: .tcp, address: "10.238.0.9", port: 80)]
        let closed = ReachProbe(from: "v1", to: "n1", kind: .tcp, address: "10.237.0.11", port: 8089)
        let results = ReachRunner().probeFromVM(socket: socket, pairs: [(address: "10.238.0.9", probes: probes), (address: "10.237.0.11", probes: [closed])])
        XCTAssertEqual(results.count, 3)
        for r in results where r.probe.address == "10.238.0.9" {
            XCTAssertEqual(r.outcome, "no route", "\(r)")
        }
        XCTAssertEqual(results.first { $0.probe == closed }?.outcome, "refused", "\(results)")

        let down = try edgemeter(["lab", "down", topo])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the command socket is removed at lab down")
        let left = await leftovers(before, topo, "after lab down")
        XCTAssertEqual(left, [])
    }

    func testDocker0ContainersReachableFromTheHostAndEachOther() async throws {
        try requireDocker()
        guard FileManager.default.fileExists(atPath: "/sys/class/net/docker0") else {
            throw XCTSkip("dockerd's default bridge docker0 is missing: restart dockerd (scripts/setup-engines.sh)")
        }
        let topo = "docker0"
        try downIfUp(topo)
        let root = packageRoot()
        let before = await snapshot()
        let up = try edgemeter(["lab", "up", root.appendingPathComponent("benchmarks/topologies/docker0.yaml").path])
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { try downIfUp(topo); return }
        let s = try LabExecutor().state(topo)
        let net = try XCTUnwrap(s.networks.first)
        XCTAssertEqual(net.hostLink, "docker0")
        let subnet = try XCTUnwrap(IPv4Prefix(net.subnet), "dockerd's subnet recorded: \(net.subnet)")
        for n in s.nodes {
            let a = try XCTUnwrap(IPv4Address(n.interfaces[0].address), "\(n.name): address recorded")
            XCTAssertTrue(subnet.contains(a), "\(a) in \(subnet)")
            // The host's route to it leads into docker0 (the one lab link of this topology).
            let route = try runCommand("/usr/bin/env", ["ip", "-o", "route", "get", a.description]).stdout
            XCTAssertTrue(route.contains("dev docker0"), route)
        }
        let expect = root.appendingPathComponent("benchmarks/topologies/expected/docker0.csv").path
        let reach = try edgemeter(["reach", topo, "--expect", expect, "--out", NSTemporaryDirectory() + "reach-docker0-\(getpid())"])
        XCTAssertEqual(reach.status, 0, reach.stdout + reach.stderr)
        XCTAssertTrue(reach.stdout.contains("8 probes as expected"), reach.stdout)
        let down = try edgemeter(["lab", "down", topo])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "/sys/class/net/docker0"), "docker0 is dockerd's: never deleted")
        let left = await leftovers(before, topo, "after lab down")
        XCTAssertEqual(left, [])
    }

    /// Waits (at most 3 minutes) until the host holds no other run's edgemeter objects (lab state
    /// files, namespaces, containers, lxc containers, QEMU guests): `edgemeter cleanup` removes every
    /// one of them, which would break another run on this host.
    func waitForAQuietHost(except topo: String) async throws {
        let deadline = Date().addingTimeInterval(180)
        var others: [String] = []
        repeat {
            let states = ((try? FileManager.default.contentsOfDirectory(atPath: stateDir)) ?? []).filter { !$0.hasPrefix("\(topo).") }
            let inv = await snapshot()
            others = states.map { "state file \($0)" } + inv.entries.filter { e in
                ["netns edgemeter-", "docker edgemeter-", "lxc edgemeter-", "qemu "].contains { e.hasPrefix($0) } && !e.contains("edgemeter-\(topo)")
            }
            if others.isEmpty { return }
            try await Task.sleep(for: .seconds(2))
        } while Date() < deadline
        throw XCTSkip("`edgemeter cleanup` would remove another run's objects on this host (\(others.joined(separator: ", "))); run this test when no other edgemeter run is active")
    }

    /// `lab up` killed while its container node is being created and started; `edgemeter cleanup`
    /// then removes the container, its namespace name and the rest.
    func testSIGKILLWhileAContainerNodeIsCreatedThenCleanupLeavesNothing() async throws {
        try requireDocker()
        try await waitForAQuietHost(except: "killc")
        let topo = "killc"
        try downIfUp(topo)
        let file = try write("""
            name: killc
            networks: [{name: lan, subnet: 10.234.0.0/24}]
            nodes:
              - {name: a, interfaces: [{network: lan, address: 10.234.0.2}]}
              - {name: c, kind: container, interfaces: [{network: lan, address: 10.234.0.3}], workload: [httpd, -f, -p, "8080", -h, /], ports: [8080]}
            """, "killc")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let before = await snapshot()
        // Objects: fabric, a's namespace, then c's container (recorded just before it is created).
        var killedMidCreate = false
        for extra: UInt32 in [0, 30_000, 120_000] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["lab", "up", file]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(30)
            var seen = 0
            while Date() < deadline && p.isRunning && seen < 3 {
                if let data = FileManager.default.contents(atPath: "\(stateDir)/\(topo).json"),
                   let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let objects = s["objects"] as? [Any] {
                    seen = objects.count
                }
                usleep(500)
            }
            if extra > 0 { usleep(extra) }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let moment = "SIGKILL at \(seen) objects + \(extra) µs"
            print(moment)
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "lab up finished before the kill (\(moment))")
            let mid = await leftovers(before, topo, "after \(moment)")
            XCTAssertFalse(mid.isEmpty, "the kill left nothing to clean (\(moment))")
            if mid.contains("left behind: docker edgemeter-killc-c") { killedMidCreate = true }
            let clean = try edgemeter(["cleanup"])
            XCTAssertEqual(clean.status, 0, clean.stderr)
            let left = await leftovers(before, topo, "after \(moment) and cleanup")
            XCTAssertEqual(left, [], moment)
        }
        XCTAssertTrue(killedMidCreate, "no kill came after the container existed: the test did not exercise container cleanup")
    }
}
