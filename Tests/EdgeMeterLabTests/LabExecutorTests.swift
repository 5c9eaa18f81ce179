import XCTest
import EdgeMeterSystem
@testable import EdgeMeterLab

/// The executor's failure path on the real kernel: one step made to fail (an `ip` wrapper that
/// refuses one command and runs the real `ip` for every other), everything undone, the error
/// naming the step, the command and its stderr.
final class LabExecutorTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    var tmp = ""

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root for network namespaces: run the tests as root") }
        guard EdgeMeterSystem.which("ip") != nil else { throw XCTSkip("needs iproute2's `ip`: apt-get install iproute2") }
        guard EdgeMeterSystem.which("iptables") != nil else { throw XCTSkip("needs iptables: apt-get install iptables") }
        tmp = NSTemporaryDirectory() + "lab-exec-\(getpid())"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    func load(_ name: String) throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    }

    /// Namespaces and host links of a plan that exist now.
    func present(_ plan: TopologyPlan) async throws -> [String] {
        let ns = Set(try await IPRoute().namespaces())
        return plan.createdObjects.compactMap { o in
            switch o {
            case .namespace(let n): return ns.contains(n) ? o.description : nil
            case .hostLink(let l): return FileManager.default.fileExists(atPath: "/sys/class/net/\(l)") ? o.description : nil
            case .container, .lxc: return o.description
            }
        }
    }

    func testAFailingStepIsNamedAndEverythingIsUndone() async throws {
        let topo = try load("two-subnet")
        let plan = TopologyPlan(topo)
        let statusBefore = try await present(plan)
        guard statusBefore.isEmpty else { throw XCTSkip("two-subnet is up (\(statusBefore)); `edgemeter lab down two-subnet` first") }
        let realIP = try XCTUnwrap(EdgeMeterSystem.which("ip"))
        let wrapper = "\(tmp)/ip"
        let script = """
        #!/bin/sh
        case "$*" in
          *"route add default via 192.168.2.254"*) echo "RTNETLINK answers: injected failure" >&2; exit 2 ;;
        esac
        exec \(realIP) "$@"
        """
        try script.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        let ex = LabExecutor(ip: IPRoute(program: wrapper), stateDirectory: "\(tmp)/state")
        do {
            _ = try await ex.up(topo, binary: "/bin/true")
            XCTFail("up must fail at the injected step")
        } catch let e as LabError {
            XCTAssertEqual(e.kind, .stepFailed)
            XCTAssertTrue(e.message.contains("step \"sum: route default via 192.168.2.254\" failed"), e.message)
            XCTAssertTrue(e.message.contains("`ip -n edgemeter-two-subnet-sum route add default via 192.168.2.254`"), e.message)
            XCTAssertTrue(e.message.contains("RTNETLINK answers: injected failure"), e.message)
            XCTAssertTrue(e.message.contains("everything built so far was removed again"), e.message)
            XCTAssertEqual(e.command, ["ip", "-n", "edgemeter-two-subnet-sum", "route", "add", "default", "via", "192.168.2.254"])
        }
        let after = try await present(plan)
        XCTAssertEqual(after, [], "left behind after the undo")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/state/two-subnet.json"), "state file kept after a full undo")
    }

    func testAWorkloadThatExitsFailsUpWithItsOutputAndIsUndone() async throws {
        let yaml = """
        name: emx
        networks: [{name: a, subnet: 10.231.0.0/24}]
        nodes:
          - {name: n1, interfaces: [{network: a, address: 10.231.0.2}], workload: [sh, -c, "echo no such service >&2; exit 3"], ports: [9]}
        """
        let topo = try TopologyLoader.load(yaml: yaml, file: "emx.yaml")
        let plan = TopologyPlan(topo)
        let ex = LabExecutor(stateDirectory: "\(tmp)/state", portTimeout: .seconds(5))
        do {
            _ = try await ex.up(topo, binary: "/bin/true")
            XCTFail("up must fail: the workload exits")
        } catch let e as LabError {
            XCTAssertTrue(e.message.contains("node n1: its workload exited before port 9 answered"), e.message)
            XCTAssertTrue(e.message.contains("no such service"), e.message)
        }
        let after = try await present(plan)
        XCTAssertEqual(after, [])
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(tmp)/state")) ?? [], [])
    }
}
