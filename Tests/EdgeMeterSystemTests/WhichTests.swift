@testable import EdgeMeterSystem
import Foundation
import XCTest

final class WhichTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "em-which-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        for sub in ["a", "b", "a/tool-dir"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        // a/tool is not executable, b/tool is; a/tool-dir is a directory (executable bit set).
        _ = FileManager.default.createFile(atPath: "\(dir)/a/tool", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644])
        _ = FileManager.default.createFile(atPath: "\(dir)/b/tool", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        _ = FileManager.default.createFile(atPath: "\(dir)/b/tool-dir", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testFirstExecutableFileOnThePathWins() {
        XCTAssertEqual(which("tool", path: "\(dir)/a:\(dir)/b"), "\(dir)/b/tool", "a non-executable file must be skipped")
        XCTAssertEqual(which("tool-dir", path: "\(dir)/a:\(dir)/b"), "\(dir)/b/tool-dir", "a directory must be skipped")
        XCTAssertNil(which("tool", path: "\(dir)/a"))
        XCTAssertNil(which("em-no-such-program", path: "\(dir)/a:\(dir)/b"))
        XCTAssertNil(which(""))
    }

    func testEnvironmentPathIsTheDefault() {
        let sh = which("sh")
        XCTAssertNotNil(sh)
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: sh ?? ""))
        XCTAssertEqual(which("sh"), which("sh", path: ProcessInfo.processInfo.environment["PATH"]))
    }

    func testSbinDirectoriesAreSearchedAfterThePath() throws {
        // iproute2's ip lives in /usr/sbin or /sbin, which a non-root PATH often lacks.
        let expected = ["/usr/sbin/ip", "/sbin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let expected else { throw XCTSkip("iproute2 is not installed in /usr/sbin or /sbin: apt-get install -y iproute2") }
        XCTAssertEqual(which("ip", path: "\(dir)/a"), expected)
    }

    func testPathsAreCheckedAsGiven() throws {
        XCTAssertEqual(which("\(dir)/b/tool"), "\(dir)/b/tool")
        XCTAssertNil(which("\(dir)/a/tool"))
        XCTAssertEqual(try resolveExecutable("\(dir)/b/tool"), "\(dir)/b/tool")
        XCTAssertThrowsError(try resolveExecutable("\(dir)/a/tool")) {
            XCTAssertEqual(($0 as? SystemError)?.message, "\(dir)/a/tool is not an executable file")
        }
        XCTAssertThrowsError(try resolveExecutable("em-no-such-program")) {
            XCTAssertEqual(($0 as? SystemError)?.message, "em-no-such-program not found on PATH: install it or give its absolute path")
        }
    }
}
