import XCTest
@testable import EdgeMeterCore

final class MarkdownTableTests: XCTestCase {
    func testHeaderAlignmentRowAndRows() {
        var t = MarkdownTable(header: ["service", "pairs", "p50 ms"], alignments: [.left, .right, .right])
        XCTAssertEqual(t.text, "| service | pairs | p50 ms |\n|---|---:|---:|\n")
        t.add(["add", "3", "0.500"])
        t.add(["mul", "1", "—"])
        XCTAssertEqual(t.text, "| service | pairs | p50 ms |\n|---|---:|---:|\n| add | 3 | 0.500 |\n| mul | 1 | — |\n")
    }

    func testColumnsWithoutAnAlignmentAreLeftAndCellsAreWrittenAsGiven() {
        var t = MarkdownTable(header: ["a", "b", "note"], alignments: [.right])
        t.add(["1", "x|y", ""])
        // An empty cell keeps its two spaces; a `|` is the caller's to escape (ReportHTML.markdown does).
        XCTAssertEqual(t.text, "| a | b | note |\n|---:|---|---|\n| 1 | x|y |  |\n")
        XCTAssertEqual(MarkdownTable(header: ["only"]).text, "| only |\n|---|\n")
    }
}
