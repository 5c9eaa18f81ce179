import Foundation
import XCTest
import EdgeMeterHTTP
import EdgeMeterSystem
import EdgeMeterTestSupport
@testable import EdgeMeterController
#if canImport(Glibc)
import Glibc
#endif

/// `edgemeter controller` as a user runs it (the built binary) with a real executor chosen by its
/// flags, and with its probe loop inside a network namespace.
final class ControllerExecutorFlagsTests: XCTestCase {
    let token = "ctl-flags-token"

    func binary() throws -> String {
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        return bin
    }

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctlx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A controller process on 127.0.0.1 (port 0), its log in a file; stopped with SIGTERM.
    final class Running {
        let process: Process
        let logPath: String
        var port = 0
        init(process: Process, logPath: String) { (self.process, self.logPath) = (process, logPath) }
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
    }

    func start(_ args: [String], dir: URL) throws -> Running {
        let logPath = dir.appendingPathComponent("controller.log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary())
        p.arguments = ["controller", "--port", "0", "--state", dir.appendingPathComponent("state.sqlite").path] + args
        var env = ProcessInfo.processInfo.environment
        env["EDGEMETER_CONTROLLER_TOKEN"] = token
        p.environment = env
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = h
        p.standardError = h
        try p.run()
        let r = Running(process: p, logPath: logPath)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let marker = "listening on http://127.0.0.1:"
            if let at = r.log.range(of: marker), let port = Int(r.log[at.upperBound...].prefix(while: \.isNumber)) {
                r.port = port
                return r
            }
            if !p.isRunning { break }
            usleep(50_000)
        }
        r.stop()
        XCTFail("the controller did not start: \(r.log)")
        throw XCTSkip("no controller")
    }

    func call(_ port: Int, _ method: String, _ path: String, json body: Any? = nil) async throws -> (status: Int, json: [String: Any]) {
        var headers: [(String, String)] = [("Authorization", "Bearer \(token)")]
        var bytes: [UInt8] = []
        if let body { bytes = Array(try JSONSerialization.data(withJSONObject: body)); headers.append(("Content-Type", "application/json")) }
        let addr = try await HTTPConnection.resolve(host: "127.0.0.1", port: port)
        let conn = try await HTTPConnection.connect(to: addr, targetName: "controller", timeout: .seconds(5))
        defer { conn.close() }
        let r = try await conn.send(HTTPRequestSpec(method: method, path: path, headers: headers, body: bytes), host: "127.0.0.1",
                                    keepAlive: false, timeout: .seconds(30))
        let json = (try? JSONSerialization.jsonObject(with: Data(r.response.bodyText.utf8))) as? [String: Any] ?? ["body": r.response.bodyText]
        return (r.response.status, json)
    }

    /// Two nodes, active node_2; node_1 measured at 5 ms and node_2 at 60 ms, so `GET /migrate` moves.
    func initAndPostDelays(_ port: Int) async throws {
        let service: [String: Any] = ["name": "edge-app", "nodes": ["node_1", "node_2"], "active_node": "node_2",
                                      "requirement": "20ms@p90", "dwell_s": 0, "cooldown_s": 0, "min_samples": 5]
        let i = try await call(port, "POST", "/service_init", json: service)
        XCTAssertEqual(i.status, 200, "\(i.json)")
        let rows: [[String: Any]] = [["node": "node_1", "metric": "http_total", "samples_ms": Array(repeating: 5.0, count: 10)],
                                     ["node": "node_2", "metric": "http_total", "samples_ms": Array(repeating: 60.0, count: 10)]]
        let d = try await call(port, "POST", "/delays", json: ["delays": rows])
        XCTAssertEqual(d.status, 200, "\(d.json)")
    }

    func testCmdExecutorMovesTheServiceAndTheFilesShowIt() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.path
        FileManager.default.createFile(atPath: "\(f)/edge-app-node_2", contents: nil)   // the running instance
        let c = try start(["--probe-interval", "0", "--executor", "cmd",
                           "--cmd-start", #"["touch","\#(f)/{service}-{to}"]"#,
                           "--cmd-ready", #"["test","-f","\#(f)/{service}-{to}"]"#,
                           "--cmd-switch", #"["touch","\#(f)/switched-{from}-to-{to}"]"#,
                           "--cmd-stop", #"["rm","\#(f)/{service}-{from}"]"#], dir: dir)
        defer { c.stop() }
        XCTAssertTrue(c.log.contains("executor cmd"), c.log)
        try await initAndPostDelays(c.port)
        let m = try await call(c.port, "GET", "/migrate")
        XCTAssertEqual(m.status, 200, "\(m.json)")
        XCTAssertEqual(m.json["active_node"] as? String, "node_1", "\(m.json)")
        let migration = try XCTUnwrap(m.json["migration"] as? [String: Any], "\(m.json)")
        XCTAssertEqual(migration["executor"] as? String, "cmd")
        let fm = FileManager.default
        XCTAssertTrue(fm.fileExists(atPath: "\(f)/edge-app-node_1"), "start did not run")
        XCTAssertTrue(fm.fileExists(atPath: "\(f)/switched-node_2-to-node_1"), "switch did not run")
        XCTAssertFalse(fm.fileExists(atPath: "\(f)/edge-app-node_2"), "stop did not remove the old instance")
    }

    func testKubernetesExecutorSendsTheRequestsToTheAPIServer() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = FakeAPIServer(serviceName: "edge-app", selector: ["app": "edge-app", "edgemeter.io/node": "node_2"],
                                   existing: ["edge-app-node-2": ["metadata": ["name": "edge-app-node-2"], "spec": ["replicas": 1]]])
        let apiPort = try await server.start()
        defer { Task { await server.stop() } }
        let tokenFile = dir.appendingPathComponent("k8s-token").path
        try "k8s-s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let c = try start(["--probe-interval", "0", "--executor", "kubernetes", "--k8s-api", "http://127.0.0.1:\(apiPort)",
                           "--k8s-token-file", tokenFile, "--k8s-service", "edge-app", "--k8s-image", "edge-app:1",
                           "--k8s-port", "8000"], dir: dir)
        defer { c.stop() }
        try await initAndPostDelays(c.port)
        let m = try await call(c.port, "GET", "/migrate")
        XCTAssertEqual(m.status, 200, "\(m.json)")
        XCTAssertEqual(m.json["active_node"] as? String, "node_1", "\(m.json) \(c.log)")
        let deps = "/apis/apps/v1/namespaces/default/deployments"
        let svc = "/api/v1/namespaces/default/services/edge-app"
        var calls: [String] = []
        for r in server.recorded where calls.last != "\(r.method) \(r.path)" { calls.append("\(r.method) \(r.path)") }
        XCTAssertEqual(calls, ["POST \(deps)", "GET \(deps)/edge-app-node-1", "GET \(svc)", "PATCH \(svc)", "DELETE \(deps)/edge-app-node-2"])
        XCTAssertTrue(server.recorded.allSatisfy { $0.authorization == "Bearer k8s-s3cret" })
        let created = try XCTUnwrap(server.recorded.first?.json)
        let spec = try XCTUnwrap(((created["spec"] as? NSDictionary)?["template"] as? NSDictionary)?["spec"] as? NSDictionary)
        XCTAssertEqual((spec["containers"] as? [NSDictionary])?.first?["image"] as? String, "edge-app:1")
        XCTAssertEqual(server.currentSelector["edgemeter.io/node"], "node_1")
    }

    func testBadExecutorFlagsExitTwoNamingTheFlag() throws {
        let bin = try binary()
        var env = ProcessInfo.processInfo.environment
        env["EDGEMETER_CONTROLLER_TOKEN"] = token
        let cases: [([String], String)] = [
            (["--executor", "nope"], "--executor nope is not known; give one of: dry-run, cmd, docker, kubernetes"),
            (["--executor", "cmd"], "--executor cmd needs --cmd-start"),
            (["--executor", "cmd", "--cmd-start", "touch x", "--cmd-switch", #"["true"]"#, "--cmd-stop", #"["true"]"#],
             "--cmd-start must be a JSON list of strings"),
            (["--executor", "cmd", "--cmd-start", #"["true"]"#, "--cmd-switch", "[]", "--cmd-stop", #"["true"]"#], "--cmd-switch is empty"),
            (["--executor", "docker", "--docker-image", "edge-app:1"], "--executor docker needs --docker-command"),
            (["--executor", "docker", "--docker-image", "i", "--docker-command", #"["a"]"#, "--docker-port", "80",
              "--docker-proxy-listen", "nowhere"], "--docker-proxy-listen must be HOST:PORT"),
            (["--executor", "kubernetes", "--k8s-image", "i", "--k8s-port", "80"], "--executor kubernetes needs --k8s-service"),
            (["--executor", "kubernetes", "--k8s-service", "s", "--k8s-image", "i", "--k8s-port", "80", "--k8s-api", "https://10.0.0.1:6443"],
             "https is not supported"),
            (["--executor", "kubernetes", "--k8s-service", "s", "--k8s-image", "i", "--k8s-port", "80", "--k8s-token-file", "/nonexistent/t"],
             "--k8s-token-file: cannot read the token file /nonexistent/t"),
            (["--cmd-start", #"["true"]"#], "--cmd-start is a cmd executor flag, but --executor is dry-run"),
            (["--probe-netns", "emt-no-such-ns"], "--probe-netns emt-no-such-ns"),
            (["--from-node", "edge-cloud"], "--from-node must be TOPOLOGY:NODE"),
            (["--probe-netns", "a", "--from-node", "t:n"], "give --probe-netns or --from-node, not both"),
        ]
        for (args, expected) in cases {
            let state = "/tmp/ctlx-never-\(UUID().uuidString).sqlite"
            let r = try runCommand(bin, ["controller", "--port", "0", "--state", state] + args, timeout: 30, environment: env)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): expected \(expected) in: \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: state), "\(args) created the state file")
        }
    }

    /// A TCP listener on 127.0.0.1 inside namespace `ns` (its own loopback); returns fd and port.
    static func listenInside(_ ns: String) throws -> (fd: Int32, port: Int) {
        try NamespaceThread.run(in: ns) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            a.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard ok else { throw NSError(domain: "listen", code: Int(errno)) }
            return (fd, Int(UInt16(bigEndian: a.sin_port)))
        }
    }

    func testProbeNetnsMeasuresFromInsideTheNamespace() async throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        let netns = try IsolatedNetns()
        defer { netns.remove() }
        let listener = try Self.listenInside(netns.name)
        defer { close(listener.fd) }
        let target = "tcp://127.0.0.1:\(listener.port)"
        // The same address from the host: nothing listens there, so a sample can only come from inside.
        let fromHost = await ProbeLoop.measure(target, timeout: .milliseconds(500))
        XCTAssertNil(fromHost, "the host has a listener on \(target) too; run again")
        let fromInside = await NamespaceProbe.measure(target, timeout: .seconds(1), namespace: netns.name)
        XCTAssertNotNil(fromInside, "no connection to \(target) from inside \(netns.name)")

        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try start(["--probe-interval", "100ms", "--decide-every", "10s", "--probe-netns", netns.name], dir: dir)
        defer { c.stop() }
        let service: [String: Any] = ["name": "edge-app", "metric": "tcp_connect", "active_node": "node_1", "requirement": "20ms@p90",
                                      "nodes": [["name": "node_1", "target": target], ["name": "node_2", "target": target]]]
        let i = try await call(c.port, "POST", "/service_init", json: service)
        XCTAssertEqual(i.status, 200, "\(i.json)")
        var received = 0, sent = 0
        for _ in 0..<40 {
            try await Task.sleep(for: .milliseconds(100))
            let s = try await call(c.port, "GET", "/status")
            let services = s.json["services"] as? [[String: Any]] ?? [s.json]
            let nodes = services.first?["nodes"] as? [[String: Any]] ?? []
            let w = nodes.first?["window"] as? [String: Any] ?? [:]
            (received, sent) = (w["received"] as? Int ?? 0, w["sent"] as? Int ?? 0)
            if received >= 5 { break }
        }
        XCTAssertGreaterThanOrEqual(received, 5, "the probe loop did not reach \(target) inside \(netns.name): \(c.log)")
        XCTAssertEqual(received, sent, "lost probes from inside the namespace")
        XCTAssertTrue(c.log.contains("probe loop runs inside network namespace \(netns.name)"), c.log)
    }
}

/// `NamespaceProbe`'s http measurement against a real HTTP server (python3 -m http.server) that
/// listens only inside a namespace the test made.
final class NamespaceProbeHTTPTests: XCTestCase {
    func testHTTPTargetIsMeasuredFromInsideAndItsStatusChecked() async throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard let python = which("python3"), let ip = which("ip") else { throw XCTSkip("needs python3 and ip: apt-get install python3 iproute2") }
        let netns = try IsolatedNetns()
        defer { netns.remove() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nsprobe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "ok\n".write(to: dir.appendingPathComponent("healthz"), atomically: true, encoding: .utf8)
        let port = Int.random(in: 20000...40000)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ip)
        p.arguments = ["netns", "exec", netns.name, python, "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir.path, "\(port)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // SIGKILL: a child of the test process may inherit SIGTERM ignored, and would never exit.
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let ok = "http://127.0.0.1:\(port)/healthz"
        var inside: Double?
        for _ in 0..<50 {
            inside = await NamespaceProbe.measure(ok, timeout: .seconds(2), namespace: netns.name)
            if inside != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let ms = try XCTUnwrap(inside, "no answer from \(ok) inside \(netns.name)")
        XCTAssertGreaterThan(ms, 0)
        XCTAssertLessThan(ms, 2000)
        let missing = await NamespaceProbe.measure("http://127.0.0.1:\(port)/nope", timeout: .seconds(2), namespace: netns.name)
        XCTAssertNil(missing, "a 404 must count as lost")
        let fromHost = await ProbeLoop.measure(ok, timeout: .milliseconds(500))
        XCTAssertNil(fromHost, "the host answers on \(ok) too; run again")
    }
}
