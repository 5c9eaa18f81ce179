import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// `edgemeter run` end to end on loopback: the run is recorded in the history (a real GRDB database
/// in a temporary directory) and `runs list` shows it, the suite's `compare:` section becomes
/// compare-<name>.csv, summary.md's "Comparisons" and report.html's table, and the terminal ends
/// with the verdict table (a failed scenario named with its reason) and the wall time; exit 1.
final class RunVerdictCLITests: BinaryTestCase {
    func testRunRecordsHistoryComparesAndPrintsTheVerdictTable() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let suite = out + "/lb-verdict.yaml"
        try """
        name: lb-verdict
        scenarios:
          - {name: a-tcp, kind: tcping, targets: [127.0.0.1], listener: true, count: 20, interval: 2ms}
          - {name: b-tcp, kind: tcping, targets: [127.0.0.1], listener: true, count: 20, interval: 2ms}
          # Port 1 on loopback: nothing listens, every connect is refused.
          - {name: c-refused, kind: tcping, targets: ["127.0.0.1:1"], count: 2, interval: 10ms, timeout: 200ms}
        compare:
          - name: ab
            description: the same listener twice
            scenarios: [a-tcp, b-tcp, c-refused]
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let db = out + "/history.sqlite"
        let dir = out + "/lb-run"
        let r = try runCommand(bin, ["run", suite, "--out", dir, "--db", db])
        XCTAssertEqual(r.status, 1, "a scenario failed: exit 1\n\(r.stderr)")

        // The verdict table comes last on stdout.
        let table = try XCTUnwrap(r.stdout.range(of: "suite lb-verdict: verdicts\n").map { String(r.stdout[$0.lowerBound...]) }, r.stdout)
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[1].hasPrefix("scenario ") && lines[1].contains("measured") && lines[1].contains("key figure"), table)
        XCTAssertTrue(lines.contains { $0.hasPrefix("a-tcp ") && $0.contains("TCP connect") && $0.contains("connect p50") && $0.hasSuffix("  ok") }, table)
        XCTAssertTrue(lines.contains { $0.hasPrefix("c-refused ") && $0.contains("  failed: 127.0.0.1:1: no successful attempt") }, table)
        let counts = try XCTUnwrap(lines.first { $0.hasPrefix("3 scenarios: 2 ok, 1 failed, 0 not run; wall time ") }, table)
        XCTAssertNotNil(counts.range(of: #"wall time [0-9.]+ s$"#, options: .regularExpression), counts)
        XCTAssertTrue(table.contains("comparisons (B vs A; compare-*.csv, report.html):\n  ab: b-tcp vs a-tcp: "), table)
        XCTAssertNotNil(table.range(of: #"  ab: c-refused vs a-tcp: [0-9]+ too few samples\n"#, options: .regularExpression),
                        "c-refused has no value to compare: \(table)")

        // The comparison's files.
        let csv = try CSV.parse(String(contentsOfFile: dir + "/compare-ab.csv", encoding: .utf8))
        XCTAssertEqual(csv.first, ["a", "b"] + CompareRender.csvHeader)
        let connect = try XCTUnwrap(csv.first { $0.count > 6 && $0[1] == "b-tcp" && $0[6] == "connect" }, "\(csv)")
        XCTAssertEqual(connect[0], "a-tcp")
        XCTAssertEqual(connect[8], "lower is better", "durations: lower is better")
        let summary = try String(contentsOfFile: dir + "/summary.md", encoding: .utf8)
        XCTAssertTrue(summary.contains("## Comparisons"), summary)
        XCTAssertTrue(summary.contains("### ab: the same listener twice"), summary)
        XCTAssertTrue(summary.contains("A (baseline) = a-tcp; file compare-ab.csv."), summary)
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("compare-ab.csv"), "report.html shows the comparison's table")

        // The history has the run, with its scenarios.
        let list = try runCommand(bin, ["runs", "list", "--db", db])
        XCTAssertEqual(list.status, 0, list.stderr)
        let row = try XCTUnwrap(list.stdout.split(separator: "\n").first { $0.hasPrefix("lb-run ") }, list.stdout)
        XCTAssertTrue(row.contains("a-tcp,b-tcp,c-refused"), String(row))
        XCTAssertTrue(row.contains("complete"), String(row))
        let show = try runCommand(bin, ["runs", "show", "lb-run", "--db", db])
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.contains("a-tcp"), show.stdout)

        // --no-history leaves the database alone.
        let again = try runCommand(bin, ["run", suite, "--out", out + "/lb-run2", "--db", db, "--no-history"])
        XCTAssertEqual(again.status, 1, again.stderr)
        let list2 = try runCommand(bin, ["runs", "list", "--db", db])
        XCTAssertFalse(list2.stdout.contains("lb-run2"), list2.stdout)
    }

    func testBadCompareSectionIsAUsageError() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let suite = out + "/bad.yaml"
        try """
        name: bad
        scenarios:
          - {name: a, kind: tcping, targets: [127.0.0.1], listener: true, count: 1}
        compare:
          - {name: x, scenarios: [a, b]}
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let r = try runCommand(bin, ["run", suite, "--check"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("bad.yaml:5: comparison item \"b\" names no scenario of this suite"), r.stderr)
    }
}
