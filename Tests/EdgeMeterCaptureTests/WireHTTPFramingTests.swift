import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// The wire analyzer's HTTP following (HTTP1Parser per direction): pipelined requests, a protocol
/// switch, bytes that are not HTTP, responses split in odd places.
final class WireHTTPFramingTests: XCTestCase {
    let c = IPAddress("10.0.0.1")!
    let s = IPAddress("10.0.0.2")!
    let t0: Int64 = 1_764_000_000_000_000_000

    /// One connection: handshake, then each (fromClient, payload) as its own segment 1 µs apart.
    func connection(_ segments: [(Bool, String)], closeByServer: Bool = true) -> [(Int64, [UInt8])] {
        var frames: [(Int64, [UInt8])] = []
        var cs: UInt32 = 100, ss: UInt32 = 900
        var t = t0
        func cl(_ flags: UInt8, _ p: [UInt8] = []) {
            t += 1000
            frames.append((t, PacketBuilder.tcp(src: c, dst: s, srcPort: 40000, dstPort: 80, seq: cs, ack: ss, flags: flags, payload: p)))
            cs &+= UInt32(p.count) + (flags & (TCPFlag.syn | TCPFlag.fin) != 0 ? 1 : 0)
        }
        func sv(_ flags: UInt8, _ p: [UInt8] = []) {
            t += 1000
            frames.append((t, PacketBuilder.tcp(src: s, dst: c, srcPort: 80, dstPort: 40000, seq: ss, ack: cs, flags: flags, payload: p, fromClient: false)))
            ss &+= UInt32(p.count) + (flags & (TCPFlag.syn | TCPFlag.fin) != 0 ? 1 : 0)
        }
        let A = TCPFlag.ack, P = TCPFlag.psh | TCPFlag.ack
        cl(TCPFlag.syn)
        sv(TCPFlag.syn | A)
        cl(A)
        for (fromClient, text) in segments {
            if fromClient { cl(P, Array(text.utf8)) } else { sv(P, Array(text.utf8)) }
        }
        if closeByServer { sv(TCPFlag.fin | A) } else { cl(TCPFlag.fin | A) }
        return frames
    }

    /// Capture time of segment `k` (0-based) of `connection` (after the three handshake packets).
    func at(_ k: Int) -> Int64 { t0 + Int64(4 + k) * 1000 }

    func testPipelinedRequestsPairInOrderWithResponsesSplitAcrossSegments() throws {
        let a = try analyzeFrames(connection([
            (true, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
            (true, "c"),
            (false, "HTTP/1.1 200 OK\r\nContent-Le"),
            (false, "ngth: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n"),
            (false, "x\r\n0\r\n\r\n"),
        ]))
        XCTAssertEqual(a.http.map(\.method), ["GET", "HEAD", "POST"])
        XCTAssertEqual(a.http.map(\.target), ["/1", "/2", "/3"])
        XCTAssertEqual(a.http.map(\.status), [200, 200, 201])
        XCTAssertEqual(a.http.map(\.requestStartNs), [at(0), at(0), at(0)])
        XCTAssertEqual(a.http.map(\.requestEndNs), [at(0), at(0), at(1)])
        XCTAssertEqual(a.http.map(\.responseStartNs), [at(2), at(3), at(3)])
        XCTAssertEqual(a.http.map(\.responseEndNs), [at(3), at(3), at(4)], "HEAD ends with its head; chunked at its last chunk")
        XCTAssertEqual(a.httpUnfollowable, 0)
    }

    func testBytesThatAreNotHTTPMakeTheConnectionUnfollowable() throws {
        let a = try analyzeFrames(connection([
            (true, "GET /ok HTTP/1.1\r\n\r\n"),
            (false, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (true, "GET /bad HTTP/1.1\r\n\r\n"),
            (false, "HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n"),
        ]))
        XCTAssertEqual(a.httpUnfollowable, 1)
        XCTAssertEqual(a.http.count, 2)
        XCTAssertEqual(a.http.first?.responseEndNs, at(1))
        XCTAssertNil(a.http.last?.responseEndNs, "no end is made up for a response that cannot be framed")
    }

    func testResponseWithoutRequestMakesTheConnectionUnfollowable() throws {
        let a = try analyzeFrames(connection([
            (true, "GET / HTTP/1.1\r\n\r\n"),
            (false, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
        ]))
        XCTAssertEqual(a.http.count, 1)
        XCTAssertEqual(a.http.first?.responseEndNs, at(1))
        XCTAssertEqual(a.httpUnfollowable, 1)
    }

    func testSwitchingProtocolsEndsTheExchangeAndStopsFollowing() throws {
        let a = try analyzeFrames(connection([
            (true, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            (false, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            (true, "\u{1}\u{2}binary frames, not HTTP"),
            (false, "\u{3}more frames"),
        ]))
        XCTAssertEqual(a.http.count, 1)
        XCTAssertEqual(a.http.first?.status, 101)
        XCTAssertEqual(a.http.first?.responseEndNs, at(1))
        XCTAssertEqual(a.httpUnfollowable, 0, "the frames after the switch are not HTTP and not an error")
    }
}
