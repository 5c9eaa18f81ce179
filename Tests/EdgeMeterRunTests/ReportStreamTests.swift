import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// `edgemeter report` on generated samples.csv files (the streamed path against the whole-file
/// parse it replaced), its memory on a large file, delays.csv from a run's finish, and the load
/// data a `load` run keeps (`load-histograms.json`).
final class ReportStreamTests: BinaryTestCase {
    var server: Process?

    override func tearDown() {
        if let server, server.isRunning { server.terminate(); server.waitUntilExit() }
        super.tearDown()
    }

    /// What `edgemeter report` printed before streaming: `SampleCSV.parse` + `Summarizer`.
    func wholeFileSummaries(_ dir: String) throws -> [Summary] {
        var s = Summarizer()
        try samples(dir).forEach { s.add($0) }
        return s.summaries
    }

    func testReportOnAGeneratedMixedFileEqualsTheWholeFileParse() throws {
        let gen = try runCommand(bin, ["generate-samples", "--rows", "40000", "--shape", "mixed", "--seed", "3", out])
        XCTAssertEqual(gen.status, 0, gen.stderr)
        let r = try runCommand(bin, ["report", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("from 40000 samples"), r.stderr)
        let expected = try wholeFileSummaries(out)
        XCTAssertEqual(try String(contentsOfFile: out + "/summary.csv", encoding: .utf8), SummaryCSV.render(expected))
        XCTAssertEqual(r.stdout, RunReport.markdown(runID: URL(fileURLWithPath: out).lastPathComponent, summaries: expected, notes: [],
                                                    complete: true, sections: []))
        let json = try runCommand(bin, ["report", "--json", out])
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertEqual(json.stdout, SummaryJSON.render(expected, runDirectory: URL(fileURLWithPath: out).path, complete: true) + "\n")
    }

    func testReportNamesADamagedRow() throws {
        let gen = try runCommand(bin, ["generate-samples", "--rows", "50", out])
        XCTAssertEqual(gen.status, 0, gen.stderr)
        var text = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8)
        text = text.replacingOccurrences(of: ",ok,", with: ",fine,")
        try text.write(toFile: out + "/samples.csv", atomically: true, encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").firstIndex { $0.contains(",fine,") }) + 1
        let r = try runCommand(bin, ["report", out])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("samples.csv:\(line): unknown status \"fine\"; expected one of: ok, timeout, refused, unreachable, error"), r.stderr)
        let whole = try runCommand(bin, ["report", "--whole-file", out])
        XCTAssertEqual(whole.stderr, r.stderr, "the same message as the whole-file reader")
    }

    /// The whole-file path held ~1.1 KB per row (2.3 GB for 2M rows): 300k rows took ~350 MB.
    /// Streamed, the peak is the binary's own plus a 4 MiB buffer, whatever the row count.
    func testReportMemoryDoesNotGrowWithTheFile() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else {
            throw XCTSkip("/usr/bin/time is missing: apt-get install time (scripts/setup.sh lists it)")
        }
        func peakKiB(rows: Int) throws -> Int {
            let dir = out + "-\(rows)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let gen = try runCommand(bin, ["generate-samples", "--rows", String(rows), dir], timeout: 300)
            XCTAssertEqual(gen.status, 0, gen.stderr)
            let r = try runCommand("/usr/bin/time", ["-f", "peak=%M", bin, "report", "--json", dir], timeout: 300)
            XCTAssertEqual(r.status, 0, r.stderr)
            let line = try XCTUnwrap(r.stderr.split(separator: "\n").last { $0.hasPrefix("peak=") }, r.stderr)
            return try XCTUnwrap(Int(line.dropFirst(5)))
        }
        let small = try peakKiB(rows: 1_000)
        let large = try peakKiB(rows: 300_000)
        XCTAssertLessThan(large - small, 24 * 1024, "peak RSS \(small) KiB for 1k rows, \(large) KiB for 300k rows: memory grows with the file")
    }

    func testFinishWritesDelaysFromTheStreamedFile() throws {
        let dir = try RunDirectory(out: out, name: "t")
        let fixture = SampleFixture(shape: .mixed, seed: 5)
        for i in 0..<3_000 { dir.record(fixture.sample(i)) }
        try dir.finish(complete: true)
        let recorded = try samples(out)
        let text = try String(contentsOfFile: out + "/delays.csv", encoding: .utf8)
        XCTAssertEqual(text, DelayTable.csv(DelayTable.rows(from: recorded)))
        XCTAssertGreaterThan(text.split(separator: "\n").count, 4, text)
    }

    /// Starts `edgemeter serve calculator --role all --port 0`; returns the front's port.
    func startCalculator() throws -> Int {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["serve", "calculator", "--role", "all", "--port", "0"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        server = p
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !text.contains("front listening") {
            let d = pipe.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        let r = try XCTUnwrap(text.range(of: #"front listening on http://127\.0\.0\.1:\d+"#, options: .regularExpression), text)
        return try XCTUnwrap(Int(text[r].split(separator: ":").last ?? ""))
    }

    func testLoadKeepsItsHistogramsThroughputAndCounts() throws {
        let front = try startCalculator()
        let r = try runCommand(bin, ["load", "-c", "2", "-t", "1", "-d", "2s", "-R", "200", "--no-spectrum",
                                     "http://127.0.0.1:\(front)/healthz", "--out", out], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let loads = try LoadData.read(URL(fileURLWithPath: out))
        XCTAssertEqual(loads.count, 1)
        let l = try XCTUnwrap(loads.first)
        XCTAssertTrue(l.openLoop)
        XCTAssertEqual(l.requestedRate, 200)
        XCTAssertEqual(l.latency.map(\.series), ["corrected", "uncorrected"])
        XCTAssertEqual(l.errors.keys.sorted(), ["body", "connect", "reset", "status", "timeout"])
        XCTAssertEqual(l.statusCounts["200"], l.responses)
        XCTAssertGreaterThan(l.responses, 200)
        XCTAssertFalse(l.perSecond.isEmpty)
        XCTAssertLessThanOrEqual(l.perSecond.reduce(0, +), l.responses, "per-second counts are of whole measured seconds")
        let sums = try samples(out)
        for series in l.latency {
            let timeouts = l.errors["timeout"] ?? 0
            XCTAssertEqual(Int(series.count), l.responses + timeouts + (series.series == "corrected" ? l.unsent : 0))
            XCTAssertEqual(series.buckets.map { $0[1] }.reduce(0, +), series.count)
            // The percentiles summary.csv holds are read back from the saved buckets.
            for (phase, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
                let row = try XCTUnwrap(sums.first { $0.phase == "\(series.series)_\(phase)" })
                let fromFile = try XCTUnwrap(series.value(atPercentile: p))
                XCTAssertEqual(Format.fixed(Double(fromFile) / 1e6, 6), Format.fixed(row.value, 6), "\(series.series) \(phase)")
            }
        }
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("load-histograms.json"), md)
        XCTAssertFalse(md.contains("| corrected_p50 |"), "no percentile as a one-sample row: \(md)")
    }
}
