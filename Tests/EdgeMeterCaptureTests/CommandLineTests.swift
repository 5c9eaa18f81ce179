import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// `edgemeter analyze` and `edgemeter capture` as a user runs them: exit codes, messages, files.
final class CommandLineTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("edgemeter-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func edgemeter(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let bin = try edgemeterBinary()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testAnalyzeWritesReportAndTables() throws {
        let pcap = dir.appendingPathComponent("g.pcap").path
        let g = SyntheticHTTPTraffic(connections: 12, requestsPerConnection: 2)
        try g.write(to: pcap)
        let run = dir.appendingPathComponent("run").path
        let r = try edgemeter(["analyze", pcap, "--out", run])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("analysed 168 frames"), r.stderr)
        let samples = try SampleCSV.parse(String(contentsOfFile: run + "/samples.csv", encoding: .utf8))
        let hs = samples.filter { $0.phase == "tcp_handshake" }
        XCTAssertEqual(hs.count, 12)
        XCTAssertTrue(hs.allSatisfy { $0.probe == "wire" && $0.target == "g.pcap" && $0.status == .ok })
        XCTAssertEqual(samples.filter { $0.phase == "http_first_byte" }.count, 24)
        XCTAssertEqual(samples.first { $0.phase == "http_first_byte" }?.value ?? 0, 0.12, accuracy: 1e-9)
        let md = try String(contentsOfFile: run + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("## Wire analysis of"), md)
        XCTAssertTrue(md.contains("| tcp_handshake | 12 | 12 |"), md)
        let hcsv = try String(contentsOfFile: run + "/handshakes.csv", encoding: .utf8)
        XCTAssertTrue(hcsv.contains("172.17.0.1,20000,172.17.0.2,8080,2025-11-24T16:00:00.000000000Z,0.040000,0.015000,0.055000,0,0"), hcsv)
        XCTAssertEqual(try String(contentsOfFile: run + "/flows.csv", encoding: .utf8).split(separator: "\n").count, 13)
        XCTAssertEqual(try String(contentsOfFile: run + "/http.csv", encoding: .utf8).split(separator: "\n").count, 25)
    }

    func testAnalyzeDamagedFilesCountsInsteadOfCrashing() throws {
        let corpus = MalformedCorpusTests.testdata.appendingPathComponent("truncated-frames.pcap").path
        let r = try edgemeter(["analyze", corpus, "--out", dir.appendingPathComponent("run").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("7 truncated"), r.stderr)
        let bad = try edgemeter(["analyze", MalformedCorpusTests.testdata.appendingPathComponent("truncated-file-header.pcap").path,
                                 "--out", dir.appendingPathComponent("run2").path])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("shorter than a pcap file header"), bad.stderr)
        let missing = try edgemeter(["analyze", dir.appendingPathComponent("nope.pcap").path])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("no such file"), missing.stderr)
    }

    func testCaptureUsageErrors() throws {
        let noIface = try edgemeter(["capture", "--duration", "1"])
        XCTAssertEqual(noIface.status, 2)
        XCTAssertTrue(noIface.stderr.contains("-i IFACE"), noIface.stderr)
        let both = try edgemeter(["capture", "-i", "lo", "--duration", "1", "--count", "3"])
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.stderr.contains("either --duration or --count"), both.stderr)
        let user = try edgemeter(["capture", "-i", "lo", "--count", "1", "--user", "no-such-user-here"])
        XCTAssertEqual(user.status, 2)
        XCTAssertTrue(user.stderr.contains("no such user"), user.stderr)
    }

    func testCaptureListAndACountedCapture() throws {
        try requireCaptureCapability()
        let list = try edgemeter(["capture", "--list"])
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(list.stdout.contains("lo "), list.stdout)
        XCTAssertTrue(list.stdout.contains("any"), list.stdout)
        let addr = uniqueLoopback()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "sleep 1; ping -n -c 3 -i 0.05 \(addr) >/dev/null"]
        try p.run()
        let pcap = dir.appendingPathComponent("c.pcap").path
        let r = try edgemeter(["capture", "-i", "lo", "-f", "icmp and host \(addr)", "--count", "6", "-w", pcap,
                               "--out", dir.appendingPathComponent("run").path])
        p.waitUntilExit()
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("6 packets captured (stopped by count)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("dropped 0"), r.stderr)
        let attrs = try FileManager.default.attributesOfItem(atPath: pcap)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let a = try WireAnalyzer.analyze(path: pcap)
        XCTAssertEqual(a.echoes.filter { $0.rttNs != nil }.count, 3)
    }

    /// `--capture IFACE` on a measuring command (the shared RunOptions): wire samples and app − wire
    /// differences land in the same run directory.
    func testPingWithCaptureOption() throws {
        try requireCaptureCapability()
        let addr = uniqueLoopback()
        let run = dir.appendingPathComponent("run").path
        let r = try edgemeter(["ping", "-c", "3", "-i", "10ms", addr, "--capture", "lo", "--capture-filter", "icmp and host \(addr)", "--out", run])
        XCTAssertEqual(r.status, 0, r.stderr)
        let samples = try SampleCSV.parse(String(contentsOfFile: run + "/samples.csv", encoding: .utf8))
        XCTAssertEqual(samples.filter { $0.probe == "ping" && $0.phase == "echo" && $0.status == .ok }.count, 3)
        XCTAssertEqual(samples.filter { $0.probe == "wire" && $0.phase == "icmp_echo" && $0.target == addr && $0.status == .ok }.count, 3)
        XCTAssertEqual(samples.filter { $0.phase == "stack_overhead_echo" && $0.value != nil }.count, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/capture-lo.pcap"))
        let md = try String(contentsOfFile: run + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("3 of 3 application samples"), md)
    }
}
