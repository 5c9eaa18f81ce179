import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

/// Every `testdata/invalid-*.yaml` starts with one `# expect: <exact message>` line per problem; loading
/// it must throw exactly those messages, in that order (blackbox_exporter's config/testdata style).
final class SuiteCorpusTests: XCTestCase {
    func testInvalidSuitesGiveTheExactMessage() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("invalid-") && $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            // One `# expect:` line per problem, in the order validation reports them.
            let expected = text.split(separator: "\n").prefix { $0.hasPrefix("# expect: ") }
                .map { String($0.dropFirst("# expect: ".count)) }.joined(separator: "\n")
            XCTAssertFalse(expected.isEmpty, "\(f) must start with `# expect: <message>`")
            XCTAssertThrowsError(try SuiteLoader.load(yaml: text, file: f, schemas: ScenarioKinds.schemas), f) { e in
                XCTAssertEqual("\(e)", expected, f)
            }
        }
    }

    func testShippedSuitesAreValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let suites = root.appendingPathComponent("benchmarks/suites")
        let files = try FileManager.default.contentsOfDirectory(atPath: suites.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertTrue(files.contains("lab.yaml"))
        for f in files {
            let text = try String(contentsOf: suites.appendingPathComponent(f), encoding: .utf8)
            XCTAssertNoThrow(try SuiteLoader.load(yaml: text, file: f, schemas: ScenarioKinds.schemas), f)
        }
    }
}
