import ArgumentParser
import Foundation
import Logging
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterController

/// `edgemeter controller`: the migration controller (docs/migration.md, "The controller").
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run the migration controller: the lab's API, the probe loop, the policy.",
        discussion: """
        Keeps services (nodes with probe targets, active node, delay requirement, \
        hysteresis) in a SQLite file (--state), so they survive a restart. The lab's \
        endpoints: POST /service_init, POST /update_delay, GET /migrate; its own: \
        POST /delays, GET /status, GET /decisions, GET /metrics (Prometheus text). \
        Calls that change state need Authorization: Bearer TOKEN, the token read from \
        --token-file or EDGEMETER_CONTROLLER_TOKEN (never logged). The probe loop \
        measures every node's target each --probe-interval and decides every \
        --decide-every; a migrate decision runs the executor (dry-run: records only).

        Examples:
          export EDGEMETER_CONTROLLER_TOKEN=s3cret
          edgemeter controller --port 9000 --state /tmp/ctl.sqlite
          curl -H 'Authorization: Bearer s3cret' 127.0.0.1:9000/migrate
        """
    )

    @Option(help: "Address to listen on (127.0.0.1: this host only).")
    var host: String = "127.0.0.1"

    @Option(help: "Port (0 picks a free one).")
    var port: Int = 9000

    @Option(help: ArgumentHelp("The SQLite state file (created when missing).", valueName: "PATH"))
    var state: String = "edgemeter-controller.sqlite"

    @Option(help: ArgumentHelp("File holding the bearer token (else EDGEMETER_CONTROLLER_TOKEN).", valueName: "FILE"))
    var tokenFile: String?

    @Option(help: ArgumentHelp("How often each node's target is measured (0: no probe loop).", valueName: "DURATION"))
    var probeInterval: String = "200ms"

    @Option(help: ArgumentHelp("Longest wait for one probe before it counts as lost.", valueName: "DURATION"))
    var probeTimeout: String = "1s"

    @Option(help: ArgumentHelp("How often the probe loop decides (a multiple of --probe-interval).", valueName: "DURATION"))
    var decideEvery: String = "1s"

    @Option(help: ArgumentHelp("Executor for migrate decisions: dry-run.", valueName: "NAME"))
    var executor: String = "dry-run"

    func token() throws -> String {
        if let f = tokenFile {
            guard let text = try? String(contentsOfFile: f, encoding: .utf8) else {
                throw ValidationError("--token-file \(f) cannot be read; give a readable file holding the token")
            }
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !t.isEmpty else { throw ValidationError("--token-file \(f) is empty; write the token into it") }
            return t
        }
        guard let t = ProcessInfo.processInfo.environment["EDGEMETER_CONTROLLER_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines),
              !t.isEmpty else {
            throw ValidationError("no token: give --token-file FILE or set EDGEMETER_CONTROLLER_TOKEN; calls that change state need it")
        }
        return t
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535, got \(port)") }
        _ = try token()
        let p = try durationArgument(probeInterval, flag: "--probe-interval")
        let t = try durationArgument(probeTimeout, flag: "--probe-timeout")
        guard t > .zero else { throw ValidationError("--probe-timeout must be longer than 0 s, such as 1s") }
        let d = try durationArgument(decideEvery, flag: "--decide-every")
        if p > .zero { guard d >= p else { throw ValidationError("--decide-every must be at least --probe-interval (\(probeInterval))") } }
        guard executor == "dry-run" else {
            throw ValidationError("--executor \(executor) is not available; this build has: dry-run")
        }
    }

    func run() async throws {
        let clock = SystemClock()
        let log: @Sendable (String) -> Void = { line in
            print("\(Format.timestamp(Date())) \(line)")
            fflush(nil)
        }
        let store: ControllerStore
        let controller: MigrationController
        do {
            store = try ControllerStore(path: state)
            controller = try MigrationController(store: store, executor: DryRunExecutor(clock: clock), clock: clock, log: log)
        } catch { throw usageError("\(error)") }
        var logger = Logger(label: "edgemeter.controller")
        logger.logLevel = .error
        let server: ControllerServer.Running
        do {
            server = try await ControllerServer.start(controller: controller, token: try token(), host: host, port: port, logger: logger)
        } catch { throw usageError("\(error)") }
        let services = await controller.serviceNames
        log("controller listening on \(server.url) (state \(state): \(services.isEmpty ? "no services yet" : services.joined(separator: ", ")); "
            + "executor \(executor))")
        let interval = try durationArgument(probeInterval, flag: "--probe-interval")
        var loop: ProbeLoop?
        if interval > .zero {
            let every = try durationArgument(decideEvery, flag: "--decide-every")
            let rounds = max(1, Int((every.seconds / interval.seconds).rounded()))
            loop = ProbeLoop(controller: controller, interval: interval, timeout: try durationArgument(probeTimeout, flag: "--probe-timeout"),
                             decideEvery: rounds, log: log)
            loop?.start()
        }
        let (signals, trap) = SignalTrap.stream()
        for await name in signals {
            log("\(name) received, stopping the controller")
            break
        }
        trap.cancel()
        await loop?.stop()
        await server.stop()
    }
}
