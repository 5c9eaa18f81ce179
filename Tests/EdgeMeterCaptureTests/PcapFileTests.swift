import XCTest
import Foundation
@testable import EdgeMeterCapture

final class PcapFileTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-pcap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func testRoundTripNanosecondAndMode0600() throws {
        let path = dir.appendingPathComponent("a.pcap").path
        let w = try PcapWriter(path: path, linkType: LinkType.ethernet, snapLength: 65_535, nanosecond: true)
        try w.write(timestampNs: 1_700_000_000_123_456_789, bytes: [1, 2, 3, 4], originalLength: 60)
        try w.write(timestampNs: 1_700_000_001_000_000_001, bytes: Array(repeating: 9, count: 100))
        try w.close()
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        var got: [(Int64, Int, [UInt8])] = []
        let info = try PcapReader.read(path: path) { got.append(($0.timestampNs, $0.originalLength, Array($0.data))) }
        XCTAssertTrue(info.nanosecond)
        XCTAssertEqual(info.linkType, LinkType.ethernet)
        XCTAssertEqual(info.snapLength, 65_535)
        XCTAssertEqual(info.records, 2)
        XCTAssertEqual(got.count, 2)
        XCTAssertEqual(got[0].0, 1_700_000_000_123_456_789)
        XCTAssertEqual(got[0].1, 60)
        XCTAssertEqual(got[0].2, [1, 2, 3, 4])
        XCTAssertEqual(got[1].0, 1_700_000_001_000_000_001)
        XCTAssertEqual(got[1].2.count, 100)
    }

    func testMicrosecondFileDropsNanoseconds() throws {
        let path = dir.appendingPathComponent("u.pcap").path
        let w = try PcapWriter(path: path, linkType: LinkType.raw, nanosecond: false)
        try w.write(timestampNs: 1_700_000_000_123_456_789, bytes: [0x45])
        try w.close()
        var ts: Int64 = 0
        let info = try PcapReader.read(path: path) { ts = $0.timestampNs }
        XCTAssertFalse(info.nanosecond)
        XCTAssertEqual(ts, 1_700_000_000_123_456_000)
    }

    func testExistingFileIsForcedTo0600() throws {
        let path = dir.appendingPathComponent("e.pcap").path
        FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3]), attributes: [.posixPermissions: 0o644])
        let w = try PcapWriter(path: path, linkType: LinkType.ethernet)
        try w.close()
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual((attrs[.size] as? NSNumber)?.intValue, 24)
    }

    func testBigEndianFileIsRead() throws {
        // A big-endian microsecond file with one 4-byte record, as a SPARC tcpdump writes it.
        var b: [UInt8] = [0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1]
        b += [0x65, 0x53, 0xf1, 0x00, 0x00, 0x01, 0xe2, 0x40, 0, 0, 0, 4, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]
        var ts: Int64 = 0
        var data: [UInt8] = []
        let info = try b.withUnsafeBytes { raw in
            try PcapReader.read(bytes: raw) { ts = $0.timestampNs; data = Array($0.data) }
        }
        XCTAssertTrue(info.bigEndian)
        XCTAssertEqual(info.snapLength, 65_535)
        XCTAssertEqual(ts, 0x6553_f100 * 1_000_000_000 + 123_456_000)
        XCTAssertEqual(data, [0xde, 0xad, 0xbe, 0xef])
    }

    func testErrorsNameTheNextStep() throws {
        XCTAssertThrowsError(try PcapReader.read(path: dir.appendingPathComponent("missing.pcap").path) { _ in }) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
        let ng = dir.appendingPathComponent("x.pcapng").path
        FileManager.default.createFile(atPath: ng, contents: Data([0x0a, 0x0d, 0x0d, 0x0a] + Array(repeating: 0, count: 40)))
        XCTAssertThrowsError(try PcapReader.read(path: ng) { _ in }) { e in
            XCTAssertTrue("\(e)".contains("editcap -F pcap"), "\(e)")
        }
        let junk = dir.appendingPathComponent("junk.pcap").path
        FileManager.default.createFile(atPath: junk, contents: Data("hello world, not a capture file".utf8))
        XCTAssertThrowsError(try PcapReader.read(path: junk) { _ in }) { e in
            XCTAssertTrue("\(e)".contains("not a pcap file"), "\(e)")
        }
        let empty = dir.appendingPathComponent("empty.pcap").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertThrowsError(try PcapReader.read(path: empty) { _ in }) { e in
            XCTAssertTrue("\(e)".contains("shorter than a pcap file header"), "\(e)")
        }
        XCTAssertThrowsError(try PcapWriter(path: "/nonexistent-dir/x.pcap", linkType: 1)) { e in
            XCTAssertTrue("\(e)".contains("choose a writable path"), "\(e)")
        }
    }
}
