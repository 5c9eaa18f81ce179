import XCTest
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterTestSupport

/// `edgemeter proxy` as a user runs it: on loopback, in front of an echo listener the test starts.
final class ProxyCommandTests: XCTestCase {
    func testBadOptionsAreUsageErrorsNamingTheOption() throws {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first") }
        let cases: [([String], String)] = [
            (["--loss", "150%"], "--loss must be a percentage 0-100"),
            (["--delay", "far"], "--delay must be a duration up to 10s"),
            (["--distribution", "pareto"], "--distribution must be uniform or normal"),
            (["--rate", "fast"], "--rate must be a rate from 8kbit to 100gbit"),
            (["--realtime", "120"], "--realtime must be 0 (ordinary scheduling) or a SCHED_FIFO priority 1-99"),
        ]
        for (extra, message) in cases {
            let r = try runCommand(bin, ["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"] + extra)
            XCTAssertEqual(r.status, 2, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        let bad = try runCommand(bin, ["proxy", "--listen", "127.0.0.1", "--upstream", "127.0.0.1:9", "--duration", "1s"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("is not HOST:PORT"), bad.stderr)
    }

    func testTheCommandDelaysAnEchoAndReportsItsCounters() throws {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first") }
        let echo = try LoopbackListener(host: "127.0.0.1", echo: true)
        defer { echo.close() }
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: bin)
        proxy.arguments = ["proxy", "--listen", "127.0.0.1:0", "--upstream", echo.address.hostPort, "--delay", "25ms", "--duration", "3s"]
        let pipe = Pipe()
        proxy.standardOutput = pipe
        try proxy.run()
        defer { if proxy.isRunning { proxy.terminate() }; proxy.waitUntilExit() }
        // The first line names the address it listens on.
        var text = ""
        while !text.contains("\n") {
            let d = pipe.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        let port = try XCTUnwrap(text.range(of: #"tcp 127\.0\.0\.1:(\d+) ->"#, options: .regularExpression).map {
            Int(text[$0].split(separator: ":")[1].split(separator: " ")[0])! }, text)
        let target = try Resolver.resolve("127.0.0.1", port: UInt16(port))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = target.address
        XCTAssertEqual(withUnsafePointer(to: &a.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, a.length) } }, 0)
        let t0 = ContinuousClock.now
        _ = send(fd, "hello", 5, 0)
        var buf = [UInt8](repeating: 0, count: 5)
        var got = 0
        while got < 5 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, 5 - got, 0) }
            guard n > 0 else { break }
            got += n
        }
        let rtt = ContinuousClock.now - t0
        XCTAssertEqual(String(decoding: buf, as: UTF8.self), "hello")
        XCTAssertGreaterThanOrEqual(rtt, .milliseconds(50), "2 × 25 ms")
        XCTAssertLessThan(rtt, .milliseconds(75))
        proxy.waitUntilExit()
        text += String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(proxy.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("to-upstream: 1 chunks, 5 bytes, 0 retransmission stalls"), text)
        XCTAssertTrue(text.contains("connections: 1"), text)
        // As root the proxy runs SCHED_FIFO 10 and keeps idle CPUs polling, and says so.
        if geteuid() == 0 {
            XCTAssertTrue(text.contains("scheduling: SCHED_FIFO 10; idle CPUs: polling"), text)
        } else {
            XCTAssertTrue(text.contains("scheduling: ordinary; idle CPUs: the host's own idle states"), text)
        }
    }
}
