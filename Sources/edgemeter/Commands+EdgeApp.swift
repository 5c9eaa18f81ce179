import ArgumentParser
import Foundation
import EdgeMeterSystem
import EdgeMeterHTTP
import EdgeApp

/// `edgemeter serve edge-app`: the vehicle-assistance service the migration experiments move.
struct ServeEdgeAppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-app",
        abstract: "The edge app: driving advice from front/rear distances and the cloud's road status.",
        discussion: """
        POST /drive with {"front_distance": METRES, "rear_distance": METRES} answers \
        {"edge_response": {"acceleration": "brake" or "keep going", "steering": ...}, \
        "cloud_response": "", "node": NODE} and the header X-Edgemeter-Node: NODE, so a client \
        can record which node answered. Rule: brake when the front distance is below the stopping \
        distance at the speed limit (1 s reaction plus braking at 7 m/s², 58.07 m at 22.36 m/s), or \
        below twice that while the crosswalk or the intersection is occupied; be careful while \
        steering when the rear distance is below 1 s at the speed limit or the occupation is 80 % \
        or more. The road status is fetched from --cloud before listening and every --refresh. \
        Errors: 400 names the bad field, 503 when no road status could be fetched. Stops on Ctrl-C \
        or SIGTERM.

        Examples:
          edgemeter serve cloud-db --port 8001
          edgemeter serve edge-app --node node_1 --cloud http://127.0.0.1:8001
          curl -d '{"front_distance":30,"rear_distance":50}' 127.0.0.1:8000/drive
        """
    )

    @Option(help: "Address to listen on (0.0.0.0 to accept connections from other hosts).") var host: String = "127.0.0.1"

    @Option(help: "Port (0 picks a free one).") var port: Int = 8000

    @Option(help: ArgumentHelp("Name of the node this instance runs on, echoed in every answer.", valueName: "NAME")) var node: String = "node_1"

    @Option(help: ArgumentHelp("The cloud database's URL (its /status when no path is given).", valueName: "URL")) var cloud: String = "http://127.0.0.1:8001/status"

    @Option(help: ArgumentHelp("How often the road status is fetched again.", valueName: "DURATION")) var refresh: String = "1s"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Extra time spent on every request (emulates a loaded node).", valueName: "DURATION")) var processingDelay: String = "0"

    func cloudTarget() throws -> HTTPTarget {
        var t: HTTPTarget
        do { t = try HTTPTarget(url: cloud) } catch { throw ValidationError("--cloud: \(error)") }
        if t.path == "/" { t.path = "/status" }
        return t
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535, got \(port)") }
        guard !node.isEmpty, node.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
            throw ValidationError("--node must be a name of letters, digits, _, - or ., such as node_1; got \"\(node)\"")
        }
        _ = try cloudTarget()
        let r = try durationArgument(refresh, flag: "--refresh")
        guard r > .zero else { throw ValidationError("--refresh must be longer than 0 s, such as 1s") }
        _ = try durationArgument(processingDelay, flag: "--processing-delay")
    }

    func run() async throws {
        let cloud = try cloudTarget()
        let every = try durationArgument(refresh, flag: "--refresh")
        let delay = try durationArgument(processingDelay, flag: "--processing-delay")
        try await serveUntilSignal("the edge app") {
            try await EdgeAppServer.startEdgeApp(host: host, port: port, node: node, cloud: cloud, refresh: every, processingDelay: delay)
        } listening: { "edge-app \(node) listening on http://\(host):\($0)/drive (road status from \(cloud))" }
    }
}

/// `edgemeter serve cloud-db`: the road status the edge app reads.
struct ServeCloudDBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud-db",
        abstract: "The cloud database: the road status the edge app reads (GET, POST or PUT /status).",
        discussion: """
        GET /status answers {"speed_limitation": 22.36, "crosswalk": "free", "occupation": 90, \
        "intersection": "free"} (speed in m/s, occupation in %, the lab's values). POST or PUT \
        /status with some of these fields updates them and answers {"message": "update \
        successful"}; a wrong field gets 400 naming it and changes nothing. Stops on Ctrl-C or \
        SIGTERM.

        Examples:
          edgemeter serve cloud-db --port 8001
          curl -X PUT -d '{"crosswalk":"occupied"}' 127.0.0.1:8001/status
        """
    )

    @Option(help: "Address to listen on (0.0.0.0 to accept connections from other hosts).") var host: String = "127.0.0.1"

    @Option(help: "Port (0 picks a free one).") var port: Int = 8001

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535, got \(port)") }
    }

    func run() async throws {
        try await serveUntilSignal("the cloud database") {
            try await EdgeAppServer.startCloudDB(host: host, port: port)
        } listening: { "cloud-db listening on http://\(host):\($0)/status" }
    }
}

/// Starts a server (a start error is a usage error), prints `listening(port)` on stdout, serves
/// until SIGINT or SIGTERM, then stops it gracefully.
private func serveUntilSignal(_ what: String, start: () async throws -> RunningEdgeServer,
                              listening: (Int) -> String) async throws {
    let server: RunningEdgeServer
    do { server = try await start() } catch { throw usageError("\(error)") }
    print(listening(server.port))
    fflush(nil)
    await waitForSignal(stopping: what)
    await server.stop()
}

/// Waits for SIGINT or SIGTERM.
private func waitForSignal(stopping what: String) async {
    let (signals, trap) = SignalTrap.stream()
    for await name in signals {
        note("edgemeter: \(name) received, stopping \(what)")
        break
    }
    trap.cancel()
}

/// `edgemeter vehicle URL`: the vehicle's open-loop client of the edge app.
struct VehicleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vehicle",
        abstract: "Drive the edge app at a fixed rate and record each answer's delay, node and failure.",
        discussion: """
        Sends POST {"front_distance": ..., "rear_distance": ...} to URL at --rate requests per second \
        for --duration, open loop: request k is due at k / rate whatever the earlier answers do, and \
        its delay runs from that due time (not from when it was sent) to the answer's last byte, so a \
        stalled server is not hidden (coordinated-omission corrected, as `load -R`). Each answer's \
        X-Edgemeter-Node header names the node that answered. Prints the count, failures, delay \
        percentiles and requests per node; --csv writes one row per request. Exit status 1 when a \
        request failed.

        Examples:
          edgemeter vehicle http://127.0.0.1:8000/drive --rate 50 --duration 10s
          edgemeter vehicle http://127.0.0.1:8000/drive --rate 200 --csv v.csv
        """
    )

    @Argument(help: "The edge app's URL (…/drive).") var url: String

    @Option(help: ArgumentHelp("Requests per second.", valueName: "R")) var rate: Double = 10

    @Option(parsing: .unconditional, help: ArgumentHelp("How long requests are due.", valueName: "DURATION")) var duration: String = "10s"

    @Option(parsing: .unconditional, help: ArgumentHelp("Longest wait for one request.", valueName: "DURATION")) var timeout: String = "1s"

    @Option(help: ArgumentHelp("At most this many connections; a request due while all are busy waits and keeps its due time (default: a new connection whenever none is idle).", valueName: "N")) var connections: Int?

    @Option(help: ArgumentHelp("Write one row per request to this CSV file.", valueName: "FILE")) var csv: String?

    func options() throws -> VehicleOptions {
        let target: HTTPTarget
        do { target = try HTTPTarget(url: url) } catch { throw ValidationError("URL: \(error)") }
        var o = VehicleOptions(target: target, rate: rate, duration: try durationArgument(duration, flag: "--duration"))
        o.timeout = try durationArgument(timeout, flag: "--timeout")
        o.connections = connections
        if let p = o.problem { throw ValidationError(p) }
        return o
    }

    func validate() throws { _ = try options() }

    func run() async throws {
        let o = try options()
        let records = await VehicleProbe.run(o)
        print(VehicleProbe.summary(records, options: o), terminator: "")
        if let csv {
            do {
                try VehicleProbe.csv(records).write(toFile: csv, atomically: true, encoding: .utf8)
            } catch {
                throw usageError("cannot write --csv \(csv) (\(error.localizedDescription)); give a path in a writable directory")
            }
            print("per request: \(csv)")
        }
        if records.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }
}
