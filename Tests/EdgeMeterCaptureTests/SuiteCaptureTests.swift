import XCTest
import Foundation
import EdgeMeterCore
import EdgeMeterRun
@testable import EdgeMeterCapture

/// `edgemeter run --capture IFACE` through the suite runner: a `capture` scenario keeps its own
/// capture (one pcap, wire samples once), every other kind gets one of its own.
final class SuiteCaptureTests: XCTestCase {
    func testCaptureScenarioUnderRunCaptureIsNotCapturedTwice() async throws {
        try requireCaptureCapability()
        let (a, b) = (uniqueLoopback(), uniqueLoopback())
        let yaml = """
            name: nested
            scenarios:
              - name: cap
                kind: capture
                interface: lo
                filter: icmp and host \(a)
                ping: [\(a)]
                count: 4
                interval: 10ms
              - name: plain
                kind: ping
                targets: [\(b)]
                count: 3
                interval: 10ms

            """
        let suite = try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: ScenarioKinds.schemas)
        let out = NSTemporaryDirectory() + "edgemeter-suite-capture-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = try RunDirectory(out: out, name: "nested")
        try dir.begin()
        let lines = LineBox()
        await SuiteRunner().run(suite, in: dir, stop: StopFlag(), captureInterface: "lo", captureFilter: "icmp and (host \(a) or host \(b))",
                                progress: { lines.add($0) })
        _ = try dir.finish(complete: true)
        let pcaps = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".pcap") }.sorted()
        XCTAssertEqual(pcaps, ["capture-cap-lo.pcap", "capture-plain-lo.pcap"])
        let samples = try CSV.parse(String(contentsOfFile: out + "/samples.csv", encoding: .utf8))
        let header = try XCTUnwrap(samples.first)
        func column(_ name: String) throws -> Int { try XCTUnwrap(header.firstIndex(of: name), "no column \(name)") }
        let (scenario, probe, phase) = (try column("scenario"), try column("probe"), try column("phase"))
        func count(_ sc: String, _ pr: String, _ ph: String) -> Int {
            samples.dropFirst().filter { $0[scenario] == sc && $0[probe] == pr && $0[phase] == ph }.count
        }
        XCTAssertEqual(count("cap", "ping", "echo"), 4)
        XCTAssertEqual(count("cap", "wire", "icmp_echo"), 4, "each echo on the wire once, not once per capture")
        XCTAssertEqual(count("cap", "wire", "stack_overhead_echo"), 4)
        XCTAssertEqual(count("plain", "wire", "icmp_echo"), 3, "the other kinds are still captured under --capture")
        XCTAssertEqual(count("plain", "wire", "stack_overhead_echo"), 3)
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertEqual(md.components(separatedBy: "### Application vs wire (lo)").count - 1, 2, md)
        XCTAssertTrue(lines.items.contains { $0.contains("cap") && $0.contains("capture on lo not added") }, "\(lines.items)")
    }

    final class LineBox: @unchecked Sendable {
        let lock = NSLock()
        var stored: [String] = []
        func add(_ s: String) { lock.lock(); stored.append(s); lock.unlock() }
        var items: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    }
}
