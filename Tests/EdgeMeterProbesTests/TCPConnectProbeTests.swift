import XCTest
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterTestSupport
@testable import EdgeMeterProbes

final class TCPConnectProbeTests: XCTestCase {
    func attempts(_ target: String, _ options: TCPConnectOptions) throws -> [TCPAttempt] {
        let (host, port) = try Resolver.splitHostPort(target)
        let t = try Resolver.resolve(host, port: port)
        var out: [TCPAttempt] = []
        TCPConnectProbe(targets: [t], options: options).attempts(schedule: options.schedule, clock: SystemClock(), stop: StopFlag()) { out.append($0) }
        return out
    }

    func testConnectsToListenerOnIPv4AndIPv6() throws {
        for host in ["127.0.0.1", "::1"] {
            let l = try LoopbackListener(host: host)
            defer { l.close() }
            let a = try attempts(l.address.hostPort, TCPConnectOptions(count: 5, interval: .milliseconds(5)))
            XCTAssertEqual(a.count, 5)
            for x in a {
                XCTAssertEqual(x.connectStatus, .ok, x.reason)
                XCTAssertNotNil(x.connectNanoseconds)
                XCTAssertLessThan(x.connectNanoseconds!, 100_000_000)
                XCTAssertNotNil(x.localPort)
                XCTAssertNil(x.firstByteStatus, "no payload, no first_byte phase")
            }
        }
    }

    func testClosedPortIsRefused() throws {
        // Bind a port and close it so nothing listens there.
        let l = try LoopbackListener(host: "127.0.0.1")
        let addr = l.address.hostPort
        l.close()
        let a = try attempts(addr, TCPConnectOptions(count: 2, interval: .milliseconds(5)))
        XCTAssertEqual(a.map(\.connectStatus), [.refused, .refused])
        XCTAssertTrue(a[0].reason.contains("connection refused"))
        XCTAssertNil(a[0].connectNanoseconds)
    }

    func testDroppedSYNTimesOut() throws {
        if let why = rootAndIPUnavailableReason() { throw XCTSkip(why) }
        let ns = try TestNetns()
        defer { ns.remove() }
        try ns.exec(["ip", "route", "add", "blackhole", "\(ns.hostAddress)/32"])
        let a = try attempts("\(ns.nsAddress):9", TCPConnectOptions(count: 1, timeout: .milliseconds(300)))
        XCTAssertEqual(a.map(\.connectStatus), [.timeout])
        XCTAssertEqual(a[0].reason, "no SYN-ACK within 300 ms")
    }

    func testFirstByteWithEchoListenerAndExpectMismatch() throws {
        let l = try LoopbackListener(host: "127.0.0.1", echo: true)
        defer { l.close() }
        let ok = try attempts(l.address.hostPort, TCPConnectOptions(count: 3, interval: .milliseconds(5), payload: Array("hello\n".utf8), expect: Array("hello".utf8)))
        for x in ok {
            XCTAssertEqual(x.firstByteStatus, .ok, x.firstByteReason)
            XCTAssertNotNil(x.firstByteNanoseconds)
        }
        let bad = try attempts(l.address.hostPort, TCPConnectOptions(count: 1, timeout: .milliseconds(300), payload: Array("hello\n".utf8), expect: Array("HTTP/1.1".utf8)))
        XCTAssertEqual(bad[0].connectStatus, .ok)
        XCTAssertEqual(bad[0].firstByteStatus, .error)
        XCTAssertTrue(bad[0].firstByteReason.contains("does not contain the expected bytes"), bad[0].firstByteReason)
    }

    func testHostPortParsing() throws {
        XCTAssertEqual(try Resolver.splitHostPort("127.0.0.1:80").port, 80)
        XCTAssertEqual(try Resolver.splitHostPort("[::1]:8080").host, "::1")
        XCTAssertThrowsError(try Resolver.splitHostPort("::1:80"))
        XCTAssertThrowsError(try Resolver.splitHostPort("host:0"))
        XCTAssertThrowsError(try Resolver.splitHostPort("host"))
    }

    func testUnresolvableNameSaysWhatToDo() {
        // A numeric IPv4 address asked for as IPv6 fails locally, with no DNS query.
        XCTAssertThrowsError(try Resolver.resolve("127.0.0.1", family: .ipv6)) { e in
            XCTAssertTrue("\(e)".hasPrefix("cannot resolve \"127.0.0.1\" as IPv6: "), "\(e)")
            XCTAssertTrue("\(e)".hasSuffix("check the name or give an IP address"), "\(e)")
        }
    }
}
