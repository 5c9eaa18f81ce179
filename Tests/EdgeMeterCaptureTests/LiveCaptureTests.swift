import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// Skips (with how to enable it) only when this process may not capture at all.
func requireCaptureCapability() throws {
    do {
        let c = try LiveCapture(CaptureOptions(interface: "lo"))
        c.close()
    } catch let e as CaptureError {
        if case .permission = e {
            throw XCTSkip("packet capture needs CAP_NET_RAW and CAP_NET_ADMIN: run the tests as root or `setcap cap_net_raw,cap_net_admin+ep` the test binary (\(e))")
        }
        throw e
    }
}

/// A loopback address of 127/8 that no one else on this machine uses (the tests run beside other
/// people's loopback traffic): every 127.x.y.z answers on Linux's lo.
func uniqueLoopback() -> String {
    "127.\(Int.random(in: 100...250)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
}

/// A loopback HTTP/1.1 responder on a blocking thread: reads one request per connection, answers
/// `200 ok` with Content-Length, closes. Port 0, so tests never collide.
final class LoopbackTCPServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private var thread: Thread?

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        sin.sin_port = 0
        let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 64) == 0 else { throw CaptureError.capture("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: sin.sin_port)
        let lfd = fd
        thread = nil
        let t = Thread {
            while true {
                let c = accept(lfd, nil, nil)
                if c < 0 { return }
                var buf = [UInt8](repeating: 0, count: 4096)
                var got: [UInt8] = []
                while !(got.count >= 4 && Array(got.suffix(4)) == [13, 10, 13, 10]) {
                    let n = read(c, &buf, buf.count)
                    if n <= 0 { break }
                    got += buf[0..<n]
                }
                let resp = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
                _ = resp.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                Foundation.close(c)
            }
        }
        thread = t
        t.start()
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)); Foundation.close(fd) }

    /// Connects, sends `request`, reads the response to the end. Returns the local port.
    @discardableResult
    func connectAndExchange(request: String) throws -> UInt16 {
        let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Foundation.close(c) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        sin.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(c, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw CaptureError.capture("connect to 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))") }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(c, $0, &len) } }
        let req = Array(request.utf8)
        _ = req.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
        var buf = [UInt8](repeating: 0, count: 4096)
        while read(c, &buf, buf.count) > 0 {}
        return UInt16(bigEndian: local.sin_port)
    }
}

final class LiveCaptureTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func testCaptureOnLoopbackDuringPing() throws {
        try requireCaptureCapability()
        let path = dir.appendingPathComponent("ping.pcap").path
        let addr = uniqueLoopback()
        let session = try CaptureSession(options: CaptureOptions(interface: "lo", filter: "icmp and host \(addr)"), writePath: path)
        XCTAssertEqual(session.capture.precision, "nano")
        XCTAssertEqual(session.capture.linkType, LinkType.ethernet)
        session.start()
        let out = try runTool("/usr/bin/ping", ["-n", "-c", "5", "-i", "0.01", addr])
        XCTAssertTrue(out.contains("5 received"), out)
        Thread.sleep(forTimeInterval: 0.1)
        session.stop()
        let (result, a) = try session.wait()
        XCTAssertEqual(result.packets, 10)
        let stats = try XCTUnwrap(result.stats)
        XCTAssertEqual(stats.dropped, 0)
        XCTAssertGreaterThanOrEqual(stats.received, 10)
        XCTAssertEqual(a.echoes.count, 5)
        XCTAssertEqual(Set(a.echoes.map(\.seq)), [1, 2, 3, 4, 5])
        for e in a.echoes {
            let rtt = try XCTUnwrap(e.rttNs)
            XCTAssertGreaterThan(rtt, 0)
            XCTAssertLessThan(rtt, 50_000_000)
            XCTAssertEqual(e.destination.description, addr)
        }
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        var records = 0
        let info = try PcapReader.read(path: path) { _ in records += 1 }
        XCTAssertTrue(info.nanosecond)
        XCTAssertEqual(records, 10)
        let samples = WireSamples.captureSamples(result, interface: "lo", runID: "r", scenario: "s", target: "lo")
        XCTAssertEqual(samples.first { $0.phase == "capture_dropped" }?.value, 0)
        XCTAssertEqual(samples.first?.labels["tstamp_precision"], "nano")
    }

    func testCaptureOnLoopbackDuringTCPExchange() throws {
        try requireCaptureCapability()
        let server = try LoopbackTCPServer()
        defer { server.close() }
        let path = dir.appendingPathComponent("tcp.pcap").path
        let session = try CaptureSession(options: CaptureOptions(interface: "lo", filter: "tcp port \(server.port)"), writePath: path)
        session.start()
        var ports: [UInt16] = []
        for i in 0..<5 { ports.append(try server.connectAndExchange(request: "GET /sum?a=\(i)&b=2 HTTP/1.1\r\nHost: lo\r\n\r\n")) }
        Thread.sleep(forTimeInterval: 0.1)
        session.stop()
        let (_, a) = try session.wait()
        XCTAssertEqual(Set(a.handshakes.map(\.clientPort)), Set(ports))
        for h in a.handshakes {
            XCTAssertNotNil(h.synToSynAckNs)
            XCTAssertNotNil(h.handshakeNs)
            XCTAssertEqual(h.serverPort, server.port)
            XCTAssertEqual(h.client.description, "127.0.0.1")
        }
        XCTAssertEqual(a.http.count, 5)
        XCTAssertEqual(Set(a.http.map(\.target)), Set((0..<5).map { "/sum?a=\($0)&b=2" }))
        for x in a.http {
            XCTAssertEqual(x.status, 200)
            XCTAssertGreaterThan(x.firstByteNs ?? 0, 0)
            XCTAssertGreaterThanOrEqual(x.responseNs ?? 0, x.firstByteNs ?? 0)
        }
        XCTAssertEqual(a.flows.count, 5)
        XCTAssertTrue(a.flows.allSatisfy { $0.packets >= 7 && $0.retransmissions == 0 })
    }

    func testStopsOnTimeWithoutPackets() throws {
        try requireCaptureCapability()
        let c = try LiveCapture(CaptureOptions(interface: "lo", filter: "udp port 9 and host 127.0.0.254"))
        let clock = ContinuousClock()
        let t0 = clock.now
        let r = try c.run(stop: StopFlag(), until: t0 + .milliseconds(300)) { _ in }
        let elapsed = clock.now - t0
        XCTAssertEqual(r.stopReason, "duration")
        XCTAssertEqual(r.packets, 0)
        XCTAssertLessThan(elapsed, .milliseconds(600))
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300))
        // The run's StopFlag stops it too, within one poll slice.
        let stop = StopFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { stop.stop(reason: "SIGINT") }
        let t1 = clock.now
        let r2 = try c.run(stop: stop) { _ in }
        XCTAssertEqual(r2.stopReason, "SIGINT")
        XCTAssertLessThan(clock.now - t1, .milliseconds(500))
    }

    func testErrorsSayWhatToDo() throws {
        try requireCaptureCapability()
        XCTAssertThrowsError(try LiveCapture(CaptureOptions(interface: "nosuchif0"))) { e in
            XCTAssertTrue("\(e)".contains("edgemeter capture --list"), "\(e)")
        }
        XCTAssertThrowsError(try LiveCapture(CaptureOptions(interface: "lo", filter: "icmp and and"))) { e in
            XCTAssertTrue("\(e)".contains("does not compile"), "\(e)")
        }
        let ifs = try LiveCapture.interfaces()
        XCTAssertTrue(ifs.contains { $0.name == "lo" && $0.isLoopback })
        XCTAssertTrue(ifs.contains { $0.name == "any" })
    }

    /// `any` gives Linux cooked frames (SLL2 on libpcap 1.10); the analysis is the same.
    func testCaptureOnAnyDuringPing() throws {
        try requireCaptureCapability()
        let addr = uniqueLoopback()
        let session = try CaptureSession(options: CaptureOptions(interface: "any", filter: "icmp and host \(addr)"), writePath: nil)
        XCTAssertEqual(session.capture.linkType, LinkType.linuxSLL2, "SLL2 carries the interface index")
        session.start()
        _ = try runTool("/usr/bin/ping", ["-n", "-c", "3", "-i", "0.01", addr])
        Thread.sleep(forTimeInterval: 0.1)
        session.stop()
        let (_, a) = try session.wait()
        XCTAssertEqual(a.echoes.count, 3)
        XCTAssertTrue(a.echoes.allSatisfy { $0.rttNs != nil })
        XCTAssertEqual(a.counters.truncated + a.counters.malformed, 0)
    }
}
