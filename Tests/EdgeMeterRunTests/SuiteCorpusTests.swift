import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

/// Every `testdata/invalid-*.yaml` starts with `# expect: <exact message>`; loading it must throw
/// exactly that message (blackbox_exporter's config/testdata style).
final class SuiteCorpusTests: XCTestCase {
    func testInvalidSuitesGiveTheExactMessage() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("invalid-") && $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            let first = text.split(separator: "\n", maxSplits: 1)[0]
            let expected = String(first.dropFirst("# expect: ".count))
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
