import XCTest
import EdgeMeterCore
@testable import EdgeMeterLab

/// The compose file parser: the built-in deployment, each accepted form, and each problem with its line.
final class ComposeFileTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func builtIn() throws -> ComposeFile {
        let url = root.appendingPathComponent("benchmarks/topologies/calculator-compose.yml")
        return try ComposeFile.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    }

    /// The messages of a file that must not load, as `line: message`.
    func problems(_ yaml: String, file: String = "bad.yml") -> [String] {
        do {
            _ = try ComposeFile.load(yaml: yaml, file: file)
            XCTFail("loaded without an error:\n\(yaml)")
            return []
        } catch let e as SuiteErrors {
            XCTAssertTrue(e.problems.allSatisfy { $0.file == file })
            return e.problems.map { "\($0.line): \($0.message)" }
        } catch {
            XCTFail("unexpected error \(error)")
            return []
        }
    }

    /// A valid two-service file; `extra` lines are inserted into service `a`.
    func file(a extra: String = "", top: String = "") -> String {
        """
        version: "3.8"
        services:
          a:
            image: edgemeter-base:latest
        \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            networks:
              net:
                ipv4_address: 10.9.0.2
          b:
            image: edgemeter-base:latest
            networks: [net]
        networks:
          net:
            driver_opts:
              com.docker.network.bridge.name: em-test
            ipam:
              config:
                - subnet: 10.9.0.0/24
        \(top)
        """
    }

    func testTheBuiltInIsTheLabsDeployment() throws {
        let f = try builtIn()
        XCTAssertEqual(f.project, "calculator-compose")
        // Dependencies first: front depends on the four operation services, which keep file order.
        XCTAssertEqual(f.services.map(\.name), ["sum", "sub", "mul", "div", "front"])
        let addresses = Dictionary(uniqueKeysWithValues: f.services.map { ($0.name, $0.ipv4Address?.description ?? "") })
        XCTAssertEqual(addresses, ["front": "192.168.1.6", "sum": "192.168.1.2", "sub": "192.168.1.5", "mul": "192.168.1.3", "div": "192.168.1.4"])
        XCTAssertEqual(f.networks.map(\.name), ["calcnet"])
        XCTAssertEqual(f.networks[0].subnet?.description, "192.168.1.0/24")
        XCTAssertEqual(f.networks[0].bridgeName, "em-calc")
        XCTAssertEqual(f.networks[0].labels["edgemeter"], "lab")
        let front = try XCTUnwrap(f.service("front"))
        XCTAssertEqual(front.image, "edgemeter-base:latest")
        XCTAssertEqual(front.ports, [ComposeFile.PortMapping(hostIP: nil, hostPort: 50000, containerPort: 50000, proto: "tcp")])
        XCTAssertEqual(front.expose, [50000])
        XCTAssertEqual(front.listeningPorts, [50000])
        XCTAssertEqual(front.dependsOn, ["sum", "sub", "mul", "div"])
        XCTAssertEqual(front.command, ["edgemeter", "serve", "calculator", "--role", "front", "--host", "0.0.0.0", "--port", "50000"])
        XCTAssertTrue(front.environment.contains("EDGEMETER_CALC_SUM=192.168.1.2:50001"), "\(front.environment)")
        XCTAssertEqual(f.service("div")?.command, ["edgemeter", "serve", "calculator", "--role", "div", "--host", "0.0.0.0", "--port", "50004"])
        XCTAssertEqual(f.service("mul")?.labels["edgemeter.topology"], "calculator-compose")
    }

    func testComposeIsRecognisedByItsServicesKey() throws {
        XCTAssertTrue(ComposeFile.isCompose(yaml: file()))
        let topology = try String(contentsOf: root.appendingPathComponent("benchmarks/topologies/two-subnet.yaml"), encoding: .utf8)
        XCTAssertFalse(ComposeFile.isCompose(yaml: topology))
        XCTAssertFalse(ComposeFile.isCompose(yaml: "- services"))
        XCTAssertEqual(ComposeFile.projectName(path: "/x/y/my-app.yml"), "my-app")
        XCTAssertEqual(ComposeFile.projectName(path: "calc.yaml"), "calc")
    }

    func testAlternativeForms() throws {
        let f = try ComposeFile.load(yaml: file(a: """
            command: ["sh", "-c", "echo 'a b'"]
            environment: [A=1, "B=two words"]
            depends_on:
              b: {condition: service_started}
            ports: ["127.0.0.1:8080:80/tcp", 9000:9000]
            expose: [81, "82/tcp"]
            labels: [x=y]
            """, top: "x-notes: ignored"), file: "alt.yml")
        let a = try XCTUnwrap(f.service("a"))
        XCTAssertEqual(a.command, ["sh", "-c", "echo 'a b'"])
        XCTAssertEqual(a.environment, ["A=1", "B=two words"])
        XCTAssertEqual(a.dependsOn, ["b"])
        XCTAssertEqual(a.ports, [ComposeFile.PortMapping(hostIP: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp"),
                                 ComposeFile.PortMapping(hostIP: nil, hostPort: 9000, containerPort: 9000, proto: "tcp")])
        XCTAssertEqual(a.expose, [81, 82])
        XCTAssertEqual(a.listeningPorts, [81, 82, 80, 9000])
        XCTAssertEqual(a.labels, ["x": "y"])
        XCTAssertEqual(f.services.map(\.name), ["b", "a"])
        XCTAssertEqual(f.service("b")?.ipv4Address, nil)
        XCTAssertEqual(f.service("b")?.network, "net")
    }

    func testCommandStringIsSplitAsAShellWould() {
        XCTAssertEqual(ComposeFile.shellWords(#"edgemeter serve  calculator --name "a b" 'c "d"' e\ f"#),
                       ["edgemeter", "serve", "calculator", "--name", "a b", #"c "d""#, "e f"])
        XCTAssertNil(ComposeFile.shellWords("echo 'open"))
    }

    func testBuildIsRefusedNamingImage() {
        XCTAssertEqual(problems(file(a: "build: .")),
                       ["5: service \"a\": `build` is not supported: build the image first (e.g. `edgemeter image build`) and name it with `image:`"])
    }

    func testUnknownKeysAreNamedWithAHint() {
        XCTAssertEqual(problems(file(a: "enviroment: {A: 1}")),
                       ["5: unknown key `enviroment` in service \"a\" (did you mean `environment`?); expected one of: image, build, command, environment, ports, expose, depends_on, networks, labels"])
        XCTAssertEqual(problems(file(top: "volume: {}")),
                       ["19: unknown key `volume` at the top level; expected one of: version, services, networks"])
    }

    func testEachProblemWithItsLine() {
        XCTAssertEqual(problems(file(a: "ports: [\"50000\"]")),
                       ["5: service \"a\": port \"50000\" must be \"HOST:CONTAINER\" or \"HOST_IP:HOST:CONTAINER\" with ports 1-65535 and an IPv4 host address, optionally /tcp or /udp (a port without a host side is not supported: give the host port)"])
        XCTAssertEqual(problems(file(a: "expose: [http]")),
                       ["5: service \"a\": each `expose` entry must be a TCP port 1-65535 (e.g. \"50001\"), got \"http\""])
        XCTAssertEqual(problems(file(a: "environment: [NOVALUE]")),
                       ["5: service \"a\": each environment entry must be KEY=VALUE, got \"NOVALUE\""])
        XCTAssertEqual(problems(file(a: "environment:\n  FROM_HOST:")),
                       ["6: service \"a\": environment `FROM_HOST` needs a value (`FROM_HOST: VALUE`); taking it from the host's environment is not supported"])
        XCTAssertEqual(problems(file(a: "depends_on: [web]")),
                       ["3: service \"a\": depends_on names unknown service `web`; expected one of: a, b"])
        XCTAssertEqual(problems(file(a: "command: []")),
                       ["5: service \"a\": `command` is an empty list; give the program and its arguments"])
    }

    func testAddressesAndNetworks() {
        let wrongNet = file().replacingOccurrences(of: "networks: [net]", with: "networks: [nett]")
        XCTAssertEqual(problems(wrongNet), ["11: service \"b\": unknown network `nett` (did you mean `net`?); expected one of the top-level networks: net"])
        let outside = file().replacingOccurrences(of: "10.9.0.2", with: "10.8.0.2")
        XCTAssertEqual(problems(outside), ["3: service \"a\": ipv4_address 10.8.0.2 is not a usable address in network \"net\"'s subnet 10.9.0.0/24"])
        let gateway = file().replacingOccurrences(of: "10.9.0.2", with: "10.9.0.1")
        XCTAssertEqual(problems(gateway), ["3: service \"a\": ipv4_address 10.9.0.1 is the network's gateway (the host's address on the bridge); pick another address"])
        let badAddress = file().replacingOccurrences(of: "10.9.0.2", with: "10.9.0.300")
        XCTAssertEqual(problems(badAddress), ["8: service \"a\": `ipv4_address` must be an IPv4 address such as 192.168.1.2, got \"10.9.0.300\""])
        let subnet = file().replacingOccurrences(of: "- subnet: 10.9.0.0/24", with: "- subnet: 10.9.0.1/24")
        XCTAssertEqual(problems(subnet).first, "18: network \"net\": `subnet` must be an IPv4 prefix with no host bits set, such as 192.168.1.0/24, got \"10.9.0.1/24\"")
        let bridge = file().replacingOccurrences(of: "em-test", with: "br-calculator-net")
        XCTAssertEqual(problems(bridge), ["14: network \"net\": com.docker.network.bridge.name must start with `em-` and have at most 15 bytes (so `lab inventory` and `edgemeter cleanup` recognise the bridge), got \"br-calculator-net\""])
        let driver = file().replacingOccurrences(of: "  net:\n    driver_opts", with: "  net:\n    driver: overlay\n    driver_opts")
        XCTAssertEqual(problems(driver), ["14: network \"net\": `driver` must be bridge (the only driver the lab deploys), got \"overlay\""])
        let noNetworks = file().replacingOccurrences(of: "    networks: [net]\n", with: "")
        XCTAssertEqual(problems(noNetworks), ["9: service \"b\": missing `networks`: join one of the top-level networks (net), e.g. `networks: {net: {ipv4_address: ...}}`"])
        let same = file().replacingOccurrences(of: "networks: [net]", with: "networks: {net: {ipv4_address: 10.9.0.2}}")
        XCTAssertEqual(problems(same), ["9: service \"b\": ipv4_address 10.9.0.2 on network \"net\" is already taken by service \"a\""])
    }

    func testDependencyCycleIsNamed() {
        let yaml = file(a: "depends_on: [b]").replacingOccurrences(of: "networks: [net]", with: "networks: [net]\n    depends_on: [a]")
        XCTAssertEqual(problems(yaml), ["3: depends_on has a cycle: a → b → a; remove one of these dependencies"])
    }

    func testInvalidYAMLAndShape() {
        XCTAssertTrue(problems("services: [a").first?.contains("not valid YAML") ?? false)
        XCTAssertEqual(problems("- a"), ["1: a compose file must be a mapping with `services` and `networks`"])
        XCTAssertEqual(problems("services: {}\nnetworks: {}", file: "Bad Name.yml"),
                       ["1: the project name \"Bad Name\" (from the file name) must be 1-30 lowercase letters, digits, '-' or '_', starting with a letter or digit: rename the file",
                        "1: `services` is empty: list at least one service"])
    }

    func testEveryProblemIsReportedAtOnce() {
        let yaml = file(a: "build: .\nexpose: [x]")
        XCTAssertEqual(problems(yaml).count, 2)
    }

    /// What `lab up` sends to dockerd for a service: fixed address, loopback publishing unless the
    /// file names a host address, labels, command, environment.
    func testContainerRequestBody() throws {
        let f = try builtIn()
        let front = try XCTUnwrap(f.service("front"))
        let body = ComposeDeployer.containerBody(front, file: f, network: "edgemeter-calculator-compose-calcnet")
        XCTAssertEqual(body["Image"] as? String, "edgemeter-base:latest")
        XCTAssertEqual(body["Cmd"] as? [String], front.command)
        XCTAssertEqual((body["Env"] as? [String])?.count, 4)
        let labels = try XCTUnwrap(body["Labels"] as? [String: String])
        XCTAssertEqual(labels["edgemeter"], "lab")
        XCTAssertEqual(labels["edgemeter.topology"], "calculator-compose")
        let host = try XCTUnwrap(body["HostConfig"] as? [String: Any])
        XCTAssertEqual(host["NetworkMode"] as? String, "edgemeter-calculator-compose-calcnet")
        let bindings = try XCTUnwrap(host["PortBindings"] as? [String: [[String: String]]])
        XCTAssertEqual(bindings, ["50000/tcp": [["HostIp": "127.0.0.1", "HostPort": "50000"]]])
        let endpoints = try XCTUnwrap((body["NetworkingConfig"] as? [String: Any])?["EndpointsConfig"] as? [String: Any])
        let ep = try XCTUnwrap(endpoints["edgemeter-calculator-compose-calcnet"] as? [String: Any])
        XCTAssertEqual((ep["IPAMConfig"] as? [String: String])?["IPv4Address"], "192.168.1.6")

        let state = ComposeDeployer.initialState(f)
        XCTAssertEqual(state.topology, "calculator-compose")
        XCTAssertEqual(state.networks.first?.hostLink, "em-calc")
        XCTAssertEqual(state.networks.first?.hostAddress, "192.168.1.1")
        XCTAssertEqual(state.nodes.map(\.namespace).first, "edgemeter-calculator-compose-sum")
        XCTAssertEqual(ComposeDeployer.bridgeName(project: "p", network: ComposeFile.Network(name: "n", driver: "bridge", subnet: nil, gateway: nil, driverOptions: [:], labels: [:], line: 1)).count, 11)
    }

    /// reach probes for a compose state: every service from every other and from the host, plus the
    /// published port on loopback from the host only; the shipped expectation lists exactly those.
    func testReachProbesMatchTheShippedExpectation() throws {
        let f = try builtIn()
        var state = ComposeDeployer.initialState(f)
        let addresses = ["front": "192.168.1.6", "sum": "192.168.1.2", "sub": "192.168.1.5", "mul": "192.168.1.3", "div": "192.168.1.4"]
        for i in state.nodes.indices {
            state.nodes[i].interfaces = [TopologyPlan.Port(network: "calcnet", device: "eth0", bridgePort: "", address: addresses[state.nodes[i].name]!, prefixLength: 24)]
        }
        state.compose?.published = [ComposeState.Published(service: "front", hostIP: "127.0.0.1", hostPort: 50000, containerPort: 50000, proto: "tcp")]
        let probes = ReachPlan.probes(state: state, topology: Topology(name: "", description: "", networks: [], nodes: [], path: ""))
        XCTAssertEqual(probes.count, 51)
        XCTAssertEqual(probes.filter { $0.address == "127.0.0.1" }.map(\.from), [ReachPlan.hostSource])
        let url = root.appendingPathComponent("benchmarks/topologies/expected/calculator-compose.csv")
        let expected = try ReachExpectation.parse(String(contentsOf: url, encoding: .utf8), file: url.path)
        XCTAssertEqual(Set(expected.rows.keys), Set(probes.map(\.key)))
        XCTAssertTrue(expected.rows.values.allSatisfy { $0 })
    }

    /// `edgemeter cleanup` and `lab down` find a compose deployment through `LabExecutor.states()`:
    /// its state file must read back with the compose objects (a file that fails to decode would be
    /// skipped silently).
    func testStateFileReadsBackForDownAndCleanup() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("compose-state-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let executor = LabExecutor(stateDirectory: dir)
        var state = ComposeDeployer.initialState(try builtIn())
        state.compose?.network = "edgemeter-calculator-compose-calcnet"
        state.compose?.containers = ["edgemeter-calculator-compose-sum"]
        state.compose?.published = [ComposeState.Published(service: "front", hostIP: "127.0.0.1", hostPort: 50000, containerPort: 50000, proto: "tcp")]
        try executor.save(state)
        XCTAssertEqual(executor.states(), [state])
        XCTAssertEqual(try executor.state("calculator-compose").compose?.containers, ["edgemeter-calculator-compose-sum"])
    }

    func testLogStreamDemultiplexing() {
        let frame: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 3] + Array("abc".utf8) + [2, 0, 0, 0, 0, 0, 0, 2] + Array("de".utf8)
        XCTAssertEqual(ComposeDeployer.demultiplex(frame), "abcde")
        XCTAssertEqual(ComposeDeployer.demultiplex(Array("plain".utf8)), "plain")
    }
}
