import XCTest
@testable import EdgeMeterCore

final class ReportRenderTests: XCTestCase {
    static func fixtureSamples() -> [Sample] {
        let t0 = Date(timeIntervalSince1970: 1_795_000_000.123456)
        var out: [Sample] = []
        let rtts = [0.041, 0.052, 0.048, 0.061, 0.039, 0.044, 0.050, 0.047]
        for (i, v) in rtts.enumerated() {
            out.append(Sample(runID: "run1", scenario: "loopback", probe: "ping", target: "127.0.0.1", metric: "rtt", phase: "echo",
                              value: v, unit: "ms", timestamp: t0.addingTimeInterval(Double(i) * 0.01), status: .ok,
                              labels: ["seq": "\(i + 1)", "socket": "raw", "timestamp": "kernel"]))
        }
        out.append(Sample(runID: "run1", scenario: "loopback", probe: "ping", target: "127.0.0.1", metric: "rtt", phase: "echo",
                          value: nil, unit: "ms", timestamp: t0.addingTimeInterval(0.08), status: .timeout,
                          reason: "no reply within 1 s", labels: ["seq": "9", "socket": "raw"]))
        out.append(Sample(runID: "run1", scenario: "tcp, \"quoted\"", probe: "tcping", target: "[::1]:8080", metric: "latency",
                          phase: "connect", value: nil, unit: "ms", timestamp: t0, status: .refused,
                          reason: "connection refused (RST), nothing listens", labels: [:]))
        return out
    }

    func golden(_ name: String) throws -> String {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "golden/\(name)", withExtension: nil), "golden/\(name) missing from the test bundle")
        return try String(contentsOf: url, encoding: .utf8)
    }

    func check(_ text: String, golden name: String) throws {
        if ProcessInfo.processInfo.environment["EDGEMETER_UPDATE_GOLDEN"] == "1" {
            let src = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("golden/\(name)")
            try text.write(to: src, atomically: true, encoding: .utf8)
            return
        }
        XCTAssertEqual(text, try golden(name), "\(name) differs from the golden file; run with EDGEMETER_UPDATE_GOLDEN=1 only if the change is intended")
    }

    func testSamplesCSVGolden() throws {
        let text = SampleCSV.headerLine + Self.fixtureSamples().map(SampleCSV.row).joined()
        try check(text, golden: "samples.csv")
    }

    func testSummaryGolden() throws {
        var s = Summarizer()
        Self.fixtureSamples().forEach { s.add($0) }
        try check(SummaryCSV.render(s.summaries), golden: "summary.csv")
        try check(SummaryMarkdown.render(title: "edgemeter run run1", summaries: s.summaries,
                                         notes: [ScenarioNote(scenario: "docker", status: "not run", reason: "dockerd is not running")]),
                  golden: "summary.md")
    }

    func testSamplesRoundTripThroughCSV() throws {
        let original = Self.fixtureSamples()
        let text = SampleCSV.headerLine + original.map(SampleCSV.row).joined()
        let parsed = try SampleCSV.parse(text)
        XCTAssertEqual(parsed.count, original.count)
        for (a, b) in zip(parsed, original) {
            XCTAssertEqual(a.scenario, b.scenario)
            XCTAssertEqual(a.status, b.status)
            XCTAssertEqual(a.labels, b.labels)
            XCTAssertEqual(a.reason, b.reason)
            XCTAssertEqual(a.value ?? -1, b.value ?? -1, accuracy: 1e-9)
            XCTAssertEqual(a.timestamp.timeIntervalSince1970, b.timestamp.timeIntervalSince1970, accuracy: 1e-6)
        }
    }

    func testTruncatedLastLineIsTolerated() throws {
        let text = SampleCSV.headerLine + Self.fixtureSamples().map(SampleCSV.row).joined() + "run1,loopback,ping"
        XCTAssertEqual(try SampleCSV.parse(text).count, Self.fixtureSamples().count)
    }

    func testBadSamplesNameTheLine() {
        let text = SampleCSV.headerLine + "r,s,ping,t,rtt,echo,abc,ms,2026-01-01T00:00:00.000000Z,ok,,\n" + "r,s,ping,t,rtt,echo,1,ms,2026-01-01T00:00:00.000000Z,ok,,\n"
        XCTAssertThrowsError(try SampleCSV.parse(text, file: "x.csv")) { e in
            XCTAssertEqual("\(e)", "x.csv:2: value \"abc\" is not a number")
        }
        XCTAssertThrowsError(try SampleCSV.parse("a,b\n", file: "x.csv")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.csv:1: header is not an edgemeter samples header"))
        }
    }

    func testDurationParsing() {
        XCTAssertEqual(parseDuration("250ms"), .milliseconds(250))
        XCTAssertEqual(parseDuration("1.5s"), .milliseconds(1500))
        XCTAssertEqual(parseDuration("200us"), .microseconds(200))
        XCTAssertEqual(parseDuration("2m"), .seconds(120))
        XCTAssertEqual(parseDuration("0.2"), .milliseconds(200))
        XCTAssertNil(parseDuration("soon"))
        XCTAssertNil(parseDuration("-1s"))
    }

    func testJSONSummaryIsParseable() throws {
        var s = Summarizer()
        Self.fixtureSamples().forEach { s.add($0) }
        let obj = try JSONSerialization.jsonObject(with: Data(SummaryJSON.render(s.summaries).utf8)) as! [String: Any]
        let rows = obj["summaries"] as! [[String: Any]]
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0]["sent"] as? Int, 9)
        XCTAssertEqual(rows[0]["received"] as? Int, 8)
    }

    /// One scenario per table kind, with the metadata real runs write (see LoadReport.samples,
    /// StartupRunner, WireReport).
    static func kindSamples() -> [Sample] {
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        var out: [Sample] = []
        func add(_ scenario: String, _ probe: String, _ target: String, _ metric: String, _ phase: String, _ v: Double?,
                 _ unit: String, _ status: SampleStatus = .ok, _ reason: String = "") {
            out.append(Sample(runID: "run2", scenario: scenario, probe: probe, target: target, metric: metric, phase: phase,
                              value: v, unit: unit, timestamp: t0, status: status, reason: reason))
        }
        // Start-up: docker 3 attempts (one failed at ready), lxc 2.
        let docker: [[String: Double?]] = [
            ["create": 12, "start": 250, "ready": 60, "stop": 20, "remove": 11, "total": 353],
            ["create": 15, "start": 300, "ready": 70, "stop": 25, "remove": 14, "total": 424],
            ["create": 14, "start": 280, "ready": nil, "stop": 22, "remove": 12, "total": nil],
        ]
        for a in docker {
            for p in ["create", "start", "ready", "stop", "remove", "total"] {
                let v = a[p]!
                add("startup", "startup", "docker", "startup", p, v, "ms", v == nil ? .timeout : .ok, v == nil ? "no TCP answer within 10 s" : "")
            }
        }
        for a in [[5.0, 30, 8, 40, 6, 89], [6, 34, 9, 45, 7, 101]] {
            for (p, v) in zip(["create", "start", "ready", "stop", "remove", "total"], a) { add("startup", "startup", "lxc", "startup", p, v, "ms") }
        }
        // Capture counters and signed app − wire differences.
        add("capture", "wire", "lo", "packets", "capture_received", 784, "count")
        add("capture", "wire", "lo", "packets", "capture_dropped", 0, "count")
        add("capture", "wire", "lo", "packets", "capture_interface_dropped", nil, "count", .error, "pcap_stats unavailable")
        for v in [0.021, -0.004, 0.035, 0.018] { add("capture", "wire", "127.0.0.1", "rtt", "stack_overhead_echo", v, "ms") }
        // Load, open loop.
        let url = "http://127.0.0.1:50000/calculate"
        for (series, base) in [("corrected", 2.0), ("uncorrected", 1.0)] {
            for (i, p) in ["p50", "p75", "p90", "p99", "p999", "p9999", "p99999"].enumerated() {
                add("load", "load", url, "latency", "\(series)_\(p)", base * Double(i + 1), "ms")
            }
            add("load", "load", url, "latency", "\(series)_max", base * 9, "ms")
            add("load", "load", url, "latency", "\(series)_mean", base * 1.5, "ms")
            add("load", "load", url, "latency", "\(series)_stddev", base * 0.5, "ms")
        }
        add("load", "load", url, "throughput", "achieved", 498.7, "req/s")
        add("load", "load", url, "throughput", "requested", 500, "req/s")
        for c in [497.0, 500, 499] { add("load", "load", url, "throughput", "interval", c, "req/s") }
        add("load", "load", url, "transfer", "read", 73_412, "B/s")
        add("load", "load", url, "responses", "status_200", 1494, "count")
        add("load", "load", url, "responses", "status_503", 2, "count")
        for (k, n) in [("connect", 0.0), ("timeout", 3), ("reset", 1), ("status", 2), ("body", 0)] {
            add("load", "load", url, "errors", k, n, "count")
        }
        return out
    }

    func testSummaryTablesFitEachKindGolden() throws {
        var s = Summarizer()
        Self.kindSamples().forEach { s.add($0) }
        let md = SummaryMarkdown.render(title: "edgemeter run run2", summaries: s.summaries)
        try check(md, golden: "summary-kinds.md")
        // What each table must (not) show, so a wrong golden update is caught too.
        XCTAssertFalse(md.contains("784.000"), "counters are integers")
        XCTAssertTrue(md.contains("| wire | lo | packets | capture_received | 784 |"), md)
        XCTAssertTrue(md.contains("| backend | create p50 / p90 (ms) |"), md)
        // p50 is rank 2 of 3 (14 ms create, 280 ms start: within the histogram's 0.1 %), p90 rank 3.
        XCTAssertTrue(md.contains("| docker | 14.000 / 15.000 | 280.232 / 300.000 | 60.031 / 70.000 |"), md)
        XCTAssertTrue(md.contains("| 2 / 3 |"), "docker: 2 of 3 attempts reached total")
        XCTAssertFalse(md.components(separatedBy: "## startup")[1].components(separatedBy: "## ")[0].contains("loss (%)"),
                       "no ping columns for start-ups")
        XCTAssertTrue(md.contains("| http://127.0.0.1:50000/calculate | 1500 | 1496 | 498.7 | 500.0 | 497 – 500 | 73412 | 0 | 3 | 1 | 2 | 0 | 200: 1494, 503: 2 |"), md)
        XCTAssertTrue(md.contains("| http://127.0.0.1:50000/calculate | corrected | 2.000 | 4.000 |"), md)
        XCTAssertTrue(md.contains("| wire | 127.0.0.1 | rtt | stack_overhead_echo | 4 | 4 | 0.0 | -0.004 |"), "signed values keep their sign")
        let json = try JSONSerialization.jsonObject(with: Data(SummaryJSON.render(s.summaries).utf8)) as! [String: Any]
        let tables = Set((json["summaries"] as! [[String: Any]]).compactMap { $0["table"] as? String })
        XCTAssertEqual(tables, ["startup", "counter", "latency", "load"])
    }

    /// report.md and report.html, byte for byte: sections with and without a note, a chart, tables
    /// whose cells hold a `|`, a newline, HTML markup, an empty cell and figures.
    func testReportMarkdownAndHTMLGolden() throws {
        let chart = ReportChart(id: "cdf-p", title: "Latency CDF: p | ping", caption: "rtt of 3 targets <ms>", svg: "<svg class=\"chart\"></svg>\n")
        let table = ReportTable(title: "Summary (summary.csv)", header: ["metric", "p50 ms", "note"],
                                rows: [["rtt", "1.05", ""], ["a|b", "-2", "two\nlines <b>"], ["connect", "0.5e3", "x & y"]])
        let sections = [
            ReportSection(heading: "Latency <ping>", note: "3 of 4 targets answered", charts: [chart], tables: [table]),
            ReportSection(heading: "Compare", note: nil, charts: [], tables: [ReportTable(title: "empty", header: ["a"], rows: [])]),
        ]
        let meta = [("run", "r-1"), ("host", "h & co")]
        try check(ReportHTML.markdown(title: "run r-1", meta: meta, sections: sections), golden: "report.md")
        try check(ReportHTML.html(title: "run r-1", meta: meta, sections: sections), golden: "report.html")
        try check(ReportHTML.markdown(title: "empty", meta: [], sections: []), golden: "report-empty.md")
    }
}
