import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture
@testable import EdgeMeterRun
import EdgeMeterProbes
import EdgeMeterHTTP

/// HTTP probe samples carry their connection's `local_port`, and the capture hook pairs each
/// request with the wire request on that port and the target's server port — exactly, even when
/// other connections on the same capture use the same port number.
final class HTTPPairingTests: XCTestCase {
    func testTargetPort() {
        XCTAssertEqual(WireReport.targetPort("http://172.17.0.6:50000/calculate"), 50000)
        XCTAssertEqual(WireReport.targetPort("http://[::1]:8080/x:y"), 8080)
        XCTAssertEqual(WireReport.targetPort("127.0.0.1:7"), 7)
        XCTAssertNil(WireReport.targetPort("http://example/"))
        XCTAssertNil(WireReport.targetPort("172.17.0.2"))
    }

    /// Two wire requests from client port 40000: a container's call to another service (first in
    /// capture order) and this host's request to the front end. Only the second is the probe's.
    func testSameLocalPortOnAnotherConnectionDoesNotPair() throws {
        let host = IPAddress("172.17.0.1")!, front = IPAddress("172.17.0.6")!, sum = IPAddress("172.17.0.2")!
        let t0: Int64 = 1_800_000_000_000_000_000
        let call = WireHTTPExchange(client: front, clientPort: 40000, server: sum, serverPort: 50001, index: 0, method: "GET",
                                    target: "/sum?a=1&b=2", status: 200, requestStartNs: t0 + 100_000, requestEndNs: t0 + 100_000,
                                    responseStartNs: t0 + 300_000, responseEndNs: t0 + 300_000)
        let request = WireHTTPExchange(client: host, clientPort: 40000, server: front, serverPort: 50000, index: 0, method: "POST",
                                       target: "/calculate", status: 200, requestStartNs: t0, requestEndNs: t0,
                                       responseStartNs: t0 + 1_500_000, responseEndNs: t0 + 1_500_000)
        let a = WireAnalysis(linkType: LinkType.ethernet, counters: DecodeCounters(), flows: [], handshakes: [], echoes: [],
                             http: [call, request], httpUnfollowable: 0, firstNs: t0, lastNs: t0 + 1_500_000)
        let app = Sample(runID: "r", scenario: "s", probe: "http", target: "http://172.17.0.6:50000/calculate", metric: "latency",
                         phase: "first_byte", value: 1.7, unit: "ms", timestamp: Date(), status: .ok,
                         labels: ["local_port": "40000", "seq": "0"])
        let sink = MemorySink()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-pair-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ctx = ScenarioContext(runID: "r", sink: sink, stop: StopFlag(), directory: dir, suiteDirectory: nil,
                                  progress: { _ in }, addSection: { _ in })
        WireReport.record(analysis: a, capture: nil, interface: "docker0", pcapPath: dir.appendingPathComponent("x.pcap").path,
                          appSamples: [app], scenario: "s", ctx: ctx)
        let pairs = sink.samples.filter { $0.phase == "stack_overhead_first_byte" }
        XCTAssertEqual(pairs.count, 1)
        XCTAssertEqual(pairs.first?.labels["server"], "172.17.0.6:50000")
        XCTAssertEqual(try XCTUnwrap(pairs.first?.value), 1.7 - 1.5, accuracy: 1e-9)
        // The container's call stays under its own server.
        let callWire = sink.samples.first { $0.phase == "http_first_byte" && $0.labels["server"] == "172.17.0.2:50001" }
        XCTAssertEqual(callWire?.target, "172.17.0.2:50001")
        XCTAssertNil(callWire?.labels["app_probe"])
    }

    /// The real probe against the calculator on loopback, captured on lo (filtered to the front
    /// end's port, since other people's loopback traffic shares lo): every request pairs by its own
    /// connection's port.
    func testHTTPProbeOnLoopbackPairsByLocalPort() async throws {
        try requireCaptureCapability()
        let suite = try SuiteLoader.load(yaml: """
        name: t
        scenarios:
          - name: calc
            kind: http
            calculator: true
            count: 10
        """, file: "suite.yaml", schemas: [HTTPScenario.schema])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-pairlo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sink = MemorySink()
        let ctx = ScenarioContext(runID: "lo", sink: sink, stop: StopFlag(), directory: dir, suiteDirectory: nil,
                                  progress: { _ in }, addSection: { _ in })
        let frontPort = try await ScenarioCalculator.withTarget(suite.scenarios[0], ctx: ctx) { target in
            try await withCapture(interface: "lo", filter: "tcp port \(target.port)", scenario: "calc", ctx: ctx) { inner in
                let request = HTTPRequestSpec(method: "POST", path: target.path, headers: [("Content-Type", "text/plain")], body: Array("(5+6)*2".utf8))
                _ = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: request, count: 10, interval: .milliseconds(10)),
                                        runID: inner.runID, scenario: "calc", sink: inner.sink, stop: inner.stop)
            }
            return target.port
        }
        let s = sink.samples
        let app = s.filter { $0.probe == "http" && $0.phase == "first_byte" }
        XCTAssertEqual(app.count, 10)
        XCTAssertTrue(app.allSatisfy { $0.labels["http_status"] == "200" })
        let ports = app.compactMap { $0.labels["local_port"] }
        XCTAssertEqual(Set(ports).count, 10, "every request has its own connection's local port")
        for phase in HTTPProbe.phases {
            XCTAssertTrue(s.filter { $0.probe == "http" && $0.phase == phase }.allSatisfy { $0.labels["local_port"] != nil }, phase)
        }
        let pairs = s.filter { $0.phase == "stack_overhead_first_byte" }
        let dropped = s.first { $0.phase == "capture_dropped" }?.value
        XCTAssertEqual(pairs.count, 10, "capture_dropped \(String(describing: dropped))")
        XCTAssertEqual(Set(pairs.compactMap { $0.labels["local_port"] }), Set(ports))
        for p in pairs {
            XCTAssertEqual(p.labels["server"], "127.0.0.1:\(frontPort)")
            XCTAssertNotNil(p.value, "\(p)")
        }
        XCTAssertEqual(s.filter { $0.phase == "stack_overhead_connect" && $0.value != nil }.count, 10)
    }
}
