import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// Runs a command and returns its stdout; throws with stderr when it fails or runs longer than
/// `timeout` seconds (then it is terminated, so a stuck daemon cannot hang the test run).
func runTool(_ path: String, _ args: [String], timeout: Double = 120) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let exited = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in exited.signal() }
    try p.run()
    // Drain both pipes while the process runs (a full pipe would block it).
    final class Box: @unchecked Sendable { var data = Data() }
    let o = Box(), e = Box()
    let reads = DispatchGroup()
    DispatchQueue.global().async(group: reads) { o.data = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: reads) { e.data = err.fileHandleForReading.readDataToEndOfFile() }
    if exited.wait(timeout: .now() + timeout) == .timedOut {
        p.terminate()
        _ = exited.wait(timeout: .now() + 5)
        throw CaptureError.capture("\(path) \(args.joined(separator: " ")) did not finish within \(Int(timeout)) s and was terminated")
    }
    _ = reads.wait(timeout: .now() + 10)
    guard p.terminationStatus == 0 else {
        throw CaptureError.capture("\(path) \(args.joined(separator: " ")) exited \(p.terminationStatus): \(String(decoding: e.data, as: UTF8.self))")
    }
    return String(decoding: o.data, as: UTF8.self)
}

/// The oracle's view of a file: initial RTT per TCP client port and response time per ICMP echo,
/// in nanoseconds (tshark prints seconds with 9 decimals).
struct TsharkView {
    var initialRTT: [UInt16: Int64] = [:]   // client port → ns
    var echo: [String: Int64] = [:]         // "id/seq" → ns

    static var tshark: String? {
        ["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(file: String) throws {
        guard let t = Self.tshark else { throw XCTSkip("tshark is not installed: apt-get install -y tshark (it is the oracle for these tests)") }
        let out = try runTool(t, ["-r", file, "-n", "-T", "fields", "-E", "separator=|",
                                  "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
                                  "-e", "tcp.analysis.initial_rtt",
                                  "-e", "icmp.ident", "-e", "icmp.seq", "-e", "icmp.resptime",
                                  "-e", "icmpv6.echo.identifier", "-e", "icmpv6.echo.sequence_number", "-e", "icmpv6.resptime"])
        var synPortOfStream: Set<UInt16> = []
        for line in out.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 11 else { continue }
            func ns(_ s: String) -> Int64? { Double(s).map { Int64(($0 * 1e9).rounded()) } }
            if let sp = UInt16(f[0]), let dp = UInt16(f[1]) {
                if f[2] == "1" && f[3] == "0" { synPortOfStream.insert(sp) }
                let client = synPortOfStream.contains(sp) ? sp : dp
                if let r = ns(f[4]), initialRTT[client] == nil { initialRTT[client] = r }
            }
            // icmp.resptime is in milliseconds; identifiers may print in hex (0x004d).
            func msNs(_ s: String) -> Int64? { Double(s).map { Int64(($0 * 1e6).rounded()) } }
            func num(_ s: String) -> String {
                let first = s.split(separator: ",").first.map(String.init) ?? s
                if first.hasPrefix("0x"), let v = UInt16(first.dropFirst(2), radix: 16) { return String(v) }
                return first
            }
            if let r = msNs(f[7]) { echo["\(num(f[5]))/\(num(f[6]))"] = r }
            if let r = msNs(f[10]) { echo["\(num(f[8]))/\(num(f[9]))"] = r }
        }
    }
}

final class TsharkAgreementTests: XCTestCase {
    func compare(_ a: WireAnalysis, _ t: TsharkView, file: StaticString = #filePath, line: UInt = #line) {
        var compared = 0
        for h in a.handshakes {
            guard let mine = h.handshakeNs else { continue }
            guard let theirs = t.initialRTT[h.clientPort] else {
                XCTFail("tshark has no initial RTT for client port \(h.clientPort)", file: file, line: line); continue
            }
            XCTAssertEqual(mine, theirs, "initial RTT of port \(h.clientPort)", file: file, line: line)
            compared += 1
        }
        for e in a.echoes {
            guard let mine = e.rttNs else { continue }
            guard let theirs = t.echo["\(e.id)/\(e.seq)"] else {
                XCTFail("tshark has no response time for echo id \(e.id) seq \(e.seq)", file: file, line: line); continue
            }
            XCTAssertEqual(mine, theirs, "echo id \(e.id) seq \(e.seq)", file: file, line: line)
            compared += 1
        }
        XCTAssertEqual(t.initialRTT.count, a.handshakes.filter { $0.handshakeNs != nil }.count, "same number of handshakes", file: file, line: line)
        XCTAssertEqual(t.echo.count, a.echoes.filter { $0.rttNs != nil }.count, "same number of answered echoes", file: file, line: line)
        XCTAssertGreaterThan(compared, 0, file: file, line: line)
    }

    func testAgreementOnGeneratedFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-ts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("mixed.pcap").path
        // 40 HTTP connections with known timings, then a retransmitted SYN and ICMP(v6) echoes.
        let gPath = dir.appendingPathComponent("g.pcap").path
        var g = SyntheticHTTPTraffic(connections: 40, requestsPerConnection: 2)
        g.startNs = 1_764_000_000_000_000_000
        try g.write(to: gPath)
        let w = try PcapWriter(path: path, linkType: LinkType.ethernet, nanosecond: true)
        try PcapReader.read(path: gPath) { try w.write(timestampNs: $0.timestampNs, data: $0.data, originalLength: $0.originalLength) }
        let c = IPAddress("10.9.0.1")!, s = IPAddress("10.9.0.2")!
        var t: Int64 = 1_764_000_100_000_000_000
        try w.write(timestampNs: t, bytes: PacketBuilder.tcp(src: c, dst: s, srcPort: 61000, dstPort: 22, seq: 5, ack: 0, flags: TCPFlag.syn))
        t += 1_000_000_000
        try w.write(timestampNs: t, bytes: PacketBuilder.tcp(src: c, dst: s, srcPort: 61000, dstPort: 22, seq: 5, ack: 0, flags: TCPFlag.syn))
        t += 123_457
        try w.write(timestampNs: t, bytes: PacketBuilder.tcp(src: s, dst: c, srcPort: 22, dstPort: 61000, seq: 70, ack: 6, flags: TCPFlag.syn | TCPFlag.ack, fromClient: false))
        t += 7_001
        try w.write(timestampNs: t, bytes: PacketBuilder.tcp(src: c, dst: s, srcPort: 61000, dstPort: 22, seq: 6, ack: 71, flags: TCPFlag.ack))
        let c6 = IPAddress("fd00::1")!, s6 = IPAddress("fd00::2")!
        for seq in 1...20 as ClosedRange<UInt16> {
            t += 1_000_000
            try w.write(timestampNs: t, bytes: PacketBuilder.icmpEcho(src: c, dst: s, id: 4242, seq: seq, reply: false))
            try w.write(timestampNs: t + 31_000 + Int64(seq) * 17, bytes: PacketBuilder.icmpEcho(src: s, dst: c, id: 4242, seq: seq, reply: true))
            try w.write(timestampNs: t + 50_000, bytes: PacketBuilder.icmpEcho(src: c6, dst: s6, id: 77, seq: seq, reply: false))
            try w.write(timestampNs: t + 50_000 + 44_000 + Int64(seq), bytes: PacketBuilder.icmpEcho(src: s6, dst: c6, id: 77, seq: seq, reply: true))
        }
        try w.close()
        let a = try WireAnalyzer.analyze(path: path)
        XCTAssertEqual(a.handshakes.count, 41)
        XCTAssertEqual(a.echoes.count, 40)
        let view = try TsharkView(file: path)
        compare(a, view)
        XCTAssertEqual(view.initialRTT[61000], 130_458, "tshark measures from the SYN that was answered")
    }

    /// The same comparison on a real capture of loopback traffic (ping and TCP connects).
    func testAgreementOnLiveLoopbackCapture() throws {
        try requireCaptureCapability()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-tl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("lo.pcap").path
        let listener = try LoopbackTCPServer()
        defer { listener.close() }
        let addr = uniqueLoopback()
        let session = try CaptureSession(options: CaptureOptions(interface: "lo", filter: "(icmp and host \(addr)) or tcp port \(listener.port)"), writePath: path)
        session.start()
        let ping = try runTool("/usr/bin/ping", ["-n", "-c", "5", "-i", "0.01", addr])
        XCTAssertTrue(ping.contains("5 received"), ping)
        for _ in 0..<5 { try listener.connectAndExchange(request: "GET /x HTTP/1.1\r\nHost: lo\r\n\r\n") }
        Thread.sleep(forTimeInterval: 0.1)
        session.stop()
        let (result, live) = try session.wait()
        XCTAssertEqual(result.precision, "nano")
        let a = try WireAnalyzer.analyze(path: path)
        XCTAssertEqual(a, live, "the analysis of the file equals the live analysis")
        XCTAssertEqual(a.echoes.filter { $0.rttNs != nil }.count, 5)
        XCTAssertEqual(a.handshakes.filter { $0.handshakeNs != nil }.count, 5)
        compare(a, try TsharkView(file: path))
    }
}
