import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// End-to-end tests of the built `edgemeter` binary on loopback and in namespaces the tests create.
final class CLITests: BinaryTestCase {
    func testPingIPv4AndIPv6WritesTheRunDirectory() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        let r = try runCommand(bin, ["ping", "-c", "5", "-i", "10ms", "127.0.0.1", "::1", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("--- 127.0.0.1 ping statistics ---"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--- ::1 ping statistics ---"), r.stdout)
        XCTAssertTrue(r.stdout.contains("5 packets transmitted, 5 received, 0% packet loss"), r.stdout)
        XCTAssertTrue(r.stdout.contains("rtt min/avg/max/mdev = "), r.stdout)
        XCTAssertTrue(r.stdout.contains("rtt p50/p90/p99/p99.9 = "), r.stdout)
        XCTAssertTrue(r.stdout.contains("icmp_seq=5"), r.stdout)
        for f in ["samples.csv", "summary.csv", "summary.md", "run.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let s = try samples(out)
        let echoes = s.filter { $0.phase == "echo" }
        XCTAssertEqual(echoes.count, 10)
        XCTAssertEqual(s.filter { $0.phase == "resolve" }.count, 2)
        XCTAssertTrue(echoes.allSatisfy { $0.status == .ok && $0.labels["socket"] == "raw" && $0.labels["timestamp"] != nil && $0.labels["clock"] != nil })
        XCTAssertEqual(Set(echoes.compactMap { $0.labels["family"] }), ["ipv4", "ipv6"])
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, true)
        XCTAssertEqual((info["command_line"] as? [String])?.dropFirst().first, "ping")
    }

    func testPingJSONOutput() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        let r = try runCommand(bin, ["ping", "-c", "3", "-i", "10ms", "--json", "127.0.0.1", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let rows = obj["summaries"] as! [[String: Any]]
        let echo = try XCTUnwrap(rows.first { $0["phase"] as? String == "echo" })
        XCTAssertEqual(echo["sent"] as? Int, 3)
        XCTAssertEqual(echo["received"] as? Int, 3)
        XCTAssertNotNil(echo["p99"] as? Double)
    }

    func testDatagramSocketInANamespaceThatAllowsIt() throws {
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        let ns = try TestNetns()
        defer { ns.remove() }
        // ping_group_range is per network namespace: allow unprivileged ICMP only in ours.
        let set = try ns.exec(["sh", "-c", "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range"])
        XCTAssertEqual(set.status, 0, set.stderr)
        let r = try ns.exec([bin, "ping", "--socket", "datagram", "-c", "3", "-i", "10ms", "127.0.0.1", "::1", "--out", out])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let echoes = try samples(out).filter { $0.phase == "echo" }
        XCTAssertEqual(echoes.count, 6)
        XCTAssertTrue(echoes.allSatisfy { $0.status == .ok && $0.labels["socket"] == "datagram" }, "\(echoes.map(\.labels))")
        XCTAssertTrue(r.stdout.contains("datagram socket"), r.stdout)
    }

    func testTargetThatNeverAnswersExitsOne() throws {
        if let why = rootAndIPUnavailableReason() ?? rawICMPReason() { throw XCTSkip(why) }
        let ns = try TestNetns()
        defer { ns.remove() }
        try ns.exec(["ip", "route", "add", "blackhole", "\(ns.hostAddress)/32"])
        let r = try runCommand(bin, ["ping", "-c", "2", "-i", "50ms", "-W", "200ms", "127.0.0.1", ns.nsAddress, "--out", out])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("2 packets transmitted, 0 received, 100% packet loss"), r.stdout)
        XCTAssertTrue(r.stdout.contains("2 packets transmitted, 2 received, 0% packet loss"), r.stdout)
        let timeouts = try samples(out).filter { $0.status == .timeout }
        XCTAssertEqual(timeouts.count, 2)
        XCTAssertEqual(timeouts[0].reason, "no reply within 200 ms")
    }

    func testUsageErrorsExitTwoWithAMessage() throws {
        let r = try runCommand(bin, ["ping", "-c", "0", "127.0.0.1"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("-c/--count must be a positive integer, got \"0\""), r.stderr)
        let t = try runCommand(bin, ["tcping", "127.0.0.1"])
        XCTAssertEqual(t.status, 2)
        XCTAssertTrue(t.stderr.contains("is not HOST:PORT"), t.stderr)
        let s = try runCommand(bin, ["run", "/nonexistent/suite.yaml"])
        XCTAssertEqual(s.status, 2)
        XCTAssertTrue(s.stderr.contains("cannot read the suite file /nonexistent/suite.yaml: no such file; check the path"), s.stderr)
    }

    func testHelpShowsExamples() throws {
        for cmd in ["ping", "tcping", "run"] {
            let r = try runCommand(bin, [cmd, "--help"])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.stdout.contains("Examples:"), cmd)
        }
    }

    func testTCPingListenerAndClosedPort() throws {
        // A listener from a suite scenario, and a port with nothing listening, in one CLI run.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        listen(fd, 64)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let openPort = UInt16(bigEndian: addr.sin_port)
        let closedFd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var caddr = sockaddr_in()
        caddr.sin_family = sa_family_t(AF_INET)
        caddr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &caddr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(closedFd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &caddr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(closedFd, $0, &len) } }
        let closedPort = UInt16(bigEndian: caddr.sin_port)
        defer { close(fd); close(closedFd) }
        let r = try runCommand(bin, ["tcping", "-c", "3", "-i", "10ms", "127.0.0.1:\(openPort)", "127.0.0.1:\(closedPort)", "--out", out])
        XCTAssertEqual(r.status, 1, "a target that never connected gives exit 1: " + r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("3 attempts, 3 connected"), r.stdout)
        XCTAssertTrue(r.stdout.contains("3 attempts, 0 connected, 3 refused"), r.stdout)
        let s = try samples(out).filter { $0.phase == "connect" }
        XCTAssertEqual(s.filter { $0.status == .refused }.count, 3)
        XCTAssertEqual(s.filter { $0.status == .ok }.count, 3)
        XCTAssertTrue(s.filter { $0.status == .ok }.allSatisfy { $0.labels["local_port"] != nil })
    }

    /// SIGINT mid-run: the streamed samples stay, the summary is written, run.json says incomplete.
    func testSIGINTKeepsSamplesAndWritesIncompleteSummary() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["ping", "-i", "10ms", "-q", "127.0.0.1", "--out", out]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 1.5)
        let before = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8).split(separator: "\n").count
        XCTAssertGreaterThan(before, 20, "samples are streamed while the run goes on")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, "stopped by SIGINT: 130 for every command (the run is kept, marked incomplete)")
        let s = try samples(out)
        XCTAssertGreaterThanOrEqual(s.count, before - 1)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, false)
        XCTAssertEqual(info["stop_reason"] as? String, "SIGINT")
        XCTAssertEqual(info["samples"] as? Int, s.count)
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("Incomplete run"), md)
        let summary = try String(contentsOfFile: out + "/summary.csv", encoding: .utf8)
        XCTAssertTrue(summary.contains("ping,ping,127.0.0.1,rtt,echo,ms,"), summary)
    }

    /// A suite interrupted in its first scenario: the rest are "not run", exit status 130.
    func testSuiteInterruptedMarksRemainingScenariosNotRun() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        let suite = out + "-suite.yaml"
        try """
        name: interrupt-test
        scenarios:
          - name: long-ping
            kind: ping
            targets: [127.0.0.1]
            deadline: 30s
            interval: 10ms
          - name: after
            kind: tcping
            targets: [127.0.0.1]
            listener: true
            count: 3
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: suite) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["run", suite, "--out", out]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 1.5)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, false)
        let notes = info["scenario_notes"] as? [[String: Any]] ?? []
        XCTAssertTrue(notes.contains { $0["scenario"] as? String == "after" && $0["status"] as? String == "not run" }, "\(notes)")
        XCTAssertGreaterThan(try samples(out).count, 20)
    }

    func testReportReRendersIdenticalSummaryFromSamples() throws {
        if let why = rawICMPReason() { throw XCTSkip(why) }
        let r = try runCommand(bin, ["ping", "-c", "20", "-i", "5ms", "-q", "127.0.0.1", "::1", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let original = try String(contentsOfFile: out + "/summary.csv", encoding: .utf8)
        try FileManager.default.removeItem(atPath: out + "/summary.csv")
        try FileManager.default.removeItem(atPath: out + "/summary.md")
        let rr = try runCommand(bin, ["report", out])
        XCTAssertEqual(rr.status, 0, rr.stderr)
        XCTAssertEqual(try String(contentsOfFile: out + "/summary.csv", encoding: .utf8), original)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.md"))
        let bad = try runCommand(bin, ["report", "/nonexistent-dir"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("give the run directory that holds samples.csv"), bad.stderr)
    }

    /// iputils ping as the oracle: fed ping's own per-reply times, the summary gives ping's
    /// min/avg/max exactly and its mdev to within its integer-microsecond truncation.
    func testSummaryAgreesWithIputilsPing() throws {
        guard let ping = which("ping") else { throw XCTSkip("iputils ping not installed: apt-get install iputils-ping") }
        let r = try runCommand(ping, ["-c", "30", "-i", "0.01", "127.0.0.1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let times = r.stdout.split(separator: "\n").compactMap { line -> Double? in
            guard let range = line.range(of: "time=") else { return nil }
            return Double(line[range.upperBound...].split(separator: " ")[0])
        }
        XCTAssertEqual(times.count, 30)
        let rttLine = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("rtt ") })
        let nums = rttLine.split(separator: "=")[1].trimmingCharacters(in: .whitespaces).split(separator: " ")[0].split(separator: "/").compactMap { Double($0) }
        var acc = SummaryAccumulator(key: SummaryKey(scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", unit: "ms"))
        for t in times { acc.addValue(t) }
        let s = acc.summary
        XCTAssertEqual(s.min!, nums[0], accuracy: 1e-9)
        XCTAssertEqual(s.mean!, nums[1], accuracy: 0.0011, "ping's average is integer microseconds")
        XCTAssertEqual(s.max!, nums[2], accuracy: 1e-9)
        XCTAssertEqual(s.mdev!, nums[3], accuracy: 0.0011, "ping's mdev is integer microseconds")
    }
}

/// `capture: IFACE` on any suite scenario (and `edgemeter run --capture`) records the wire's view
/// of the same echoes and connections and the application − wire difference.
final class SuiteCaptureTests: XCTestCase {
    func testPerScenarioCaptureOnLoopbackPairsEveryEcho() throws {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first") }
        guard getuid() == 0 else { throw XCTSkip("capturing needs root (or CAP_NET_RAW+CAP_NET_ADMIN): run the tests as root") }
        let out = NSTemporaryDirectory() + "edgemeter-suite-capture-\(UUID().uuidString)"
        let suite = out + ".yaml"
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: suite) }
        try """
        name: capture-suite
        scenarios:
          - name: icmp-wire
            kind: ping
            targets: [127.0.0.1]
            count: 10
            interval: 10ms
            capture: lo
            capture_filter: icmp
          - name: tcp-wire
            kind: tcping
            targets: [127.0.0.1]
            listener: true
            count: 10
            interval: 10ms
            capture: lo
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let r = try runCommand(bin, ["run", suite, "--out", out], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let samples = try SampleCSV.parse(String(contentsOfFile: out + "/samples.csv", encoding: .utf8))
        let echoOverhead = samples.filter { $0.scenario == "icmp-wire" && $0.probe == "wire" && $0.phase == "stack_overhead_echo" && $0.status == .ok }
        XCTAssertEqual(echoOverhead.count, 10, "\(Set(samples.filter { $0.probe == "wire" }.map(\.phase)))")
        let connectOverhead = samples.filter { $0.scenario == "tcp-wire" && $0.probe == "wire" && $0.phase == "stack_overhead_connect" && $0.status == .ok }
        XCTAssertEqual(connectOverhead.count, 10, "\(Set(samples.filter { $0.scenario == "tcp-wire" && $0.probe == "wire" }.map(\.phase)))")
        XCTAssertTrue(echoOverhead.allSatisfy { ($0.value ?? -1) >= 0 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/capture-icmp-wire-lo.pcap"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/capture-tcp-wire-lo.pcap"))
    }
}
