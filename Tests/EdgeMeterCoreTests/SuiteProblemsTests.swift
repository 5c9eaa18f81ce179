import XCTest
@testable import EdgeMeterCore

/// Validation reports every problem of a suite at once, in line order, and suggests the nearest key
/// or kind for a misspelling.
final class SuiteProblemsTests: XCTestCase {
    let schemas = [
        ScenarioSchema(kind: "ping", parameters: ["count": .positiveInteger, "interval": .duration, "targets": .stringList,
                                                  "timeout": .duration, "socket": .oneOf(["auto", "raw"])], required: ["targets"],
                       check: { s in s.int("count") == nil ? ("targets", "give `count` so the scenario ends by itself") : nil }),
        ScenarioSchema(kind: "tcping", parameters: ["count": .positiveInteger, "targets": .stringList], required: ["targets"]),
    ]

    func testEightMistakesAreReportedInOneRound() {
        let yaml = """
        name: many
        scenarioz: []
        scenarios:
          - name: a
            kind: ping
            targets: [127.0.0.1]
            count: ten
            intervall: 5ms
            socket: cooked
          - name: b
            kind: pign
            targets: [x]
          - name: c
            kind: tcping
            count: 0
          - name: a
            kind: tcping
            targets: [127.0.0.1:1]
            count: 1
            tiemout: 1s
        """
        XCTAssertThrowsError(try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: schemas)) { e in
            guard let all = e as? SuiteErrors else { return XCTFail("expected SuiteErrors, got \(e)") }
            XCTAssertEqual(all.problems.map(\.description), [
                "s.yaml:2: unknown key `scenarioz` at the top level (did you mean `scenarios`?); expected one of: name, description, topology, scenarios, compare",
                "s.yaml:7: scenario \"a\": `count` must be a positive integer, got \"ten\"",
                "s.yaml:8: scenario \"a\": unknown key `intervall` for kind ping (did you mean `interval`?); expected one of: capture, capture_filter, count, description, from, interval, socket, targets, timeout, topology",
                "s.yaml:9: scenario \"a\": `socket` must be one of auto, raw, got \"cooked\"",
                "s.yaml:11: scenario \"b\": unknown kind `pign` (did you mean `ping`?); expected one of: ping, tcping",
                "s.yaml:13: scenario \"c\": missing `targets` (a list of strings)",
                "s.yaml:15: scenario \"c\": `count` must be a positive integer, got \"0\"",
                "s.yaml:16: duplicate scenario name \"a\" (first used on line 4); names must be unique",
                "s.yaml:20: scenario \"a\": unknown key `tiemout` for kind tcping; expected one of: capture, capture_filter, count, description, from, targets, topology",
            ])
            XCTAssertEqual("\(e)".split(separator: "\n").count, all.problems.count, "one located line per problem")
        }
    }

    func testOneMistakeReadsAsBefore() {
        let yaml = "name: d\nscenarios:\n  - name: one\n    kind: tcping\n    targets: [x]\n    count: -1\n"
        XCTAssertThrowsError(try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: schemas)) { e in
            XCTAssertEqual("\(e)", "s.yaml:6: scenario \"one\": `count` must be a positive integer, got \"-1\"")
        }
    }

    func testNearestWord() {
        let keys = ["count", "interval", "timeout", "targets", "payload", "deadline"]
        XCTAssertEqual(nearestWord(to: "intervall", in: keys), "interval")
        XCTAssertEqual(nearestWord(to: "cont", in: keys), "count")
        XCTAssertEqual(nearestWord(to: "timout", in: keys), "timeout")
        XCTAssertEqual(nearestWord(to: "paylaod", in: keys), "payload")
        XCTAssertEqual(nearestWord(to: "dead", in: keys), "deadline")
        XCTAssertNil(nearestWord(to: "xyz", in: keys))
        XCTAssertNil(nearestWord(to: "listener", in: keys))
    }
}
