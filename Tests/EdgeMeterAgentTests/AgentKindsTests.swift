import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeApp
import Calculator
@testable import EdgeMeterAgent

/// The HTTP-based kinds running continuously in an agent against the real workloads: the edge app
/// (http /healthz, vehicle /drive) and the calculator all-in-one (calc).
final class AgentKindsTests: XCTestCase {
    func testHTTPVehicleAndCalcProbesFeedTheirSeries() async throws {
        let cloud = try await EdgeAppServer.startCloudDB(port: 0)
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "edge-1", cloud: HTTPTarget(host: "127.0.0.1", port: cloud.port, path: "/status"))
        let zero = Dictionary(uniqueKeysWithValues: CalcOperation.allCases.map { ($0, 0) })
        let calc = try await CalculatorServer.startAll(frontPort: 0, operationPorts: zero)
        let c = try agentConfig("""
            listen: 127.0.0.1:0
            interval: 100ms
            probes:
              - {name: api, kind: http, url: "http://127.0.0.1:\(edge.port)/healthz", expect_status: 200}
              - {name: car, kind: vehicle, url: "http://127.0.0.1:\(edge.port)/drive"}
              - {name: calc, kind: calc, url: "http://127.0.0.1:\(calc[0].port)/calculate", expression: "(5+6)*2"}
            """)
        let seen = CountingSink()
        let agent = try Agent(config: c, extraSinks: [seen], log: { _ in })
        try await agent.start()
        try await Task.sleep(for: .milliseconds(1000))
        agent.stopProbes()
        let text = try await fetch(agent.url + "/metrics").body
        await agent.stop()
        await edge.stop(); await cloud.stop()
        for s in calc { await s.stop() }

        for (name, phase) in [("api", "total"), ("car", "total"), ("calc", "total"), ("calc", "hop1_sum"), ("calc", "hop2_mul")] {
            let rows = seen.samples.filter { $0.scenario == name && $0.phase == phase }
            XCTAssertGreaterThanOrEqual(rows.count, 5, "\(name)/\(phase): about 10 rounds in 1 s")
            XCTAssertEqual(rows.filter { $0.status != .ok }.map(\.reason), [], "\(name)/\(phase)")
            XCTAssertEqual(metricValue(text, "edgemeter_attempts_total", ["name=\"\(name)\"", "phase=\"\(phase)\""]), Double(rows.count), text)
        }
        let car = seen.samples.filter { $0.scenario == "car" && $0.phase == "total" }
        XCTAssertEqual(Set(car.compactMap { $0.labels["edge_node"] }), ["edge-1"], "the answering node is recorded")
        XCTAssertEqual(car.first?.target, "http://127.0.0.1:\(edge.port)/drive")
        XCTAssertNotNil(metricValue(text, "edgemeter_latency_seconds_count", ["name=\"calc\"", "phase=\"hop1_sum\"", "timestamp=\"server\""]), text)
        XCTAssertNotNil(metricValue(text, "edgemeter_latency_seconds_count", ["name=\"car\"", "phase=\"total\"", "socket=\"stream\""]), text)
    }
}
