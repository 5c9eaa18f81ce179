import XCTest
@testable import EdgeMeterCore

final class SuiteLoaderTests: XCTestCase {
    let schemas = [ScenarioSchema(kind: "demo", parameters: ["count": .positiveInteger, "every": .duration, "targets": .stringList,
                                                             "mode": .oneOf(["a", "b"]), "flag": .bool], required: ["targets"])]

    func testValidSuiteGivesTypedParameters() throws {
        let yaml = """
        name: demo-suite
        description: a test
        scenarios:
          - name: one
            kind: demo
            targets: [x, y]
            count: 3
            every: 250ms
            mode: b
            flag: true
        """
        let suite = try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: schemas)
        XCTAssertEqual(suite.name, "demo-suite")
        let s = suite.scenarios[0]
        XCTAssertEqual(s.line, 4)
        XCTAssertEqual(s.int("count"), 3)
        XCTAssertEqual(s.duration("every"), .milliseconds(250))
        XCTAssertEqual(s.strings("targets"), ["x", "y"])
        XCTAssertEqual(s.string("mode"), "b")
        XCTAssertEqual(s.bool("flag"), true)
    }

    func testErrorsAreLocated() {
        let yaml = "name: d\nscenarios:\n  - name: one\n    kind: demo\n    targets: [x]\n    mode: c\n"
        XCTAssertThrowsError(try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: schemas)) { e in
            XCTAssertEqual("\(e)", "s.yaml:6: scenario \"one\": `mode` must be one of a, b, got \"c\"")
        }
    }

    func testMissingNameAndNotAMapping() {
        XCTAssertThrowsError(try SuiteLoader.load(yaml: "- a\n- b\n", file: "s.yaml", schemas: schemas)) { e in
            XCTAssertEqual("\(e)", "s.yaml:1: a suite must be a mapping with `name` and `scenarios`")
        }
        XCTAssertThrowsError(try SuiteLoader.load(yaml: "scenarios:\n  - name: a\n    kind: demo\n    targets: [x]\n", file: "s.yaml", schemas: schemas)) { e in
            XCTAssertEqual("\(e)", "s.yaml:1: missing `name`: give the suite a name (used in the report directory)")
        }
    }
}
