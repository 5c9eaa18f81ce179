import ArgumentParser
import Foundation
import Logging
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterHTTP
import EdgeMeterStartup
import EdgeMeterController
import EdgeMeterRun
import EdgeApp

/// `edgemeter migrate-demo`: the migration end to end on an edge-cloud lab (docs/migration.md,
/// "End to end"): lab up, the edge app placed by the docker executor, the controller's own probe
/// loop, runtime link and requirement changes, the vehicle client through the proxy throughout.
private let migration = MigrationScenario.declaration

struct MigrateDemoCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-demo",
        abstract: "Run the delay-driven migration end to end on an edge-cloud lab.",
        discussion: """
        Builds the lab OUT/topology.yaml (edge-cloud with container nodes node_1-3 at \
        5/30/80 ms each way, cloud-db at 40 ms, the host as the vehicle), builds --image \
        from this binary, starts the controller in this process (docker executor, \
        probe loop over tcp connect to every node) and the vehicle client through the \
        proxy. Without --moves: requirement 20ms@p90 with the app on node_2 (moves to \
        node_1), node_1's link to 60 ms (no node meets 20 ms: alert, moves to node_2, \
        the least-bad), best node is active (the lab's message, still 20 ms), \
        requirement 100 ms (stays: met). With --when-none-meets alert-only the second \
        step only alerts and the 100 ms requirement moves it. With --moves N: node_1 and \
        node_2 swap 5 and 30 ms N times, one move each. Writes report.md, moves.csv, \
        decisions.csv, delay-windows.csv, vehicle.csv, events.csv, \
        controller.log, decisions.json. Exit 1 when a request failed or a step did not happen.

        Examples:
          edgemeter migrate-demo --out /tmp/mig-e2e
          edgemeter migrate-demo --moves 10 --out /tmp/mig-bench
        """
    )

    @Option(help: ArgumentHelp("Directory for the reports (created).", valueName: "DIR"))
    var out: String

    // The options come from the `migration` kind's declaration (Scenario+Migration.swift): the lab
    // suite's `kind: migration` scenario runs this command with the same parameters.
    @Option(migration, "moves", parsing: .unconditional) var moves: String?
    @Option(migration, "rate", parsing: .unconditional) var rate: String?
    @Option(migration, "image") var image: String?
    @Option(migration, "lab_name") var name: String?
    @Option(migration, "subnet") var subnet: String?
    @Option(migration, "step_timeout") var stepTimeout: String?
    @Option(migration, "when_none_meets") var whenNoneMeets: String?

    @Flag(name: .customLong("print-config"), help: .hidden)
    var printConfig = false

    static var declaration: KindDeclaration { migration }

    var parameters: RawParameters {
        RawParameters().setting(["moves": moves, "rate": rate, "image": image, "lab_name": name, "subnet": subnet,
                                 "step_timeout": stepTimeout, "when_none_meets": whenNoneMeets])
    }

    static func resolve(_ s: ValidatedScenario) throws -> MigrationConfig { MigrationConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: printConfig) else { return }
        guard getuid() == 0 else { throw usageError("migrate-demo builds a lab and containers: run it as root") }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let demo = MigrationDemo(config: c, out: out, binary: runningBinaryPath(), stepTimeout: c.stepTimeout)
        let ok = try await demo.run()
        if !ok { throw ExitCode(1) }
    }
}

/// Lines and events collected from several tasks.
final class DemoJournal: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    private var events: [TimelineEvent] = []

    func log(_ line: String) {
        let text = "\(Format.timestamp(Date())) \(line)"
        lock.withLock { lines.append(text) }
        print(text)
        fflush(nil)
    }

    func event(_ what: String) {
        let e = TimelineEvent(atNanoseconds: SystemClock().monotonicNanoseconds(), what: what)
        lock.withLock { events.append(e) }
        log("event: \(what)")
    }

    var allLines: [String] { lock.withLock { lines } }
    var allEvents: [TimelineEvent] { lock.withLock { events } }
}

final class StopBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    func stop() { lock.withLock { stopped = true } }
    var isStopped: Bool { lock.withLock { stopped } }
}

struct MigrationDemo {
    let config: MigrationConfig
    let out: String
    let binary: String
    let stepTimeout: Duration
    let journal = DemoJournal()
    let service = "edge-app"
    let servicePort = 8000
    let probePort = 7070
    let token = "demo-\(UInt64.random(in: 0...UInt64.max))"
    var nodes: [String] { ["node_1", "node_2", "node_3"] }
    func address(_ node: String) -> String {
        switch node {
        case "node_1": "\(config.subnet).1"
        case "node_2": "\(config.subnet).2"
        case "node_3": "\(config.subnet).3"
        default: "\(config.subnet).100"
        }
    }

    /// The lab: edge-cloud's placement (benchmarks/topologies/edge-cloud.yaml) with the edge nodes as
    /// containers (so the docker executor's service containers can join their network namespaces)
    /// and the host on the network as the vehicle (its link is not impaired).
    func topologyYAML() -> String {
        var y = """
        # Written by `edgemeter migrate-demo`: edge-cloud with container nodes and the host as the vehicle.
        name: \(config.labName)
        description: migrate-demo, nodes at 5/30/80 ms each way, cloud at 40 ms
        networks:
          - {name: edge, subnet: \(config.subnet).0/24, host: \(config.subnet).254}
        nodes:

        """
        for (node, delay) in zip(nodes, [5, 30, 80]) {
            y += """
              - name: \(node)
                kind: container
                image: \(config.image)
                interfaces:
                  - {network: edge, address: \(address(node)), impair: {delay: \(delay)ms}}
                workload: [httpd, -f, -p, "\(probePort)", -h, /]
                ports: [\(probePort)]

            """
        }
        y += """
          - name: cloud
            interfaces:
              - {network: edge, address: \(address("cloud")), impair: {delay: 40ms}}
            workload: [edgemeter, serve, cloud-db, --host, 0.0.0.0, --port, "8001"]
            ports: [8001]

        """
        return y
    }

    func edgemeter(_ args: [String], timeout: Duration = .seconds(120)) async throws -> CommandResult {
        let r = try await Command.run([binary] + args, timeout: timeout)
        journal.log("$ edgemeter \(args.joined(separator: " ")) → exit \(r.status)\(r.ok ? "" : ": " + r.combined.suffix(600))")
        return r
    }

    func linkSet(_ node: String, delayMilliseconds: Int) async throws {
        let r = try await edgemeter(["lab", "link", "set", config.labName, node, "--delay", "\(delayMilliseconds)ms"], timeout: .seconds(20))
        guard r.ok else { throw usageError("lab link set \(node) failed: \(r.combined)") }
        journal.event("\(node) link \(delayMilliseconds) ms each way")
    }

    /// Calls the controller's API with the bearer token; returns the status and the body.
    func api(_ port: Int, _ method: String, _ path: String, json: String? = nil) async throws -> (Int, String) {
        let r = try await DelayFeed.exchange(HTTPTarget(host: "127.0.0.1", port: port, path: "/"), method: method, path: path, token: token,
                                             body: Array((json ?? "").utf8), timeout: .seconds(30))
        journal.log("\(method) \(path)\(json.map { " " + $0 } ?? "") → \(r.status) \(r.bodyText.prefix(300))")
        return (r.status, r.bodyText)
    }

    /// Waits until `check` holds (polled every 100 ms) or the step timeout passes.
    func waitUntil(_ what: String, _ check: () async -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + stepTimeout
        while clock.now < deadline {
            if await check() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        journal.log("step failed: \(what) did not happen within \(stepTimeout)")
        return false
    }

    func activeNode(_ c: MigrationController) async -> String? { await c.service(service)?.activeNode }

    func hasDecision(_ c: MigrationController, _ kind: String, after t: Int64) async -> Bool {
        let ds = (try? await c.decisions(service: service, limit: 50)) ?? []
        return ds.contains { $0.decision.kind.rawValue == kind && $0.decision.input.nowNanoseconds > t }
    }

    func run() async throws -> Bool {
        let o = config
        let client = DockerAPIClient(endpoint: .unix(path: DockerEndpoint.defaultSocket))
        do { try await client.ping() } catch {
            throw usageError("dockerd does not answer on \(DockerEndpoint.defaultSocket) (\(error)): start it (scripts/setup-engines.sh)")
        }
        journal.log("building image \(o.image) from \(binary)")
        do {
            _ = try await ImageBuilder(reference: o.image, binaries: [(source: binary, destination: "/usr/local/bin/edgemeter")]).build(client: client)
        } catch { throw usageError("building \(o.image): \(error)") }
        let topoPath = (out as NSString).appendingPathComponent("topology.yaml")
        try topologyYAML().write(toFile: topoPath, atomically: true, encoding: .utf8)
        let up = try await edgemeter(["lab", "up", topoPath], timeout: .seconds(180))
        guard up.ok else { throw usageError("lab up \(topoPath) failed: \(up.combined)") }
        var ok = true
        do {
            ok = try await runInLab(client)
        } catch {
            journal.log("error: \(error)")
            _ = try? await edgemeter(["lab", "down", o.labName])
            writeLog()
            throw error
        }
        let down = try await edgemeter(["lab", "down", o.labName])
        if !down.ok { ok = false }
        writeLog()
        return ok
    }

    func writeLog() {
        try? (journal.allLines.joined(separator: "\n") + "\n").write(toFile: (out as NSString).appendingPathComponent("controller.log"),
                                                                     atomically: true, encoding: .utf8)
    }

    func runInLab(_ client: DockerAPIClient) async throws -> Bool {
        let o = config
        let clock = SystemClock()
        let proxy = SwitchableProxy()
        let proxyPort = try await proxy.start(host: "127.0.0.1", port: 0)
        var cfg = DockerExecutor.Configuration(
            image: o.image,
            command: ["/usr/local/bin/edgemeter", "serve", "edge-app", "--host", "0.0.0.0", "--port", "\(servicePort)", "--node", "{to}",
                      "--cloud", "http://\(address("cloud")):8001/status"],
            servicePort: servicePort, namePrefix: o.labName)
        for n in nodes {
            cfg.nodeNetworks[n] = .init(networkMode: "container:edgemeter-\(o.labName)-\(n)", address: address(n))
        }
        let docker = DockerExecutor(client: client, proxy: proxy, configuration: cfg, clock: clock)
        let log: @Sendable (String) -> Void = { [journal] in journal.log($0) }
        let executor = PlacingDockerExecutor(docker, log: log)
        let statePath = (out as NSString).appendingPathComponent("controller.sqlite")
        try? FileManager.default.removeItem(atPath: statePath)
        let store = try ControllerStore(path: statePath)
        let controller = try MigrationController(store: store, executor: executor, clock: clock, log: log)
        var logger = Logger(label: "edgemeter.migrate-demo")
        logger.logLevel = .error
        let server = try await ControllerServer.start(controller: controller, token: token, host: "127.0.0.1", port: 0, logger: logger)
        journal.log("controller on \(server.url), proxy (the client path) on 127.0.0.1:\(proxyPort)")
        let loop = ProbeLoop(controller: controller, interval: .milliseconds(100), timeout: .seconds(1), decideEvery: 5, log: log)
        let vehicleStop = StopBox()
        var vehicleTask: Task<[VehicleRecord], Never>?
        var vehicleStart: Int64 = 0
        var stepsOK = true
        var vopts = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: proxyPort, path: "/drive"), rate: o.rate, duration: .seconds(3600))
        vopts.timeout = .seconds(2)
        // At most 32 connections to the proxy (≈ 5× what 100/s at a 60 ms round trip keeps busy): a
        // request due while all are busy waits and keeps its due time. Without a bound, a stalled
        // host makes the open-loop client open a connection per due request, each costing the proxy
        // a backend handshake through the impaired link, which feeds the stall.
        vopts.connections = 32
        do {
            let moves = o.moves
            let start = "node_2"
            let requirement = 20
            let nodesJSON = nodes.enumerated().map { i, n in
                "{\"name\": \"\(n)\", \"target\": \"tcp://\(address(n)):\(probePort)\", \"move_cost_ms\": \(300 + 100 * i)}"
            }.joined(separator: ", ")
            let (s, _) = try await api(server.port, "POST", "/service_init", json: """
                {"name": "\(service)", "active_node": "\(start)", "requirement": "\(requirement)ms@p90", "nodes": [\(nodesJSON)], \
                "window_s": 3, "dwell_s": 1, "cooldown_s": 5, "min_samples": 10, "max_age_s": 2, "when_none_meets": "\(o.whenNoneMeets)"}
                """)
            guard s == 200 else { throw usageError("service_init answered \(s): see controller.log") }
            await executor.place(service: service, on: start)
            guard executor.inner.placement(of: service) != nil else { throw usageError("the edge app could not be placed on \(start): see controller.log") }
            journal.event("edge app on \(start) with \(requirement)ms@p90 required")
            let vo = vopts
            // Request 0 is due 20 ms from now: no request is due before the client runs (no burst of late ones).
            let first = clock.monotonicNanoseconds() + 20_000_000
            vehicleStart = first
            vehicleTask = Task { await VehicleProbe.run(vo, startNanoseconds: first, stop: { vehicleStop.isStopped }) }
            try await Task.sleep(for: .milliseconds(500))
            loop.start()
            if moves == 0 {
                stepsOK = try await (o.whenNoneMeets == "alert-only" ? scenarioAlertOnly(controller, server.port) : scenario(controller, server.port))
            } else {
                stepsOK = try await benchmark(controller, moves: moves)
            }
            try await Task.sleep(for: .seconds(1))
        } catch {
            journal.log("error: \(error)")
            stepsOK = false
        }
        vehicleStop.stop()
        let records = await vehicleTask?.value ?? []
        await loop.stop()
        let decisionsJSON = (try? await api(server.port, "GET", "/decisions?limit=1000").1) ?? "[]"
        let decisions = (try? await controller.decisions(service: service, limit: 100_000)) ?? []
        await docker.removeAll()
        await server.stop()
        await proxy.stop()
        return try report(records: records, vehicleStart: vehicleStart, decisions: decisions, decisionsJSON: decisionsJSON, stepsOK: stepsOK)
    }

    /// The issue's sequence: 20ms@p90 on node_2 → node_1 (migrate); node_1 to 60 ms → node_2 (alert:
    /// no node meets 20 ms, node_2 is the least-bad); best node is active (node_2, still 20 ms, the
    /// lab's message); 100 ms → stays on node_2 (requirement met).
    func scenario(_ c: MigrationController, _ port: Int) async throws -> Bool {
        guard await waitUntil("move to node_1", { await activeNode(c) == "node_1" }) else { return false }
        try await Task.sleep(for: .seconds(2))
        try await linkSet("node_1", delayMilliseconds: 60)
        guard await waitUntil("move to node_2 after node_1 went to 60 ms", { await activeNode(c) == "node_2" }) else { return false }
        let ds = (try? await c.decisions(service: service, limit: 50)) ?? []
        guard let move = ds.first(where: { $0.decision.movesService && $0.decision.target == "node_2" }), move.decision.kind == .alert else {
            journal.log("step failed: the move to node_2 was not an alert (no node meets 20 ms)")
            return false
        }
        let t1 = move.decision.input.nowNanoseconds
        guard await waitUntil("best node is active (node_2 at 20 ms)", { await hasDecision(c, "stay_best_is_active", after: t1) }) else { return false }
        // GET /migrate decides afresh. Right after a move the active node's window can hold fewer
        // samples than the policy's minimum (a busy host's probe loop falls behind): that answer,
        // `stay_insufficient_data`, is no answer to this step, so ask again once more samples came.
        var body = ""
        let askUntil = ContinuousClock.now + .seconds(10)
        while true {
            body = try await api(port, "GET", "/migrate").1
            guard body.contains("stay_insufficient_data"), ContinuousClock.now < askUntil else { break }
            journal.log("GET /migrate: not enough samples in the active node's window yet; asking again in 300 ms")
            try await Task.sleep(for: .milliseconds(300))
        }
        guard body.contains("can't migrate service! Best node is the one active node_2") else {
            journal.log("step failed: GET /migrate did not answer the lab's message for node_2")
            return false
        }
        guard try await api(port, "POST", "/update_delay", json: "{\"delay\": 100, \"percentile\": \"p90\"}").0 == 200 else { return false }
        journal.event("requirement 100ms@p90")
        let t2 = SystemClock().monotonicNanoseconds()
        guard await waitUntil("stay_requirement_met at 100 ms", { await hasDecision(c, "stay_requirement_met", after: t2) }) else { return false }
        try await Task.sleep(for: .seconds(3))
        let stillThere = await activeNode(c) == "node_2"
        let moved = ((try? await c.decisions(service: service, limit: 100)) ?? []).contains {
            $0.decision.input.nowNanoseconds > t2 && $0.decision.movesService
        }
        if !stillThere || moved { journal.log("step failed: the app did not stay on node_2 at 100ms@p90"); return false }
        return true
    }

    /// With `--when-none-meets alert-only`: 20ms@p90 on node_2 → node_1; node_1 to 60 ms → alert; 100 ms → node_2; stays; 50 ms → best is active.
    func scenarioAlertOnly(_ c: MigrationController, _ port: Int) async throws -> Bool {
        guard await waitUntil("move to node_1", { await activeNode(c) == "node_1" }) else { return false }
        try await Task.sleep(for: .seconds(2))
        try await linkSet("node_1", delayMilliseconds: 60)
        let t1 = SystemClock().monotonicNanoseconds()
        guard await waitUntil("alert after node_1 went to 60 ms", { await hasDecision(c, "alert", after: t1) }) else { return false }
        guard try await api(port, "POST", "/update_delay", json: "{\"delay\": 100, \"percentile\": \"p90\"}").0 == 200 else { return false }
        journal.event("requirement 100ms@p90")
        guard await waitUntil("move to node_2", { await activeNode(c) == "node_2" }) else { return false }
        let t2 = SystemClock().monotonicNanoseconds()
        try await Task.sleep(for: .seconds(3))
        let stillThere = await activeNode(c) == "node_2"
        let met = await hasDecision(c, "stay_requirement_met", after: t2)
        if !(stillThere && met) { journal.log("step failed: the app did not stay on node_2 with stay_requirement_met"); return false }
        guard try await api(port, "POST", "/update_delay", json: "{\"delay\": 50, \"percentile\": \"p90\"}").0 == 200 else { return false }
        journal.event("requirement 50ms@p90")
        let t3 = SystemClock().monotonicNanoseconds()
        guard await waitUntil("best node is active", { await hasDecision(c, "stay_best_is_active", after: t3) }) else { return false }
        let (_, body) = try await api(port, "GET", "/migrate")
        return body.contains("can't migrate service! Best node is the one active node_2")
    }

    /// N moves: node_1 and node_2 swap 5 and 30 ms each way; the app follows the faster one.
    func benchmark(_ c: MigrationController, moves: Int) async throws -> Bool {
        var expected = "node_1"
        for i in 1...moves {
            guard await waitUntil("move \(i) to \(expected)", { await activeNode(c) == expected }) else { return false }
            journal.log("move \(i) done: on \(expected)")
            if i == moves { break }
            // Let the cooldown (5 s) pass before the next violation, so each move is driven by its own swap.
            try await Task.sleep(for: .seconds(4))
            let other = expected == "node_1" ? "node_2" : "node_1"
            try await linkSet(expected, delayMilliseconds: 30)
            try await linkSet(other, delayMilliseconds: 5)
            expected = other
        }
        return true
    }

    func report(records: [VehicleRecord], vehicleStart: Int64, decisions: [DecisionRecord], decisionsJSON: String, stepsOK: Bool) throws -> Bool {
        let o = config
        func write(_ file: String, _ text: String) throws {
            try text.write(toFile: (out as NSString).appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let answers = records.map { ClientAnswer(endNanoseconds: vehicleStart + $0.endNanoseconds, node: $0.node, ok: $0.ok) }
        let events = journal.allEvents
        let moves = MigrationTimeline.moves(decisions: decisions, answers: answers, events: events)
        let failed = records.filter { !$0.ok }.count
        let origin = vehicleStart
        try write("vehicle.csv", VehicleProbe.csv(records))
        try write("moves.csv", MigrationTimeline.movesCSV(moves))
        try write("decisions.csv", MigrationTimeline.decisionsCSV(decisions, originNanoseconds: origin))
        try write("delay-windows.csv", MigrationTimeline.delaysCSV(decisions, originNanoseconds: origin))
        try write("events.csv", "t_ms,event\n" + events.map { String(format: "%.1f", Double($0.atNanoseconds - origin) / 1e6) + ",\"\($0.what)\"" }
            .joined(separator: "\n") + "\n")
        try write("decisions.json", decisionsJSON)
        let expectedMoves = o.moves == 0 ? 2 : o.moves
        var notes = [
            "Lab \(o.labName): node_1/2/3 containers at 5/30/80 ms each way (round trip 10/60/160 ms), cloud-db at 40 ms; the host is the vehicle.",
            "The controller probes each node with tcp connect (one round trip) every 100 ms, decides every 500 ms; window 3 s, dwell 1 s, cooldown 5 s, min 10 samples.",
            "Decisions by kind: " + Dictionary(grouping: decisions, by: { $0.decision.kind.rawValue }).map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", ") + ".",
            "Answers per node: " + Dictionary(grouping: records.filter(\.ok), by: { $0.node ?? "?" }).map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", ") + ".",
            "Steps: \(stepsOK ? "all happened" : "NOT all happened (controller.log)"); moves \(moves.count) of \(expectedMoves) expected.",
        ]
        let reasons = Dictionary(grouping: records.filter { !$0.ok }, by: { $0.failure ?? "?" }).map { ($0.key, $0.value.count) }.sorted { $0.1 > $1.1 }
        for (why, n) in reasons.prefix(3) { notes.append("Failed \(n)×: \(why)") }
        if let best = decisions.last(where: { $0.decision.kind == .stayBestIsActive }) { notes.append("Best node is active: \"\(best.decision.reason)\"") }
        let title = o.moves == 0 ? "migrate-demo: the end-to-end scenario" : "migrate-demo: \(o.moves) moves"
        let md = MigrationTimeline.markdown(title: title, moves: moves, requests: records.count, failed: failed, rate: o.rate, notes: notes)
        try write("report.md", md)
        print(md)
        let allCompleted = moves.count == expectedMoves && moves.allSatisfy { $0.outcome == "completed" }
        return stepsOK && failed == 0 && allCompleted && !records.isEmpty
    }
}
