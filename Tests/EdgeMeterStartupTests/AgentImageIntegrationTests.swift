import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem

/// `edgemeter image build --agent` for real: the image is imported into dockerd, its entrypoint is
/// the agent and its user nobody; a container of it (host network, as the DaemonSet runs it, the
/// configuration mounted where the manifests mount the ConfigMap) serves /metrics, and Debian's
/// `prometheus`, started on loopback by this test with a /metrics job and a blackbox-style /probe
/// job, stores the agent's series; the answers come from Prometheus's query API.
final class AgentImageIntegrationTests: XCTestCase {
    var bin = ""
    let tag = "edgemeter-agent:ag2-test"

    /// The `edgemeter` built beside the tests (EDGEMETER_BIN overrides).
    static func edgemeterBinary() -> String? {
        if let p = ProcessInfo.processInfo.environment["EDGEMETER_BIN"] { return p }
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        let p = u.appendingPathComponent(".build/debug/edgemeter").path
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    func runCommand(_ path: String, _ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        try Command.runBlocking([path] + args, timeout: .seconds(timeout))
    }

    override func setUpWithError() throws {
        guard let b = Self.edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        bin = b
        guard which("docker") != nil, FileManager.default.fileExists(atPath: "/var/run/docker.sock") else {
            throw XCTSkip("needs dockerd: apt-get install docker.io and run scripts/setup-engines.sh")
        }
        guard which("prometheus") != nil else { throw XCTSkip("needs Debian's prometheus: apt-get install prometheus (scripts/setup.sh)") }
        let help = try runCommand(bin, ["agent", "--help"])
        guard help.status == 0 else { throw XCTSkip("this build has no `edgemeter agent` (branch wip-agent not merged)") }
    }

    /// A TCP port free on 127.0.0.1 right now.
    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        XCTAssertTrue(ok)
        return Int(UInt16(bigEndian: a.sin_port))
    }

    func get(_ url: String) throws -> (status: Int32, body: String) {
        let r = try runCommand("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-f", url], timeout: 10)
        return (r.status, r.stdout)
    }

    /// The value of a Prometheus instant query with one result, nil while it has none.
    func query(_ promPort: Int, _ q: String) throws -> Double? {
        let enc = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q
        let r = try get("http://127.0.0.1:\(promPort)/api/v1/query?query=\(enc)")
        guard r.status == 0, let obj = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
              let data = obj["data"] as? [String: Any], let result = data["result"] as? [[String: Any]], result.count == 1,
              let value = result[0]["value"] as? [Any], value.count == 2, let s = value[1] as? String else { return nil }
        return Double(s)
    }

    func docker(_ args: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        let r = try runCommand("/usr/bin/env", ["docker"] + args, timeout: timeout)
        print("$ docker \(args.joined(separator: " ")) -> \(r.status) \(r.stdout.prefix(300))\(r.stderr.prefix(300))")
        return r
    }

    func testAgentImageRunsUnderDockerAndPrometheusStoresItsSeries() throws {
        // 1. the image
        let build = try runCommand(bin, ["image", "build", "--agent", "--tag", tag], timeout: 300)
        XCTAssertEqual(build.status, 0, build.stderr)
        guard build.status == 0 else { return }
        print(build.stdout.split(separator: "\n").first ?? "")
        defer { _ = try? docker(["rmi", "-f", tag]) }
        let inspect = try docker(["image", "inspect", "-f", "{{json .Config.Entrypoint}} {{.Config.User}} {{json .Config.Cmd}}", tag])
        XCTAssertEqual(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       #"["/usr/local/bin/edgemeter","agent"] 65534:65534 ["--config","/etc/edgemeter/agent.yaml"]"#)

        // 2. a container of it, host network, the config where the DaemonSet mounts the ConfigMap.
        // tcping to its own port: probes that need no capability (the process is not root).
        let port = try freePort(), promPort = try freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ag2-agent-image-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o755)
        let config = """
        listen: 127.0.0.1:\(port)
        interval: 200ms
        probe_cidrs: [127.0.0.0/8]
        probes:
          - {name: self, kind: tcping, targets: ["127.0.0.1:\(port)"]}

        """
        let configPath = dir.appendingPathComponent("agent.yaml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        chmod(configPath, 0o644)
        let name = "edgemeter-ag2-agent-\(getpid())"
        _ = try? docker(["rm", "-f", name])
        let run = try docker(["run", "-d", "--name", name, "--network", "host", "--label", "edgemeter=ag2",
                              "-v", "\(configPath):/etc/edgemeter/agent.yaml:ro", tag])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }
        defer { _ = try? docker(["rm", "-f", name]) }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = try get("http://127.0.0.1:\(port)/metrics").status == 0
            if !ready { usleep(100_000) }
        }
        guard ready else {
            XCTFail("the agent in the container never answered /metrics: \(try docker(["logs", name]).stderr)")
            return
        }
        let pid = try docker(["inspect", "-f", "{{.State.Pid}}", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map { $0.split(whereSeparator: \.isWhitespace)[1] }
        XCTAssertEqual(uid, "65534", "the agent runs as nobody, not root")

        // 3. Prometheus on loopback, scraping /metrics and /probe as a blackbox job would.
        let prom = """
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: edgemeter-agent
            static_configs:
              - targets: ["127.0.0.1:\(port)"]
          - job_name: edgemeter-probe
            metrics_path: /probe
            params:
              module: [tcp_connect]
            static_configs:
              - targets: ["127.0.0.1:\(port)"]
            relabel_configs:
              - source_labels: [__address__]
                target_label: __param_target
              - source_labels: [__param_target]
                target_label: instance
              - target_label: __address__
                replacement: 127.0.0.1:\(port)

        """
        let promConfig = dir.appendingPathComponent("prometheus.yml").path
        try prom.write(toFile: promConfig, atomically: true, encoding: .utf8)
        let log = open(dir.appendingPathComponent("prometheus.log").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(log) }
        let p = try ChildProcess(["prometheus", "--config.file=\(promConfig)", "--storage.tsdb.path=\(dir.path)/tsdb",
                                  "--web.listen-address=127.0.0.1:\(promPort)"], outputFD: log)
        defer { p.signal(SIGTERM); _ = p.waitBlocking() }

        var up: Double?, success: Double?, attempts: Double?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            up = try query(promPort, #"up{job="edgemeter-agent"}"#)
            success = try query(promPort, #"probe_success{job="edgemeter-probe"}"#)
            attempts = try query(promPort, #"sum(edgemeter_attempts_total{job="edgemeter-agent",probe="tcping",phase="connect"})"#)
            if up == 1, success == 1, (attempts ?? 0) > 0 { break }
            usleep(500_000)
        }
        print("prometheus: up \(up.map { "\($0)" } ?? "none"), probe_success \(success.map { "\($0)" } ?? "none"), tcping attempts \(attempts.map { "\($0)" } ?? "none")")
        XCTAssertEqual(up, 1, "Prometheus scraped the agent's /metrics in the container")
        XCTAssertEqual(success, 1, "the blackbox-style /probe job answered probe_success 1")
        let stored = try XCTUnwrap(attempts, "Prometheus stored the agent's attempts counter")
        XCTAssertGreaterThan(stored, 0)
        // What Prometheus stored cannot exceed what the agent reports now, and no attempt failed.
        let now = try get("http://127.0.0.1:\(port)/metrics").body
        let line = now.split(separator: "\n").first { $0.hasPrefix("edgemeter_attempts_total{") && $0.contains("phase=\"connect\"") }
        let live = try XCTUnwrap(line.flatMap { Double($0.split(separator: " ").last ?? "") })
        XCTAssertGreaterThanOrEqual(live, stored)
        XCTAssertEqual(try query(promPort, #"sum(edgemeter_lost_total{job="edgemeter-agent",probe="tcping"})"#) ?? 0, 0)
        // One query, so every series comes from the same scrape: each attempt is either in the
        // histogram, lost, or an error (the first connect can come before the agent listens: refused).
        let sel = #"{job="edgemeter-agent",probe="tcping",phase="connect"}"#
        let diff = try query(promPort, "sum(edgemeter_attempts_total\(sel)) - sum(edgemeter_latency_seconds_count\(sel))"
                             + " - (sum(edgemeter_errors_total\(sel)) or vector(0)) - (sum(edgemeter_lost_total\(sel)) or vector(0))")
        XCTAssertEqual(diff, 0, "attempts = answered (histogram count) + lost + errors")
        let answered = try XCTUnwrap(try query(promPort, "sum(edgemeter_latency_seconds_count\(sel))"))
        XCTAssertGreaterThanOrEqual(answered, stored - 2, "all but the attempts made before the agent listened were answered")
    }

    /// The ConfigMap's default agent configuration is one the agent accepts (`agent --check`), and
    /// the scrape configuration's /probe job passes Debian's `promtool check config` (its
    /// Kubernetes-discovery job cannot: Debian builds Prometheus without Kubernetes discovery).
    func testManifestsConfigIsAcceptedByTheAgentAndTheProbeJobByPromtool() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ag2-manifests-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runCommand(bin, ["k8s", "manifests", "--out", dir.path, "--probe-target", "10.0.0.5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let cm = try String(contentsOfFile: dir.appendingPathComponent("configmap.yaml").path, encoding: .utf8)
        let lines = cm.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try XCTUnwrap(lines.firstIndex { $0.hasSuffix("agent.yaml: |") })
        let body = lines[(start + 1)...].map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }.joined(separator: "\n")
        let agentConfig = dir.appendingPathComponent("agent.yaml").path
        try body.write(toFile: agentConfig, atomically: true, encoding: .utf8)
        let check = try runCommand(bin, ["agent", "--config", agentConfig, "--check"])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("listen 0.0.0.0:9427"), check.stdout)
        guard which("promtool") != nil else { throw XCTSkip("promtool missing: apt-get install prometheus") }
        let scrape = try String(contentsOfFile: dir.appendingPathComponent("prometheus-scrape.yaml").path, encoding: .utf8)
        let probeJob = try XCTUnwrap(scrape.range(of: "  - job_name: edgemeter-probe"))
        let onlyProbe = dir.appendingPathComponent("probe-job.yaml").path
        try ("scrape_configs:\n" + scrape[probeJob.lowerBound...]).write(toFile: onlyProbe, atomically: true, encoding: .utf8)
        let prom = try runCommand("/usr/bin/env", ["promtool", "check", "config", onlyProbe])
        XCTAssertEqual(prom.status, 0, prom.stdout + prom.stderr)
    }
}
