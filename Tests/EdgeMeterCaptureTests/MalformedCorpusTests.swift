import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// The committed corpus in testdata/ (written by testdata/make-corpus.py): every damaged input is
/// counted and skipped, never a crash, and what could be measured still is.
final class MalformedCorpusTests: XCTestCase {
    static let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata")

    func corpus(_ name: String) -> String { Self.testdata.appendingPathComponent(name).path }

    func testTruncatedLastRecord() throws {
        let a = try WireAnalyzer.analyze(path: corpus("truncated-record.pcap"))
        XCTAssertEqual(a.counters.frames, 1)
        XCTAssertEqual(a.counters.truncatedRecords, 1)
        XCTAssertEqual(a.handshakes.count, 1)
        XCTAssertTrue(WireSamples.markdown(a, source: "x").contains("1 record(s) cut short"))
    }

    func testTruncatedFileHeaderIsAClearError() throws {
        XCTAssertThrowsError(try WireAnalyzer.analyze(path: corpus("truncated-file-header.pcap"))) { e in
            XCTAssertEqual("\(e)", "\(corpus("truncated-file-header.pcap")) is 10 bytes long, shorter than a pcap file header (24 bytes): it was cut off; capture again")
        }
    }

    func testCorruptRecordLengthStopsReading() throws {
        let a = try WireAnalyzer.analyze(path: corpus("corrupt-record-length.pcap"))
        XCTAssertEqual(a.counters.frames, 1)
        XCTAssertEqual(a.counters.corruptRecordAt, 24 + 16 + 54)
    }

    func testFramesCutInsideTheirHeaders() throws {
        let a = try WireAnalyzer.analyze(path: corpus("truncated-frames.pcap"))
        XCTAssertEqual(a.counters.frames, 7)
        XCTAssertEqual(a.counters.truncated, 7)
        XCTAssertEqual(a.counters.ip, 0)
        XCTAssertTrue(a.flows.isEmpty)
        let s = WireSamples.samples(a, runID: "r", scenario: "s", target: "t")
        XCTAssertEqual(s.first { $0.phase == "decode_truncated" }?.value, 7)
    }

    func testImpossibleHeadersAreMalformed() throws {
        let a = try WireAnalyzer.analyze(path: corpus("malformed-headers.pcap"))
        XCTAssertEqual(a.counters.frames, 7)
        XCTAssertEqual(a.counters.malformed, 7, "\(a.counters)")
        XCTAssertTrue(a.flows.isEmpty)
    }

    func testMixedKinds() throws {
        let a = try WireAnalyzer.analyze(path: corpus("mixed-kinds.pcap"))
        XCTAssertEqual(a.counters.notIP, 1)
        XCTAssertEqual(a.counters.fragments, 1)
        XCTAssertEqual(a.counters.ip, 1)
        XCTAssertEqual(a.flows.count, 1)
    }

    func testUnknownLinkType() throws {
        let a = try WireAnalyzer.analyze(path: corpus("unknown-linktype.pcap"))
        XCTAssertEqual(a.counters.unsupportedLink, 1)
        XCTAssertTrue(WireSamples.markdown(a, source: "x").contains("linktype 147"))
    }

    func testBadFractionBigEndian() throws {
        let a = try WireAnalyzer.analyze(path: corpus("bad-fraction-bigendian.pcap"))
        XCTAssertEqual(a.counters.frames, 1)
        XCTAssertNotNil(a.counters.corruptRecordAt)
    }

    func testSnapLengthCutHTTP() throws {
        let a = try WireAnalyzer.analyze(path: corpus("snaplen-cut-http.pcap"))
        XCTAssertEqual(a.handshakes.first?.synToSynAckNs, 30_000)
        XCTAssertEqual(a.handshakes.first?.handshakeNs, 45_000)
        XCTAssertEqual(a.http.count, 0)
        XCTAssertEqual(a.httpUnfollowable, 1)
    }

    /// Every prefix of every frame kind, and random bytes, through every link type: no trap, and
    /// the counters add up.
    func testFuzzTruncationsAndRandomBytes() throws {
        let c = IPAddress("10.1.1.1")!, s = IPAddress("10.1.1.2")!
        let c6 = IPAddress("fd00::a")!, s6 = IPAddress("fd00::b")!
        var frames: [[UInt8]] = []
        for link in [LinkType.ethernet, LinkType.linuxSLL2, LinkType.raw] {
            frames.append(PacketBuilder.tcp(src: c, dst: s, srcPort: 1, dstPort: 80, seq: 1, ack: 1, flags: TCPFlag.psh | TCPFlag.ack,
                                            payload: Array("GET / HTTP/1.1\r\n\r\n".utf8), link: link))
            frames.append(PacketBuilder.tcp(src: c6, dst: s6, srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TCPFlag.syn, link: link))
            frames.append(PacketBuilder.icmpEcho(src: c, dst: s, id: 1, seq: 1, reply: false, link: link))
            frames.append(PacketBuilder.icmpEcho(src: c6, dst: s6, id: 1, seq: 1, reply: true, link: link))
            frames.append(PacketBuilder.udp(src: c6, dst: s6, srcPort: 9, dstPort: 9, payload: [1, 2, 3], link: link))
        }
        var rng = SystemRandomNumberGenerator()
        for link in [LinkType.ethernet, LinkType.linuxSLL, LinkType.linuxSLL2, LinkType.raw, LinkType.null, LinkType.ipv6, 999] {
            let a = WireAnalyzer(linkType: link)
            var fed = 0
            for f in frames {
                for n in 0...f.count {
                    f.withUnsafeBytes { a.add(PcapRecord(timestampNs: Int64(fed), originalLength: f.count, data: UnsafeRawBufferPointer(rebasing: $0[0..<n]))) }
                    fed += 1
                    // The same prefix with random bytes flipped.
                    var g = Array(f[0..<n])
                    if !g.isEmpty { for _ in 0..<3 { g[Int.random(in: 0..<g.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) } }
                    g.withUnsafeBytes { a.add(PcapRecord(timestampNs: Int64(fed), originalLength: n, data: $0)) }
                    fed += 1
                }
            }
            for _ in 0..<2000 {
                let g = (0..<Int.random(in: 0..<120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                g.withUnsafeBytes { a.add(PcapRecord(timestampNs: Int64(fed), originalLength: g.count, data: $0)) }
                fed += 1
            }
            let r = a.finish()
            let c = r.counters
            XCTAssertEqual(c.frames, fed)
            XCTAssertEqual(c.ip + c.notIP + c.fragments + c.truncated + c.malformed + c.unsupportedLink, fed, "link \(link): \(c)")
            _ = WireSamples.samples(r, runID: "r", scenario: "s", target: nil)
            _ = WireSamples.markdown(r, source: "fuzz")
        }
    }

    /// Random damage to whole files: the reader never traps.
    func testFuzzFileBytes() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-fz-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SyntheticHTTPTraffic(connections: 4, requestsPerConnection: 2).write(to: path)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var rng = SystemRandomNumberGenerator()
        var framesSeen = 0
        for _ in 0..<300 {
            var b = original
            for _ in 0..<Int.random(in: 1...20, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            framesSeen += (try? b.withUnsafeBytes { raw -> Int in
                var a: WireAnalyzer?
                _ = try PcapReader.read(bytes: raw, onHeader: { a = WireAnalyzer(linkType: $0.linkType) }) { a?.add($0) }
                return a?.finish().counters.frames ?? 0
            }) ?? 0
        }
        XCTAssertGreaterThan(framesSeen, 0, "damaged files still yield their readable frames")
    }
}
