import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterSystem
import NIOCore
@testable import EdgeMeterProbes
import EdgeMeterHTTP

final class HTTPProbeTests: XCTestCase {
    func testURLParsing() throws {
        let t = try HTTPTarget(url: "http://127.0.0.1:50000/calculate?x=1")
        XCTAssertEqual(t.host, "127.0.0.1")
        XCTAssertEqual(t.port, 50000)
        XCTAssertEqual(t.path, "/calculate?x=1")
        XCTAssertEqual(try HTTPTarget(url: "http://[::1]:8080").path, "/")
        XCTAssertEqual(try HTTPTarget(url: "localhost").port, 80)
        XCTAssertThrowsError(try HTTPTarget(url: "https://example.org/")) { e in
            XCTAssertTrue("\(e)".contains("https is not supported"), "\(e)")
        }
        XCTAssertThrowsError(try HTTPTarget(url: "http://127.0.0.1:99999/")) { e in
            XCTAssertTrue("\(e)".contains("port must be a number"), "\(e)")
        }
    }

    func testPhasesOfASuccessfulExchange() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/slow")
        let sink = MemorySink()
        let r = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: HTTPRequestSpec(path: target.path), count: 2,
                                                                              interval: .milliseconds(10), expectedBody: "hello"),
                                    runID: "t", scenario: "s", sink: sink, stop: StopFlag())
        await server.stop()
        XCTAssertEqual(r.succeeded, 2)
        XCTAssertEqual(sink.samples.count, 8, "4 phases x 2 attempts")
        XCTAssertEqual(Set(sink.samples.compactMap { $0.labels["seq"] }), ["1", "2"], "attempts are numbered from 1, as ping's")
        for s in sink.samples {
            XCTAssertEqual(s.status, .ok, s.reason)
            XCTAssertEqual(s.labels["http_status"], "200")
        }
        // The server waits 300 ms before answering: first_byte and total must show it, connect must not.
        let firstByte = sink.samples.filter { $0.phase == "first_byte" }.compactMap(\.value)
        let total = sink.samples.filter { $0.phase == "total" }.compactMap(\.value)
        let connect = sink.samples.filter { $0.phase == "connect" }.compactMap(\.value)
        XCTAssertTrue(firstByte.allSatisfy { $0 >= 299 && $0 < 1000 }, "\(firstByte)")
        XCTAssertTrue(zip(total, firstByte).allSatisfy { $0 >= $1 }, "\(total) \(firstByte)")
        XCTAssertTrue(connect.allSatisfy { $0 < 100 }, "\(connect)")
    }

    func testStatusAndBodyMismatchAreFailedSamplesWithReason() async throws {
        let server = try await HTTPTestServer.start()
        let sink = MemorySink()
        let t1 = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/status/503")
        _ = await HTTPProbe.run(target: t1, options: HTTPProbeOptions(request: HTTPRequestSpec(path: t1.path), count: 1),
                                runID: "t", scenario: "status", sink: sink, stop: StopFlag())
        let t2 = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        _ = await HTTPProbe.run(target: t2, options: HTTPProbeOptions(request: HTTPRequestSpec(path: t2.path), count: 1,
                                                                      expectedStatuses: [200], expectedBody: "goodbye"),
                                runID: "t", scenario: "body", sink: sink, stop: StopFlag())
        await server.stop()
        let statusTotal = sink.samples.first { $0.scenario == "status" && $0.phase == "total" }!
        XCTAssertEqual(statusTotal.status, .error)
        XCTAssertTrue(statusTotal.reason.contains("expected status 2xx or 3xx, got 503"), statusTotal.reason)
        XCTAssertNil(statusTotal.value)
        XCTAssertEqual(sink.samples.first { $0.scenario == "status" && $0.phase == "connect" }?.status, .ok)
        let bodyTotal = sink.samples.first { $0.scenario == "body" && $0.phase == "total" }!
        XCTAssertEqual(bodyTotal.status, .error)
        XCTAssertTrue(bodyTotal.reason.contains("does not contain \"goodbye\""), bodyTotal.reason)
    }

    /// A failed attempt's reason is one line: the status with its reason phrase and the first
    /// line of the body with text (an HTML page's title), not the page; the full body only on request.
    func testFailureReasonIsOneLineAndTheFullBodyOnlyWhenAsked() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/html404")
        let sink = MemorySink()
        let lines = Lines()
        _ = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: HTTPRequestSpec(path: target.path), count: 1),
                                runID: "t", scenario: "s", sink: sink, stop: StopFlag(), progress: { lines.add($0) })
        _ = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: HTTPRequestSpec(path: target.path), count: 1),
                                runID: "t", scenario: "s", sink: MemorySink(), stop: StopFlag(), progress: { lines.add($0) }, fullBody: true)
        await server.stop()
        let total = try XCTUnwrap(sink.samples.first { $0.phase == "total" })
        XCTAssertEqual(total.reason, "expected status 2xx or 3xx, got 404 Not Found: Nothing here")
        XCTAssertEqual(lines.all.first, "seq=1 failed: expected status 2xx or 3xx, got 404 Not Found: Nothing here")
        let verbose = try XCTUnwrap(lines.all.last)
        XCTAssertTrue(verbose.hasPrefix("seq=1 failed: expected status 2xx or 3xx, got 404 Not Found: Nothing here\n  response body ("), verbose)
        XCTAssertTrue(verbose.contains("    <h1>Not Found</h1>"), verbose)
    }

    func testFirstLineOfABody() {
        XCTAssertEqual(HTTPProbe.firstLine("\n\n  division by zero  \nsecond line"), "division by zero")
        XCTAssertNil(HTTPProbe.firstLine(" \n\t\n"))
        XCTAssertEqual(HTTPProbe.firstLine(HTTPTestServer.html404), "Nothing here")
        let long = String(repeating: "word ", count: 60)
        let cut = try! XCTUnwrap(HTTPProbe.firstLine(long))
        XCTAssertTrue(cut.hasSuffix("word…"), cut)
        XCTAssertLessThanOrEqual(cut.count, 121)
    }

    /// Name lookup failures read as a sentence with the next step, not NIO's error value.
    func testResolveFailureMessage() {
        let e = HTTPConnection.resolveFailure(SocketAddressError.unknown(host: "no-such-host", port: 80), host: "no-such-host")
        XCTAssertEqual(e.description, "cannot resolve no-such-host: no address found for that name; check the spelling, /etc/hosts and the DNS settings (/etc/resolv.conf), or give an IP address")
        XCTAssertEqual(e.sampleStatus, .error)
    }

    /// `http` times the connect as `tcping` does (connect() until writable, no NIO channel setup):
    /// against the same loopback listener their medians agree within 50 µs. (Timing the NIO
    /// bootstrap instead read ~0.8 ms against tcping's ~0.13 ms.)
    func testConnectAgreesWithTCPing() async throws {
        let server = try await HTTPTestServer.start()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(server.port)/")
        let resolved = try Resolver.resolve("127.0.0.1", port: UInt16(server.port))
        // Alternating rounds, so a burst of load from other processes falls on both sides alike.
        var http: [Double] = []
        var tcping: [Double] = []
        for round in 0..<6 {
            func runHTTP() async {
                let sink = MemorySink()
                _ = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: HTTPRequestSpec(path: "/"), count: 15, interval: .milliseconds(5)),
                                        runID: "t", scenario: "s", sink: sink, stop: StopFlag())
                let connects = sink.samples.filter { $0.phase == "connect" }
                XCTAssertTrue(connects.allSatisfy { $0.labels["local_port"] != nil })
                http += connects.compactMap(\.value)
            }
            func runTCPing() {
                let probe = TCPConnectProbe(targets: [resolved], options: TCPConnectOptions(count: 15, interval: .milliseconds(5)))
                probe.attempts(schedule: probe.options.schedule, clock: SystemClock(), stop: StopFlag()) { a in
                    if let n = a.connectNanoseconds { tcping.append(Double(n) / 1e6) }
                }
            }
            if round % 2 == 0 { await runHTTP(); runTCPing() } else { runTCPing(); await runHTTP() }
        }
        await server.stop()
        XCTAssertEqual(http.count, 90)
        XCTAssertEqual(tcping.count, 90)
        func quantile(_ v: [Double], _ q: Double) -> Double { let s = v.sorted(); return s[Int(Double(s.count - 1) * q)] }
        print(String(format: "connect p25: http %.4f ms, tcping %.4f ms; p50: http %.4f ms, tcping %.4f ms",
                     quantile(http, 0.25), quantile(tcping, 0.25), quantile(http, 0.5), quantile(tcping, 0.5)))
        // In-process, http's connect runs on NIO's thread pool and tcping's on this thread; inside the
        // whole test suite the pool's thread is sometimes slow to be scheduled, which moves the median
        // (seen: 0.098 vs 0.042 ms once). The lower quartile shows what is measured; the median bound
        // still fails on the old NIO-bootstrap timing (0.5-0.8 ms). The CLI test with `--capture lo`
        // (HTTPCommandTests) holds the p50s within 50 µs.
        XCTAssertEqual(quantile(http, 0.25), quantile(tcping, 0.25), accuracy: 0.050)
        XCTAssertEqual(quantile(http, 0.5), quantile(tcping, 0.5), accuracy: 0.150)
    }

    func testRefusedConnectionFailsEveryPhaseFromConnect() async throws {
        // Bind a port, then close it: nothing listens there any more.
        let server = try await HTTPTestServer.start()
        let port = server.port
        await server.stop()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(port)/")
        let sink = MemorySink()
        let r = await HTTPProbe.run(target: target, options: HTTPProbeOptions(request: HTTPRequestSpec(path: "/"), count: 1),
                                    runID: "t", scenario: "s", sink: sink, stop: StopFlag())
        XCTAssertEqual(r.succeeded, 0)
        XCTAssertEqual(sink.samples.map(\.phase), HTTPProbe.phases)
        XCTAssertEqual(sink.samples[0].status, .ok) // resolve of a literal works
        for s in sink.samples.dropFirst() { XCTAssertEqual(s.status, .refused, s.reason) }
        XCTAssertTrue(sink.samples[1].reason.contains("connection refused"), sink.samples[1].reason)
    }

    func testServerTimingParsing() {
        let e = ServerTimingEntry.parse("sum;dur=0.412;desc=\"5 + 6\", mul;dur=1.5, x")
        XCTAssertEqual(e.map(\.name), ["sum", "mul", "x"])
        XCTAssertEqual(e[0].duration, 0.412)
        XCTAssertEqual(e[0].description, "5 + 6")
        XCTAssertEqual(e[1].duration, 1.5)
        XCTAssertNil(e[2].duration)
    }
}
