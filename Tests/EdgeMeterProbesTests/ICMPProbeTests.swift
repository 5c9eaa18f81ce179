import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
@testable import EdgeMeterProbes

final class ICMPProbeTests: XCTestCase {
    func testChecksumMatchesRFC1071Example() {
        // RFC 1071 section 3 example bytes: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2, checksum 220d
        XCTAssertEqual(ICMPProbe.internetChecksum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d)
        let req = ICMPProbe.echoRequest(family: AF_INET, identifier: 0x1234, sequence: 7, payloadBytes: 56)
        XCTAssertEqual(req.count, 64)
        XCTAssertEqual(ICMPProbe.internetChecksum(req), 0, "a packet with its checksum filled in sums to zero")
        XCTAssertEqual(req[6], 0); XCTAssertEqual(req[7], 7)
    }

    func rawAvailable() -> String? {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        if fd < 0 { return "raw ICMP sockets need CAP_NET_RAW: run the tests as root" }
        close(fd)
        return nil
    }

    func ping(_ host: String, mode: ICMPSocketMode, count: Int = 5) throws -> ([ICMPEchoResult], ICMPProbe) {
        let target = try Resolver.resolve(host, socketType: Int32(SOCK_DGRAM.rawValue))
        let probe = try ICMPProbe(targets: [target], options: ICMPOptions(count: count, interval: .milliseconds(10), timeout: .seconds(1), socketMode: mode), stop: StopFlag())
        var results: [ICMPEchoResult] = []
        probe.run { results.append($0) }
        return (results, probe)
    }

    func testRawIPv4LoopbackEchoes() throws {
        if let why = rawAvailable() { throw XCTSkip(why) }
        let (results, probe) = try ping("127.0.0.1", mode: .raw)
        XCTAssertEqual(probe.sockets[0].mode, .raw)
        XCTAssertEqual(results.count, 5)
        XCTAssertEqual(results.map(\.sequence).sorted(), [1, 2, 3, 4, 5])
        for r in results {
            guard case .reply(let rtt, let bytes, let ttl, let kernel, let from) = r.outcome else { return XCTFail("no reply: \(r.outcome)") }
            XCTAssertGreaterThan(rtt, 0)
            XCTAssertLessThan(rtt, 50_000_000, "loopback echo should take well under 50 ms")
            XCTAssertEqual(bytes, 64)
            XCTAssertEqual(ttl, 64)
            XCTAssertEqual(from, "127.0.0.1")
            XCTAssertTrue(kernel, "SO_TIMESTAMPNS works on this kernel; the kernel stamp should be used")
        }
    }

    func testRawIPv6LoopbackEchoes() throws {
        if let why = rawAvailable() { throw XCTSkip(why) }
        if !FileManager.default.fileExists(atPath: "/proc/net/if_inet6") { throw XCTSkip("IPv6 is disabled in this kernel: enable it to test ::1") }
        let (results, probe) = try ping("::1", mode: .raw)
        XCTAssertEqual(probe.sockets[0].target.address.family, AF_INET6)
        XCTAssertEqual(results.count, 5)
        for r in results {
            guard case .reply(_, let bytes, let hops, _, let from) = r.outcome else { return XCTFail("no reply: \(r.outcome)") }
            XCTAssertEqual(bytes, 64)
            XCTAssertEqual(from, "::1")
            XCTAssertNotNil(hops, "IPV6_RECVHOPLIMIT should deliver the hop limit")
        }
    }

    func testDatagramSocketRefusedGivesActionableError() throws {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ping_group_range", encoding: .utf8)) ?? ""
        let parts = range.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count == 2, parts[0] > parts[1] else {
            throw XCTSkip("ping_group_range here allows datagram ICMP (\(range.trimmingCharacters(in: .whitespacesAndNewlines))); the refusal path cannot be shown")
        }
        let target = try Resolver.resolve("127.0.0.1")
        XCTAssertThrowsError(try ICMPProbe(targets: [target], options: ICMPOptions(count: 1, socketMode: .datagram), stop: StopFlag())) { e in
            XCTAssertTrue("\(e)".contains("ping_group_range"), "\(e)")
            XCTAssertTrue("\(e)".contains("setcap cap_net_raw+ep"), "\(e)")
        }
    }

    func testUnansweredEchoTimesOutInNamespaceWithoutRoute() throws {
        if let why = rootAndIPUnavailableReason() ?? rawAvailable() { throw XCTSkip(why) }
        let ns = try TestNetns()
        defer { ns.remove() }
        // The namespace cannot route replies back: echo requests arrive and are silently dropped.
        try ns.exec(["ip", "route", "add", "blackhole", "\(ns.hostAddress)/32"])
        let target = try Resolver.resolve(ns.nsAddress)
        let probe = try ICMPProbe(targets: [target], options: ICMPOptions(count: 2, interval: .milliseconds(50), timeout: .milliseconds(300), socketMode: .raw), stop: StopFlag())
        var results: [ICMPEchoResult] = []
        let t0 = Date()
        probe.run { results.append($0) }
        XCTAssertEqual(results.count, 2)
        for r in results {
            guard case .timeout(let reason) = r.outcome else { return XCTFail("expected timeout, got \(r.outcome)") }
            XCTAssertEqual(reason, "no reply within 300 ms")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2)
    }

    func testStopFlagEndsAnEndlessRunPromptly() throws {
        if let why = rawAvailable() { throw XCTSkip(why) }
        let stop = StopFlag()
        let probe = try ICMPProbe(targets: [try Resolver.resolve("127.0.0.1")], options: ICMPOptions(count: nil, interval: .milliseconds(20), socketMode: .raw), stop: stop)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { stop.stop(reason: "test") }
        var n = 0
        let t0 = Date()
        probe.run { _ in n += 1 }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0)
        XCTAssertGreaterThan(n, 5)
    }
}
