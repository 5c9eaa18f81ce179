import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

/// The verdict table's "measured" column comes from each kind's declaration, so a new kind says what
/// it measures in its own file (no list of kind names elsewhere).
final class KindMeasuresTests: XCTestCase {
    func summaries(_ samples: [Sample]) -> [Summary] { Summarizer.summaries(of: samples) }

    func sample(_ probe: String, _ target: String, _ phase: String) -> Sample {
        Sample(runID: "r", scenario: "s", probe: probe, target: target, metric: "latency", phase: phase, value: 1, unit: "ms",
               timestamp: Date(timeIntervalSince1970: 0), status: .ok, reason: "")
    }

    func testEveryKindOfTheTableSaysWhatItMeasures() {
        var seen: [String: String] = [:]
        for k in ScenarioKinds.all {
            let text = k.declaration.measures([])
            XCTAssertNotEqual(text, k.declaration.kind, "kind \(k.declaration.kind) declares no `measures`")
            XCTAssertFalse(text.isEmpty)
            seen[k.declaration.kind] = text
        }
        XCTAssertEqual(seen["ping"], "ICMP echo round trip")
        XCTAssertEqual(seen["http"], "HTTP request")
        XCTAssertEqual(seen["load"], "fixed-rate load latency")
        XCTAssertEqual(seen["migration"], "migration: client delay, interruption")
        XCTAssertEqual(Set(seen.keys).count, ScenarioKinds.all.count, "one entry per kind")
    }

    func testTheDescriptionCanDependOnWhatWasMeasured() {
        let tcping = TCPingScenario.declaration.measures
        XCTAssertEqual(tcping(summaries([sample("tcping", "127.0.0.1:80", "connect")])), "TCP connect")
        XCTAssertEqual(tcping(summaries([sample("tcping", "127.0.0.1:80", "connect"), sample("tcping", "127.0.0.1:80", "first_byte")])),
                       "TCP connect + echo")
        XCTAssertEqual(StartupScenario.declaration.measures(summaries([sample("startup", "docker", "total")])), "docker start-up to ready")
        XCTAssertEqual(StartupScenario.declaration.measures([]), "start-up to ready")
    }

    func testAKindThatDeclaresNothingIsNamedByItsKind() {
        let d = KindDeclaration(kind: "demo", parameters: [])
        XCTAssertEqual(d.measures([]), "demo")
    }

    func testReachReadsItsKeyFigureFromItsMatrixFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kind-figure-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        from,to,probe,reachable,why_not,rtt_p50_ms
        (host),guest,icmp 10.0.2.15,no,not probed: the route leaves the lab,
        peer,guest,icmp 10.0.2.15,yes,,0.071
        peer,guest,tcp 10.0.2.15:22,yes,,0.102

        """.write(to: dir.appendingPathComponent("reach-reach-nat.csv"), atomically: true, encoding: .utf8)
        let figure = try XCTUnwrap(ScenarioKinds.named("reach")?.keyFigure)
        XCTAssertEqual(figure(dir, "reach-nat"), "3 probes, 2 reachable")
        XCTAssertNil(figure(dir, "missing"), "no file: the samples' median is used instead")
        XCTAssertNil(ScenarioKinds.named("ping")?.keyFigure, "kinds with samples leave it to the median")
        XCTAssertNil(ScenarioKinds.named("nope"))
    }
}
