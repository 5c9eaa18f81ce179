import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// `edgemeter ping --spin` and the suite key `spin:` label every echo sample with the mode used.
final class PingSpinTests: XCTestCase {
    var bin: String!
    var out: String!

    override func setUpWithError() throws {
        guard let b = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        if fd < 0 { throw XCTSkip("raw ICMP sockets need CAP_NET_RAW: run the tests as root") }
        close(fd)
        bin = b
        out = NSTemporaryDirectory() + "edgemeter-spin-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let out { try? FileManager.default.removeItem(atPath: out) }
    }

    func echoSpinLabels(_ dir: String) throws -> [String?] {
        let samples = try SampleCSV.parse(String(contentsOfFile: dir + "/samples.csv", encoding: .utf8))
        return samples.filter { $0.phase == "echo" }.map { $0.labels["spin"] }
    }

    func testCommandLineLabelsEachEchoWithTheSpinMode() throws {
        for (args, expected) in [([String](), "off"), (["--spin", "off"], "off"), (["--spin", "on"], "on")] {
            let dir = out + "/cli-\(expected)-\(args.count)"
            let r = try runCommand(bin, ["ping", "-c", "4", "-i", "5ms"] + args + ["127.0.0.1", "--out", dir])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("spin \(expected)."), "the PING line names the mode: \(r.stdout)")
            XCTAssertEqual(try echoSpinLabels(dir), Array(repeating: expected, count: 4), "ping \(args)")
        }
    }

    func testBadSpinValueIsAUsageError() throws {
        let r = try runCommand(bin, ["ping", "-c", "1", "--spin", "fast", "127.0.0.1", "--out", out + "/bad"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--spin must be one of off, on, got \"fast\""), r.stderr)
        let help = try runCommand(bin, ["ping", "--help"])
        XCTAssertTrue(help.stdout.contains("--spin <on|off>"), help.stdout)
    }

    func testSuiteKeySpinLabelsEachEcho() throws {
        let suite = out + "/spin.yaml"
        try """
        name: spin
        scenarios:
          - name: ping-spin-on
            kind: ping
            targets: [127.0.0.1]
            count: 3
            interval: 5ms
            spin: on
          - name: ping-spin-default
            kind: ping
            targets: [127.0.0.1]
            count: 3
            interval: 5ms
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let dir = out + "/suite"
        let r = try runCommand(bin, ["run", suite, "--out", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let samples = try SampleCSV.parse(String(contentsOfFile: dir + "/samples.csv", encoding: .utf8)).filter { $0.phase == "echo" }
        XCTAssertEqual(samples.filter { $0.scenario == "ping-spin-on" }.map { $0.labels["spin"] }, ["on", "on", "on"])
        XCTAssertEqual(samples.filter { $0.scenario == "ping-spin-default" }.map { $0.labels["spin"] }, ["off", "off", "off"])
    }
}
