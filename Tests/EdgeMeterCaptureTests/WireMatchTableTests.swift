import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture
@testable import EdgeMeterRun
import EdgeMeterProbes

/// The capture hook pairs application samples with the wire by the keys each probe declares
/// (`WireMatchable`), not by probe names written into the hook.
final class WireMatchTableTests: XCTestCase {
    func testTableIsTheProbesDeclarations() {
        XCTAssertEqual(Set(WireMatchTable.keys.keys), [ICMPProbe.probeName, TCPConnectProbe.probeName, HTTPProbe.probeName, CalcProbe.probeName])
        for probe in WireMatchTable.probes {
            XCTAssertEqual(WireMatchTable.keys[probe.probeName], probe.wireKeys)
            for key in probe.wireKeys { XCTAssertEqual(WireMatchTable.match(probe: probe.probeName, phase: key.phase), key.match) }
        }
        XCTAssertNil(WireMatchTable.match(probe: "load", phase: "connect"), "a probe that declares nothing is never paired")
        XCTAssertNil(WireMatchTable.match(probe: HTTPProbe.probeName, phase: "total"))
    }

    func sample(_ probe: String, _ phase: String, _ value: Double, target: String, labels: [String: String]) -> Sample {
        Sample(runID: "r", scenario: "s", probe: probe, target: target, metric: "latency", phase: phase, value: value, unit: "ms",
               timestamp: Date(timeIntervalSince1970: 1_800_000_000), status: .ok, labels: labels)
    }

    /// One echo, one tcping connection and one calc request on the wire; the application side has
    /// the same three plus samples of an undeclared probe carrying the same labels, which stay unpaired.
    func testPairsEveryDeclaredKeyAndNothingElse() throws {
        let host = IPAddress("127.0.0.1")!, server = IPAddress("127.0.0.2")!
        let t0: Int64 = 1_800_000_000_000_000_000
        let echo = ICMPEcho(source: host, destination: server, id: 7, seq: 1, requestNs: t0, replyNs: t0 + 40_000, duplicateReplies: 0)
        let tcp = TCPHandshake(client: host, clientPort: 41000, server: server, serverPort: 7000, synNs: t0, synAckNs: t0 + 30_000,
                               ackNs: t0 + 35_000, synRetransmissions: 0, refused: false)
        let http = WireHTTPExchange(client: host, clientPort: 42000, server: server, serverPort: 50000, index: 0, method: "POST",
                                    target: "/calculate", status: 200, requestStartNs: t0, requestEndNs: t0,
                                    responseStartNs: t0 + 500_000, responseEndNs: t0 + 600_000)
        let a = WireAnalysis(linkType: LinkType.ethernet, counters: DecodeCounters(), flows: [], handshakes: [tcp], echoes: [echo],
                             http: [http], httpUnfollowable: 0, firstNs: t0, lastNs: t0 + 600_000)
        let app = [
            sample("ping", "echo", 0.1, target: "127.0.0.2", labels: ["icmp_id": "7", "seq": "1"]),
            sample("tcping", "connect", 0.05, target: "127.0.0.2:7000", labels: ["local_port": "41000"]),
            sample("calc", "first_byte", 0.9, target: "http://127.0.0.2:50000/calculate", labels: ["local_port": "42000", "request": "0"]),
            // Not declared: the same labels on other probes or phases pair with nothing.
            sample("load", "echo", 5, target: "x", labels: ["icmp_id": "7", "seq": "1"]),
            sample("load", "connect", 5, target: "x", labels: ["local_port": "41000"]),
            sample("calc", "total", 5, target: "x", labels: ["local_port": "42000", "request": "0"]),
        ]
        let sink = MemorySink()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var sections: [String] = []
        let box = NSLock()
        let ctx = ScenarioContext(runID: "r", sink: sink, stop: StopFlag(), directory: dir, suiteDirectory: nil,
                                  progress: { _ in }, addSection: { s in box.lock(); sections.append(s); box.unlock() })
        WireReport.record(analysis: a, capture: nil, interface: "lo", pcapPath: dir.appendingPathComponent("x.pcap").path,
                          appSamples: app, scenario: "s", ctx: ctx)
        let diffs = sink.samples.filter { $0.phase.hasPrefix("stack_overhead_") }
        XCTAssertEqual(diffs.map(\.phase).sorted(), ["stack_overhead_connect", "stack_overhead_echo", "stack_overhead_first_byte"])
        func diff(_ phase: String) throws -> Double { try XCTUnwrap(diffs.first { $0.phase == phase }?.value) }
        XCTAssertEqual(try diff("stack_overhead_echo"), 0.1 - 0.04, accuracy: 1e-9)
        XCTAssertEqual(try diff("stack_overhead_connect"), 0.05 - 0.03, accuracy: 1e-9)
        XCTAssertEqual(try diff("stack_overhead_first_byte"), 0.9 - 0.5, accuracy: 1e-9)
        XCTAssertEqual(Set(diffs.compactMap { $0.labels["app_probe"] }), ["ping", "tcping", "calc"])
        // Every wire phase of the connection takes the application's target.
        for phase in ["tcp_syn_synack", "tcp_synack_ack", "tcp_handshake"] {
            XCTAssertEqual(sink.samples.first { $0.phase == phase }?.target, "127.0.0.2:7000", phase)
        }
        // The count covers declared samples only: 3 of 3, not 3 of 5.
        XCTAssertTrue(sections.joined().contains("3 of 3 application samples"), sections.joined())
    }
}
