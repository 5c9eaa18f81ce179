import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import EdgeMeterCore

/// The SVG writer and the report's charts: well-formed XML, axes with units, the data drawn where
/// it belongs, smoke colours by loss, matrix cells, and the report built from samples and files.
final class ChartsTests: XCTestCase {
    /// Parses an SVG as XML and returns the element names in document order.
    func elements(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        final class Collector: NSObject, XMLParserDelegate {
            var names: [String] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) { names.append(name) }
        }
        let p = XMLParser(data: Data(svg.utf8))
        let c = Collector()
        p.delegate = c
        XCTAssertTrue(p.parse(), "not well-formed XML: \(p.parserError.map { "\($0)" } ?? "?")", file: file, line: line)
        return c.names
    }

    func testCDFIsWellFormedWithUnitsAndOneCurvePerSeries() {
        let svg = Charts.cdf(title: "Latency CDF: a<b & \"c\"", quantity: "latency", unit: "ms",
                             series: [ChartSeries(name: "echo", values: (1...100).map(Double.init)),
                                      ChartSeries(name: "connect", values: [0.5, 0.7, 0.9])])
        let names = elements(svg)
        XCTAssertEqual(names.first, "svg")
        XCTAssertEqual(names.filter { $0 == "path" }.count, 2, "one curve per series")
        XCTAssertTrue(svg.contains("latency (ms)"), "x axis names the quantity and unit")
        XCTAssertTrue(svg.contains("samples ≤ x (%)"))
        XCTAssertTrue(svg.contains("a&lt;b &amp; &quot;c&quot;"), "title escaped")
        XCTAssertTrue(svg.contains("echo (n=100)"))
    }

    func testCDFUsesALogAxisForDataSpanningDecadesAndCapsPoints() {
        let values = (0..<10_000).map { 0.01 * pow(1.001, Double($0)) } // 0.01 .. ~220
        let svg = Charts.cdf(title: "t", quantity: "latency", unit: "ms", series: [ChartSeries(name: "s", values: values)])
        XCTAssertTrue(svg.contains("log scale"))
        let d = svg.components(separatedBy: "d=\"")[1].prefix { $0 != "\"" }
        let points = d.split(separator: "L").count
        XCTAssertLessThanOrEqual(points, 2 * Charts.cdfMaxPoints + 4, "drawn at most cdfMaxPoints ranks")
        XCTAssertGreaterThan(points, 100)
    }

    func testAxisScaleTicksAndPositions() {
        let a = AxisScale.covering([3, 47])
        XCTAssertEqual(a.lower, 0)
        XCTAssertGreaterThanOrEqual(a.upper, 47)
        XCTAssertEqual(a.ticks().first, 0)
        XCTAssertEqual(a.position(a.lower, 100, 200), 100)
        XCTAssertEqual(a.position(a.upper, 100, 200), 200)
        let l = AxisScale.covering([0.05, 300], includeZero: false, preferLog: true)
        XCTAssertTrue(l.log)
        XCTAssertEqual(l.ticks(), [0.01, 0.1, 1, 10, 100, 1000].map { $0 }, accuracy: 1e-9)
        XCTAssertEqual(AxisScale.niceStep(0.37), 0.5)
        XCTAssertEqual(AxisScale.niceStep(7), 10)
    }

    func testSmokeGraphColoursTheMedianByLossAndMarksRoundsWithNothing() {
        let rounds = [
            SmokeRound(index: 1, startSeconds: 0, values: [1, 2, 3, 4, 5], attempts: 5),            // 0 %
            SmokeRound(index: 2, startSeconds: 30, values: [2, 3, 4, 5], attempts: 5),              // 20 %
            SmokeRound(index: 3, startSeconds: 60, values: [], attempts: 5),                        // all lost
            SmokeRound(index: 4, startSeconds: 90, values: [1, 1, 1, 1, 9, 9, 9, 9, 9, 9], attempts: 20), // 50 %
        ]
        let svg = Charts.smoke(title: "ping echo", quantity: "rtt echo", unit: "ms", rounds: rounds)
        _ = elements(svg)
        XCTAssertTrue(svg.contains("round 1: median 3 ms"), "round 1's median line with its figures")
        XCTAssertTrue(svg.contains("round 3: all 5 attempts lost"))
        XCTAssertTrue(svg.contains("rtt echo (ms)"))
        XCTAssertTrue(svg.contains("time since the first round (s)"))
        // The median bar of each round is filled with its loss colour.
        func medianFill(_ round: Int) -> String? {
            guard let r = svg.range(of: "<title>round \(round): median") else { return nil }
            let before = svg[..<r.lowerBound]
            guard let f = before.range(of: "fill=\"", options: .backwards) else { return nil }
            return String(before[f.upperBound...].prefix(7))
        }
        XCTAssertEqual(medianFill(1), "#1a9641")
        XCTAssertEqual(medianFill(2), "#7b3294")
        XCTAssertEqual(medianFill(4), "#e66101")
        XCTAssertEqual(Charts.lossColor(0), "#1a9641")
        XCTAssertEqual(Charts.lossColor(3), "#2c7bb6")
        XCTAssertEqual(Charts.lossColor(80), "#d7191c")
    }

    func testMatrixColoursCellsByHowManyProbesGotThrough() {
        let csv = """
            from,to,probe,reachable,why_not,rtt_p50_ms
            host,a,icmp,yes,,0.050
            host,a,tcp:80,no,refused,
            a,b,icmp,no,no route,
            b,a,icmp,yes,,0.1

            """
        let m = ReportPlots.reachMatrix(csv)!
        XCTAssertEqual(m.rows, ["host", "a", "b"])
        XCTAssertEqual(m.columns, ["a", "b"])
        XCTAssertEqual(m.cells["host"]?["a"], MatrixCell(reachable: 1, total: 2, detail: "icmp ok 0.050 ms; tcp:80 not reachable (refused)"))
        let svg = Charts.matrix(title: "reach", rows: m.rows, columns: m.columns, cells: m.cells)
        _ = elements(svg)
        XCTAssertTrue(svg.contains(">1/2</text>"))
        XCTAssertTrue(svg.contains("#fee08b"), "partly reachable is amber")
        XCTAssertTrue(svg.contains("#f4a582"), "a → b unreachable is red")
        XCTAssertTrue(svg.contains("a → a: not probed"))
        XCTAssertNil(ReportPlots.reachMatrix("x,y\n1,2\n"), "a CSV without from/to/probe/reachable is not a matrix")
    }

    func testBoxPlotQuartilesAndOutliers() {
        let values: [String: [String: [Double]]] = ["create": ["docker": [10, 11, 12, 13, 14, 100], "lxc": [20, 21, 22]],
                                                    "start": ["docker": [200, 210, 220]]]
        let svg = Charts.boxPlot(title: "startup", unit: "ms", categories: ["create", "start"], groups: ["docker", "lxc"], values: values)
        _ = elements(svg)
        XCTAssertTrue(svg.contains("docker create: n=6, median 12.5 ms, IQR 11.2–13.8 ms"))
        XCTAssertTrue(svg.contains("lxc create: n=3"))
        XCTAssertFalse(svg.contains("lxc start"), "no box where a backend has no values")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 1, "100 ms is the one outlier")
        XCTAssertTrue(svg.contains("duration (ms)"))
        XCTAssertEqual(Charts.quantile([1, 2, 3, 4], 0.5), 2.5)
    }

    func testTimelineMarksTheSwitchAndFailures() {
        let csv = ReportFiles.timelineHeaderPrefix + ",failure\n"
            + "1,1000.0,1000.1,1003.0,3.0,200,node_1,\n"
            + "2,1010.0,1010.1,1014.0,4.0,200,node_1,\n"
            + "3,1020.0,,1520.0,500.0,,,no answer within 500ms\n"
            + "4,1030.0,1030.1,1032.0,2.0,200,node_2,\n"
        let points = ReportPlots.timelinePoints(csv)!
        XCTAssertEqual(points.count, 4)
        XCTAssertEqual(points[0].seconds, 0)
        XCTAssertEqual(points[3].seconds, 0.03, accuracy: 1e-9)
        XCTAssertTrue(points[2].failed)
        let svg = Charts.timeline(title: "migration", points: points)
        _ = elements(svg)
        XCTAssertTrue(svg.contains("→ node_2"), "the switch is marked")
        XCTAssertTrue(svg.contains("failed (1)"))
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 3)
        XCTAssertNil(ReportPlots.timelinePoints("a,b\n1,2\n"))
    }

    func sample(_ scenario: String, _ probe: String, _ target: String, _ phase: String, _ value: Double?, round: Int? = nil,
                at t: TimeInterval = 0, metric: String = "latency") -> Sample {
        Sample(runID: "r", scenario: scenario, probe: probe, target: target, metric: metric, phase: phase, value: value, unit: "ms",
               timestamp: Date(timeIntervalSince1970: 1_800_000_000 + t), status: value == nil ? .timeout : .ok,
               reason: value == nil ? "no reply" : "", labels: round.map { ["round": "\($0)"] } ?? [:])
    }

    func testReportSectionsFromSamplesAndFiles() {
        var samples: [Sample] = []
        for r in 1...3 {
            for k in 0..<4 {
                samples.append(sample("p", "ping", "127.0.0.1", "echo", r == 2 && k == 0 ? nil : Double(k) * 0.01 + 0.05, round: r,
                                      at: Double(r) * 30 + Double(k) * 0.01, metric: "rtt"))
            }
            samples.append(sample("p", "ping", "127.0.0.1", "resolve", 0.01, round: r, at: Double(r) * 30))
        }
        for b in ["docker", "lxc"] {
            for phase in ["create", "start", "total"] { samples.append(sample("s", "startup", b, phase, 12, metric: "startup")) }
        }
        samples.append(sample("l", "load", "x", "corrected_p50", 3))
        var files = ReportFiles()
        files.reach = [("reach-r.csv", "from,to,probe,reachable\nhost,a,icmp,yes\n")]
        files.compare = [("compare.csv", "metric,ratio\nrtt,1.05\n")]
        files.summaryCSV = "scenario,probe\np,ping\n"
        let sections = ReportPlots.sections(samples: samples, files: files)
        XCTAssertEqual(sections.map(\.heading), ["Latency distributions", "Startup phases", "Rounds (smoke graphs)", "Reachability", "Tables"])
        let cdf = sections[0].charts
        XCTAssertEqual(cdf.map(\.id), ["cdf-p"], "load aggregates and resolve times have no CDF; startup has box plots")
        XCTAssertTrue(cdf[0].svg.contains("echo (n=11)"), "11 successful echoes, the timed-out one left out")
        XCTAssertEqual(sections[1].charts.map(\.id), ["box-s"])
        let smoke = sections[2].charts
        XCTAssertEqual(smoke.count, 1)
        XCTAssertTrue(smoke[0].caption.hasPrefix("3 rounds"))
        XCTAssertTrue(smoke[0].svg.contains("round 2: median"), "round 2 drawn")
        XCTAssertTrue(smoke[0].svg.contains("loss 25 % of 4"), "round 2 lost one of four")
        XCTAssertEqual(sections[4].tables.map(\.title), ["Compare: compare.csv", "Summary (summary.csv)"])

        let html = ReportHTML.html(title: "run r", meta: [("host", "h")], sections: sections)
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, sections.flatMap(\.charts).count)
        for forbidden in ["<script", "<link", "@import", "src=", "url("] {
            XCTAssertFalse(html.contains(forbidden), "report.html must be self-contained: found \(forbidden)")
        }
        let md = ReportHTML.markdown(title: "run r", meta: [], sections: sections)
        XCTAssertTrue(md.contains("![Latency CDF: p (ping)](plots/cdf-p.svg)"))
        XCTAssertTrue(md.contains("| rtt | 1.05 |"))
    }

    func testTheCollectorsRowReaderAgreesWithSampleCSV() throws {
        let t = Date(timeIntervalSince1970: 1_764_614_400.123456) // 2025-12-01
        let rows = [
            Sample(runID: "r", scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", value: 0.5, unit: "ms",
                   timestamp: t, status: .ok, labels: ["round": "2", "socket": "raw"]),
            Sample(runID: "r", scenario: "s, with comma", probe: "ping", target: "t", metric: "rtt", phase: "echo", value: nil, unit: "ms",
                   timestamp: t, status: .timeout, reason: "no reply, \"late\"", labels: ["round": "2"]),
        ]
        var fast = ReportCollector(), slow = ReportCollector()
        let text = SampleCSV.headerLine + "\n" + rows.map(SampleCSV.row).joined(separator: "\n") + "\n"
        try SampleStream.read(text: text) { fast.add(row: $0) }
        for s in try SampleCSV.parse(text) { slow.add(s) }
        XCTAssertEqual(fast.count, 2)
        XCTAssertEqual(fast.sections(files: ReportFiles()), slow.sections(files: ReportFiles()))
    }

    func testRunWithoutChartableSamplesSaysSo() {
        let html = ReportHTML.html(title: "t", meta: [], sections: ReportPlots.sections(samples: [], files: ReportFiles()))
        XCTAssertTrue(html.contains("recorded nothing that can be charted"))
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(a) vs \(b)", file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy * max(1, abs(y)), file: file, line: line) }
}
