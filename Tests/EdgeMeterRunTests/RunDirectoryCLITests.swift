import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// The built `edgemeter` binary: which failures leave a run directory, `reports/latest`, `edgemeter
/// report` and a full disk. Traffic goes to 127.0.0.1 only (port 1 answers RST: refused samples).
final class RunDirectoryCLITests: BinaryTestCase {
    /// The test's working directory (so `reports/` is created there): `out`, made at set-up.
    var cwd: String! { out }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
    }

    /// Runs edgemeter with the test's own working directory (so `reports/` is created there); with
    /// `isolated`, inside a namespace with only loopback (for names that must not reach the DNS server).
    func edgemeter(_ args: [String], isolated: IsolatedNetns? = nil) throws -> CommandResult {
        let quoted = args.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let script = ["-c", "cd '\(cwd!)' && exec '\(bin!)' \(quoted)"]
        if let isolated { return try isolated.run("/bin/sh", script) }
        return try runCommand("/bin/sh", script)
    }

    func listing() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: cwd).sorted()) ?? []
    }

    func testSetUpFailuresLeaveNoRunDirectory() throws {
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        let ns = try IsolatedNetns()
        defer { ns.remove() }
        for args in [["ping", "-c", "1", "nosuch.invalid"],
                     ["tcping", "-c", "1", "nosuch.invalid:80"],
                     ["http", "-c", "2", "-i", "10ms", "http://nosuch.invalid/"],
                     ["startup", "docker", "-n", "1", "--image", "edgemeter-no-such-image:none"]] {
            let r = try edgemeter(args, isolated: args[0] == "startup" ? nil : ns)
            XCTAssertNotEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(listing(), [], "\(args) left \(listing()); stderr: \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("report: "), "\(args) must not point at a run directory: \(r.stderr)")
        }
    }

    func testBadCaptureFilterLeavesNoRunDirectory() throws {
        guard getuid() == 0 else { throw XCTSkip("capturing on lo needs root (CAP_NET_RAW): run the tests as root") }
        for args in [["capture", "-i", "lo", "-f", "tcp(((", "--duration", "1"],
                     ["tcping", "-c", "1", "127.0.0.1:1", "--capture", "lo", "--capture-filter", "bad(("]] {
            let r = try edgemeter(args)
            XCTAssertNotEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("does not compile"), r.stderr)
            XCTAssertEqual(listing(), [], "\(args) left \(listing())")
        }
    }

    func testExistingOutDirectoryIsKeptOnSetUpFailure() throws {
        let out = cwd + "/mine"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "keep".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        let ns = try IsolatedNetns()
        defer { ns.remove() }
        let r = try edgemeter(["ping", "-c", "1", "nosuch.invalid", "--out", out], isolated: ns)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), ["notes.txt"])
    }

    func testLatestAndReportPrintTheNewestRun() throws {
        let first = try edgemeter(["tcping", "-c", "2", "-i", "10ms", "-q", "127.0.0.1:1"])
        XCTAssertEqual(first.status, 1, "refused everywhere: exit 1; \(first.stderr)")
        let second = try edgemeter(["tcping", "-c", "3", "-i", "10ms", "-q", "127.0.0.1:1"])
        XCTAssertEqual(second.status, 1, second.stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: cwd + "/reports").filter { $0 != "latest" }.sorted()
        XCTAssertEqual(runs.count, 2, "\(runs)")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: cwd + "/reports/latest")
        XCTAssertFalse(link.hasPrefix("/"), "relative link, got \(link)")
        XCTAssertTrue(second.stderr.contains("reports/\(link)/"), "latest is the second run: \(link) vs \(second.stderr)")

        let report = try edgemeter(["report"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let md = try String(contentsOfFile: cwd + "/reports/latest/summary.md", encoding: .utf8)
        XCTAssertEqual(report.stdout, md, "`edgemeter report` prints the latest summary.md")
        XCTAssertTrue(md.contains("| tcping | 127.0.0.1:1 | latency | connect | 3 | 0 | 100.0 |"), md)
        XCTAssertTrue(report.stderr.contains("from 4 samples"), report.stderr) // one resolve, three connects
    }

    func testReportWithoutAnyRunSaysWhatToDo() throws {
        let r = try edgemeter(["report"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("reports/latest does not exist; run a measurement first"), r.stderr)
    }

    func testFullDiskStopsTheRunWithAClearError() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tiny tmpfs needs root: run the tests as root") }
        let mnt = cwd + "/tiny"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let m = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt])
        guard m.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(m.stderr)") }
        defer { _ = try? runCommand("/bin/umount", [mnt]) }
        let out = mnt + "/run"
        let r = try edgemeter(["tcping", "-c", "100000", "-i", "1ms", "-q", "127.0.0.1:1", "--out", out])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("edgemeter: cannot write samples.csv in \(out): No space left on device; free space or choose another --out"), r.stderr)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, false)
        XCTAssertEqual(info["stop_reason"] as? String, "cannot write samples.csv in \(out): No space left on device; free space or choose another --out")
        let rows = try SampleCSV.parse(String(contentsOfFile: out + "/samples.csv", encoding: .utf8))
        XCTAssertEqual(info["samples"] as? Int, rows.count, "run.json counts exactly the rows on disk")
        XCTAssertLessThan(rows.count, 1000, "the run stopped when the disk filled up")
    }
}
