import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun

private let footprint = FootprintScenario.declaration

struct FootprintCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(footprint,
        abstract: "Memory, CPU, disk, network and latency of one workload as a process, as containers and as a VM.",
        discussion: """
        Deploys one service (default: the calculator's sum service, `edgemeter serve calculator \
        --role sum`) as each DEPLOYMENT in turn, reads its counters every second while idle for \
        --idle, then while an open-loop load sends --rate requests/s for --duration, and reports \
        per deployment: memory idle and loaded (workload vs the engine's shim or monitor), CPU seconds per \
        1000 requests, image size and writable layer, bytes and packets per request on the \
        deployment's interface, and p50/p99 latency, with ratios to the process. Traffic goes \
        only to 127.0.0.1 and to the containers this run starts. --restart also restarts the \
        service in place under a client sending a request every --restart-interval and reports \
        the interruption. What each figure covers: docs/footprint.md.

        Deployments: process, docker, podman, lxc, and qemu (a TCG VM whose initramfs carries a \
        stripped copy of the edgemeter binary and its libraries; 512 MiB for the calculator, 256 \
        MiB for busybox workloads). --workload httpd runs busybox httpd in every deployment. \
        Engines: scripts/setup-engines.sh; image with edgemeter inside: `edgemeter image build`.

        Exit status: 0 when every deployment was measured, 1 when one was not, 2 for usage \
        errors or when none could run, 130 when stopped by Ctrl-C or SIGTERM.

        Examples:
          edgemeter footprint process docker podman
          edgemeter footprint process docker -r 500 -d 20s
          edgemeter footprint docker --restart --restart-interval 5ms
          edgemeter footprint process docker --path /healthz
          edgemeter footprint process docker podman lxc qemu --restart
          edgemeter footprint process docker lxc qemu --workload httpd
        """
    )

    @Argument(help: footprint.help("deployments"))
    var deployments: [String] = []

    @Option(footprint, "workload") var workload: String?
    @Option(footprint, "rate", parsing: .unconditional) var rate: String?
    @Option(footprint, "duration") var duration: String?
    @Option(footprint, "idle") var idle: String?
    @Option(footprint, "connections", parsing: .unconditional) var connections: String?
    @OptionGroup var workloadImage: WorkloadImageOptions<FootprintCommand>
    @Option(footprint, "binary") var binary: String?
    @OptionGroup var endpoint: WorkloadEndpointOptions<FootprintCommand>
    @Flag(footprint, "restart") var restart = false
    @Option(footprint, "restart_interval") var restartInterval: String?

    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { footprint }

    var parameters: RawParameters {
        var r = endpoint.add(to: workloadImage.add(to: RawParameters())).setting([
            "workload": workload, "rate": rate, "duration": duration, "idle": idle, "connections": connections,
            "binary": binary, "restart_interval": restartInterval,
        ])
        r.list("deployments", deployments)
        r.flag("restart", restart)
        return r
    }

    static func resolve(_ s: ValidatedScenario) throws -> FootprintConfig { try FootprintScenario.config(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        var outcome: FootprintScenario.Outcome?
        var notRun: String?
        let result = try await runMeasured(name: "footprint-" + c.deployments.map(\.rawValue).joined(separator: "-"), options: run) { ctx, dir in
            do {
                outcome = try await FootprintScenario.run(c, scenario: "footprint", ctx: ctx)
            } catch let e as ScenarioNotRun {
                note("edgemeter: \(e.reason)")
                notRun = e.reason
                dir.addNote(ScenarioNote(scenario: "footprint", status: "not run", reason: e.reason))
                if !ctx.stop.isStopped { throw ExitCode(2) }
            }
        }
        if let o = outcome, !run.json {
            print(FootprintScenario.table(o.figures, config: c, notRun: o.notRun))
            if c.restart { print(FootprintScenario.restartTable(o.restarts, interval: c.restartInterval)) }
        }
        reportLine(result.directory, complete: result.complete)
        if !result.complete { throw ExitCode(130) }
        if notRun != nil || !(outcome?.notRun.isEmpty ?? true) { throw ExitCode(1) }
    }
}
