import XCTest
@testable import EdgeMeterCore

final class DelayMatrixTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func row(_ from: String, _ to: String, _ p50: Double?, metric: String = "ping_rtt", end: Double = 10, lost: Int = 0) -> DelayRow {
        DelayRow(from: from, to: to, target: "addr-\(to)", metric: metric, p50Milliseconds: p50, p90Milliseconds: p50.map { $0 + 1 },
                 p99Milliseconds: p50.map { $0 + 2 }, lossPercent: Double(lost) * 10, samples: 10, received: 10 - lost,
                 windowStart: t0, windowEnd: t0.addingTimeInterval(end))
    }

    func testCellsPerOrderedPairOfTheMetricKeepingTheNewest() {
        let rows = [row("a", "b", 10), row("b", "a", 11), row("a", "b", 12, end: 20), row("a", "b", 99, metric: "tcp_connect"),
                    row("a", "a", 0), row("a", "z", 5)]
        let m = DelayMatrix(rows: rows, nodes: ["a", "b", "c"], metric: "ping_rtt")
        XCTAssertEqual(m.pairs.count, 6)
        XCTAssertEqual(m.cells[.init(from: "a", to: "b")]?.p50Milliseconds, 12, "the later window wins")
        XCTAssertEqual(m.cells[.init(from: "b", to: "a")]?.p50Milliseconds, 11)
        XCTAssertEqual(m.cells.count, 2, "other metrics, the diagonal and unknown nodes are left out")
        XCTAssertEqual(m.missing.map { "\($0.from)>\($0.to)" }, ["a>c", "b>c", "c>a", "c>b"])
        XCTAssertEqual(m.rows.map(\.to), ["b", "a"])
    }

    func testAgeIsThatOfTheStalestCell() {
        let m = DelayMatrix(rows: [row("a", "b", 1, end: 10), row("b", "a", 1, end: 30)], nodes: ["a", "b"], metric: "ping_rtt")
        XCTAssertEqual(m.ageSeconds(now: t0.addingTimeInterval(40))!, 30, accuracy: 1e-9)
        XCTAssertNil(DelayMatrix(rows: [], nodes: ["a", "b"], metric: "ping_rtt").ageSeconds(now: t0))
    }

    func testCheckUsesTheCalibrationTolerance() {
        // 10 ms expected: tolerance 0.5 ms; 160 ms expected: 8 ms.
        let m = DelayMatrix(rows: [row("a", "b", 10.4), row("b", "a", 10.6), row("a", "c", 167.9), row("c", "a", nil, lost: 10)],
                            nodes: ["a", "b", "c"], metric: "ping_rtt")
        let exp: [DelayMatrix.Pair: Double] = [.init(from: "a", to: "b"): 10, .init(from: "b", to: "a"): 10,
                                                .init(from: "a", to: "c"): 160, .init(from: "c", to: "a"): 160,
                                                .init(from: "b", to: "c"): 160]
        let checks = m.check(expected: exp)
        let verdict = Dictionary(uniqueKeysWithValues: checks.map { ("\($0.pair.from)>\($0.pair.to)", $0.passed) })
        XCTAssertEqual(verdict, ["a>b": true, "b>a": false, "a>c": true, "c>a": false, "b>c": false])
        XCTAssertEqual(checks.first { $0.pair.to == "c" && $0.pair.from == "a" }?.toleranceMs, 8)
    }

    func testMarkdownShowsEveryCellTheDiagonalAndMissingOnes() {
        let m = DelayMatrix(rows: [row("a", "b", 10.25), row("b", "a", 10.5, lost: 1)], nodes: ["a", "b", "c"], metric: "ping_rtt")
        let md = m.markdown(now: t0.addingTimeInterval(12), expected: [.init(from: "a", to: "b"): 10])
        XCTAssertTrue(md.contains("age 2.0 s"), md)
        XCTAssertTrue(md.contains("| a | — | 10.25 (11.25) | ? |"), md)
        XCTAssertTrue(md.contains("| b | 10.50 (11.50) 10% lost | — | ? |"), md)
        XCTAssertTrue(md.contains("1/1 pairs pass"), md)
        XCTAssertTrue(md.contains("| a | b | 10.0 | 10.250 | 0.250 | 0.50 | pass |"), md)
    }

    func testRowsRoundTripThroughDelaysCSV() throws {
        let m = DelayMatrix(rows: [row("a", "b", 10.25), row("b", "a", 10.5)], nodes: ["a", "b"], metric: "ping_rtt")
        let back = try DelayTable.parse(DelayTable.csv(m.rows))
        XCTAssertEqual(back.map(\.from), ["a", "b"])
        XCTAssertEqual(back.map(\.p50Milliseconds), [10.25, 10.5])
    }
}
