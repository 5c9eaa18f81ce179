import XCTest
import EdgeMeterCore
@testable import EdgeMeterAgent

final class AgentMetricsTests: XCTestCase {
    func sample(_ phase: String, _ ms: Double?, _ status: SampleStatus, probe: String = "ping", labels: [String: String] = [:]) -> Sample {
        Sample(runID: "agent", scenario: "loop", probe: probe, target: "127.0.0.1", metric: "rtt", phase: phase, value: ms, unit: "ms",
               timestamp: Date(), status: status, labels: labels)
    }

    func testSamplesBecomeHistogramBucketsAndCounters() {
        let m = AgentMetrics()
        m.declare(probe: "loop", kind: "ping", targets: ["127.0.0.1"], phases: ["echo"])
        let kernel = ["socket": "raw", "timestamp": "kernel", "clock": "realtime-paired"]
        for ms in [0.04, 0.08, 0.3, 12.0] { m.record(sample("echo", ms, .ok, labels: kernel)) }
        m.record(sample("echo", 0.09, .ok, labels: ["socket": "raw", "timestamp": "userspace"]))
        m.record(sample("echo", nil, .timeout))
        m.record(sample("echo", nil, .timeout))
        m.record(sample("echo", nil, .unreachable))
        m.record(sample("resolve", 0.01, .ok)) // one-time resolve: not a per-attempt figure
        let text = m.exposition()
        let base = #"name="loop",probe="ping",target="127.0.0.1",phase="echo""#
        XCTAssertTrue(text.contains("edgemeter_attempts_total{\(base)} 8\n"), text)
        XCTAssertTrue(text.contains("edgemeter_lost_total{\(base)} 2\n"), text)
        XCTAssertTrue(text.contains("edgemeter_errors_total{\(base),status=\"unreachable\"} 1\n"), text)
        let k = #"\#(base),socket="raw",timestamp="kernel""#
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"5e-05\"} 1\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"0.0001\"} 2\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"0.0005\"} 3\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"0.01\"} 3\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"0.015\"} 4\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_bucket{\(k),le=\"+Inf\"} 4\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_count{\(k)} 4\n"), text)
        XCTAssertTrue(text.contains("edgemeter_latency_seconds_count{\(base),socket=\"raw\",timestamp=\"userspace\"} 1\n"), text)
        XCTAssertFalse(text.contains("phase=\"resolve\""), text)
        XCTAssertTrue(text.contains("# TYPE edgemeter_latency_seconds histogram"), text)
    }

    func testDeclaredSeriesExistBeforeAnySample() {
        let m = AgentMetrics()
        m.declare(probe: "web", kind: "http", targets: ["http://10.0.0.1/"], phases: ["connect", "total"])
        let text = m.exposition()
        XCTAssertTrue(text.contains(#"edgemeter_attempts_total{name="web",probe="http",target="http://10.0.0.1/",phase="total"} 0"#), text)
        XCTAssertTrue(text.contains(#"edgemeter_lost_total{name="web",probe="http",target="http://10.0.0.1/",phase="connect"} 0"#), text)
    }

    func testServerTimingAndTCPProvenance() {
        XCTAssertEqual(AgentMetrics.provenance(sample("hop1_sum", 1, .ok, probe: "calc", labels: ["source": "server-timing"])).timestamp, "server")
        XCTAssertEqual(AgentMetrics.provenance(sample("connect", 1, .ok, probe: "tcping", labels: ["clock": "monotonic"])).socket, "stream")
    }

    func testDelayWindowSummarisesPerTargetAndEmpties() {
        let w = PushWindow(origin: "edge-1", nodes: ["127.0.0.1": "node_1"], limit: 3)
        for ms in [1.0, 2.0, 3.0] { w.record(Sample(runID: "", scenario: "t", probe: "tcping", target: "127.0.0.1", metric: "latency", phase: "connect",
                                                    value: ms, unit: "ms", timestamp: Date(), status: .ok)) }
        w.record(Sample(runID: "", scenario: "t", probe: "tcping", target: "127.0.0.1", metric: "latency", phase: "connect",
                        value: nil, unit: "ms", timestamp: Date(), status: .timeout))
        w.record(Sample(runID: "", scenario: "t", probe: "tcping", target: "127.0.0.1", metric: "latency", phase: "first_byte",
                        value: 1, unit: "ms", timestamp: Date(), status: .ok))
        let (rows, dropped) = w.take()
        XCTAssertEqual(dropped, 1, "the fourth sample exceeds the limit of 3")
        XCTAssertEqual(rows.count, 1, "first_byte is not a delay metric")
        XCTAssertEqual(rows[0].from, "edge-1")
        XCTAssertEqual(rows[0].to, "node_1")
        XCTAssertEqual(rows[0].metric, "tcp_connect")
        XCTAssertEqual(rows[0].p50Milliseconds, 2)
        XCTAssertEqual(rows[0].samples, 3)
        XCTAssertTrue(w.take().rows.isEmpty, "a window starts empty")
    }
}
