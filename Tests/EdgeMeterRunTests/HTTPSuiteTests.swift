import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// The suite kinds `http`, `calc` and `load` end to end through `edgemeter run`, against the
/// calculator all-in-one that each scenario starts on loopback itself.
final class HTTPSuiteTests: XCTestCase {
    func testCalculatorScenariosRecordEveryPhase() throws {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first (scripts/test does)") }
        let out = NSTemporaryDirectory() + "edgemeter-http-suite-\(UUID().uuidString)"
        let suite = out + ".yaml"
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: suite) }
        try """
        name: http-suite
        scenarios:
          - name: calc-http
            kind: http
            calculator: true
            body: "(5+6)*2"
            expect_status: 200
            expect_body: '"result":22'
            count: 5
            interval: 10ms
          - name: calc-hops
            kind: calc
            calculator: true
            expression: "(5+6)*2"
            count: 5
            interval: 10ms
          - name: calc-load
            kind: load
            calculator: true
            body: "5+6"
            connections: 2
            rate: 200
            duration: 1s
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let r = try runCommand(bin, ["run", suite, "--out", out], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let samples = try SampleCSV.parse(String(contentsOfFile: out + "/samples.csv", encoding: .utf8))
        let http = samples.filter { $0.scenario == "calc-http" }
        for phase in ["connect", "first_byte", "total"] {
            let rows = http.filter { $0.phase == phase }
            XCTAssertEqual(rows.count, 5, phase)
            XCTAssertTrue(rows.allSatisfy { $0.status == .ok }, "\(phase): \(rows.map(\.reason))")
        }
        let hops = samples.filter { $0.scenario == "calc-hops" }
        XCTAssertEqual(hops.filter { $0.phase == "hop1_sum" && $0.status == .ok }.count, 5, "\(Set(hops.map(\.phase)))")
        XCTAssertEqual(hops.filter { $0.phase == "hop2_mul" && $0.status == .ok }.count, 5)
        let load = samples.filter { $0.scenario == "calc-load" }
        let achieved = try XCTUnwrap(load.first { $0.metric == "throughput" && $0.phase == "achieved" }?.value)
        XCTAssertEqual(achieved, 200, accuracy: 20)
        XCTAssertNotNil(load.first { $0.phase.hasPrefix("corrected_p99") })
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("## calc-load"), md)
    }
}

/// Containers run without CAP_NET_ADMIN: the HTTP clients (probe, load generator, the front end's
/// calls to its operation services) must not need it. A socket-level option set by mistake (e.g.
/// SO_DEBUG instead of TCP_NODELAY) fails with EACCES there and nowhere else.
final class UnprivilegedHTTPTests: XCTestCase {
    func testHTTPClientsWorkWithoutNetAdmin() throws {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first") }
        guard getuid() == 0, let setpriv = which("setpriv") else { throw XCTSkip("needs root and setpriv (util-linux) to drop CAP_NET_ADMIN") }
        // A free port for the front end; the operation services take free ports too (--port 0 picks all five).
        let server = Process()
        server.executableURL = URL(fileURLWithPath: setpriv)
        server.arguments = ["--bounding-set=-net_admin", "--inh-caps=-net_admin", bin, "serve", "calculator", "--role", "all", "--port", "0"]
        let pipe = Pipe()
        server.standardOutput = pipe
        server.standardError = pipe
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !text.contains("front listening") {
            let d = pipe.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        let port = try XCTUnwrap(text.range(of: #"front listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression).map {
            String(text[$0]).split(separator: ":").last.map(String.init) ?? "" }, text)
        let out = NSTemporaryDirectory() + "edgemeter-unpriv-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try runCommand(setpriv, ["--bounding-set=-net_admin", "--inh-caps=-net_admin", bin, "calc",
                                         "http://127.0.0.1:\(port)/calculate", "--expr", "(5+6)*2", "-c", "2", "--out", out])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }
}
