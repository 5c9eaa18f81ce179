import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// Real `edgemeter run`s of suites on docker0, on the calculator-compose deployment (dockerd) and
/// with http/calc `from: NODE` (namespaces): reach against the shipped matrices, node names in
/// probes resolved to docker-assigned and compose addresses, the published port, http/calc sockets
/// made inside a node's namespace, and nothing left behind (`edgemeter lab inventory` before =
/// after for what these suites could make).
final class SuiteLabDeploymentTests: BinaryTestCase {
    var root: URL { packageRoot() }

    func inventory() throws -> [String] {
        let r = try runCommand(bin, ["lab", "inventory"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    func dockerReason() throws -> String? {
        guard FileManager.default.fileExists(atPath: "/var/run/docker.sock"), which("docker") != nil else {
            return "needs dockerd and the docker CLI: run scripts/setup.sh"
        }
        let v = try runCommand("/usr/bin/env", ["docker", "version", "--format", "{{.Server.Version}}"], timeout: 20)
        if v.status != 0 { XCTFail("dockerd is installed but does not answer: \(v.stderr); start it with scripts/setup.sh") }
        if try runCommand("/usr/bin/env", ["docker", "image", "inspect", "edgemeter-base:latest"], timeout: 20).status != 0 {
            let r = try runCommand(bin, ["image", "build"], timeout: 300)
            XCTAssertEqual(r.status, 0, "edgemeter image build: \(r.stderr)")
        }
        return nil
    }

    func notes(_ runDir: String) throws -> [(scenario: String, status: String, reason: String)] {
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/run.json"))) as? [String: Any])
        return (info["scenario_notes"] as? [[String: Any]] ?? []).map { ($0["scenario"] as? String ?? "", $0["status"] as? String ?? "", $0["reason"] as? String ?? "") }
    }

    /// The loader takes a compose file as a topology: its services are the node names.
    func testComposeFileServicesAreNodes() throws {
        let file = root.appendingPathComponent("benchmarks/suites/t.yaml").path
        let good = try SuiteTopologies.load(yaml: """
            name: t
            topology: calculator-compose
            scenarios:
              - name: a
                kind: http
                from: sum
                url: http://front:50000/calculate
                count: 1
            """, file: file)
        XCTAssertEqual(good.topology(of: good.scenarios[0]), "calculator-compose")
        do {
            _ = try SuiteTopologies.load(yaml: "name: t\ntopology: calculator-compose\nscenarios:\n  - name: a\n    kind: http\n    url: http://frnt:50000/calculate\n    count: 1\n", file: file)
            XCTFail("frnt is not a service")
        } catch let e as SuiteErrors {
            XCTAssertEqual(e.problems.map(\.description).count, 1)
            XCTAssertTrue(e.problems[0].message.contains("the URL's host `frnt` is not a node of topology calculator-compose (did you mean `front`?)"), "\(e)")
        }
    }

    /// docker0 and calculator-compose in one suite: reach against the shipped matrices; http to a
    /// docker0 container by node name; http and calc to `front` by name (its container address over
    /// the deployment's bridge), to the published 127.0.0.1:50000, and from inside the `sum` container.
    func testDocker0AndComposeSuite() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        if let reason = try dockerReason() { throw XCTSkip(reason) }
        for name in ["docker0", "calculator-compose"] where FileManager.default.fileExists(atPath: "/run/edgemeter/lab/\(name).json") {
            throw XCTSkip("\(name) is up already (another run uses it; `edgemeter lab status`); this test needs it free")
        }
        let expected = root.appendingPathComponent("benchmarks/topologies/expected").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let suiteFile = out + "/deploy.yaml"
        try """
            name: deploy
            scenarios:
              - name: reach-docker0
                kind: reach
                topology: docker0
                expect: \(expected)/docker0.csv
              - name: docker0-http
                kind: http
                topology: docker0
                url: http://c1:8080/
                expect_status: [200, 403, 404]
                count: 3
                interval: 20ms
              - name: reach-compose
                kind: reach
                topology: calculator-compose
                expect: \(expected)/calculator-compose.csv
              - name: compose-http
                kind: http
                topology: calculator-compose
                url: http://front:50000/calculate
                body: "(5+6)*2"
                expect_status: 200
                expect_body: '"result":22'
                count: 5
                interval: 20ms
              - name: compose-published
                kind: http
                topology: calculator-compose
                url: http://127.0.0.1:50000/calculate
                body: "(5+6)*2"
                expect_body: '"result":22'
                count: 3
                interval: 20ms
              - name: compose-calc
                kind: calc
                topology: calculator-compose
                url: http://front:50000/calculate
                expression: "(5+6)*2"
                count: 5
                interval: 20ms
              - name: compose-from-sum
                kind: http
                topology: calculator-compose
                from: sum
                url: http://front:50000/calculate
                body: "2*3"
                expect_body: '"result":6'
                count: 3
                interval: 20ms
            """.write(toFile: suiteFile, atomically: true, encoding: .utf8)
        let before = try inventory()
        let runDir = out + "/run"
        let r = try runCommand(bin, ["run", suiteFile, "--out", runDir], timeout: 400)
        print(r.stderr)
        let after = try inventory()
        let ours = ["docker0", "calculator-compose", "em-calc", "192.168.1.", "edgemeter-docker0"]
        XCTAssertEqual(after.filter { e in ours.contains { e.contains($0) } && !e.hasPrefix("process ") },
                       before.filter { e in ours.contains { e.contains($0) } && !e.hasPrefix("process ") },
                       "left behind: \(Set(after).subtracting(before).sorted())")
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let n = try notes(runDir)
        XCTAssertEqual(n.filter { $0.status != "lab" }.map(\.scenario), [], "\(n)")
        XCTAssertTrue(n.contains { $0.scenario == "reach-compose" && $0.reason.hasPrefix("topology calculator-compose (") && $0.reason.contains("calculator-compose.yml") }, "\(n)")

        let all = try samples(runDir)
        // docker0: the node name stands for the address dockerd gave c1.
        let d0 = all.filter { $0.scenario == "docker0-http" && $0.phase == "total" }
        XCTAssertEqual(d0.count, 3, "\(all.filter { $0.scenario == "docker0-http" })")
        XCTAssertTrue(d0.allSatisfy { $0.status == .ok && $0.labels["to"] == "c1" && ($0.labels["to_address"] ?? "").hasSuffix(":8080") }, "\(d0.map(\.labels))")
        XCTAssertFalse(d0.contains { ($0.labels["to_address"] ?? "c1").hasPrefix("c1") })

        // front by name: the container address on the deployment's bridge.
        let http = all.filter { $0.scenario == "compose-http" && $0.phase == "total" }
        XCTAssertEqual(http.count, 5, "\(all.filter { $0.scenario == "compose-http" })")
        for s in http {
            XCTAssertEqual(s.status, .ok, s.reason)
            XCTAssertEqual(s.labels["topology"], "calculator-compose")
            XCTAssertEqual(s.labels["from"], "(host)")
            XCTAssertEqual(s.labels["to"], "front")
            XCTAssertEqual(s.labels["to_address"], "192.168.1.6:50000")
        }
        let published = all.filter { $0.scenario == "compose-published" && $0.phase == "total" }
        XCTAssertEqual(published.map(\.status), [.ok, .ok, .ok], "\(all.filter { $0.scenario == "compose-published" }.map(\.reason))")
        let calc = all.filter { $0.scenario == "compose-calc" && $0.phase == "total" }
        XCTAssertEqual(calc.count, 5, "\(all.filter { $0.scenario == "compose-calc" })")
        XCTAssertTrue(calc.allSatisfy { $0.status == .ok && $0.labels["to"] == "front" }, "\(calc.map(\.reason))")
        // From inside the sum container (its namespace, attached at lab up) to the front end.
        let fromSum = all.filter { $0.scenario == "compose-from-sum" && $0.phase == "total" }
        XCTAssertEqual(fromSum.count, 3, "\(all.filter { $0.scenario == "compose-from-sum" })")
        XCTAssertTrue(fromSum.allSatisfy { $0.status == .ok && $0.labels["from"] == "sum" && $0.labels["to_address"] == "192.168.1.6:50000" }, "\(fromSum.map(\.labels))")

        let md = try String(contentsOfFile: runDir + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("## Reachability: reach-docker0 (topology docker0)"), md)
        XCTAssertTrue(md.contains("Matches \(expected)/docker0.csv"), md)
        XCTAssertTrue(md.contains("## Reachability: reach-compose (topology calculator-compose)"), md)
        XCTAssertTrue(md.contains("Matches \(expected)/calculator-compose.csv"), md)
        XCTAssertTrue(md.contains("| docker0 | "), md)
        XCTAssertTrue(md.contains("| calculator-compose | "), md)
        XCTAssertTrue(md.contains("reach-compose, compose-http, compose-published, compose-calc, compose-from-sum"), md)
        XCTAssertFalse(md.contains("still up"), md)
    }

    /// http and calc `from: client` to a calculator in another namespace on a network the host has
    /// no link into: the requests succeed from the client, and the same URL from the host is not
    /// probed (its route leaves the lab), so they can only have been made inside the client's namespace.
    func testHTTPAndCalcFromANode() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        if FileManager.default.fileExists(atPath: "/run/edgemeter/lab/emfromtest.json") {
            throw XCTSkip("emfromtest is up already (another run of this test?); `edgemeter lab down emfromtest`")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try """
            name: emfromtest
            description: a client and the calculator in two namespaces on a network without a host link
            networks:
              - name: inner
                subnet: 10.219.0.0/24
            nodes:
              - name: client
                interfaces:
                  - {network: inner, address: 10.219.0.10}
              - name: server
                interfaces:
                  - {network: inner, address: 10.219.0.1}
                workload: [edgemeter, serve, calculator, --role, all, --host, 0.0.0.0]
                ports: [50000]
            """.write(toFile: out + "/emfromtest.yaml", atomically: true, encoding: .utf8)
        let suiteFile = out + "/from.yaml"
        try """
            name: from
            topology: ./emfromtest.yaml
            scenarios:
              - name: http-from-client
                kind: http
                from: client
                url: http://server:50000/calculate
                body: "(5+6)*2"
                expect_status: 200
                expect_body: '"result":22'
                count: 5
                interval: 20ms
                timeout: 1s
              - name: calc-from-client
                kind: calc
                from: client
                url: http://server:50000/calculate
                expression: "(5+6)*2"
                count: 5
                interval: 20ms
                timeout: 1s
              - name: http-from-host
                kind: http
                url: http://server:50000/calculate
                count: 2
                timeout: 1s
              - name: calculator-from-client
                kind: http
                from: client
                calculator: true
                count: 1
            """.write(toFile: suiteFile, atomically: true, encoding: .utf8)
        let before = try inventory()
        let runDir = out + "/run"
        let r = try runCommand(bin, ["run", suiteFile, "--out", runDir], timeout: 300)
        print(r.stderr)
        let after = try inventory()
        let ours = ["emfromtest", "10.219.0.", "serve calculator --role all --host 0.0.0.0"]
        XCTAssertEqual(after.filter { e in ours.contains { e.contains($0) } }, before.filter { e in ours.contains { e.contains($0) } },
                       "left behind: \(Set(after).subtracting(before).sorted())")
        // Exit 1: http-from-host is not probed and calculator-from-client not run; the rest succeeded.
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let n = try notes(runDir)
        XCTAssertEqual(Set(n.filter { $0.status != "lab" }.map(\.scenario)), ["http-from-host", "calculator-from-client"], "\(n)")
        XCTAssertTrue(n.contains { $0.scenario == "calculator-from-client" && $0.reason.contains("`calculator: true` starts the calculator on the host's loopback, which node client cannot reach") }, "\(n)")

        let all = try samples(runDir)
        for scenario in ["http-from-client", "calc-from-client"] {
            let total = all.filter { $0.scenario == scenario && $0.phase == "total" }
            XCTAssertEqual(total.count, 5, "\(all.filter { $0.scenario == scenario })")
            for s in total {
                XCTAssertEqual(s.status, .ok, "\(scenario): \(s.reason)")
                XCTAssertEqual(s.labels["from"], "client")
                XCTAssertEqual(s.labels["to"], "server")
                XCTAssertEqual(s.labels["to_address"], "10.219.0.1:50000")
            }
        }
        // The host has no route into the lab network: nothing was sent from it.
        let host = all.filter { $0.scenario == "http-from-host" }
        XCTAssertEqual(host.map(\.phase), ["route"], "\(host)")
        XCTAssertTrue(host.allSatisfy { $0.status == .error && $0.reason.hasPrefix("not probed: ") }, "\(host.map(\.reason))")
    }
}
