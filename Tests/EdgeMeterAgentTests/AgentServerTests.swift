import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterSystem
@testable import EdgeMeterAgent

/// A real agent on 127.0.0.1 (port 0): probes on loopback, /metrics and /probe over HTTP.
final class AgentServerTests: XCTestCase {
    func testMetricsCountExactlyWhatTheProbesMeasured() async throws {
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let icmp = icmpUnavailableReason() == nil
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probes:
              - {name: conn, kind: tcping, targets: ["\(listener.address.hostPort)", "127.0.0.1:1"], interval: 50ms}
            \(icmp ? "  - {name: loop, kind: ping, targets: [127.0.0.1], interval: 50ms}" : "")
            """)
        let seen = CountingSink()
        let agent = try Agent(config: c, extraSinks: [seen], log: { _ in })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(700))
        agent.stopProbes()
        let (status, text) = try await fetch(agent.url + "/metrics")
        await agent.stop()
        XCTAssertEqual(status, 200)
        let connects = seen.samples.filter { $0.probe == "tcping" && $0.phase == "connect" }
        let good = connects.filter { $0.target == listener.address.hostPort }
        XCTAssertGreaterThanOrEqual(good.count, 8, "about 14 rounds in 700 ms at 50 ms")
        let t = "target=\"\(listener.address.hostPort)\""
        XCTAssertEqual(metricValue(text, "edgemeter_attempts_total", [t, "phase=\"connect\""]), Double(good.count), text)
        XCTAssertEqual(metricValue(text, "edgemeter_latency_seconds_count", [t, "socket=\"stream\"", "timestamp=\"userspace\""]),
                       Double(good.filter { $0.status == .ok }.count), text)
        let sum = good.compactMap(\.value).reduce(0, +) / 1000
        let exposedSum = try XCTUnwrap(metricValue(text, "edgemeter_latency_seconds_sum", [t]))
        XCTAssertEqual(exposedSum, sum, accuracy: 1e-9)
        // Port 1 refuses: every attempt an error with status refused, none in the histogram.
        let refused = connects.filter { $0.target == "127.0.0.1:1" }
        XCTAssertEqual(metricValue(text, "edgemeter_errors_total", ["target=\"127.0.0.1:1\"", "status=\"refused\""]), Double(refused.count), text)
        XCTAssertNil(metricValue(text, "edgemeter_latency_seconds_count", ["target=\"127.0.0.1:1\""]))
        if icmp {
            let echoes = seen.samples.filter { $0.probe == "ping" && $0.phase == "echo" }
            XCTAssertGreaterThanOrEqual(echoes.count, 8)
            XCTAssertEqual(metricValue(text, "edgemeter_attempts_total", ["name=\"loop\"", "phase=\"echo\""]), Double(echoes.count), text)
            let kernel = echoes.filter { $0.labels["timestamp"] == "kernel" }.count
            XCTAssertEqual(metricValue(text, "edgemeter_latency_seconds_count", ["name=\"loop\"", "timestamp=\"kernel\""]) ?? 0, Double(kernel), text)
        } else {
            print("skipped the ping part: \(icmpUnavailableReason()!)")
        }
    }

    func testNoDriftOverManyRounds() async throws {
        // 20 rounds at 100 ms: the last round starts 1.9 s after the first, however late single rounds were.
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probes: [{name: conn, kind: tcping, targets: ["\(listener.address.hostPort)"], interval: 100ms}]
            """)
        let seen = CountingSink()
        let agent = try Agent(config: c, extraSinks: [seen], log: { _ in })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(2050))
        await agent.stop()
        let times = seen.samples.filter { $0.phase == "connect" }.map(\.timestamp)
        XCTAssertGreaterThanOrEqual(times.count, 20)
        // Round 20 is due 1.9 s after round 1: never earlier, and only as late as that one round
        // was (a loaded host delays single rounds; an accumulating drift would show here too).
        let span = times[19].timeIntervalSince(times[0])
        XCTAssertGreaterThanOrEqual(span, 1.895, "round 20 is due 1.9 s after round 1")
        XCTAssertLessThan(span, 2.1, "round 20 is due 1.9 s after round 1")
    }

    func testProbeEndpointFollowsBlackboxContract() async throws {
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probe_cidrs: [127.0.0.0/8]
            probes: [{name: conn, kind: tcping, targets: ["\(listener.address.hostPort)"], interval: 1s}]
            """)
        let agent = try Agent(config: c, log: { _ in })
        try await agent.start()
        defer { Task { await agent.stop() } }

        // tcp_connect to a listener: success, the connect phase measured.
        var (status, text) = try await fetch(agent.url + "/probe?target=\(listener.address.hostPort)&module=tcp_connect")
        XCTAssertEqual(status, 200, text)
        XCTAssertEqual(metricValue(text, "probe_success"), 1, text)
        let connect = try XCTUnwrap(metricValue(text, "probe_tcp_duration_seconds", ["phase=\"connect\""]))
        XCTAssertGreaterThan(connect, 0)
        XCTAssertLessThan(connect, 0.5)
        let total = try XCTUnwrap(metricValue(text, "probe_duration_seconds"))
        XCTAssertGreaterThanOrEqual(total, connect)
        XCTAssertEqual(metricValue(text, "probe_ip_protocol"), 4)
        XCTAssertEqual(metricValue(text, "probe_timeout_seconds"), 5, "the configured probe_timeout without the Prometheus header")

        // A refused port: probe_success 0, still 200 and every phase listed.
        (status, text) = try await fetch(agent.url + "/probe?target=127.0.0.1:1&module=tcp_connect")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(metricValue(text, "probe_success"), 0, text)
        XCTAssertEqual(metricValue(text, "probe_tcp_duration_seconds", ["phase=\"connect\""]), 0, text)

        // http_2xx against the agent's own /healthz, the target URL-encoded as Prometheus sends it.
        let healthz = (agent.url + "/healthz").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        (status, text) = try await fetch(agent.url + "/probe?module=http_2xx&target=\(healthz)")
        XCTAssertEqual(status, 200, text)
        XCTAssertEqual(metricValue(text, "probe_success"), 1, text)
        XCTAssertEqual(metricValue(text, "probe_http_status_code"), 200, text)
        XCTAssertEqual(metricValue(text, "probe_http_uncompressed_body_length"), 3, text)
        for phase in ["resolve", "connect", "tls", "processing", "transfer"] {
            XCTAssertNotNil(metricValue(text, "probe_http_duration_seconds", ["phase=\"\(phase)\""]), "phase \(phase): \(text)")
        }
        XCTAssertGreaterThan(metricValue(text, "probe_http_duration_seconds", ["phase=\"processing\""]) ?? 0, 0)

        // A 404 is not 2xx.
        (status, text) = try await fetch(agent.url + "/probe?module=http_2xx&target=\(agent.url)/nothing")
        XCTAssertEqual(metricValue(text, "probe_success"), 0, text)
        XCTAssertEqual(metricValue(text, "probe_http_status_code"), 404, text)

        // The scrape timeout header sets the limit (minus blackbox's 0.5 s offset).
        (status, text) = try await fetch(agent.url + "/probe?target=\(listener.address.hostPort)&module=tcp_connect",
                                         headers: [("X-Prometheus-Scrape-Timeout-Seconds", "2.5")])
        XCTAssertEqual(metricValue(text, "probe_timeout_seconds"), 2, text)

        // Outside probe_cidrs: refused before anything is sent.
        (status, text) = try await fetch(agent.url + "/probe?target=192.0.2.1:80&module=tcp_connect")
        XCTAssertEqual(status, 403)
        XCTAssertTrue(text.contains("target 192.0.2.1:80 (192.0.2.1) is outside the networks /probe may reach (probe_cidrs: 127.0.0.0/8); add its network to probe_cidrs in \(c.file)"), text)

        (status, text) = try await fetch(agent.url + "/probe?target=127.0.0.1&module=dns_udp")
        XCTAssertEqual(status, 400)
        XCTAssertTrue(text.contains("Unknown module \"dns_udp\""), text)
        (status, text) = try await fetch(agent.url + "/probe?module=icmp")
        XCTAssertEqual(status, 400)
        XCTAssertTrue(text.contains("Target parameter is missing"), text)

        if let why = icmpUnavailableReason() {
            print("skipped module icmp: \(why)")
        } else {
            (status, text) = try await fetch(agent.url + "/probe?target=127.0.0.1&module=icmp")
            XCTAssertEqual(metricValue(text, "probe_success"), 1, text)
            let rtt = try XCTUnwrap(metricValue(text, "probe_icmp_duration_seconds", ["phase=\"rtt\""]))
            XCTAssertGreaterThan(rtt, 0)
            XCTAssertLessThan(rtt, 0.1)
            XCTAssertNotNil(metricValue(text, "probe_icmp_duration_seconds", ["phase=\"setup\""]))
        }
    }

    func testNoProbeCIDRsRefusesEveryTarget() async throws {
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probes: [{name: conn, kind: tcping, targets: [127.0.0.1], listener: true}]
            """)
        let agent = try Agent(config: c, log: { _ in })
        try await agent.start()
        let (status, text) = try await fetch(agent.url + "/probe?target=127.0.0.1&module=icmp")
        await agent.stop()
        XCTAssertEqual(status, 403)
        XCTAssertTrue(text.contains("(probe_cidrs: none are configured)"), text)
    }
}

/// Prometheus's own linter on what the agent serves.
final class PromtoolLintTests: XCTestCase {
    func testPromtoolAcceptsMetricsAndProbeExpositions() async throws {
        guard let promtool = EdgeMeterSystem.which("promtool") else {
            throw XCTSkip("promtool is not installed: `apt-get install prometheus` (scripts/setup.sh lists it)")
        }
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probe_cidrs: [127.0.0.0/8]
            probes: [{name: conn, kind: tcping, targets: ["\(listener.address.hostPort)", "127.0.0.1:1"], interval: 50ms}]
            """)
        let agent = try Agent(config: c, log: { _ in })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(300))
        var bodies = [("metrics", try await fetch(agent.url + "/metrics").body)]
        bodies.append(("tcp_connect", try await fetch(agent.url + "/probe?module=tcp_connect&target=\(listener.address.hostPort)").body))
        bodies.append(("http_2xx", try await fetch(agent.url + "/probe?module=http_2xx&target=\(agent.url)/healthz").body))
        await agent.stop()
        XCTAssertTrue(bodies[0].1.contains("edgemeter_errors_total"), "the refused port makes an error series too")
        for (what, body) in bodies {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-lint-\(UUID().uuidString).txt").path
            try body.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let r = try Command.runBlocking([promtool, "check", "metrics"], stdinFD: fd, timeout: .seconds(30))
            XCTAssertEqual(r.status, 0, "promtool check metrics on \(what): \(r.combined)")
            XCTAssertEqual(r.combined, "", "\(what): \(r.combined)")
        }
    }
}

/// A tcping target whose connects hang until the timeout holds up only its own shard.
final class AgentShardTests: XCTestCase {
    func testShardsDealTargetsRoundRobin() {
        XCTAssertEqual(AgentRunner.shards(Array(1...10), count: 4), [[1, 5, 9], [2, 6, 10], [3, 7], [4, 8]])
        XCTAssertEqual(AgentRunner.shards([1, 2], count: 8), [[1], [2]])
        XCTAssertEqual(AgentRunner.shards([Int](), count: 8), [])
    }

    func testAHangingTargetDoesNotStallTheOthers() async throws {
        // A listener that never accepts, its backlog filled: further SYNs are dropped, so a connect
        // to it waits for the timeout.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        XCTAssertEqual(listen(fd, 0), 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        var fillers: [Int32] = []
        defer { fillers.forEach { close($0) } }
        for _ in 0..<4 {
            let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var a = addr
            _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(c, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            fillers.append(c)
        }
        let good = try LoopbackListener(host: "127.0.0.1")
        defer { good.close() }
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probes: [{name: conn, kind: tcping, targets: ["127.0.0.1:\(port)", "\(good.address.hostPort)"], interval: 100ms, timeout: 1s}]
            """)
        let seen = CountingSink()
        let agent = try Agent(config: c, extraSinks: [seen], log: { _ in })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(1500))
        await agent.stop()
        let hung = seen.samples.filter { $0.target == "127.0.0.1:\(port)" }
        let fine = seen.samples.filter { $0.target == good.address.hostPort }
        XCTAssertTrue(hung.contains { $0.status == .timeout }, "the full backlog makes connects time out: \(hung.map(\.status))")
        XCTAssertGreaterThanOrEqual(fine.count, 12, "the other target keeps its 100 ms pace (15 rounds in 1.5 s)")
    }
}
