import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterRun
import Yams
@testable import EdgeMeterController

final class DelayFeedTests: XCTestCase {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// `n` samples of one probe from `from` to `to`, values 1…n ms scaled by `scale`, `lost` of them lost.
    static func samples(probe: String, phase: String, metric: String = "latency", from: String?, to: String, target: String,
                        n: Int, scale: Double, lost: Int = 0) -> [Sample] {
        (0..<n).map { i in
            var labels = ["to": to, "seq": String(i + 1)]
            if let from { labels["from"] = from }
            let isLost = i >= n - lost
            return Sample(runID: "r", scenario: "s", probe: probe, target: target, metric: metric, phase: phase,
                          value: isLost ? nil : Double(i + 1) * scale, unit: "ms", timestamp: t0.addingTimeInterval(Double(i) * 0.1),
                          status: isLost ? .timeout : .ok, reason: isLost ? "no reply" : "", labels: labels)
        }
    }

    static var labRun: [Sample] {
        samples(probe: "ping", phase: "echo", metric: "rtt", from: "vehicle", to: "node_1", target: "10.0.1.2", n: 100, scale: 0.05)
            + samples(probe: "ping", phase: "echo", metric: "rtt", from: "vehicle", to: "node_2", target: "10.0.2.2", n: 100, scale: 0.3, lost: 10)
            + samples(probe: "tcping", phase: "connect", from: "vehicle", to: "node_1", target: "10.0.1.2:8000", n: 20, scale: 0.25)
            + samples(probe: "http", phase: "total", from: "vehicle", to: "node_3", target: "http://10.0.3.2:8000/healthz", n: 10, scale: 8)
            + samples(probe: "http", phase: "connect", from: "vehicle", to: "node_3", target: "http://10.0.3.2:8000/healthz", n: 10, scale: 1)
            + samples(probe: "ping", phase: "echo", metric: "rtt", from: "node_1", to: "node_2", target: "10.0.2.2", n: 4, scale: 1, lost: 4)
    }

    func testRowsArePerOriginDestinationAndMetricWithNearestRankPercentiles() throws {
        let rows = DelayTable.rows(from: Self.labRun)
        XCTAssertEqual(rows.map { "\($0.from)>\($0.to) \($0.metric)" },
                       ["vehicle>node_1 ping_rtt", "vehicle>node_2 ping_rtt", "vehicle>node_1 tcp_connect", "vehicle>node_3 http_total",
                        "node_1>node_2 ping_rtt"])
        let n1 = rows[0]
        XCTAssertEqual(n1.p50Milliseconds!, 2.5, accuracy: 1e-9)    // rank 50 of 1..100 × 0.05
        XCTAssertEqual(n1.p90Milliseconds!, 4.5, accuracy: 1e-9)
        XCTAssertEqual(n1.p99Milliseconds!, 4.95, accuracy: 1e-9)
        XCTAssertEqual(n1.samples, 100)
        XCTAssertEqual(n1.windowStart, Self.t0)
        XCTAssertEqual(n1.windowEnd, Self.t0.addingTimeInterval(9.9))
        let n2 = rows[1]
        XCTAssertEqual(n2.lossPercent, 10)
        XCTAssertEqual(n2.received, 90)
        XCTAssertEqual(n2.p90Milliseconds!, 24.3, accuracy: 1e-9)    // rank 81 of the 90 received (0.3 … 27)
        XCTAssertNil(rows[4].p90Milliseconds)
        XCTAssertEqual(rows[4].lossPercent, 100)
        // The CSV reads back to the same rows.
        let back = try DelayTable.parse(DelayTable.csv(rows))
        XCTAssertEqual(back.map(\.p90Milliseconds), rows.map(\.p90Milliseconds))
        XCTAssertEqual(back.map { Format.timestamp($0.windowEnd) }, rows.map { Format.timestamp($0.windowEnd) })
        XCTAssertThrowsError(try DelayTable.parse("from,to\nx,y\n")) { e in
            XCTAssertTrue("\(e)".contains("delays.csv:1"), "\(e)")
        }
    }

    func testEveryRunDirectoryGetsDelaysCSV() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        let run = try RunDirectory(out: dir.path, name: "t")
        for s in Self.labRun { run.record(s) }
        try run.finish(complete: true)
        let text = try String(contentsOf: dir.appendingPathComponent("delays.csv"), encoding: .utf8)
        XCTAssertEqual(try DelayTable.parse(text).count, 5)
        XCTAssertTrue(text.hasPrefix("from,to,target,metric,p50_ms,p90_ms,p99_ms,loss_percent,samples,received,window_start,window_end\n"))
        XCTAssertTrue(text.contains("vehicle,node_1,10.0.1.2,ping_rtt,2.500,4.500,4.950,0.00,100,100,"), text)
        try? FileManager.default.removeItem(at: dir)
    }

    func testNetworkTopologyMatchesTheGoldenFile() throws {
        let yaml = try DelayFeed.networkTopology(DelayTable.rows(from: Self.labRun), name: "edge-cloud", namespace: "default",
                                                 configmapName: "netperf-metrics", topologyKey: "kubernetes.io/hostname", metric: nil)
        let url = Bundle.module.url(forResource: "networktopology", withExtension: "yaml", subdirectory: "testdata")
        let golden = url.flatMap { try? String(contentsOf: $0, encoding: .utf8) }
        if yaml != golden {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("networktopology.actual.yaml")
            try? yaml.write(to: out, atomically: true, encoding: .utf8)
            XCTFail("NetworkTopology differs from testdata/networktopology.yaml; the output is in \(out.path)")
        }
        // It is YAML of the CRD's shape.
        let doc = try XCTUnwrap(try Yams.load(yaml: yaml) as? [String: Any])
        XCTAssertEqual(doc["kind"] as? String, "NetworkTopology")
        let spec = try XCTUnwrap(doc["spec"] as? [String: Any])
        XCTAssertEqual(spec["configmapName"] as? String, "netperf-metrics")
        let topo = try XCTUnwrap(((spec["weights"] as? [[String: Any]])?.first?["topologyList"] as? [[String: Any]])?.first)
        XCTAssertEqual(topo["topologyKey"] as? String, "kubernetes.io/hostname")
        let origins = try XCTUnwrap(topo["originList"] as? [[String: Any]])
        XCTAssertEqual(origins.map { $0["origin"] as? String }, ["vehicle", "node_1"])
        let costs = try XCTUnwrap(origins[0]["costList"] as? [[String: Any]])
        XCTAssertEqual(costs.map { $0["networkCost"] as? Int }, [5, 24, 72])
        XCTAssertEqual((origins[1]["costList"] as? [Any])?.count, 0)
        // ping is preferred over tcp connect for the same pair; costs are the rounded p90.
        XCTAssertTrue(yaml.contains("- destination: \"node_1\"\n          networkCost: 5\n"), yaml)
        XCTAssertTrue(yaml.contains("- destination: \"node_2\"\n          networkCost: 24\n"), yaml)
        XCTAssertTrue(yaml.contains("# left out: node_2 (ping_rtt: no answer in 4 attempts)"), yaml)
        XCTAssertThrowsError(try DelayFeed.networkTopology([], name: "x", namespace: "d", configmapName: "c", topologyKey: "k", metric: nil))
    }

    /// delays.csv → `edgemeter feed`'s post → the controller's windows → a decision.
    func testFeedPostsTheRunToTheControllerWhichDecides() async throws {
        let c = try await TestController()
        defer { Task { await c.stop() } }
        var svc = TestController.labService(active: "node_3", targets: ["node_2": "http://127.0.0.1:9/healthz"])
        svc["requirement"] = "20ms@p90"
        let v1 = try await c.call("POST", "/service_init", json: svc).status
        XCTAssertEqual(v1, 200)
        let rows = DelayTable.rows(from:
            Self.samples(probe: "http", phase: "total", from: "vehicle", to: "node_1", target: "http://a/", n: 40, scale: 0.2)
            + Self.samples(probe: "http", phase: "total", from: "vehicle", to: "node_3", target: "http://c/", n: 40, scale: 2)
            + Self.samples(probe: "ping", phase: "echo", metric: "rtt", from: "vehicle", to: "node_1", target: "a", n: 5, scale: 1)
            + Self.samples(probe: "http", phase: "total", from: "vehicle", to: "cloud-db", target: "http://d/", n: 5, scale: 1)
            // Outside a topology a row names the target, not the node: matched by the node's probe target.
            + Self.samples(probe: "http", phase: "total", from: nil, to: "http://127.0.0.1:9/healthz",
                           target: "http://127.0.0.1:9/healthz", n: 6, scale: 30))
        let base = try HTTPTarget(url: "http://127.0.0.1:\(c.server.port)")
        let r = try await DelayFeed.post(rows, controller: base, token: testToken, service: "edge-app")
        XCTAssertEqual(r.posted.map(\.to), ["node_1", "node_3", "node_2"])
        XCTAssertEqual(r.skipped.map(\.reason), ["node node_1 is judged on http_total, not ping_rtt", "the controller has no node cloud-db"])
        let obs = await c.controller.observations("edge-app")
        XCTAssertEqual(obs.map(\.sent), [40, 6, 40])
        XCTAssertEqual(obs[0].p90Milliseconds!, 7.2, accuracy: 1e-9)   // rank 36 of 0.2 … 8
        XCTAssertEqual(obs[2].p90Milliseconds!, 72, accuracy: 1e-9)
        XCTAssertEqual(obs[2].p50Milliseconds!, 40, accuracy: 1e-9)
        let m = try await c.call("GET", "/migrate")
        XCTAssertEqual(m.json["decision"] as? String, "migrate", m.text)
        XCTAssertEqual(m.json["active_node"] as? String, "node_1")

        do {
            _ = try await DelayFeed.post(rows, controller: base, token: "wrong", service: nil)
            XCTFail("a wrong token must fail")
        } catch let e as ControllerError {
            XCTAssertEqual(e.status, 401)
            XCTAssertEqual(e.field, "--token-file")
        }
    }
}
