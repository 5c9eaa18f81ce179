import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import EdgeMeterSystem

/// A real listener and client on a unix socket in a temporary directory.
final class UnixSocketAddressTests: XCTestCase {
    func streamSocket() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("socket(AF_UNIX) failed: \(String(cString: strerror(errno)))") }
        return fd
    }

    func testBindListenConnectAndOneByteAcross() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dC-unix-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.sock").path
        let server = try streamSocket()
        defer { close(server) }
        XCTAssertEqual(UnixSocketAddress.bind(server, path: path), 0, String(cString: strerror(errno)))
        XCTAssertEqual(listen(server, 1), 0)
        let client = try streamSocket()
        defer { close(client) }
        XCTAssertEqual(UnixSocketAddress.connect(client, path: path), 0, String(cString: strerror(errno)))
        let accepted = accept(server, nil, nil)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        defer { close(accepted) }
        var out: UInt8 = 42, got: UInt8 = 0
        XCTAssertEqual(write(client, &out, 1), 1)
        XCTAssertEqual(read(accepted, &got, 1), 1)
        XCTAssertEqual(got, 42)

        // Nothing listens on a path that does not exist: connect() fails with ENOENT.
        let other = try streamSocket()
        defer { close(other) }
        XCTAssertEqual(UnixSocketAddress.connect(other, path: dir.appendingPathComponent("none.sock").path), -1)
        XCTAssertEqual(errno, ENOENT)
    }

    func testAPathLongerThanSunPathIsRefusedWithoutACall() throws {
        XCTAssertEqual(UnixSocketAddress.maxPathBytes, 107)
        let fd = try streamSocket()
        defer { close(fd) }
        XCTAssertNil(UnixSocketAddress.bind(fd, path: "/tmp/" + String(repeating: "x", count: 103)), "108 bytes")
        XCTAssertNil(UnixSocketAddress.connect(fd, path: "/tmp/" + String(repeating: "x", count: 103)))
        // Exactly 107 bytes fit: bind() makes the socket file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dC-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let exact = dir.path + "/" + String(repeating: "y", count: 107 - dir.path.utf8.count - 1)
        XCTAssertEqual(exact.utf8.count, 107)
        XCTAssertEqual(UnixSocketAddress.bind(fd, path: exact), 0, String(cString: strerror(errno)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: exact))
    }
}
