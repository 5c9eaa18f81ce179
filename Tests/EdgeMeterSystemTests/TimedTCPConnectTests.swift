import XCTest
import Foundation
@testable import EdgeMeterSystem

/// The timed connect shared by tcping, the HTTP client and the capture fixture, on loopback.
final class TimedTCPConnectTests: XCTestCase {
    /// A listening socket on `host` (ephemeral port), closed at the end of the test.
    func listener(_ host: String) throws -> (fd: Int32, port: Int) {
        let target = try XCTUnwrap(TimedTCPConnect.numericAddress(host: host, port: 0))
        let fd = socket(Int32(target.storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        var storage = target.storage
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, target.length) } }
        XCTAssertEqual(bound, 0, String(cString: strerror(errno)))
        XCTAssertEqual(listen(fd, 4), 0)
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let family = Int32(storage.ss_family)
        let port = withUnsafePointer(to: &storage) { p in
            family == AF_INET6
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        addTeardownBlock { close(fd) }
        return (fd, port)
    }

    func testConnectsOverIPv4AndIPv6AndTimesTheHandshake() throws {
        for host in ["127.0.0.1", "::1"] {
            let l = try listener(host)
            let target = try XCTUnwrap(TimedTCPConnect.numericAddress(host: host, port: l.port))
            switch TimedTCPConnect.open(storage: target.storage, length: target.length, timeoutNanoseconds: 1_000_000_000) {
            case .success(let c):
                XCTAssertGreaterThan(c.nanoseconds, 0)
                XCTAssertLessThan(c.nanoseconds, 1_000_000_000)
                XCTAssertNotNil(TimedTCPConnect.localPort(c.fd))
                XCTAssertNotEqual(TimedTCPConnect.localPort(c.fd), UInt16(l.port))
                close(c.fd)
            case .failure(let f):
                XCTFail("\(host): \(f)")
            }
        }
    }

    func testRefusedIsTheErrnoAndNamesAreNotNumeric() throws {
        let l = try listener("127.0.0.1")
        close(l.fd) // the port is free again: nothing listens
        let target = try XCTUnwrap(TimedTCPConnect.numericAddress(host: "127.0.0.1", port: l.port))
        guard case .failure(let f) = TimedTCPConnect.open(storage: target.storage, length: target.length, timeoutNanoseconds: 1_000_000_000) else {
            return XCTFail("a closed port must refuse")
        }
        XCTAssertEqual(f.errnoCode, ECONNREFUSED)
        XCTAssertFalse(f.timedOut)
        XCTAssertNil(TimedTCPConnect.numericAddress(host: "localhost", port: 80))
        XCTAssertNil(TimedTCPConnect.numericAddress(host: "container", port: 80))
        XCTAssertEqual(TimedTCPConnect.numericAddress(host: "10.1.2.3", port: 80).map { Int32($0.storage.ss_family) }, AF_INET)
        XCTAssertEqual(TimedTCPConnect.numericAddress(host: "fe80::1", port: 80).map { Int32($0.storage.ss_family) }, AF_INET6)
    }
}
