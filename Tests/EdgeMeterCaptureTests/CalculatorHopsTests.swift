import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture
@testable import EdgeMeterRun

/// The lab's 2-tier calculator as five real containers on docker0 (the `capture` kind with
/// `calculator_containers: true`), captured on docker0: per-request hop breakdown, exact HTTP
/// pairing by `local_port`, a bounded fixed-rate load, and every container removed afterwards.
final class CalculatorHopsTests: XCTestCase {
    static let image = "edgemeter-capture-test:calculator"

    /// An image with the edgemeter binary built beside these tests (so it runs the code under test),
    /// made with `edgemeter image build` (busybox + the binary + its ldd libraries, no registry).
    static func buildImage() throws {
        let bin = try edgemeterBinary()
        let out = try runTool(bin, ["image", "build", "--tag", image, "--binary", bin], timeout: 300)
        XCTAssertTrue(out.contains("built \(image)"), out)
    }

    func runScenario(_ yaml: String, runID: String) async throws -> (samples: [Sample], sections: [String]) {
        let suite = try SuiteLoader.load(yaml: yaml, file: "suite.yaml", schemas: [CaptureScenario.schema])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-hops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sink = MemorySink()
        let sections = SectionBox()
        let ctx = ScenarioContext(runID: runID, sink: sink, stop: StopFlag(), directory: dir, suiteDirectory: nil,
                                  progress: { _ in }, addSection: { sections.add($0) })
        try await CaptureScenario.kind.run(suite.scenarios[0], ctx)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("capture-\(suite.scenarios[0].name)-docker0.pcap").path))
        return (sink.samples, sections.all)
    }

    func testFiveCalculatorContainersPerHopOnDocker0() async throws {
        try requireCaptureCapability()
        let docker = try DockerCaptureTests.requireDocker()
        try Self.buildImage()
        let runID = "hops\(UInt32.random(in: 0...UInt32.max))"
        let (s, sections) = try await runScenario("""
        name: t
        scenarios:
          - name: calc-hops
            kind: capture
            interface: docker0
            calculator_containers: true
            container_image: \(Self.image)
            ping: [container]
            http: ["http://container:50000/calculate"]
            calc_expression: "(5+6)*2-8/4"
            count: 5
            interval: 20ms
            load_rate: 100
            load_duration: 1s
        """, runID: runID)

        // Every container of the scenario is gone.
        let left = try runTool(docker, ["ps", "-a", "--filter", "name=edgemeter-capture-\(runID)-calc-hops", "-q"])
        XCTAssertEqual(left.trimmingCharacters(in: .whitespacesAndNewlines), "")

        // The calc probe's requests: 200 with the right answer (status ok), each carrying its
        // connection's local port.
        let app = s.filter { $0.probe == "calc" && $0.phase == "first_byte" }
        XCTAssertEqual(app.count, 5)
        XCTAssertTrue(app.allSatisfy { $0.status == .ok && $0.labels["http_status"] == "200" && $0.labels["local_port"] != nil }, "\(app)")
        XCTAssertEqual(s.filter { $0.probe == "calc" && $0.phase == "total" && $0.status == .ok }.count, 5, "answers checked (20)")

        // Exact pairing: each application request pairs with the wire request on the same port.
        let pairs = s.filter { $0.phase == "stack_overhead_first_byte" }
        XCTAssertEqual(pairs.count, 5)
        XCTAssertEqual(Set(pairs.compactMap { $0.labels["local_port"] }), Set(app.compactMap { $0.labels["local_port"] }))
        XCTAssertTrue(pairs.allSatisfy { ($0.value ?? -1) > 0 }, "the application sees more than the wire: \(pairs.map(\.value))")

        // Per request on the bridge: client → front end, then sum, mul, div, sub, then back.
        let probeHops = s.filter { $0.probe == "wire" && $0.phase.hasPrefix("hop_") && $0.labels["source"] == "http_probe" }
        let front = probeHops.filter { $0.phase == "hop_front_response" }
        XCTAssertEqual(front.count, 5)
        XCTAssertEqual(Set(front.compactMap { $0.labels["local_port"] }), Set(app.compactMap { $0.labels["local_port"] }))
        for r in front {
            let request = r.labels["request"]!
            let row = probeHops.filter { $0.labels["request"] == request }
            XCTAssertEqual(Set(r.labels["calls"]!.split(separator: "+").map(String.init)), ["sum", "mul", "div", "sub"], "\(r.labels)")
            let calls = row.filter { ["hop_sum", "hop_sub", "hop_mul", "hop_div"].contains($0.phase) }
            XCTAssertEqual(calls.count, 4)
            let total = try XCTUnwrap(r.value)
            var parts = 0.0
            for c in calls {
                let v = try XCTUnwrap(c.value)
                XCTAssertGreaterThan(v, 0)
                XCTAssertLessThan(v, total, "a call to \(c.phase) lasts less than the whole request")
                parts += v
            }
            for phase in ["hop_in", "hop_back"] {
                let v = try XCTUnwrap(row.first { $0.phase == phase }?.value, phase)
                XCTAssertGreaterThan(v, 0, phase)
                parts += v
            }
            parts += try XCTUnwrap(row.first { $0.phase == "hop_between" }?.value)
            XCTAssertLessThanOrEqual(parts, total + 1e-6, "the segments lie within the request")
            XCTAssertEqual(r.labels["status"], "200")
        }

        // Each call on the wire pairs with the front end's own Server-Timing entry for it; the front
        // end (its client, its container's stack, the veth) sees the call last longer than the bridge.
        let hopPairs = s.filter { $0.phase == "stack_overhead_hop" }
        XCTAssertEqual(hopPairs.count, 20)
        XCTAssertEqual(Set(hopPairs.compactMap { $0.labels["service"] }), ["sum", "mul", "div", "sub"])
        XCTAssertTrue(hopPairs.allSatisfy { ($0.value ?? -1) > 0 }, "\(hopPairs.map(\.value))")
        XCTAssertTrue(sections.contains { $0.contains("### Per hop: the front end's own timing vs the wire (docker0)") })

        // The fixed-rate load went through the same deployment and was seen on the wire.
        let achieved = try XCTUnwrap(s.first { $0.probe == "load" && $0.phase == "achieved" }?.value)
        XCTAssertGreaterThan(achieved, 50)
        let loadRows = s.filter { $0.phase == "hop_front_response" && $0.labels["source"] == "load" }
        XCTAssertGreaterThan(loadRows.count, 80)
        XCTAssertTrue(sections.contains { $0.contains("### Per-hop breakdown on `docker0`") }, sections.joined())
        XCTAssertTrue(sections.contains { $0.contains("### Load: application vs wire (docker0)") }, sections.joined())
        XCTAssertEqual(s.first { $0.phase == "capture_dropped" }?.value, 0)
    }

    func testCalculatorContainersValidation() throws {
        XCTAssertThrowsError(try SuiteLoader.load(yaml: """
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: docker0
            calculator_containers: true
            ping: [container]
            count: 3
        """, file: "suite.yaml", schemas: [CaptureScenario.schema])) { e in XCTAssertTrue("\(e)".contains("needs an `http` URL"), "\(e)") }
        XCTAssertThrowsError(try SuiteLoader.load(yaml: """
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: lo
            http: ["http://127.0.0.1:1/"]
            count: 3
            load_rate: 100
        """, file: "suite.yaml", schemas: [CaptureScenario.schema])) { e in XCTAssertTrue("\(e)".contains("needs both `load_rate`"), "\(e)") }
        XCTAssertThrowsError(try SuiteLoader.load(yaml: """
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: lo
            http: ["http://127.0.0.1:1/calculate"]
            calc_expression: "5+"
            count: 3
        """, file: "suite.yaml", schemas: [CaptureScenario.schema])) { e in XCTAssertTrue("\(e)".contains("calc_expression"), "\(e)") }
    }
}

final class SectionBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
