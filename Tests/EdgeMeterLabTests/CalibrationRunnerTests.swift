import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
import EdgeMeterSystem
@testable import EdgeMeterLab

final class CalibrationRunnerTests: XCTestCase {
    func testTopologyFilesValidateWithAndWithoutTheImpairment() throws {
        let runner = CalibrationRunner(binary: "/bin/true")
        let plain = try TopologyLoader.load(yaml: runner.topologyYAML(impair: nil), file: "t")
        XCTAssertNil(plain.node("client")!.interfaces[0].impair)
        XCTAssertEqual(plain.node("server")!.ports, [CalibrationRunner.serverPort])
        // The server runs at real-time priority (below the forwarder's 10) where chrt exists.
        if let chrt = which("chrt") {
            XCTAssertEqual(Array(plain.node("server")!.workload.prefix(4)), [chrt, "-f", "5", "edgemeter"])
        }
        var ordinary = runner
        ordinary.endpointPriority = 0
        XCTAssertEqual(try TopologyLoader.load(yaml: ordinary.topologyYAML(impair: nil), file: "t").node("server")!.workload.first, "edgemeter")
        let impaired = try TopologyLoader.load(yaml: runner.topologyYAML(impair: LinkImpairment(delay: "1ms")), file: "t")
        XCTAssertEqual(impaired.node("client")!.interfaces[0].impair?.delayNanoseconds, 1_000_000)
        // Every case's impairment is one the forwarder accepts, and says what the case means.
        for c in CalibrationPlan.full + CalibrationPlan.quick {
            let spec = try CalibrationRunner.impairment(for: c).spec()
            XCTAssertEqual(Double(spec.delayNanoseconds) / 1e6, c.delayMs, c.name)
            XCTAssertEqual(spec.loss.meanLossFraction, c.lossPerDirection, accuracy: 1e-12, c.name)
        }
        let normal = try CalibrationRunner.impairment(for: CalibrationPlan.full.first { $0.name == "jitter-5-normal" }!).spec()
        XCTAssertEqual(normal.jitterNanoseconds, 5_000_000)
        XCTAssertEqual(normal.distribution, .normal)
        let uniform = try CalibrationRunner.impairment(for: CalibrationPlan.full.first { $0.name == "jitter-5-uniform" }!).spec()
        XCTAssertEqual(uniform.jitterNanoseconds, 5_000_000)
        XCTAssertEqual(uniform.distribution, .uniform)
    }

    func testProbeOutputParsing() {
        let m = CalibrationRunner.parseProbeOutput("ok 1.250000\nfail timed out\nPING noise\nok 2.5\nfail refused\nok nan\n")
        XCTAssertEqual(m.values, [1.25, 2.5])
        XCTAssertEqual(m.failed, 2)
        XCTAssertEqual(m.firstFailure, "timed out")
    }

    /// `edgemeter calibrate --quick` for real: namespaces, the forwarder, the probes in the client.
    /// Its table must pass: the delays, the uniform jitter's KS and the loss interval. Runs whatever
    /// the host's load: the figures end at kernel stamps and the endpoints run SCHED_FIFO
    /// (docs/calibrate.md), so a busy host no longer moves them.
    func testQuickCalibrationPasses() throws {
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        let out = NSTemporaryDirectory() + "calib-test-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let stateDir = "/run/edgemeter/lab"
        if FileManager.default.fileExists(atPath: "\(stateDir)/calib.json") {
            throw XCTSkip("a calib topology is up already (another calibrate run?): `edgemeter lab down calib` first")
        }
        let r = try runCommand(bin, ["calibrate", "--quick", "--out", out], timeout: 600)
        let csv = try String(contentsOfFile: "\(out)/calibration.csv", encoding: .utf8)
        let rows = try CSV.parse(csv)
        XCTAssertEqual(rows.first, CalibrationTable.columns)
        let cases = Set(rows.dropFirst().map { $0[0] })
        XCTAssertEqual(cases, Set(CalibrationPlan.quick.map(\.name)))
        let failed = rows.dropFirst().filter { $0.last != "pass" }.map { $0.joined(separator: ",") }
        XCTAssertEqual(failed, [], "figures that failed the rule:\n" + failed.joined(separator: "\n") + "\n" + r.stderr)
        XCTAssertEqual(r.status, failed.isEmpty ? 0 : 1, "exit status follows the verdicts")
        // Nothing left behind.
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(stateDir)/calib.json"))
        let md = try String(contentsOfFile: "\(out)/calibration.md", encoding: .utf8)
        XCTAssertTrue(md.contains("- kernel: ") && md.contains("- forwarder: ") && md.contains("- clock: ") && md.contains("- date: "), md)
    }
}
