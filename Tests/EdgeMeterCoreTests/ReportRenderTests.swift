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
}
