import Foundation
import XCTest
import NIOCore
import Hummingbird
import ServiceLifecycle
import Logging
import EdgeMeterCore
import EdgeMeterHTTP
@testable import EdgeMeterController

let testToken = "t0ken-for-tests"

/// A controller on 127.0.0.1 (port 0) over a state file in a temporary directory.
final class TestController: @unchecked Sendable {
    let dir: URL
    let statePath: String
    let clock: ManualClock
    let executor: DryRunExecutor
    var store: ControllerStore!
    var controller: MigrationController!
    var server: ControllerServer.Running!
    var logLines: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    private var lines: [String] = []
    private let lock = NSLock()

    init(dir: URL? = nil, clock: ManualClock = ManualClock(), executor: DryRunExecutor? = nil) async throws {
        self.dir = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("ctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.dir, withIntermediateDirectories: true)
        statePath = self.dir.appendingPathComponent("state.sqlite").path
        self.clock = clock
        self.executor = executor ?? DryRunExecutor(clock: clock, phaseDuration: .milliseconds(20))
        try await start()
    }

    func start() async throws {
        store = try ControllerStore(path: statePath)
        controller = try MigrationController(store: store, executor: executor, clock: clock, log: { [weak self] l in
            guard let self else { return }
            self.lock.lock(); self.lines.append(l); self.lock.unlock()
        })
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        server = try await ControllerServer.start(controller: controller, token: testToken, port: 0, logger: logger)
    }

    /// Stops the server and closes the state file (as a process exit would).
    func stop() async {
        await server.stop()
        server = nil
        controller = nil
        store = nil
    }

    struct Answer {
        var status: Int
        var text: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
    }

    func call(_ method: String, _ path: String, json body: Any? = nil, raw: String? = nil, token: String? = testToken) async throws -> Answer {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        var bytes: [UInt8] = []
        if let raw { bytes = Array(raw.utf8) } else if let body { bytes = Array(try JSONSerialization.data(withJSONObject: body)) }
        if !bytes.isEmpty { headers.append(("Content-Type", "application/json")) }
        let addr = try await HTTPConnection.resolve(host: "127.0.0.1", port: server.port)
        let conn = try await HTTPConnection.connect(to: addr, targetName: "controller", timeout: .seconds(5))
        defer { conn.close() }
        let r = try await conn.send(HTTPRequestSpec(method: method, path: path, headers: headers, body: bytes), host: "127.0.0.1",
                                    keepAlive: false, timeout: .seconds(10))
        return Answer(status: r.response.status, text: r.response.bodyText)
    }

    /// Three nodes, active node_2, 20 ms at p90, no dwell or cooldown, 5 samples minimum.
    static func labService(active: String = "node_2", targets: [String: String] = [:], extra: [String: Any] = [:]) -> [String: Any] {
        var s: [String: Any] = [
            "name": "edge-app",
            "nodes": ["node_1", "node_2", "node_3"].map { n -> [String: Any] in
                var o: [String: Any] = ["name": n, "move_cost_ms": n == "node_1" ? 250 : 300]
                if let t = targets[n] { o["target"] = t }
                return o
            },
            "active_node": active, "requirement": "20ms@p90", "dwell_s": 0, "cooldown_s": 0, "min_samples": 5,
        ]
        for (k, v) in extra { s[k] = v }
        return s
    }

    func postSamples(_ levels: [String: Double], count: Int = 10) async throws -> Answer {
        let rows = levels.sorted { $0.key < $1.key }.map { ["node": $0.key, "metric": "http_total", "samples_ms": Array(repeating: $0.value, count: count)] as [String: Any] }
        return try await call("POST", "/delays", json: ["delays": rows])
    }
}

/// A loopback HTTP server whose `GET /healthz` answers after `delay`.
final class SlowServer: @unchecked Sendable {
    let port: Int
    private let task: Task<Void, Error>
    private let group: ServiceGroup

    init(delay: Duration) async throws {
        let router = Router()
        router.get("/healthz") { _, _ -> String in
            if delay > .zero { try await Task.sleep(for: delay) }
            return "ok\n"
        }
        let (ports, cont) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "slow")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ch in cont.yield(ch.localAddress?.port ?? 0); cont.finish() }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        self.group = group
        task = Task { try await group.run() }
        var p = 0
        for await x in ports { p = x; break }
        port = p
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
