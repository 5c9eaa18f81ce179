import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterAgent
import EdgeMeterSystem

/// `edgemeter agent --config FILE`: probes continuously, serves /metrics and /probe.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Probe continuously; serve Prometheus /metrics and a blackbox-style /probe.",
        discussion: """
        Runs the configuration's probes (suite kinds ping, tcping, http, calc, and \
        vehicle) every interval until SIGINT/SIGTERM, and serves on one port \
        (default 127.0.0.1:9427): GET /metrics (latency histograms, attempts, loss \
        and errors per target and phase), GET /probe?target=...&module=icmp|\
        tcp_connect|http_2xx (blackbox_exporter's contract; only targets inside \
        probe_cidrs), GET /healthz. With `controller:` it posts each window's delay \
        summaries to the controller's POST /delays with a bearer token. See \
        docs/agent.md for the file format and a Prometheus scrape configuration.

        With --rounds N every probe runs N rounds and the agent exits: with \
        `controller:` the whole run is posted as one window first (exit 1 when \
        that post fails). `edgemeter matrix` runs its agents this way.

        Examples:
          edgemeter agent --config agent.yaml
          edgemeter agent --config agent.yaml --listen 127.0.0.1:0
          edgemeter agent --config agent.yaml --check
          edgemeter agent --config agent.yaml --rounds 20
        """
    )

    @Option(help: ArgumentHelp("The agent configuration (YAML).", valueName: "FILE")) var config: String

    @Option(help: ArgumentHelp("Listen here instead of the file's `listen` (port 0: a free one).", valueName: "HOST:PORT")) var listen: String?

    @Flag(help: "Check the configuration, print what it runs, and exit.") var check = false

    @Option(help: ArgumentHelp("Run every probe N rounds, post them as one window, and exit.", valueName: "N")) var rounds: Int?

    func validate() throws {
        if let rounds, rounds < 1 { throw ValidationError("--rounds must be a positive integer, got \(rounds)") }
    }

    func run() async throws {
        let c: AgentConfig
        do { c = try AgentConfigLoader.load(file: config) } catch { throw usageError("\(error)") }
        var host: String?, port: Int?
        if let listen {
            guard let hp = AgentConfigLoader.listenAddress(listen) else {
                throw usageError("--listen must be HOST:PORT such as 127.0.0.1:9427, got \"\(listen)\"")
            }
            (host, port) = hp
        }
        if check {
            print("\(config): \(c.probes.count) probes, \(c.targetCount) targets; listen \(host ?? c.listenHost):\(port ?? c.listenPort); "
                  + "probe_cidrs \(c.probeCIDRs.isEmpty ? "none" : c.probeCIDRs.map(\.text).joined(separator: ", "))"
                  + (c.controller.map { "; push to \($0.url) every \(KindDeclaration.describe(.duration($0.window)))" } ?? ""))
            for p in c.probes {
                print("  \(p.name): \(p.kind) every \(KindDeclaration.describe(.duration(p.interval))): \(p.targets.map { $0.name == $0.address ? $0.name : "\($0.name) (\($0.address))" }.joined(separator: ", "))")
            }
            return
        }
        let onLoops = Agent.serveAsyncWorkOnEventLoops()
        let agent: Agent
        do { agent = try Agent(config: c, rounds: rounds, log: { note("edgemeter agent: " + $0) }) } catch { throw usageError("\(error)") }
        do { try await agent.start(host: host, portOverride: port) } catch { throw usageError("\(error)") }
        if !onLoops { note("edgemeter agent: async work stays on Swift's cooperative pool (NIO's executor take-over was refused)") }
        note("edgemeter agent: \(c.probes.count) probes, \(c.targetCount) targets; serving \(agent.url)/metrics and /probe"
             + (c.controller.map { "; pushing to \($0.url)" } ?? ""))
        if rounds != nil {
            let pushed = await agent.finishRounds()
            await agent.stop()
            switch pushed {
            case .success(let answer)?: note("edgemeter agent: \(rounds!) rounds done; posted, the controller answered: \(answer)")
            case .failure(let e)?: note("edgemeter agent: \(rounds!) rounds done; the post failed: \(e)"); throw ExitCode(1)
            case nil: note("edgemeter agent: \(rounds!) rounds done")
            }
            return
        }
        let (signals, trap) = SignalTrap.stream()
        for await name in signals {
            note("edgemeter agent: \(name) received, stopping")
            break
        }
        trap.cancel()
        await agent.stop()
    }
}
