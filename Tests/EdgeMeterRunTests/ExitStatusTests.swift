import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// Pins the README's exit-status table for ping, tcping, run, capture, analyze and report:
/// 0 = every target succeeded at least once, 1 = one never did (or a scenario failed / did not run),
/// 2 = usage or set-up error (including an unresolvable name, as fping), 130 = stopped by SIGINT/SIGTERM.
/// (http, load and calc are pinned in HTTPExitStatusTests.)
final class ExitStatusTests: BinaryTestCase {
    /// A TCP listener on 127.0.0.1 (ephemeral port) that the kernel completes handshakes for.
    func listener() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        XCTAssertTrue(ok)
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// Starts the binary, sends `signal` after `after` seconds, returns the exit status.
    func interrupted(_ args: [String], after: TimeInterval = 1.0, signal sig: Int32 = SIGINT) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: after)
        kill(p.processIdentifier, sig)
        p.waitUntilExit()
        return p.terminationStatus
    }

    func testPing() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        XCTAssertEqual(try runCommand(bin, ["ping", "-c", "2", "-i", "10ms", "127.0.0.1", "--out", out + "/0"]).status, 0)
        // Unresolvable name beside a good one: the good one is measured, its block and the name's are printed, exit 2.
        // (In a namespace with only loopback, so the lookup cannot reach the DNS server.)
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        let ns = try IsolatedNetns()
        defer { ns.remove() }
        let r = try ns.run(bin, ["ping", "-c", "2", "-i", "10ms", "127.0.0.1", "nosuch.invalid", "--out", out + "/2"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stdout.contains("--- 127.0.0.1 ping statistics ---"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--- nosuch.invalid ping statistics ---"), r.stdout)
        XCTAssertTrue(r.stderr.contains("could not be resolved: nosuch.invalid"), r.stderr)
        XCTAssertEqual(try ns.run(bin, ["ping", "-c", "1", "nosuch.invalid", "--out", out + "/2b"]).status, 2)
        let neg = try runCommand(bin, ["ping", "-c", "-3", "127.0.0.1"])
        XCTAssertEqual(neg.status, 2)
        XCTAssertTrue(neg.stderr.contains("-c/--count must be a positive integer, got \"-3\""), neg.stderr)
        let negi = try runCommand(bin, ["ping", "-i", "-1", "127.0.0.1"])
        XCTAssertEqual(negi.status, 2)
        XCTAssertTrue(negi.stderr.contains("-i/--interval must be a positive duration, got \"-1\""), negi.stderr)
        XCTAssertEqual(try interrupted(["ping", "-i", "10ms", "-q", "127.0.0.1", "--out", out + "/130"]), 130)
    }

    func testTCPing() throws {
        let (fd, port) = try listener()
        defer { close(fd) }
        XCTAssertEqual(try runCommand(bin, ["tcping", "-c", "2", "-i", "10ms", "127.0.0.1:\(port)", "--out", out + "/0"]).status, 0)
        // Every attempt refused: exit 1, as `nc -z` fails there.
        let refused = try runCommand(bin, ["tcping", "-c", "3", "-i", "10ms", "127.0.0.1:1", "--out", out + "/1"])
        XCTAssertEqual(refused.status, 1, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("3 refused"), refused.stdout)
        XCTAssertTrue(refused.stderr.contains("127.0.0.1:1: no successful attempt: 0 of 3 connects (3 refused)"), refused.stderr)
        XCTAssertTrue(refused.stderr.split(separator: "\n").last?.hasPrefix("report: ") == true, "the report line is the last line: \(refused.stderr)")
        // One target good, one refused: still 1 (a target never succeeded).
        XCTAssertEqual(try runCommand(bin, ["tcping", "-c", "2", "-i", "10ms", "127.0.0.1:\(port)", "127.0.0.1:1", "--out", out + "/1b"]).status, 1)
        if rootAndIPUnavailableReason() == nil {
            let ns = try IsolatedNetns()
            defer { ns.remove() }
            XCTAssertEqual(try ns.run(bin, ["tcping", "-c", "1", "nosuch.invalid:80", "--out", out + "/2"]).status, 2)
        }
        // -W and --timeout are one option.
        XCTAssertEqual(try runCommand(bin, ["tcping", "-c", "1", "--timeout", "0.5", "127.0.0.1:\(port)", "--out", out + "/0b"]).status, 0)
        XCTAssertEqual(try interrupted(["tcping", "-i", "10ms", "-q", "127.0.0.1:\(port)", "--out", out + "/130"]), 130)
    }

    func testRun() throws {
        let (fd, port) = try listener()
        defer { close(fd) }
        func suite(_ name: String, _ body: String) throws -> String {
            let path = out + "-\(name).yaml"
            try "name: \(name)\nscenarios:\n\(body)".write(toFile: path, atomically: true, encoding: .utf8)
            addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
            return path
        }
        let good = try suite("good", "  - name: tcp\n    kind: tcping\n    targets: [127.0.0.1:\(port)]\n    count: 2\n    interval: 10ms\n")
        XCTAssertEqual(try runCommand(bin, ["run", good, "--out", out + "/0"]).status, 0)
        // Every target of every scenario failed: exit 1, each failure named.
        let bad = try suite("bad", """
          - name: tcp-closed
            kind: tcping
            targets: [127.0.0.1:1]
            count: 2
            interval: 10ms
          - name: http-closed
            kind: http
            url: http://127.0.0.1:1/
            count: 2
            interval: 10ms

        """)
        let r = try runCommand(bin, ["run", bad, "--out", out + "/1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("scenario tcp-closed: 127.0.0.1:1: no successful attempt"), r.stderr)
        XCTAssertTrue(r.stderr.contains("scenario http-closed: http://127.0.0.1:1/: no successful attempt"), r.stderr)
        XCTAssertTrue(r.stderr.split(separator: "\n").last?.hasPrefix("report: ") == true, "the report line is the last line: \(r.stderr)")
        // run.json: the run went to its end (complete) and says what failed.
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/1/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, true)
        let failures = info["failures"] as? [String] ?? []
        XCTAssertEqual(failures.count, 2, "\(failures)")
        XCTAssertTrue(failures[0].hasPrefix("scenario tcp-closed: 127.0.0.1:1: no successful attempt: 0 of 2 connects (2 refused)"), "\(failures)")
        let invalid = try suite("invalid", "  - name: x\n    kind: tcping\n    targets: [127.0.0.1:1]\n    count: ten\n    intervall: 1s\n")
        let v = try runCommand(bin, ["run", invalid, "--check"])
        XCTAssertEqual(v.status, 2)
        XCTAssertTrue(v.stderr.contains("2 problems; nothing was run"), v.stderr)
        XCTAssertTrue(v.stderr.contains("did you mean `interval`?"), v.stderr)
    }

    func testCaptureAnalyzeReport() throws {
        if getuid() != 0 { throw XCTSkip("capturing needs root or CAP_NET_RAW: run the tests as root") }
        // A trailing filter expression, as tcpdump takes it.
        let c = try runCommand(bin, ["capture", "-i", "lo", "--duration", "300ms", "icmp", "or", "tcp", "port", "1", "--out", out + "/cap"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let badFilter = try runCommand(bin, ["capture", "-i", "lo", "--duration", "300ms", "-f", "nonsense ((", "--out", out + "/bad"])
        XCTAssertEqual(badFilter.status, 2, badFilter.stderr)
        let both = try runCommand(bin, ["capture", "-i", "lo", "-f", "icmp", "tcp"])
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.stderr.contains("give the filter once"), both.stderr)
        // --capture means nothing on capture/analyze, so neither lists it.
        for cmd in ["capture", "analyze"] {
            let h = try runCommand(bin, [cmd, "--help"])
            XCTAssertFalse(h.stdout.contains("--capture"), h.stdout)
        }
        let a = try runCommand(bin, ["analyze", out + "/cap/capture-lo.pcap", "--out", out + "/an"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stdout.contains("| probe |") || a.stdout.contains("## "), "analyze prints the summary tables: \(a.stdout)")
        XCTAssertEqual(try runCommand(bin, ["analyze", "/nonexistent.pcap", "--out", out + "/an2"]).status, 2)
        XCTAssertEqual(try runCommand(bin, ["report", "/nonexistent-run-dir"]).status, 2)
    }
}
