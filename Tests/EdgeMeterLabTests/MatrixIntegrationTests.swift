import XCTest
import Foundation
import EdgeMeterCore
import EdgeMeterTestSupport

/// `edgemeter matrix` for real on a copy of `edge-cloud` (named `ag3-mx`, so it cannot collide with
/// a run of the built-in): a real `edgemeter agent` in each of the five nodes' namespaces pings the
/// four others through the impairment forwarder and posts its summaries to the collector in its
/// own namespace; every one of the 20 ordered pairs must match the injected round trip
/// 2 × (delay of both links) within the calibration rule max(0.5 ms, 5 %), the files must be
/// written, and `lab down` must remove every object of the lab.
final class MatrixIntegrationTests: XCTestCase {
    let lab = "ag3-mx"
    var bin = ""

    override func setUpWithError() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard which("ethtool") != nil else { throw XCTSkip("the impairment forwarder needs ethtool: run scripts/setup.sh") }
        guard let b = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        bin = b
    }

    @discardableResult
    func edgemeter(_ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        let r = try runCommand(bin, args, timeout: timeout)
        print("$ edgemeter \(args.joined(separator: " ")) -> \(r.status)\n\(r.stdout)\(r.stderr)")
        return r
    }

    /// One-way delay of each node's link in edge-cloud.yaml.
    static let linkMs = ["vehicle": 0.0, "node_1": 5, "node_2": 30, "node_3": 80, "cloud": 40]

    func testEdgeCloudMatrixMatchesTheInjectedDelays() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ag3-matrix-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try String(contentsOf: packageRoot().appendingPathComponent("benchmarks/topologies/edge-cloud.yaml"), encoding: .utf8)
        let file = dir.appendingPathComponent("\(lab).yaml").path
        try source.replacingOccurrences(of: "name: edge-cloud", with: "name: \(lab)").write(toFile: file, atomically: true, encoding: .utf8)

        if FileManager.default.fileExists(atPath: "/run/edgemeter/lab/\(lab).json") { try edgemeter(["lab", "down", lab]) }
        // Other engineers' labs come and go on this host: compare only what carries this lab's name.
        func mine() throws -> [Substring] { try edgemeter(["lab", "inventory"]).stdout.split(separator: "\n").filter { $0.contains(lab) } }
        let before = try mine()
        let up = try edgemeter(["lab", "up", file])
        XCTAssertEqual(up.status, 0, up.stderr)
        guard up.status == 0 else { return }
        var isDown = false
        defer { if !isDown { _ = try? edgemeter(["lab", "down", lab]) } }

        let out = dir.appendingPathComponent("m").path
        let r = try edgemeter(["matrix", lab, "--check-injected", "-c", "20", "-i", "50ms", "--out", out], timeout: 300)
        XCTAssertEqual(r.status, 0, "every pair within the calibration tolerance: \(r.stdout)\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("20/20 pairs pass"), r.stdout)

        // delays.csv, checked here against the declared delays (not the command's own verdict).
        let rows = try DelayTable.parse(String(contentsOfFile: "\(out)/delays.csv", encoding: .utf8))
        XCTAssertEqual(rows.count, 20)
        XCTAssertEqual(Set(rows.map { "\($0.from)>\($0.to)" }).count, 20)
        for row in rows {
            let expected = 2 * (Self.linkMs[row.from]! + Self.linkMs[row.to]!)
            let p50 = try XCTUnwrap(row.p50Milliseconds, "\(row.from)→\(row.to) got no answer")
            XCTAssertEqual(row.metric, "ping_rtt")
            XCTAssertEqual(row.samples, 20)
            XCTAssertEqual(row.received, 20, "\(row.from)→\(row.to): no echo may be lost on loss-free links")
            XCTAssertEqual(p50, expected, accuracy: max(0.5, 0.05 * expected), "\(row.from)→\(row.to)")
            XCTAssertGreaterThanOrEqual(p50, expected, "\(row.from)→\(row.to): a round trip cannot beat the injected delay")
        }
        // Each node ran a real agent from its generated configuration, and it posted.
        for n in Self.linkMs.keys {
            let config = try String(contentsOfFile: "\(out)/\(n)/agent.yaml", encoding: .utf8)
            XCTAssertTrue(config.contains("node: \"\(n)\""), config)
            let log = try String(contentsOfFile: "\(out)/\(n)/agent.log", encoding: .utf8)
            XCTAssertTrue(log.contains("20 rounds done; posted"), "\(n): \(log)")
        }
        XCTAssertTrue(r.stdout.contains("5 agents, 20 pairs"), r.stdout)
        let md = try String(contentsOfFile: "\(out)/matrix.md", encoding: .utf8)
        XCTAssertTrue(md.contains("| from \\ to | vehicle | node_1 | node_2 | node_3 | cloud |"), md)
        XCTAssertTrue(md.contains("age "), md)
        let nt = try String(contentsOfFile: "\(out)/networktopology.yaml", encoding: .utf8)
        XCTAssertEqual(nt.components(separatedBy: "- origin:").count - 1, 5, nt)
        XCTAssertEqual(nt.components(separatedBy: "- destination:").count - 1, 20, nt)

        // A node the topology does not have is a usage error naming the nodes.
        let bad = try edgemeter(["matrix", lab, "--node", "vehicle", "--node", "nope", "--out", out])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("has no node nope; its nodes: vehicle, node_1"), bad.stderr)

        let down = try edgemeter(["lab", "down", lab])
        XCTAssertEqual(down.status, 0, down.stderr)
        isDown = true
        XCTAssertEqual(try mine(), before, "lab down must remove everything of \(lab)")
    }
}
