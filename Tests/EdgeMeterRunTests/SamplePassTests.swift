import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// One read of samples.csv for the summaries, delays.csv and report.html (`SamplePass`), and the
/// same read in two parts on two threads (`SamplesFile.pass`): the parts merged must give what the
/// whole read gives, bit for bit, and `edgemeter report` must write what it wrote before.
final class SamplePassTests: BinaryTestCase {
    func write(_ text: String) throws -> URL {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let url = URL(fileURLWithPath: out + "/samples.csv")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Every figure of two summary lists, as bits (Equatable on Double would let -0.0 == 0.0 pass).
    func assertBitForBit(_ a: [Summary], _ b: [Summary], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a, b, what, file: file, line: line)
        func bits(_ s: Summary) -> [UInt64?] {
            [s.min, s.mean, s.max, s.mdev, s.sum, s.p50, s.p90, s.p99, s.p999, s.medianCI95?.lowerBound, s.medianCI95?.upperBound]
                .map { $0?.bitPattern }
        }
        XCTAssertEqual(a.map(bits), b.map(bits), what, file: file, line: line)
    }

    func assertSamePass(_ url: URL, parts expectedParts: Int, _ what: String) throws {
        let all = SamplePass(summaries: true, charts: true, delays: true)
        let serial = try SamplesFile.pass(url, all, parts: 1)
        let parallel = try SamplesFile.pass(url, all, parts: 2, minimumBytes: 0)
        XCTAssertEqual(serial.parts, 1)
        XCTAssertEqual(parallel.parts, expectedParts, "\(what): read in \(expectedParts) part(s)")
        XCTAssertEqual(parallel.rows, serial.rows, what)
        assertBitForBit(parallel.pass.summarizer!.summaries, serial.pass.summarizer!.summaries, what)
        XCTAssertEqual(parallel.pass.delays!.rows, serial.pass.delays!.rows, "\(what): delays.csv")
        XCTAssertEqual(parallel.pass.collector!.count, serial.pass.collector!.count)
        XCTAssertEqual(parallel.pass.collector!.sections(files: ReportFiles()), serial.pass.collector!.sections(files: ReportFiles()),
                       "\(what): report.html's charts")
    }

    /// The mixed fixture (quoted fields, every status, labels, signed values, several units) with
    /// startup and round rows: two parts merged equal the whole read.
    func testTwoPartsMergedEqualTheWholeReadBitForBit() throws {
        var text = SampleFixture(shape: .mixed, seed: 5).csv(0..<30_000)
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        for k in 0..<600 {
            // Startup phases (box plots) and tcping rounds (smoke graphs) spread over the file.
            text += SampleCSV.row(Sample(runID: "r", scenario: "boot", probe: "startup", target: k % 2 == 0 ? "docker" : "lxc",
                                         metric: "startup", phase: ["create", "start", "ready"][k % 3], value: Double(k % 37) + 0.25,
                                         unit: "ms", timestamp: t0.addingTimeInterval(Double(k)), status: .ok)) + "\n"
            text += SampleCSV.row(Sample(runID: "r", scenario: "tcp", probe: "tcping", target: "127.0.0.1", metric: "latency",
                                         phase: "connect", value: k % 10 == 0 ? nil : 0.05 + Double(k % 13) * 0.001, unit: "ms",
                                         timestamp: t0.addingTimeInterval(Double(k) * 0.01), status: k % 10 == 0 ? .timeout : .ok,
                                         labels: ["round": "\(k / 100 + 1)"])) + "\n"
            if k % 100 == 99 { text += SampleFixture(shape: .mixed, seed: UInt64(k)).csv(0..<500).split(separator: "\n").dropFirst().joined(separator: "\n") + "\n" }
        }
        let url = try write(text)
        try assertSamePass(url, parts: 2, "mixed fixture")
        let sections = try SamplesFile.pass(url, SamplePass(), parts: 2, minimumBytes: 0).pass.collector!.sections(files: ReportFiles())
        XCTAssertEqual(Set(sections.map(\.heading)), ["Latency distributions", "Startup phases", "Rounds (smoke graphs)"])
    }

    /// A curve of more values than a chart keeps (`maxValuesPerCurve`): the kept sample is the same.
    func testACurveOverTheChartCapIsSampledTheSameInParts() throws {
        let rows = ReportPlots.maxValuesPerCurve + 50_000
        let url = try write(SampleFixture(shape: .ping, seed: 9).csv(0..<rows))
        try assertSamePass(url, parts: 2, "ping fixture over the cap")
        let c = try SamplesFile.pass(url, SamplePass(summaries: false), parts: 2, minimumBytes: 0).pass.collector!
        let caption = c.sections(files: ReportFiles())[0].charts[0].caption
        XCTAssertTrue(caption.contains("uniform random sample"), caption)
    }

    /// A quoted field spanning lines across the middle: the cut is not a row's end, so the file is
    /// read whole (same result); a damaged row in the second half is named with its file line.
    func testACutInsideAQuotedFieldOrADamagedRowFallsBackToTheWholeRead() throws {
        let fixture = SampleFixture(shape: .ping, seed: 2)
        let head = fixture.csv(0..<2_000)
        let tail = fixture.csv(2_000..<4_000).split(separator: "\n").dropFirst().joined(separator: "\n") + "\n"
        // A reason field of many lines, long enough to hold the file's middle.
        let reason = "\"" + (0..<2_000).map { "line \($0) of a long, \"\"quoted\"\" reason" }.joined(separator: "\n") + "\""
        let long = "r,s,tcping,127.0.0.1,latency,connect,,ms,2026-11-29T01:40:00.000000Z,error,\(reason),\n"
        let url = try write(head + long + tail)
        try assertSamePass(url, parts: 1, "cut inside a quoted field")

        let lines = (head + tail).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var damaged = lines
        let i = try XCTUnwrap(lines.indices.first { $0 >= 3_000 && lines[$0].contains(",ok,") })
        damaged[i] = damaged[i].replacingOccurrences(of: ",ok,", with: ",fine,")
        let bad = try write(damaged.joined(separator: "\n"))
        XCTAssertThrowsError(try SamplesFile.pass(bad, SamplePass(), parts: 2, minimumBytes: 0)) { error in
            XCTAssertTrue("\(error)".contains("samples.csv:\(i + 1): unknown status \"fine\""), "\(error)")
        }
    }

    /// `edgemeter report` on a fixture run directory (a real suite run with load and startup
    /// sections, a tcping --rounds run, the mixed fixture) writes byte for byte what the binary
    /// before the one-pass read wrote (testdata/report-before/expected, see its README.md).
    func testReportWritesWhatItWroteBeforeTheOnePassRead() throws {
        let src = try XCTUnwrap(Bundle.module.url(forResource: "testdata/report-before", withExtension: nil))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for f in ["samples.csv", "run.json", "sections.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: URL(fileURLWithPath: out + "/" + f))
        }
        let r = try runCommand(bin, ["report", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = src.appendingPathComponent("expected")
        XCTAssertEqual(r.stdout, try String(contentsOf: expected.appendingPathComponent("stdout.txt"), encoding: .utf8), "stdout")
        let plots = try FileManager.default.contentsOfDirectory(atPath: expected.appendingPathComponent("plots").path).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/plots").sorted(), plots)
        for f in ["summary.csv", "summary.md", "report.html", "report.md"] + plots.map({ "plots/" + $0 }) {
            let mine = try Data(contentsOf: URL(fileURLWithPath: out + "/" + f))
            XCTAssertEqual(mine, try Data(contentsOf: expected.appendingPathComponent(f)), "\(f) differs from before")
        }
    }
}
