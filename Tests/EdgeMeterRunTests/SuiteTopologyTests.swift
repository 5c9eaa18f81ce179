import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// Topologies in suites: the loader's checks of `topology:`, `from:` and node names (no root
/// needed), and real runs of `edgemeter run` on two-subnet and edge-cloud (root, ip, iptables):
/// reach before and after the route against the shipped matrices, http to `front` by name through
/// the floating IP, tcping from inside `vehicle`, a target whose route leaves the lab (not probed,
/// nothing sent), and nothing left behind (`edgemeter lab inventory` before = after).
final class SuiteTopologyTests: BinaryTestCase {
    var root: URL { packageRoot() }

    func load(_ yaml: String, file: String = "t.yaml") throws -> Suite {
        try SuiteTopologies.load(yaml: yaml, file: root.appendingPathComponent("benchmarks/suites/\(file)").path)
    }

    func problems(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml)
            return []
        } catch let e as SuiteErrors {
            return e.problems.map { "\($0.line): \($0.message)" }
        } catch {
            return ["\(error)"]
        }
    }

    func testLoaderChecksTopologiesAndNodeNamesWithTheirLines() throws {
        let bad = """
            name: t
            topology: two-subnt
            scenarios:
              - name: a
                kind: ping
                topology: edge-cloud
                from: vehicel
                targets: [node_1, nod_2, 10.204.0.3]
                count: 1
              - name: b
                kind: http
                topology: two-subnet
                url: http://fornt:50000/calculate
                count: 1
              - name: c
                kind: load
                topology: two-subnet
                from: front
                url: http://front:50000/
                duration: 1s
              - name: e
                kind: reach
                topology: two-subnet
                routes: ["frnt 192.168.2.0/24 via rt2", "front 192.168.2.0/24 rt2"]
            """
        let p = problems(bad)
        print(p.joined(separator: "\n"))
        XCTAssertTrue(p.contains { $0.hasPrefix("2: `topology`: no built-in topology named two-subnt (did you mean `two-subnet`?)") }, "\(p)")
        XCTAssertTrue(p.contains("7: scenario \"a\": `from` `vehicel` is not a node of topology edge-cloud (did you mean `vehicle`?); its nodes: vehicle, node_1, node_2, node_3, cloud"), "\(p)")
        XCTAssertTrue(p.contains { $0.hasPrefix("8: scenario \"a\": target `nod_2` is not a node of topology edge-cloud (did you mean `node_2`?)") }, "\(p)")
        XCTAssertTrue(p.contains { $0.hasPrefix("13: scenario \"b\": the URL's host `fornt` is not a node of topology two-subnet (did you mean `front`?)") }, "\(p)")
        XCTAssertTrue(p.contains { $0.hasPrefix("18: scenario \"c\": kind load runs from the host only (`from` works for calc, http, ping, tcping)") }, "\(p)")
        XCTAssertTrue(p.contains { $0.hasPrefix("24: scenario \"e\": the route's node `frnt` is not a node of topology two-subnet") }, "\(p)")
        XCTAssertTrue(p.contains { $0.hasPrefix("24: scenario \"e\": route \"front 192.168.2.0/24 rt2\" must read `NODE PREFIX via ROUTER`") }, "\(p)")
        // The suite-level topology is reported once, on its own line, not again for each scenario.
        XCTAssertEqual(p.filter { $0.contains("two-subnt") }.count, 1, "\(p)")
        XCTAssertEqual(p.count, 7, "\(p)")
        // The map form of a route needs node, to and via.
        let badMap = problems("name: t\nscenarios:\n  - name: r\n    kind: reach\n    topology: two-subnet\n    routes: [{node: front, to: 192.168.2.0/24}]\n")
        XCTAssertEqual(badMap, ["6: scenario \"r\": `routes` must be a list of routes such as {node: front, to: 192.168.2.0/24, via: rt2}, got a list"])
        // `from` outside any topology.
        let noTopology = problems("name: t\nscenarios:\n  - name: d\n    kind: ping\n    from: vehicle\n    targets: [127.0.0.1]\n    count: 1\n")
        XCTAssertEqual(noTopology, ["5: scenario \"d\": `from` names a node of a lab topology: give the scenario (or the suite) a `topology: NAME`"])

        // The same scenarios with the right names load, and the lab suite itself is valid.
        let good = try load("""
            name: t
            topology: two-subnet
            scenarios:
              - name: a
                kind: ping
                topology: edge-cloud
                from: vehicle
                targets: [node_1, 10.204.0.3]
                count: 1
              - name: b
                kind: http
                url: http://front:50000/calculate
                count: 1
            """)
        XCTAssertEqual(good.topology, "two-subnet")
        XCTAssertEqual(good.topology(of: good.scenarios[0]), "edge-cloud")
        XCTAssertEqual(good.topology(of: good.scenarios[1]), "two-subnet")
        let lab = try String(contentsOf: root.appendingPathComponent("benchmarks/suites/lab.yaml"), encoding: .utf8)
        let suite = try SuiteTopologies.load(yaml: lab, file: root.appendingPathComponent("benchmarks/suites/lab.yaml").path)
        XCTAssertTrue(suite.scenarios.contains { $0.kind == "reach" && $0.string("topology") == "two-subnet" })
    }

    func testNodeReferenceParsing() {
        XCTAssertEqual(NodeReference.host(ofTarget: "front:50000"), "front")
        XCTAssertEqual(NodeReference.port(ofTarget: "front:50000"), 50000)
        XCTAssertEqual(NodeReference.host(ofTarget: "node_1"), "node_1")
        XCTAssertNil(NodeReference.port(ofTarget: "node_1"))
        XCTAssertNil(NodeReference.host(ofTarget: "[::1]:80"))
        XCTAssertEqual(NodeReference.host(ofURL: "http://front:50000/calculate"), "front")
        XCTAssertEqual(NodeReference.port(ofURL: "http://front/x"), 80)
        XCTAssertEqual(NodeReference.replacingHost(ofURL: "http://front:50000/calculate?a=1", with: "10.203.0.10", port: 50000),
                       "http://10.203.0.10:50000/calculate?a=1")
        XCTAssertTrue(NodeReference.isLiteral("10.204.0.1"))
        XCTAssertFalse(NodeReference.isLiteral("node_1"))
        XCTAssertFalse(NodeReference.isLiteral("1.2.3"))
    }

    // MARK: real runs

    func inventory() throws -> [String] {
        let r = try runCommand(bin, ["lab", "inventory"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// A topology's tag in link names (as `TopologyPlan` makes it: FNV-1a of the name, folded to 16 bits).
    func tag(_ name: String) -> String {
        var h: UInt32 = 0x811c_9dc5
        for b in name.utf8 { h ^= UInt32(b); h = h &* 0x0100_0193 }
        let hex = String((h >> 16) ^ (h & 0xffff), radix: 16)
        return String(repeating: "0", count: 4 - hex.count) + hex
    }

    func testTwoSubnetAndEdgeCloudSuite() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard which("iptables") != nil else { throw XCTSkip("two-subnet's routers need iptables inside their namespaces: apt-get install iptables") }
        // A topology that is up belongs to another run on this host: never take it down from here.
        for name in ["two-subnet", "edge-cloud"] where FileManager.default.fileExists(atPath: "/run/edgemeter/lab/\(name).json") {
            throw XCTSkip("\(name) is up already (another run uses it; `edgemeter lab status`); this test needs it free")
        }
        let expected = root.appendingPathComponent("benchmarks/topologies/expected").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let suiteFile = out + "/topo.yaml"
        try """
            name: topo
            topology: two-subnet
            scenarios:
              - name: reach-before
                kind: reach
                topology: two-subnet
                expect: \(expected)/two-subnet-before.csv
              - name: reach-after
                kind: reach
                topology: two-subnet
                routes: [{node: front, to: 192.168.2.0/24, via: rt2}]
                expect: \(expected)/two-subnet-after.csv
              - name: reach-mismatch
                kind: reach
                topology: two-subnet
                expect: \(expected)/two-subnet-before.csv
              - name: front-http
                kind: http
                url: http://front:50000/calculate
                body: "(5+6)*2"
                expect_status: 200
                expect_body: '"result":22'
                count: 5
                interval: 20ms
              - name: front-ping-leaves
                kind: ping
                targets: [front]
                count: 3
                interval: 20ms
              - name: vehicle-tcping
                kind: tcping
                topology: edge-cloud
                from: vehicle
                targets: [node_1]
                listener: true
                count: 5
                interval: 20ms
              - name: vehicle-ping
                kind: ping
                topology: edge-cloud
                from: vehicle
                targets: [node_1, cloud]
                count: 3
                interval: 20ms
            """.write(toFile: suiteFile, atomically: true, encoding: .utf8)
        let before = try inventory()
        let runDir = out + "/run"
        let r = try runCommand(bin, ["run", suiteFile, "--out", runDir], timeout: 300)
        print(r.stderr)
        let after = try inventory()
        // Other engineers' runs may change the shared host meanwhile: the whole diff is printed, and
        // what this suite could have made (its topologies' names, tags, subnets, workloads) must match.
        let gone = Set(before).subtracting(after).sorted(), added = Set(after).subtracting(before).sorted()
        if gone.isEmpty && added.isEmpty { print("lab inventory: identical before and after (\(before.count) lines)") }
        else { print("lab inventory diff (whole host):\n- \(gone)\n+ \(added)") }
        let ours = ["two-subnet", "edge-cloud", "em-\(tag("two-subnet"))", "em-\(tag("edge-cloud"))", "10.203.", "10.204.", "192.168.2.", "serve calculator"]
        XCTAssertEqual(after.filter { e in ours.contains { e.contains($0) } }, before.filter { e in ours.contains { e.contains($0) } },
                       "left behind by the suite: \(added); gone: \(gone)")
        // Exit 1: reach-mismatch differs and front-ping-leaves was not probed; everything else succeeded.
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)

        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/run.json"))) as? [String: Any])
        let notes = (info["scenario_notes"] as? [[String: Any]] ?? []).map { ($0["scenario"] as? String ?? "", $0["status"] as? String ?? "", $0["reason"] as? String ?? "") }
        XCTAssertEqual(Set(notes.filter { $0.1 != "lab" }.map(\.0)), ["reach-mismatch", "front-ping-leaves"], "\(notes)")
        // Provenance in run.json: every scenario names its topology and source.
        XCTAssertTrue(notes.contains { $0.0 == "reach-before" && $0.1 == "lab" && $0.2.hasPrefix("topology two-subnet (") && $0.2.contains("brought up for it in") })
        XCTAssertTrue(notes.contains { $0.0 == "front-http" && $0.1 == "lab" && $0.2.contains("bring-up shared with reach-before") && $0.2.hasSuffix("runs from the host") })
        XCTAssertTrue(notes.contains { $0.0 == "vehicle-tcping" && $0.1 == "lab" && $0.2.hasPrefix("topology edge-cloud (") && $0.2.hasSuffix("runs from node vehicle") })
        XCTAssertTrue(notes.contains { $0.0 == "reach-mismatch" && $0.1 == "failed" && $0.2.contains("difference(s) from") }, "\(notes)")
        XCTAssertTrue(notes.contains { $0.0 == "front-ping-leaves" && $0.1 == "not run" && $0.2.contains("not probed: the route leaves the lab") }, "\(notes)")

        let all = try samples(runDir)
        // Not probed: one route sample saying so, and no echo was sent.
        let leaves = all.filter { $0.scenario == "front-ping-leaves" }
        XCTAssertEqual(leaves.map(\.phase), ["route"], "\(leaves)")
        XCTAssertTrue(leaves.allSatisfy { $0.status == .error && $0.reason.hasPrefix("not probed: the route leaves the lab") }, "\(leaves)")

        // http to `front` by name: from the host through RT1's floating IP.
        let http = all.filter { $0.scenario == "front-http" && $0.phase == "total" }
        XCTAssertEqual(http.count, 5, "\(all.filter { $0.scenario == "front-http" })")
        XCTAssertTrue(http.allSatisfy { $0.status == .ok }, "\(http.map(\.reason))")
        for s in http {
            XCTAssertEqual(s.labels["topology"], "two-subnet")
            XCTAssertEqual(s.labels["from"], "(host)")
            XCTAssertEqual(s.labels["to"], "front")
            XCTAssertEqual(s.labels["to_address"], "10.203.0.10:50000")
            XCTAssertEqual(s.labels["via"], "rt1")
            XCTAssertTrue(s.target.contains("front"), s.target)
        }

        // tcping from inside vehicle to a listener inside node_1 (the host has no route to
        // 10.204.0.0/24, so these connects can only have come from the vehicle's namespace).
        let tcp = all.filter { $0.scenario == "vehicle-tcping" && $0.phase == "connect" }
        XCTAssertEqual(tcp.count, 5, "\(all.filter { $0.scenario == "vehicle-tcping" })")
        XCTAssertTrue(tcp.allSatisfy { $0.status == .ok }, "\(tcp.map(\.reason))")
        for s in tcp {
            XCTAssertEqual(s.target, "node_1")
            XCTAssertEqual(s.labels["topology"], "edge-cloud")
            XCTAssertEqual(s.labels["from"], "vehicle")
            XCTAssertEqual(s.labels["to"], "node_1")
            XCTAssertTrue(s.labels["address"]?.hasPrefix("10.204.0.1:") ?? false, "\(s.labels)")
        }
        let echo = all.filter { $0.scenario == "vehicle-ping" && $0.phase == "echo" }
        XCTAssertEqual(Dictionary(grouping: echo, by: \.target).mapValues { $0.filter { $0.status == .ok }.count }, ["node_1": 3, "cloud": 3])

        // The matrices and summary.md's sections.
        for name in ["reach-before", "reach-after", "reach-mismatch"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(runDir)/reach-\(name).csv"), name)
        }
        let md = try String(contentsOfFile: runDir + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("## Reachability: reach-before (topology two-subnet)"), md)
        XCTAssertTrue(md.contains("Matches \(expected)/two-subnet-after.csv"), md)
        XCTAssertTrue(md.contains("difference(s) from \(expected)/two-subnet-before.csv"), md)
        XCTAssertTrue(md.contains("from front to sum icmp 192.168.2.1: expected not reachable, got reachable"), md)
        XCTAssertTrue(md.contains("## Lab topologies"), md)
        // One bring-up of two-subnet shared by five scenarios, then edge-cloud.
        XCTAssertTrue(md.contains("| two-subnet | "), md)
        XCTAssertTrue(md.contains("reach-before, reach-after, reach-mismatch, front-http, front-ping-leaves"), md)
        XCTAssertTrue(md.contains("| edge-cloud | "), md)
        XCTAssertFalse(md.contains("still up"), md)
    }
}

extension SuiteTopologyTests {
    /// Ctrl-C in the middle of a scenario in a topology: the scenario stops, the rest are "not run",
    /// the topology still goes down (no namespace, no state file), exit 130.
    func testSIGINTTakesTheTopologyDown() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        let state = "/run/edgemeter/lab/edge-cloud.json"
        if FileManager.default.fileExists(atPath: state) {
            throw XCTSkip("edge-cloud is up already (another run uses it); this test needs it free")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let suiteFile = out + "/sigint.yaml"
        try """
            name: sigint
            topology: edge-cloud
            scenarios:
              - name: long-ping
                kind: ping
                from: vehicle
                targets: [node_1]
                count: 3000
                interval: 10ms
              - name: after
                kind: ping
                from: vehicle
                targets: [node_2]
                count: 3
            """.write(toFile: suiteFile, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["run", suiteFile, "--out", out + "/run"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && p.isRunning && !((try? String(contentsOfFile: out + "/run/samples.csv", encoding: .utf8))?.contains(",echo,") ?? false) {
            usleep(20_000)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: state), "edge-cloud must be up while long-ping runs")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state), "the state file must be gone: the topology went down")
        let ns = try runCommand("/usr/bin/env", ["ip", "netns", "list"]).stdout
        XCTAssertFalse(ns.contains("edgemeter-edge-cloud"), ns)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run/run.json"))) as? [String: Any])
        let notes = (info["scenario_notes"] as? [[String: Any]] ?? []).map { "\($0["scenario"] ?? ""): \($0["status"] ?? "")" }
        XCTAssertTrue(notes.contains("long-ping: interrupted"), "\(notes)")
        XCTAssertTrue(notes.contains("after: not run"), "\(notes)")
        let echoes = try samples(out + "/run").filter { $0.scenario == "long-ping" && $0.phase == "echo" }
        XCTAssertGreaterThan(echoes.count, 0)
        XCTAssertLessThan(echoes.count, 3000, "stopped early")
    }
}
