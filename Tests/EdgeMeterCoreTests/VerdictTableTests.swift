import XCTest
@testable import EdgeMeterCore

/// The terminal verdict table of `edgemeter run`: one row per scenario (what it measured, its key
/// figure, ok / failed / not run with the reason), the counts and the wall time.
final class VerdictTableTests: XCTestCase {
    func summaries(_ samples: [Sample]) -> [Summary] { Summarizer.summaries(of: samples) }

    func sample(_ scenario: String, _ probe: String, _ target: String, _ phase: String, _ v: Double?, metric: String = "rtt",
                status: SampleStatus = .ok) -> Sample {
        Sample(runID: "r", scenario: scenario, probe: probe, target: target, metric: metric, phase: phase, value: v, unit: "ms",
               timestamp: Date(timeIntervalSince1970: 0), status: status, reason: status == .ok ? "" : "no reply")
    }

    func testRowsSayWhatRanWhatFailedAndWhatDidNotRun() {
        var all: [Sample] = []
        for v in [0.05, 0.07, 0.06] { all.append(sample("loopback-icmp", "ping", "127.0.0.1", "echo", v)) }
        for v in [0.09, 0.08, 0.10] { all.append(sample("loopback-icmp", "ping", "::1", "echo", v)) }
        for _ in 0..<3 { all.append(sample("dead", "tcping", "10.0.0.9:80", "connect", nil, metric: "latency", status: .timeout)) }
        for v in [310.0, 290, 300] { all.append(sample("startup-docker", "startup", "docker", "total", v, metric: "startup")) }
        // The "measured" column is what each kind's declaration says (EdgeMeterRun's kinds are
        // checked in KindMeasuresTests); here, three stand-ins.
        let icmp: @Sendable ([Summary]) -> String = { _ in "ICMP echo round trip" }
        let connect: @Sendable ([Summary]) -> String = { _ in "TCP connect" }
        let startup: @Sendable ([Summary]) -> String = { s in (s.first?.key.target ?? "") + " start-up to ready" }
        let scenarios = [
            VerdictTable.Scenario(name: "loopback-icmp", kind: "ping", measures: icmp),
            VerdictTable.Scenario(name: "dead", kind: "tcping", topology: "nat", measures: connect),
            VerdictTable.Scenario(name: "startup-docker", kind: "startup", measures: startup),
            VerdictTable.Scenario(name: "startup-qemu", kind: "startup"),
            VerdictTable.Scenario(name: "reach-nat", kind: "reach", topology: "nat"),
            VerdictTable.Scenario(name: "reach-bridged", kind: "reach", topology: "bridged"),
        ]
        let notes = [
            ScenarioNote(scenario: "dead", status: "lab", reason: "topology nat"),
            ScenarioNote(scenario: "startup-qemu", status: "not run", reason: "qemu-system-x86_64 not found: apt-get install qemu-system-x86"),
            ScenarioNote(scenario: "reach-bridged", status: "failed", reason: "2 difference(s) from bridged.csv"),
        ]
        let rows = VerdictTable.rows(scenarios: scenarios, summaries: summaries(all), notes: notes,
                                     figures: ["reach-nat": "21 probes, 14 reachable", "reach-bridged": "12 probes, 10 reachable"])
        XCTAssertEqual(rows.map(\.verdict), [
            "ok",
            "failed: 10.0.0.9:80: no successful attempt: 0 of 3 connects (3 timeout)",
            "ok",
            "not run: qemu-system-x86_64 not found: apt-get install qemu-system-x86",
            "ok",
            "failed: 2 difference(s) from bridged.csv",
        ])
        XCTAssertEqual(rows[0].measured, "ICMP echo round trip")
        XCTAssertEqual(rows[0].figure, "echo p50 0.06 ms (127.0.0.1, 1 of 2 targets) n=3")
        XCTAssertEqual(rows[1].measured, "TCP connect (nat)")
        XCTAssertEqual(rows[1].figure, "connect p50 – ms n=0, 100.0% failed")
        XCTAssertEqual(rows[2].measured, "docker start-up to ready")
        XCTAssertEqual(rows[2].figure, "total p50 300 ms n=3")
        XCTAssertEqual(rows[3].figure, "–")
        XCTAssertEqual(rows[3].measured, "startup", "a kind that declares nothing is named")
        XCTAssertEqual(rows[5].measured, "reach (bridged)")
        XCTAssertEqual(rows[4].figure, "21 probes, 14 reachable")

        let text = VerdictTable.render(rows, wallSeconds: 492.3, title: "suite lab: verdicts")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines[0], "suite lab: verdicts")
        XCTAssertTrue(lines[1].hasPrefix("scenario        measured"), lines[1])
        XCTAssertTrue(lines[1].hasSuffix("  verdict"), lines[1])
        // Columns line up: every row's verdict starts where the header's does.
        let column = lines[1].range(of: "verdict")!.lowerBound.utf16Offset(in: lines[1])
        for l in lines[3..<9] {
            let chars = Array(l)
            XCTAssertEqual(String(chars[(column - 2)..<column]), "  ", l)
            XCTAssertNotEqual(chars[column], " ", l)
        }
        XCTAssertTrue(lines[6].hasSuffix("  not run: qemu-system-x86_64 not found: apt-get install qemu…"), "cut at 60 characters: \(lines[6])")
        XCTAssertEqual(lines[9], "6 scenarios: 3 ok, 2 failed, 1 not run; wall time 8 min 12 s")
        XCTAssertEqual(VerdictTable.countsLine(rows, wallSeconds: 42.3), "6 scenarios: 3 ok, 2 failed, 1 not run; wall time 42.3 s")
    }

    func testAScenarioWithNoSampleAndNoNoteIsNotOK() {
        let rows = VerdictTable.rows(scenarios: [VerdictTable.Scenario(name: "x", kind: "http")], summaries: [], notes: [])
        XCTAssertEqual(rows.first?.verdict, "failed: no sample recorded")
        let interrupted = VerdictTable.rows(scenarios: [VerdictTable.Scenario(name: "x", kind: "http")], summaries: [],
                                            notes: [ScenarioNote(scenario: "x", status: "interrupted", reason: "stopped by SIGINT after 3 samples")])
        XCTAssertEqual(interrupted.first?.verdict, "interrupted: stopped by SIGINT after 3 samples")
    }
}
