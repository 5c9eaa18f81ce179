import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterTestSupport
@testable import EdgeMeterAgent
@testable import EdgeMeterLab

final class AgentConfigTests: XCTestCase {
    func load(_ yaml: String) throws -> AgentConfig { try AgentConfigLoader.load(yaml: yaml, file: "agent.yaml", hostName: "host-a") }

    /// The message list an invalid configuration gives, one `file:line: message` per problem.
    func problems(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            _ = try load(yaml)
            XCTFail("the configuration was accepted", file: file, line: line)
            return []
        } catch let e as SuiteErrors {
            return e.problems.map(\.description)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return []
        }
    }

    func testAFullConfigurationGivesTypedProbesWithDefaults() throws {
        let c = try load("""
            listen: 127.0.0.1:0
            interval: 2s
            probe_cidrs: [127.0.0.0/8, "::1/128"]
            controller: {url: "http://127.0.0.1:9000", window: 5s, service: edge-app}
            probes:
              - {name: loop, kind: ping, targets: [127.0.0.1, 127.0.0.2], spin: "on"}
              - {name: conn, kind: tcping, targets: [127.0.0.1], listener: true, interval: 500ms}
              - {name: api, kind: http, url: "http://127.0.0.1:8000/healthz", expect_status: [200, 204]}
              - {name: calc, kind: calc, url: "http://127.0.0.1:50000/calculate", expression: "(5+6)*2"}
              - {name: car, kind: vehicle, url: "http://127.0.0.1:8000/drive", front_distance: 12}
            """)
        XCTAssertEqual(c.listenHost, "127.0.0.1")
        XCTAssertEqual(c.listenPort, 0)
        XCTAssertEqual(c.node, "host-a")
        XCTAssertEqual(c.probeCIDRs.map(\.text), ["127.0.0.0/8", "::1/128"])
        XCTAssertEqual(c.controller?.window, .seconds(5))
        XCTAssertEqual(c.controller?.service, "edge-app")
        XCTAssertEqual(c.probes.map(\.name), ["loop", "conn", "api", "calc", "car"])
        XCTAssertEqual(c.probes.map(\.interval), [.seconds(2), .milliseconds(500), .seconds(2), .seconds(2), .seconds(2)])
        XCTAssertEqual(c.targetCount, 6)
        // The suite kind's defaults apply (ping timeout 1 s, payload 56); the agent's interval replaces the suite's 100 ms.
        XCTAssertEqual(c.probes[0].scenario.duration("timeout"), .seconds(1))
        XCTAssertEqual(c.probes[0].scenario.int("payload"), 56)
        XCTAssertEqual(c.probes[0].scenario.string("spin"), "on")
        XCTAssertEqual(c.probes[2].scenario.integers("expect_status"), [200, 204])
        XCTAssertEqual(c.probes[4].scenario.number("front_distance"), 12)
        XCTAssertEqual(AgentRunner.phases(c.probes[3]), ["resolve", "connect", "first_byte", "total", "hop1_sum", "hop2_mul"])
    }

    /// The configuration `edgemeter matrix` writes for each node's agent loads as any agent file:
    /// origin = the node, targets named by node (so pushed rows name their destination node) at
    /// the addresses the node reaches them by, pushes to the collector, loopback listen.
    func testMatrixGeneratedConfigLoads() throws {
        let plan = MatrixRunner.NodePlan(node: "node_1", namespace: "ag3-ns", targets: [(node: "cloud", address: "10.204.0.100"), (node: "vehicle", address: "10.204.0.10")])
        let yaml = MatrixRunner.agentConfig(plan, options: .init(binary: "/x", count: 5, intervalMilliseconds: 20, directory: "/tmp"),
                                            collector: "http://127.0.0.1:40123")
        let c = try load(yaml)
        XCTAssertEqual(c.node, "node_1")
        XCTAssertEqual(c.listenHost, "127.0.0.1")
        XCTAssertEqual(c.listenPort, 0)
        XCTAssertEqual(c.controller?.url.port, 40123)
        XCTAssertEqual(c.probes.count, 1)
        XCTAssertEqual(c.probes[0].kind, "ping")
        XCTAssertEqual(c.probes[0].interval, .milliseconds(20))
        XCTAssertEqual(c.probes[0].targets, [AgentTarget(name: "cloud", address: "10.204.0.100", node: "cloud"),
                                             AgentTarget(name: "vehicle", address: "10.204.0.10", node: "vehicle")])
    }

    func testNodeNamesInTargetsBecomeAddresses() throws {
        let c = try load("""
            nodes: {cloud: 10.0.0.5, edge: "10.0.1.5"}
            probes:
              - {name: p, kind: ping, targets: [cloud, 127.0.0.1]}
              - {name: t, kind: tcping, targets: ["edge:8000"]}
              - {name: h, kind: http, url: "http://cloud:8000/healthz"}
            """)
        XCTAssertEqual(c.probes[0].targets, [AgentTarget(name: "cloud", address: "10.0.0.5", node: "cloud"),
                                             AgentTarget(name: "127.0.0.1", address: "127.0.0.1", node: nil)])
        XCTAssertEqual(c.probes[1].targets, [AgentTarget(name: "edge:8000", address: "10.0.1.5:8000", node: "edge")])
        XCTAssertEqual(c.probes[2].targets, [AgentTarget(name: "http://cloud:8000/healthz", address: "http://10.0.0.5:8000/healthz", node: "cloud")])
        XCTAssertEqual(problems("""
            nodes: {cloud: somewhere}
            probes: [{name: p, kind: ping, targets: [cloud]}]
            """), ["agent.yaml:1: `nodes`: cloud must map to an IP address such as 10.0.0.5, got \"somewhere\""])
    }

    func testTopologyNodesAreTargets() throws {
        let file = packageRoot().appendingPathComponent("benchmarks/topologies/edge-cloud.yaml").path
        let c = try load("""
            topology: \(file)
            probes:
              - {name: p, kind: ping, targets: [node_1, cloud]}
              - {name: h, kind: http, url: "http://node_2:8000/drive"}
            """)
        XCTAssertEqual(c.probes[0].targets.map(\.address), ["10.204.0.1", "10.204.0.100"])
        XCTAssertEqual(c.probes[0].targets.map(\.node), ["node_1", "cloud"])
        XCTAssertEqual(c.probes[1].targets[0].address, "http://10.204.0.2:8000/drive")
        XCTAssertEqual(problems("""
            topology: \(file)
            probes: [{name: p, kind: ping, targets: [node_4]}]
            """), ["agent.yaml:2: probe \"p\": `node_4` is not a node of topology edge-cloud (did you mean `node_1`?); its nodes: vehicle, node_1, node_2, node_3, cloud"])
    }

    func testDefaultsAreLoopbackAndNoProbeTargets() throws {
        let c = try load("probes: [{name: p, kind: ping, targets: [127.0.0.1]}]")
        XCTAssertEqual(c.listenHost, "127.0.0.1", "the agent binds loopback unless told")
        XCTAssertEqual(c.listenPort, AgentConfig.defaultPort)
        XCTAssertEqual(c.probeCIDRs, [], "an open /probe is an SSRF tool: no network unless configured")
        XCTAssertNil(c.controller)
        XCTAssertEqual(c.probes[0].interval, .seconds(1))
    }

    func testEveryProblemIsLocatedAndSaysWhatToDo() {
        let p = problems("""
            intervall: 1s
            probe_cidrs: [10.0.0.0/33]
            probes:
              - name: a
                kind: ping
                targets: [127.0.0.1]
                count: 10
              - name: b
                kind: tcping
                targets: [127.0.0.1]
              - name: c
                kind: load
              - name: d
                kind: ping
                targets: [127.0.0.1]
                timeout: ten
              - name: a
                kind: ping
                targets: [127.0.0.1]
            """)
        XCTAssertEqual(p, [
            "agent.yaml:1: unknown key `intervall` at the top level (did you mean `interval`?); expected one of: listen, node, interval, topology, nodes, probe_cidrs, probe_timeout, controller, probes",
            "agent.yaml:2: `probe_cidrs`: \"10.0.0.0/33\" is not a network in CIDR notation such as 10.0.0.0/8 or ::1/128",
            "agent.yaml:7: probe \"a\": the agent probes until it is stopped: remove `count` (the interval sets the pace)",
            "agent.yaml:10: probe \"b\": \"127.0.0.1\" is not HOST:PORT; for example 127.0.0.1:80 or [::1]:80; or set `listener: true` to probe a listener the run starts on that host",
            "agent.yaml:12: probe \"c\": unknown kind `load` (a suite kind the agent does not run continuously); expected one of: calc, http, ping, tcping, vehicle",
            "agent.yaml:16: probe \"d\": `timeout` must be a duration such as 250ms, 1.5s, 200us or 2m, got \"ten\"",
            "agent.yaml:17: duplicate probe name \"a\" (first used on line 4); names must be unique",
        ])
    }

    func testControllerAndListenMistakes() {
        var urlProblem = ""
        do { _ = try HTTPTarget(url: "ftp://x") } catch { urlProblem = "\(error)" }
        XCTAssertFalse(urlProblem.isEmpty)
        XCTAssertEqual(problems("""
            listen: localhost
            controller: {url: "ftp://x", window: 100ms, tokenfile: t}
            probes: [{name: p, kind: ping, targets: [127.0.0.1]}]
            """), [
            "agent.yaml:1: `listen` must be HOST:PORT such as 127.0.0.1:9427 (0.0.0.0:PORT serves every interface)",
            "agent.yaml:2: `controller.url`: \(urlProblem)",
            "agent.yaml:2: `controller.window` must be a duration of at least 1s, such as 10s",
            "agent.yaml:2: unknown key `tokenfile` in `controller` (did you mean `token_file`?); expected one of: url, token_file, window, service",
        ])
        XCTAssertEqual(problems("listen: 127.0.0.1:1"), [
            "agent.yaml:1: `probes` is missing or empty: list at least one probe, such as {name: loop, kind: ping, targets: [127.0.0.1]}",
        ])
    }

    func testCIDRContainment() {
        let net = CIDR("10.203.0.0/16")!
        XCTAssertTrue(net.contains(CIDR.parseAddress("10.203.7.9")!))
        XCTAssertFalse(net.contains(CIDR.parseAddress("10.204.0.1")!))
        XCTAssertFalse(net.contains(CIDR.parseAddress("::1")!), "an IPv6 address is never inside an IPv4 network")
        XCTAssertTrue(CIDR("127.0.0.0/8")!.contains(CIDR.parseAddress("::ffff:127.0.0.5")!), "IPv4-mapped IPv6 is judged as IPv4")
        XCTAssertTrue(CIDR("::1/128")!.contains(CIDR.parseAddress("::1")!))
        XCTAssertTrue(CIDR("0.0.0.0/0")!.contains(CIDR.parseAddress("192.0.2.1")!))
        XCTAssertNil(CIDR("10.0.0.0/8/1"))
        XCTAssertNil(CIDR("example.com/8"))
    }
}
