import XCTest
@testable import EdgeMeterCore

/// The streamed reader (`SampleStream` + `SampleStreamSummarizer`) against the whole-file path it
/// replaces in `edgemeter report` (`SampleCSV.parse` + `Summarizer`): same samples, same
/// summaries, same errors, whatever the chunk boundaries.
final class SampleStreamTests: XCTestCase {
    enum Outcome { case success([Sample]), failure(String) }

    /// Every row the stream hands over, materialized, or the error text.
    func streamed(_ text: String, readBytes: Int) -> Outcome {
        var out: [Sample] = []
        do {
            try SampleStream.read(text: text, file: "x.csv", readBytes: readBytes) { out.append($0.sample) }
            return .success(out)
        } catch {
            return .failure("\(error)")
        }
    }

    func parsed(_ text: String) -> Outcome {
        do { return .success(try SampleCSV.parse(text, file: "x.csv")) } catch { return .failure("\(error)") }
    }

    func assertSame(_ text: String, readBytes: [Int] = [1, 2, 3, 7, 64, 1 << 20], file: StaticString = #filePath, line: UInt = #line) {
        let old = parsed(text)
        for n in readBytes {
            let new = streamed(text, readBytes: n)
            switch (old, new) {
            case (.success(let a), .success(let b)):
                XCTAssertEqual(a.count, b.count, "rows, reads of \(n) bytes: \(text.debugDescription)", file: file, line: line)
                for (x, y) in zip(a, b) where !Self.same(x, y) {
                    XCTFail("reads of \(n) bytes: \(x) != \(y) in \(text.debugDescription)", file: file, line: line)
                    break
                }
            case (.failure(let a), .failure(let b)):
                XCTAssertEqual(a, b, "reads of \(n) bytes: \(text.debugDescription)", file: file, line: line)
            default:
                XCTFail("reads of \(n) bytes: old \(old) vs streamed \(new) for \(text.debugDescription)", file: file, line: line)
            }
        }
    }

    /// Equal samples, a NaN value equal to a NaN value.
    static func same(_ x: Sample, _ y: Sample) -> Bool {
        var (a, b) = (x, y)
        if a.value?.isNaN == true && b.value?.isNaN == true { (a.value, b.value) = (nil, nil) }
        return a == b
    }

    static let head = SampleCSV.headerLine
    static let okRow = "r,s,ping,127.0.0.1,rtt,echo,0.053000,ms,2026-11-29T01:40:00.123456Z,ok,,seq=1;socket=raw\n"

    func testEveryCSVCornerReadsAsTheWholeFileParserReadsIt() {
        let h = Self.head, ok = Self.okRow
        let cases: [String] = [
            h + ok + ok,
            h + ok + String(ok.dropLast()),                                   // no line break at the end
            (h + ok + ok).replacingOccurrences(of: "\n", with: "\r\n"),       // CRLF
            h + "r,\"s, \"\"q\"\"\",ping,t,rtt,echo,1.5,ms,2026-11-29T01:40:00.123456Z,error,\"line one\nline two, \"\"x\"\"\",\"a=1,2;b=\"\"\"\n" + ok,
            h + "r,s\rx,ping,t,rtt,echo,1.5,ms,2026-11-29T01:40:00.123456Z,ok,,\n",      // CR inside an unquoted field
            h + "r,s\"x,ping,t,rtt,echo,1.5,ms,2026-11-29T01:40:00.123456Z,ok,,\n",      // a quote inside a field is literal
            h + "r,\r\"s,x\",ping,t,rtt,echo,1.5,ms,2026-11-29T01:40:00.123456Z,ok,,\n", // CR, then a quote that opens
            h + "r,\"ab\"cd\"e,ping,t,rtt,echo,1.5,ms,2026-11-29T01:40:00.123456Z,ok,,\n", // text after the closing quote
            h + "\n" + ok + "\n\n" + ok + "\n",                                  // empty lines
            h + ok + "r,s,ping,127.0.0.1,rtt,ec",                                // killed mid-write: last line dropped
            h + ok + "r,s,ping,127.0.0.1,rtt,ec\n",
            h + ok + "r,s,ping,127.0.0.1,rtt,ec\n\n",                            // ... but not when a line follows
            h + "r,s,ping,t,rtt,echo,1,ms,2026-11-29T01:40:00.123456Z,ok,,,extra\n" + ok,
            h + ok.replacingOccurrences(of: ",ok,", with: ",fine,") + ok,
            h + ok.replacingOccurrences(of: "0.053000", with: "fast") + ok,
            h + ok.replacingOccurrences(of: "2026-11-29T01:40:00.123456Z", with: "yesterday"),
            h + ok + "r,\"unterminated,ping\n" + ok,
            "", "\r", "\n", h, String(h.dropLast()), "run_id,scenario\n" + ok,
            h.replacingOccurrences(of: "labels", with: "\"labels\""),                  // a quoted header field
        ]
        for c in cases { assertSame(c) }
    }

    func testValuesAndTimestampsOutsideTheFastPathsParseAsBefore() {
        let values = ["1e3", "-0.000000", "0", "+1.5", ".5", "1.", "0x10", " 1", "nan", "inf", "-12.345678", "123456789.123456",
                      "1234567890123456.5", "0.1234567890123456789", "9007199254740993", "00012.50", "-", "1.2.3", ""]
        let stamps = ["2026-11-29T01:40:00Z", "2026-11-29T01:40:00.123Z", "2026-02-30T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z",
                      "2026-11-29T01:40:60.000000Z", "1970-01-01T00:00:00.000001Z", "2026-13-01T00:00:00.000000Z",
                      "2026-11-29T01:40:00.12345Z", "2026-11-29 01:40:00.123456Z", "2100-03-01T12:00:00.500000Z"]
        for v in values {
            assertSame(Self.head + "r,s,p,t,m,ph,\(v),ms,2026-11-29T01:40:00.123456Z,ok,,\n", readBytes: [5, 1 << 20])
            assertSame(Self.head + "r,s,p,t,m,ph,\(v),ms,2026-11-29T01:40:00.123456Z,timeout,why,\n", readBytes: [1 << 20])
        }
        for t in stamps {
            assertSame(Self.head + "r,s,p,t,m,ph,1,ms,\(t),ok,,\n", readBytes: [5, 1 << 20])
        }
    }

    func testFastTimestampsEqualTheFormattersOverManyDates() {
        var seed: UInt64 = 42
        for _ in 0..<2000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let t = 31_536_000 + Double(seed >> 33) / Double(1 << 31) * 4_000_000_000
            let text = Format.timestamp(Date(timeIntervalSince1970: t))
            let bytes = Array(text.utf8)
            let fast = bytes.withUnsafeBufferPointer { SampleRow.fastTimestamp($0) }
            XCTAssertEqual(fast.map { Date(timeIntervalSince1970: $0) }, Format.parseTimestamp(text), text)
        }
    }

    func testGeneratedFilesGiveTheSameSamplesSummariesAndDelays() throws {
        for (shape, rows) in [(SampleFixture.Shape.mixed, 24_000), (.ping, 6_000)] {
            let text = SampleFixture(shape: shape, seed: 7).csv(0..<rows)
            if shape == .mixed {
                XCTAssertTrue(text.contains("\"tcp, \"\"quoted\"\"\""), "the mixed fixture has quoted fields")
                XCTAssertTrue(text.contains(",error,\"status 503, body \"\"busy\"\" retry\","), "error rows with a quoted reason")
                XCTAssertTrue(text.contains(",timeout,") && text.contains(",refused,") && text.contains(",unreachable,"))
                XCTAssertTrue(text.contains(",-0.0"), "negative values")
            }
            let old = try SampleCSV.parse(text)
            XCTAssertEqual(old.count, rows)
            var summarizer = Summarizer()
            old.forEach { summarizer.add($0) }
            for readBytes in [997, 1 << 20] {
                var stream = SampleStreamSummarizer()
                var delays = DelayAccumulator()
                var i = 0
                var mismatches = 0
                let n = try SampleStream.read(text: text, readBytes: readBytes) { row in
                    if !Self.same(row.sample, old[i]) { mismatches += 1 }
                    i += 1
                    stream.add(row)
                    delays.add(row)
                }
                XCTAssertEqual(n, rows)
                XCTAssertEqual(mismatches, 0, "\(shape): streamed samples differ from SampleCSV.parse's")
                XCTAssertEqual(stream.summaries, summarizer.summaries, "\(shape), reads of \(readBytes) bytes")
                XCTAssertEqual(SummaryCSV.render(stream.summaries), SummaryCSV.render(summarizer.summaries))
                XCTAssertEqual(SummaryMarkdown.render(title: "t", summaries: stream.summaries),
                               SummaryMarkdown.render(title: "t", summaries: summarizer.summaries))
                XCTAssertEqual(SummaryJSON.render(stream.summaries), SummaryJSON.render(summarizer.summaries))
                XCTAssertEqual(delays.rows, DelayTable.rows(from: old), "\(shape): delays.csv rows")
            }
            if shape == .mixed {
                let keys = Set(summarizer.summaries.map(\.key.scenario))
                XCTAssertTrue(keys.isSuperset(of: ["lab", "web", "tcp, \"quoted\"", "café ☕", "wire", "startup", "spin", "zero"]), "\(keys)")
                XCTAssertGreaterThan(DelayTable.rows(from: old).count, 3)
            }
        }
    }

    func testCanonicallyEqualKeysShareOneRowAsInSummarizer() throws {
        // "é" precomposed (NFC) and as e + combining acute (NFD): equal Strings, different bytes.
        let text = Self.head + "r,caf\u{E9},ping,t,rtt,echo,1,ms,2026-11-29T01:40:00.123456Z,ok,,\n"
            + "r,cafe\u{301},ping,t,rtt,echo,2,ms,2026-11-29T01:40:00.123456Z,ok,,\n"
        var stream = SampleStreamSummarizer()
        try SampleStream.read(text: text) { stream.add($0) }
        var summarizer = Summarizer()
        try SampleCSV.parse(text).forEach { summarizer.add($0) }
        XCTAssertEqual(stream.summaries.count, 1)
        XCTAssertEqual(stream.summaries, summarizer.summaries)
    }

    func testAccumulatorStatusTallyKeepsOnlySeenStatuses() {
        var a = SummaryAccumulator(key: SummaryKey(scenario: "s", probe: "p", target: "t", metric: "m", phase: "x", unit: "ms"))
        a.add(status: .ok, value: 1)
        a.add(status: .timeout, value: nil)
        a.add(status: .timeout, value: 5) // a value on a failed attempt is not a figure
        XCTAssertEqual(a.summary.statusCounts, [.ok: 1, .timeout: 2])
        XCTAssertEqual(a.summary.received, 1)
        XCTAssertEqual(a.summary.max, 1)
    }
}
