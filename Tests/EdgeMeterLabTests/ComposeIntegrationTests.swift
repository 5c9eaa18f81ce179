import XCTest
import EdgeMeterTestSupport
@testable import EdgeMeterLab

/// The calculator-compose deployment for real, on dockerd: `lab up` through the Engine API, the
/// calculator answering on 127.0.0.1:50000, `reach --expect`, `lab down`, nothing left behind (also
/// after SIGKILL), and Debian's docker-compose bringing the same file up unchanged. Traffic goes
/// only to 127.0.0.1 and to the containers on the bridge network these tests create.
final class ComposeIntegrationTests: XCTestCase {
    let stateDir = "/run/edgemeter/lab"
    let project = "calculator-compose"
    var bin = ""
    var root: URL { packageRoot() }
    var composeFile: String { root.appendingPathComponent("benchmarks/topologies/calculator-compose.yml").path }

    override func setUpWithError() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        let socket = FileManager.default.fileExists(atPath: "/var/run/docker.sock")
        guard socket || which("dockerd") != nil else {
            throw XCTSkip("dockerd is not installed: run scripts/setup.sh (installs docker.io and starts dockerd)")
        }
        guard which("docker") != nil, which("curl") != nil else { throw XCTSkip("needs the docker CLI and curl: run scripts/setup.sh") }
        // dockerd installed but not answering is a failure, not a skip.
        let info = try runCommand("/usr/bin/env", ["docker", "version", "--format", "{{.Server.Version}}"], timeout: 20)
        guard info.status == 0 else {
            XCTFail("dockerd is installed but does not answer (`docker version`: \(info.stderr)): start it with scripts/setup.sh")
            throw XCTSkip("dockerd not answering")
        }
        guard let b = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        bin = b
        if try runCommand("/usr/bin/env", ["docker", "image", "inspect", "edgemeter-base:latest"], timeout: 20).status != 0 {
            let r = try edgemeter(["image", "build"], timeout: 300)
            XCTAssertEqual(r.status, 0, "edgemeter image build: \(r.stderr)")
        }
        try downIfUp()
    }

    override func tearDownWithError() throws {
        try downIfUp()
    }

    @discardableResult
    func edgemeter(_ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        let r = try runCommand(bin, args, timeout: timeout)
        print("$ edgemeter \(args.joined(separator: " ")) -> \(r.status)\n\(r.stdout)\(r.stderr)")
        return r
    }

    func downIfUp() throws {
        if FileManager.default.fileExists(atPath: "\(stateDir)/\(project).json") { try edgemeter(["lab", "down", project]) }
    }

    /// The host inventory's entries that this deployment (or docker-compose's of the same file)
    /// could leave: containers, networks, namespace names, links and bridges, iptables/nft rules
    /// naming its bridge or subnet, its state files.
    static func inventory(bin: String) async -> [String] {
        let inv = await HostInventory.collect(binary: bin)
        return inv.entries.filter { e in
            ["calculator-compose", "edgemeter-compose-test", "em-calc", "192.168.1.", "emtest-own", "em-owntest", "10.231.0."].contains { e.contains($0) }
                && !e.hasPrefix("process ")
        }
    }

    func inventorySync() throws -> [String] {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let b = bin
        Task { box.value = await Self.inventory(bin: b); done.signal() }
        done.wait()
        return box.value
    }

    /// POSTs `expression` to the front end on 127.0.0.1:`port`, retrying until `within` seconds passed
    /// (docker-compose does not wait for the services); returns (HTTP status, body).
    func calculate(_ expression: String, port: Int = 50000, within: TimeInterval = 0) throws -> (Int, String) {
        let deadline = Date().addingTimeInterval(within)
        while true {
            let r = try runCommand("/usr/bin/env", ["curl", "-sS", "-m", "10", "-X", "POST", "--data-binary", expression,
                                                    "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/calculate"], timeout: 20)
            let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let code = Int(lines.last ?? "") ?? 0
            if code == 200 || Date() >= deadline { return (code, lines.dropLast().joined(separator: "\n") + r.stderr) }
            usleep(300_000)
        }
    }

    func result(_ body: String) -> Double? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
        return (obj["result"] as? NSNumber)?.doubleValue
    }

    func testLabUpCalculatesReachesAndDownLeavesNothing() throws {
        let before = try inventorySync()
        let up = try edgemeter(["lab", "up", project], timeout: 180)
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { return }
        XCTAssertTrue(up.stdout.contains("\(project) up in"), up.stdout)

        // The state records the network, the five containers and their namespace names.
        let data = try XCTUnwrap(FileManager.default.contents(atPath: "\(stateDir)/\(project).json"))
        let state = try JSONDecoder().decode(LabState.self, from: data)
        XCTAssertEqual(state.status, "up")
        XCTAssertEqual(state.compose?.network, "edgemeter-calculator-compose-calcnet")
        XCTAssertEqual(state.compose?.containers.sorted(), ["div", "front", "mul", "sub", "sum"].map { "edgemeter-calculator-compose-\($0)" })
        XCTAssertEqual(state.node("front")?.interfaces.first?.address, "192.168.1.6")
        XCTAssertEqual(state.node("sub")?.interfaces.first?.address, "192.168.1.5")
        // The published port is on loopback only.
        let port = try runCommand("/usr/bin/env", ["docker", "port", "edgemeter-calculator-compose-front", "50000/tcp"], timeout: 20)
        XCTAssertEqual(port.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "127.0.0.1:50000")
        let mid = try inventorySync()
        XCTAssertTrue(mid.contains("docker edgemeter-calculator-compose-front") && mid.contains("docker-network edgemeter-calculator-compose-calcnet")
                      && mid.contains("bridge em-calc") && mid.contains("netns edgemeter-calculator-compose-sum"), "\(mid)")

        let (code, body) = try calculate("(5+6)*2")
        XCTAssertEqual(code, 200, body)
        XCTAssertEqual(result(body), 22, body)

        let status = try edgemeter(["lab", "status"])
        XCTAssertTrue(status.stdout.contains("\(project): up"), status.stdout)
        XCTAssertTrue(status.stdout.contains("192.168.1.6"), status.stdout)

        let out = FileManager.default.temporaryDirectory.appendingPathComponent("compose-reach-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let expected = root.appendingPathComponent("benchmarks/topologies/expected/calculator-compose.csv").path
        let reach = try edgemeter(["reach", project, "--expect", expected, "--out", out], timeout: 120)
        XCTAssertEqual(reach.status, 0, reach.stdout + reach.stderr)
        XCTAssertTrue(reach.stdout.contains("matches \(expected): 51 probes as expected"), reach.stdout)
        // Probes ran from inside the containers: a row from sum to front's port, with an RTT.
        let csv = try String(contentsOfFile: "\(out)/reach.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains("sum,front,tcp 192.168.1.6:50000,yes,,"), csv)
        XCTAssertTrue(csv.contains("(host),front,tcp 127.0.0.1:50000,yes,,"), csv)

        // With a service stopped, the same expectation fails, naming it (the check can fail).
        let stopped = try runCommand("/usr/bin/env", ["docker", "stop", "-t", "1", "edgemeter-calculator-compose-div"], timeout: 30)
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let differs = try edgemeter(["reach", project, "--expect", expected, "--out", out], timeout: 120)
        XCTAssertEqual(differs.status, 1, differs.stdout + differs.stderr)
        XCTAssertTrue(differs.stdout.contains("from (host) to div icmp 192.168.1.4: expected reachable"), differs.stdout)

        let down = try edgemeter(["lab", "down", project])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(try inventorySync(), before, "left behind after lab down")
        let again = try edgemeter(["lab", "down", project])
        XCTAssertEqual(again.status, 2, "a second lab down must say nothing is up")
    }

    /// SIGKILL of `lab up` at three moments (network requested; two containers; four), each
    /// followed by `edgemeter cleanup` when no other edgemeter objects exist on the host (otherwise
    /// `lab down`, the path cleanup takes for each lab state file, so that concurrent runs of other
    /// tests are not removed): nothing left behind each time.
    func testSIGKILLMidwayThenCleanupLeavesNothing() throws {
        let before = try inventorySync()
        for threshold in [0, 2, 4] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["lab", "up", project]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            var seen = -1
            while Date() < deadline && p.isRunning {
                if let data = FileManager.default.contents(atPath: "\(stateDir)/\(project).json"),
                   let s = try? JSONDecoder().decode(LabState.self, from: data), s.compose?.network != nil {
                    seen = s.compose?.containers.count ?? 0
                }
                if seen >= threshold { break }
                usleep(2000)
            }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "lab up finished before it could be killed (saw \(seen) containers)")
            let mid = try inventorySync()
            XCTAssertNotEqual(mid, before, "the kill left nothing to clean: it came too late or too early")
            if threshold > 0 { XCTAssertTrue(mid.contains("docker-network edgemeter-calculator-compose-calcnet"), "\(mid)") }

            let all = (try? runCommand("/usr/bin/env", ["docker", "ps", "-aq", "--filter", "label=edgemeter"], timeout: 20).stdout) ?? ""
            let ours = (try? runCommand("/usr/bin/env", ["docker", "ps", "-aq", "--filter", "label=edgemeter.topology=\(project)"], timeout: 20).stdout) ?? ""
            let otherStates = ((try? FileManager.default.contentsOfDirectory(atPath: stateDir)) ?? []).filter { !$0.hasPrefix("\(project).") }
            if all.split(separator: "\n").count == ours.split(separator: "\n").count && otherStates.isEmpty {
                let r = try edgemeter(["cleanup"], timeout: 120)
                XCTAssertEqual(r.status, 0, r.stderr)
            } else {
                print("other edgemeter objects exist on this host (\(otherStates.joined(separator: ", "))): `lab down \(project)` instead of `edgemeter cleanup`")
                let r = try edgemeter(["lab", "down", project])
                XCTAssertEqual(r.status, 0, r.stderr)
            }
            XCTAssertEqual(try inventorySync(), before, "left behind after SIGKILL at \(threshold) containers and cleanup")
        }
    }

    /// A user's own compose file (another project name, subnet, bridge and port; one service
    /// without a fixed address, its command as a string): `lab up FILE`, the service answers on the
    /// published loopback port, `lab down NAME`; a file with a mistake is refused, located, exit 2.
    func testOwnComposeFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("compose-own-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("emtest-own.yml").path
        try """
        services:
          adder:
            image: edgemeter-base:latest
            command: edgemeter serve calculator --role sum --host 0.0.0.0 --port 50001
            ports: ["50101:50001"]
        networks:
          default:
            driver_opts: {com.docker.network.bridge.name: em-owntest}
            ipam: {config: [{subnet: 10.231.0.0/24}]}
        """.replacingOccurrences(of: "ports:", with: "networks: [default]\n    ports:").write(toFile: file, atomically: true, encoding: .utf8)
        if FileManager.default.fileExists(atPath: "\(stateDir)/emtest-own.json") { try edgemeter(["lab", "down", "emtest-own"]) }
        let before = try inventorySync()
        let up = try edgemeter(["lab", "up", file], timeout: 120)
        XCTAssertEqual(up.status, 0, up.stderr)
        defer { _ = try? edgemeter(["lab", "down", "emtest-own"]) }
        XCTAssertTrue(up.stdout.contains("adder") && up.stdout.contains("10.231.0."), up.stdout)
        let r = try runCommand("/usr/bin/env", ["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", "http://127.0.0.1:50101/sum?a=2&b=3"], timeout: 20)
        XCTAssertTrue(r.stdout.hasSuffix("\n200"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("5"), r.stdout)
        let down = try edgemeter(["lab", "down", "emtest-own"])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(try inventorySync(), before)

        let bad = dir.appendingPathComponent("emtest-bad.yml").path
        try "services:\n  web:\n    build: .\nnetworks: {}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try edgemeter(["lab", "up", bad])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("\(bad):3: service \"web\": `build` is not supported"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(stateDir)/emtest-bad.json"))
    }

    /// Debian's docker-compose (1.29) brings the same file up unchanged; the calculator answers.
    func testDockerComposeBringsUpTheSameFile() throws {
        guard let compose = which("docker-compose") else {
            throw XCTSkip("docker-compose is not installed: run scripts/setup.sh (apt-get install docker-compose)")
        }
        let before = try inventorySync()
        let args = ["-f", composeFile, "-p", "edgemeter-compose-test"]
        let up = try runCommand(compose, args + ["up", "-d"], timeout: 180)
        defer { _ = try? runCommand(compose, args + ["down"], timeout: 120) }
        XCTAssertEqual(up.status, 0, up.stdout + up.stderr)
        let (code, body) = try calculate("(5+6)*2", within: 20)
        XCTAssertEqual(code, 200, body)
        XCTAssertEqual(result(body), 22, body)
        let ip = try runCommand("/usr/bin/env", ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                                 "edgemeter-compose-test_front_1"], timeout: 20)
        XCTAssertEqual(ip.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "192.168.1.6")
        let down = try runCommand(compose, args + ["down"], timeout: 120)
        XCTAssertEqual(down.status, 0, down.stdout + down.stderr)
        XCTAssertEqual(try inventorySync(), before, "left behind after docker-compose down")
    }
}

private final class Box: @unchecked Sendable {
    var value: [String] = []
}
