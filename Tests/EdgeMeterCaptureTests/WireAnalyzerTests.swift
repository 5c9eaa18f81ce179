import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// Writes frames with known times to a pcap with PcapWriter and analyses the file.
func analyzeFrames(_ frames: [(Int64, [UInt8])], link: UInt32 = LinkType.ethernet, nanosecond: Bool = true) throws -> WireAnalysis {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-wa-\(UUID().uuidString).pcap").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let w = try PcapWriter(path: path, linkType: link, nanosecond: nanosecond)
    for (t, f) in frames { try w.write(timestampNs: t, bytes: f) }
    try w.close()
    return try WireAnalyzer.analyze(path: path)
}

final class WireAnalyzerTests: XCTestCase {
    let c = IPAddress("10.0.0.1")!
    let s = IPAddress("10.0.0.2")!
    let t0: Int64 = 1_764_000_000_000_000_000

    func testSyntheticHTTPKnownTimings() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-syn-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = SyntheticHTTPTraffic(connections: 20, requestsPerConnection: 3)
        let n = try g.write(to: path)
        XCTAssertEqual(n, 20 * g.packetsPerConnection)
        let a = try WireAnalyzer.analyze(path: path)
        XCTAssertEqual(a.counters.frames, n)
        XCTAssertEqual(a.counters.ip, n)
        XCTAssertEqual(a.flows.count, 20)
        XCTAssertEqual(a.handshakes.count, 20)
        for h in a.handshakes {
            let i = Int(h.clientPort) - 20_000
            XCTAssertEqual(h.client, g.client)
            XCTAssertEqual(h.serverPort, 8080)
            XCTAssertEqual(h.synToSynAckNs, g.synAckDelay(i), "connection \(i)")
            XCTAssertEqual(h.synAckToAckNs, g.ackBaseNs)
            XCTAssertEqual(h.handshakeNs, g.synAckDelay(i) + g.ackBaseNs)
        }
        XCTAssertEqual(a.http.count, 60)
        for x in a.http {
            XCTAssertEqual(x.method, "GET")
            XCTAssertEqual(x.target, "/sum?a=1&b=2")
            XCTAssertEqual(x.status, 200)
            XCTAssertEqual(x.firstByteNs, g.firstByteNs)
            XCTAssertEqual(x.responseNs, g.firstByteNs)
        }
        XCTAssertEqual(Set(a.http.map(\.index)), [0, 1, 2])
        for f in a.flows {
            XCTAssertEqual(f.packets, g.packetsPerConnection)
            XCTAssertEqual(f.retransmissions, 0)
        }
        XCTAssertEqual(a.httpUnfollowable, 0)
    }

    /// A keep-alive connection: a Content-Length response split over two segments, a chunked
    /// response over three, a HEAD, a POST with a body and 100-continue, a retransmitted segment.
    func testHTTPKeepAliveFramingAndRetransmission() throws {
        var frames: [(Int64, [UInt8])] = []
        var cs: UInt32 = 100, ss: UInt32 = 900
        var t = t0
        func cl(_ flags: UInt8, _ p: String = "", dt: Int64 = 1000, resend: UInt32? = nil) {
            t += dt
            let bytes = Array(p.utf8)
            frames.append((t, PacketBuilder.tcp(src: c, dst: s, srcPort: 40000, dstPort: 80, seq: resend ?? cs, ack: ss, flags: flags, payload: bytes)))
            if resend == nil { cs &+= UInt32(bytes.count) + (flags & (TCPFlag.syn | TCPFlag.fin) != 0 ? 1 : 0) }
        }
        func sv(_ flags: UInt8, _ p: String = "", dt: Int64 = 1000) {
            t += dt
            let bytes = Array(p.utf8)
            frames.append((t, PacketBuilder.tcp(src: s, dst: c, srcPort: 80, dstPort: 40000, seq: ss, ack: cs, flags: flags, payload: bytes, fromClient: false)))
            ss &+= UInt32(bytes.count) + (flags & (TCPFlag.syn | TCPFlag.fin) != 0 ? 1 : 0)
        }
        let A = TCPFlag.ack, P = TCPFlag.psh | TCPFlag.ack
        cl(TCPFlag.syn, dt: 0)
        sv(TCPFlag.syn | A, dt: 50_000)
        cl(A, dt: 10_000)
        let r1Start = t + 1000
        cl(P, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        let r1First = t + 200_000
        sv(P, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", dt: 200_000)
        let resendSeq = ss
        _ = resendSeq
        sv(P, "56789", dt: 3000)
        let r1End = t
        cl(A)
        // Request 2: chunked response.
        let r2Start = t + 5000
        cl(P, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", dt: 5000)
        let r2First = t + 70_000
        sv(P, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab", dt: 70_000)
        sv(P, "cd\r\n3;ext=1\r\nxyz\r\n", dt: 1000)
        sv(P, "0\r\n\r\n", dt: 1000)
        let r2End = t
        // Request 3: HEAD with a Content-Length that must not be waited for.
        let r3Start = t + 1000
        cl(P, "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n")
        sv(P, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", dt: 40_000)
        let r3End = t
        // Request 4: POST with a body in two segments, the second retransmitted; 100-continue.
        let r4Start = t + 1000
        cl(P, "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n")
        let r4First = t + 20_000
        sv(P, "HTTP/1.1 100 Continue\r\n\r\n", dt: 20_000)
        let bodySeq = cs
        cl(P, "abc")
        cl(P, "abc", dt: 300_000, resend: bodySeq) // retransmission of the same bytes
        cl(P, "def")
        sv(P, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", dt: 30_000)
        let r4End = t
        cl(TCPFlag.fin | A)
        sv(TCPFlag.fin | A)
        cl(A)

        let a = try analyzeFrames(frames)
        XCTAssertEqual(a.flows.count, 1)
        XCTAssertEqual(a.flows[0].retransmissions, 1)
        XCTAssertEqual(a.flows[0].client, c)
        XCTAssertEqual(a.handshakes.first?.synToSynAckNs, 50_000)
        XCTAssertEqual(a.handshakes.first?.synAckToAckNs, 10_000)
        XCTAssertEqual(a.http.count, 4, "\(a.http)")
        guard a.http.count == 4 else { return }
        let x = a.http
        XCTAssertEqual(x.map(\.method), ["GET", "GET", "HEAD", "POST"])
        XCTAssertEqual(x.map(\.status), [200, 200, 200, 201])
        XCTAssertEqual(x.map(\.index), [0, 1, 2, 3])
        XCTAssertEqual(x[0].requestStartNs, r1Start)
        XCTAssertEqual(x[0].responseStartNs, r1First)
        XCTAssertEqual(x[0].responseEndNs, r1End)
        XCTAssertEqual(x[1].requestStartNs, r2Start)
        XCTAssertEqual(x[1].responseStartNs, r2First)
        XCTAssertEqual(x[1].responseEndNs, r2End)
        XCTAssertEqual(x[2].requestStartNs, r3Start)
        XCTAssertEqual(x[2].responseEndNs, r3End)
        XCTAssertEqual(x[3].requestStartNs, r4Start)
        XCTAssertEqual(x[3].responseStartNs, r4First, "the interim 100 Continue starts the response")
        XCTAssertEqual(x[3].responseEndNs, r4End)
        XCTAssertEqual(a.httpUnfollowable, 0)
    }

    func testResponseDelimitedByClose() throws {
        var frames: [(Int64, [UInt8])] = []
        let A = TCPFlag.ack, P = TCPFlag.psh | TCPFlag.ack
        let req = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        let resp = Array("HTTP/1.0 200 OK\r\n\r\nhello".utf8)
        frames.append((t0, PacketBuilder.tcp(src: c, dst: s, srcPort: 1234, dstPort: 8000, seq: 1, ack: 0, flags: TCPFlag.syn)))
        frames.append((t0 + 10, PacketBuilder.tcp(src: s, dst: c, srcPort: 8000, dstPort: 1234, seq: 50, ack: 2, flags: TCPFlag.syn | A, fromClient: false)))
        frames.append((t0 + 20, PacketBuilder.tcp(src: c, dst: s, srcPort: 1234, dstPort: 8000, seq: 2, ack: 51, flags: A)))
        frames.append((t0 + 30, PacketBuilder.tcp(src: c, dst: s, srcPort: 1234, dstPort: 8000, seq: 2, ack: 51, flags: P, payload: req)))
        frames.append((t0 + 90, PacketBuilder.tcp(src: s, dst: c, srcPort: 8000, dstPort: 1234, seq: 51, ack: 2 + UInt32(req.count), flags: P, payload: resp, fromClient: false)))
        frames.append((t0 + 130, PacketBuilder.tcp(src: s, dst: c, srcPort: 8000, dstPort: 1234, seq: 51 + UInt32(resp.count), ack: 2 + UInt32(req.count), flags: TCPFlag.fin | A, fromClient: false)))
        let a = try analyzeFrames(frames)
        XCTAssertEqual(a.http.count, 1)
        XCTAssertEqual(a.http.first?.firstByteNs, 60)
        XCTAssertEqual(a.http.first?.responseNs, 100)
    }

    func testICMPEchoIPv4AndIPv6WithLossAndDuplicates() throws {
        let c6 = IPAddress("fd00::1")!, s6 = IPAddress("fd00::2")!
        var frames: [(Int64, [UInt8])] = []
        for seq in 1...5 as ClosedRange<UInt16> {
            let t = t0 + Int64(seq) * 1_000_000
            frames.append((t, PacketBuilder.icmpEcho(src: c, dst: s, id: 77, seq: seq, reply: false)))
            if seq != 3 { frames.append((t + 40_000 + Int64(seq), PacketBuilder.icmpEcho(src: s, dst: c, id: 77, seq: seq, reply: true))) }
            frames.append((t + 100, PacketBuilder.icmpEcho(src: c6, dst: s6, id: 9, seq: seq, reply: false)))
            frames.append((t + 100 + 55_000, PacketBuilder.icmpEcho(src: s6, dst: c6, id: 9, seq: seq, reply: true)))
        }
        frames.append((t0 + 9_000_000, PacketBuilder.icmpEcho(src: s, dst: c, id: 77, seq: 5, reply: true))) // duplicate
        let a = try analyzeFrames(frames)
        XCTAssertEqual(a.echoes.count, 10)
        let v4 = a.echoes.filter { $0.source == c }
        XCTAssertEqual(v4.map(\.seq), [1, 2, 3, 4, 5])
        XCTAssertEqual(v4.map(\.rttNs), [40_001, 40_002, nil, 40_004, 40_005])
        XCTAssertEqual(v4.last?.duplicateReplies, 1)
        let v6 = a.echoes.filter { $0.source == c6 }
        XCTAssertEqual(v6.count, 5)
        XCTAssertTrue(v6.allSatisfy { $0.rttNs == 55_000 && $0.id == 9 })
        // Samples: one per echo, the lost one with status timeout and every phase present.
        let samples = WireSamples.samples(a, runID: "r", scenario: "s", target: "t")
        let echo = samples.filter { $0.phase == "icmp_echo" }
        XCTAssertEqual(echo.count, 10)
        XCTAssertEqual(echo.filter { $0.status == .timeout }.count, 1)
        XCTAssertEqual(echo.first { $0.labels["seq"] == "1" && $0.labels["icmp_id"] == "77" }?.value ?? 0, 0.040001, accuracy: 1e-9)
    }

    func testIPv6TCPOverSLL2AndRefusedConnection() throws {
        let c6 = IPAddress("2001:db8::10")!, s6 = IPAddress("2001:db8::20")!
        let L = LinkType.linuxSLL2
        let frames: [(Int64, [UInt8])] = [
            (t0, PacketBuilder.tcp(src: c6, dst: s6, srcPort: 5555, dstPort: 443, seq: 7, ack: 0, flags: TCPFlag.syn, link: L)),
            (t0 + 1_000_000_000, PacketBuilder.tcp(src: c6, dst: s6, srcPort: 5555, dstPort: 443, seq: 7, ack: 0, flags: TCPFlag.syn, link: L)),
            (t0 + 1_000_030_000, PacketBuilder.tcp(src: s6, dst: c6, srcPort: 443, dstPort: 5555, seq: 99, ack: 8, flags: TCPFlag.syn | TCPFlag.ack, link: L, fromClient: false)),
            (t0 + 1_000_035_000, PacketBuilder.tcp(src: c6, dst: s6, srcPort: 5555, dstPort: 443, seq: 8, ack: 100, flags: TCPFlag.ack, link: L)),
            (t0 + 2_000_000_000, PacketBuilder.tcp(src: c6, dst: s6, srcPort: 5556, dstPort: 444, seq: 1, ack: 0, flags: TCPFlag.syn, link: L)),
            (t0 + 2_000_010_000, PacketBuilder.tcp(src: s6, dst: c6, srcPort: 444, dstPort: 5556, seq: 0, ack: 2, flags: TCPFlag.rst | TCPFlag.ack, link: L, fromClient: false)),
        ]
        let a = try analyzeFrames(frames, link: L)
        XCTAssertEqual(a.linkType, L)
        XCTAssertEqual(a.handshakes.count, 2)
        let ok = try XCTUnwrap(a.handshakes.first { $0.serverPort == 443 })
        XCTAssertEqual(ok.synRetransmissions, 1)
        XCTAssertEqual(ok.synToSynAckNs, 30_000, "measured from the SYN that was answered")
        XCTAssertEqual(ok.handshakeNs, 35_000)
        XCTAssertEqual(ok.client, c6)
        let refused = try XCTUnwrap(a.handshakes.first { $0.serverPort == 444 })
        XCTAssertTrue(refused.refused)
        XCTAssertNil(refused.synAckNs)
        let samples = WireSamples.samples(a, runID: "r", scenario: "s", target: nil)
        let hs = samples.filter { $0.phase.hasPrefix("tcp_") && $0.labels["local_port"] == "5556" && $0.phase != "tcp_retransmissions" }
        XCTAssertEqual(hs.count, 3, "every phase is emitted for a failed handshake")
        XCTAssertTrue(hs.allSatisfy { $0.status == .refused && $0.value == nil })
        XCTAssertEqual(hs.first?.target, "[2001:db8::20]:444")
    }

    func testReusedClientPortStartsANewConnection() throws {
        var frames: [(Int64, [UInt8])] = []
        for (k, isn) in [(0, UInt32(1000)), (1, UInt32(900_000))] {
            let t = t0 + Int64(k) * 1_000_000_000
            frames.append((t, PacketBuilder.tcp(src: c, dst: s, srcPort: 40000, dstPort: 80, seq: isn, ack: 0, flags: TCPFlag.syn)))
            frames.append((t + 20_000 + Int64(k) * 5000, PacketBuilder.tcp(src: s, dst: c, srcPort: 80, dstPort: 40000, seq: 7, ack: isn + 1, flags: TCPFlag.syn | TCPFlag.ack, fromClient: false)))
            frames.append((t + 30_000 + Int64(k) * 5000, PacketBuilder.tcp(src: c, dst: s, srcPort: 40000, dstPort: 80, seq: isn + 1, ack: 8, flags: TCPFlag.ack)))
            frames.append((t + 40_000 + Int64(k) * 5000, PacketBuilder.tcp(src: c, dst: s, srcPort: 40000, dstPort: 80, seq: isn + 1, ack: 8, flags: TCPFlag.rst)))
        }
        let a = try analyzeFrames(frames)
        XCTAssertEqual(a.flows.count, 2)
        XCTAssertEqual(a.handshakes.map(\.synToSynAckNs), [20_000, 25_000])
        XCTAssertEqual(a.flows.map(\.packets), [4, 4])
    }

    func testFlowTotals() throws {
        var frames: [(Int64, [UInt8])] = []
        for i in 0..<10 {
            frames.append((t0 + Int64(i) * 1_000_000, PacketBuilder.udp(src: c, dst: s, srcPort: 5000, dstPort: 53, payload: Array(repeating: 1, count: 30))))
            frames.append((t0 + Int64(i) * 1_000_000 + 500, PacketBuilder.udp(src: s, dst: c, srcPort: 53, dstPort: 5000, payload: Array(repeating: 2, count: 70), fromClient: false)))
        }
        let a = try analyzeFrames(frames)
        XCTAssertEqual(a.flows.count, 1)
        let f = a.flows[0]
        XCTAssertEqual(f.protoName, "udp")
        XCTAssertEqual(f.client, c)
        XCTAssertEqual(f.clientPort, 5000)
        XCTAssertEqual(f.packets, 20)
        XCTAssertEqual(f.packetsFromClient, 10)
        XCTAssertEqual(f.bytesFromClient, 10 * (14 + 20 + 8 + 30))
        XCTAssertEqual(f.bytes, 10 * (14 + 20 + 8 + 30) + 10 * (14 + 20 + 8 + 70))
        XCTAssertEqual(f.durationNs, 9_000_500)
        let csv = WireSamples.flowsCSV(a)
        XCTAssertTrue(csv.contains("udp,10.0.0.1,5000,10.0.0.2,53,20,"), csv)
        let md = WireSamples.markdown(a, source: "test")
        XCTAssertTrue(md.contains("udp 10.0.0.1:5000 > 10.0.0.2:53"), md)
    }

    func testAnyCaptureCopiesOnSecondInterfaceAreNotDoubleCounted() throws {
        // The same echo seen on veth (ifindex 1) and docker0 (ifindex 5): SLL2 copies.
        func onIf(_ f: [UInt8], _ idx: UInt8) -> [UInt8] { var g = f; g[7] = idx; return g }
        let req = PacketBuilder.icmpEcho(src: c, dst: s, id: 1, seq: 1, reply: false, link: LinkType.linuxSLL2)
        let rep = PacketBuilder.icmpEcho(src: s, dst: c, id: 1, seq: 1, reply: true, link: LinkType.linuxSLL2)
        let a = try analyzeFrames([(t0, onIf(req, 5)), (t0 + 3000, onIf(req, 1)), (t0 + 20_000, onIf(rep, 1)), (t0 + 23_000, onIf(rep, 5))],
                                  link: LinkType.linuxSLL2)
        XCTAssertEqual(a.echoes.count, 1)
        XCTAssertEqual(a.echoes[0].rttNs, 23_000, "both packets from the first interface the flow was seen on")
        XCTAssertEqual(a.counters.otherInterfaceCopies, 2)
    }
}
