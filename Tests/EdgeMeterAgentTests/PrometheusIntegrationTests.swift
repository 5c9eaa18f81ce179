import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterSystem
@testable import EdgeMeterAgent

/// Debian's `prometheus` on loopback scrapes a real agent: the `/metrics` job and a blackbox-style
/// `/probe` job with blackbox_exporter's relabelling. What Prometheus stored must match what the
/// agent measured: counters exactly, quantiles from the histogram within the bucket of the exact one.
final class PrometheusIntegrationTests: XCTestCase {
    /// A free TCP port on 127.0.0.1 (bound, read, closed).
    func freePort() throws -> Int {
        let l = try LoopbackListener(host: "127.0.0.1")
        defer { l.close() }
        return Int(l.address.port)
    }

    func query(_ base: String, _ promQL: String) async throws -> [(labels: [String: String], value: Double)] {
        let q = promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let (status, body) = try await fetch("\(base)/api/v1/query?query=\(q)")
        XCTAssertEqual(status, 200, body)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let result = ((obj["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
        print("prometheus: \(promQL) → \(body.prefix(600))")
        return result.map { r in
            let labels = (r["metric"] as? [String: String]) ?? [:]
            let v = ((r["value"] as? [Any])?.last as? String).flatMap(Double.init) ?? .nan
            return (labels, v)
        }
    }

    func testPrometheusStoresWhatTheAgentMeasured() async throws {
        guard let prometheus = EdgeMeterSystem.which("prometheus") else {
            throw XCTSkip("Debian's prometheus is not installed: `apt-get install prometheus` (scripts/setup.sh lists it)")
        }
        let listener = try LoopbackListener(host: "127.0.0.1")
        defer { listener.close() }
        let target = listener.address.hostPort
        let icmp = icmpUnavailableReason() == nil
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            probe_cidrs: [127.0.0.0/8]
            probes:
              - {name: conn, kind: tcping, targets: ["\(target)"], interval: 100ms}
            \(icmp ? "  - {name: loop, kind: ping, targets: [127.0.0.1], interval: 100ms}" : "")
            """)
        let seen = CountingSink()
        let agent = try Agent(config: c, extraSinks: [seen], log: { _ in })
        try await agent.start()

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent-prom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let webPort = try freePort()
        let config = AgentScrapeConfig.yaml(agent: "127.0.0.1:\(agent.port)", probeTargets: [target], module: "tcp_connect", interval: "1s")
        let configPath = dir.appendingPathComponent("prometheus.yml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let logFD = open(dir.appendingPathComponent("prometheus.log").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(logFD) }
        let proc = try ChildProcess([prometheus, "--config.file=\(configPath)", "--storage.tsdb.path=\(dir.appendingPathComponent("data").path)",
                                     "--web.listen-address=127.0.0.1:\(webPort)", "--web.enable-lifecycle"], outputFD: logFD, newProcessGroup: true)
        defer { proc.signalGroup(SIGTERM); _ = proc.waitBlocking() }
        let base = "http://127.0.0.1:\(webPort)"
        var ready = false
        for _ in 0..<100 {
            if let r = try? await fetch(base + "/-/ready", timeout: .seconds(1)), r.status == 200 { ready = true; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let log = (try? String(contentsOfFile: dir.appendingPathComponent("prometheus.log").path, encoding: .utf8)) ?? ""
        XCTAssertTrue(ready, "prometheus did not become ready: \(log.suffix(2000))")

        // Let both jobs scrape a few times, then freeze the agent's series and let Prometheus take them.
        try await Task.sleep(for: .seconds(4))
        agent.stopProbes()
        try await Task.sleep(for: .milliseconds(2500))
        let final = try await fetch(agent.url + "/metrics").body
        defer { Task { await agent.stop() } }

        // Counters: exact.
        let connects = seen.samples.filter { $0.probe == "tcping" && $0.phase == "connect" }
        let stored = try await query(base, #"edgemeter_attempts_total{job="edgemeter-agent",name="conn",phase="connect"}"#)
        XCTAssertEqual(stored.count, 1)
        XCTAssertEqual(stored.first?.value, Double(connects.count), "Prometheus holds the agent's final count")
        XCTAssertEqual(stored.first?.value, metricValue(final, "edgemeter_attempts_total", ["name=\"conn\"", "phase=\"connect\""]))
        XCTAssertGreaterThanOrEqual(connects.count, 40)
        let okCount = try await query(base, #"edgemeter_latency_seconds_count{name="conn",phase="connect"}"#)
        XCTAssertEqual(okCount.first?.value, Double(connects.filter { $0.status == .ok }.count))

        // Quantiles: histogram_quantile within the bucket holding the exact (nearest-rank) one.
        func checkQuantile(_ q: Double, name: String, phase: String, values: [Double]) async throws {
            let sorted = values.sorted()
            let exact = try XCTUnwrap(DelayTable.nearestRank(sorted, q * 100)) / 1000
            let r = try await query(base, "histogram_quantile(\(q), sum by (le) (edgemeter_latency_seconds_bucket{name=\"\(name)\",phase=\"\(phase)\"}))")
            let fromHistogram = try XCTUnwrap(r.first?.value)
            let (lower, upper) = RTTBuckets.bucket(of: exact)
            print("quantile \(q) \(name)/\(phase): exact \(exact * 1e3) ms, Prometheus \(fromHistogram * 1e3) ms, bucket (\(lower * 1e3), \(upper * 1e3)] ms")
            XCTAssertGreaterThanOrEqual(fromHistogram, lower, "p\(Int(q * 100)) \(phase)")
            XCTAssertLessThanOrEqual(fromHistogram, upper, "p\(Int(q * 100)) \(phase)")
        }
        let connectValues = connects.compactMap(\.value)
        try await checkQuantile(0.5, name: "conn", phase: "connect", values: connectValues)
        try await checkQuantile(0.9, name: "conn", phase: "connect", values: connectValues)
        if icmp {
            let echoes = seen.samples.filter { $0.probe == "ping" && $0.phase == "echo" }
            let e = try await query(base, #"sum(edgemeter_attempts_total{name="loop",phase="echo"})"#)
            XCTAssertEqual(e.first?.value, Double(echoes.count))
            try await checkQuantile(0.5, name: "loop", phase: "echo", values: echoes.compactMap(\.value))
        } else {
            print("skipped the ping series: \(icmpUnavailableReason()!)")
        }

        // The blackbox-style job: relabelled target as instance, probe_success and the connect phase stored.
        let success = try await query(base, #"probe_success{job="edgemeter-probe"}"#)
        XCTAssertEqual(success.first?.labels["instance"], target)
        XCTAssertEqual(success.first?.value, 1)
        let connect = try await query(base, #"probe_tcp_duration_seconds{job="edgemeter-probe",phase="connect"}"#)
        XCTAssertGreaterThan(connect.first?.value ?? 0, 0)
        let up = try await query(base, #"up{job=~"edgemeter-.*"}"#)
        XCTAssertEqual(up.map(\.value), [1, 1])
    }
}
