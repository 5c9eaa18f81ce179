import Foundation
import XCTest

/// Compares `text` with `testdata/golden-markdown/<name>`, byte for byte. With
/// `EDGEMETER_UPDATE_GOLDEN=1` it writes the file in the source tree instead (only when a change of
/// the text is intended; the diff then shows it).
func checkGolden(_ text: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
    if ProcessInfo.processInfo.environment["EDGEMETER_UPDATE_GOLDEN"] == "1" {
        let src = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata/golden-markdown/\(name)")
        try FileManager.default.createDirectory(at: src.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: src, atomically: true, encoding: .utf8)
        return
    }
    let url = try XCTUnwrap(Bundle.module.url(forResource: "testdata/golden-markdown/\(name)", withExtension: nil),
                            "testdata/golden-markdown/\(name) missing from the test bundle", file: file, line: line)
    XCTAssertEqual(text, try String(contentsOf: url, encoding: .utf8),
                   "\(name) differs from the golden file; run with EDGEMETER_UPDATE_GOLDEN=1 only if the change is intended", file: file, line: line)
}
