import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
@testable import EdgeMeterController

/// The two commands as a user runs them (the built binary).
final class CommandLineTests: XCTestCase {
    func binary() throws -> String {
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        return bin
    }

    func testControllerRefusesToStartWithoutAToken() throws {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "EDGEMETER_CONTROLLER_TOKEN")
        let r = try runCommand(try binary(), ["controller", "--port", "0", "--state", "/tmp/never-created.sqlite"], timeout: 30, environment: env)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--token-file FILE or set EDGEMETER_CONTROLLER_TOKEN"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/never-created.sqlite"))
    }

    func testFeedWritesTheNetworkTopologyOfARunDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try DelayTable.csv(DelayTable.rows(from: DelayFeedTests.labRun)).write(to: dir.appendingPathComponent("delays.csv"), atomically: true, encoding: .utf8)
        let r = try runCommand(try binary(), ["feed", dir.path, "--format", "networktopology", "--name", "edge-cloud"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let golden = try String(contentsOf: try XCTUnwrap(Bundle.module.url(forResource: "networktopology", withExtension: "yaml",
                                                                            subdirectory: "testdata")), encoding: .utf8)
        XCTAssertEqual(r.stdout, golden)
        let missing = try runCommand(try binary(), ["feed", dir.appendingPathComponent("nope").path, "--format", "networktopology"], timeout: 30)
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("delays.csv not found"), missing.stderr)
        let noTarget = try runCommand(try binary(), ["feed", dir.path], timeout: 30)
        XCTAssertEqual(noTarget.status, 2)
        XCTAssertTrue(noTarget.stderr.contains("--controller URL, or --format networktopology"), noTarget.stderr)
    }
}
