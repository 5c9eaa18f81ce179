import ArgumentParser
import EdgeMeterLab
import Foundation
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterStartup
import EdgeMeterSystem

private let startup = StartupScenario.declaration

struct StartupCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(startup,
        abstract: "Container and VM startup phases: create, start, running, ready, stop, remove, total.",
        discussion: """
        Runs the same workload RUNS times per backend and records every phase of every run (failed \
        runs too, with their reason). Backends: docker (Engine API over DOCKER_HOST or \
        /var/run/docker.sock), lxc (busybox template, bridge edgemeter-br0 created if missing), qemu \
        (cached Debian kernel + edgemeter's busybox initramfs, QMP), cmd (any tool by template), \
        podman (its Docker-compatible API at /run/podman/podman.sock), runc and crun (the OCI \
        runtime driven directly, no daemon: a bundle built from edgemeter-base's files; for tcp, \
        http and icmp a veth into bridge edgemeter-oci0, created when missing). Several backends in one call add a \
        comparison with ratios to summary.md: docker vs podman vs runc/crun shows how much of a \
        container start is the daemon and how much the runtime.

        Ready checks: exit (workload exited 0), marker (line on the log / serial console), tcp \
        (connect to --port; for qemu through the host forward 127.0.0.1:--host-port, with the \
        guest's banner), http (GET --path = 200), icmp (echo to the container's address).

        Prepare engines once with scripts/setup-engines.sh (dockerd, lxcbr0, guest kernel cache) and \
        the image with `edgemeter image build`. Leftovers of killed runs: `edgemeter cleanup`.

        Exit status: 0 when every run became ready, 1 when a run failed or a backend was not run, 2 for usage errors or when no backend could run, 130 when stopped by Ctrl-C or SIGTERM.

        Examples:
          edgemeter startup docker -n 20 --ready exit
          edgemeter startup docker lxc qemu -n 5 --ready tcp --accel tcg
          edgemeter startup docker --snapshot -n 5
          edgemeter startup docker podman runc crun -n 10 --ready exit
          edgemeter startup qemu --ready tcp --host-port 1234 --snapshot
          edgemeter startup cmd --start '["busybox","httpd","-f"]' --detached
          edgemeter startup cmd --start '["sleep","1"]' --ready exit -n 3
          edgemeter startup cmd --preset lxd --var image=images:alpine/3.19
        """
    )

    @Argument(help: startup.help("backend"))
    var backends: [String]

    @Option(startup, "runs", parsing: .unconditional) var runs: String?
    @Option(startup, "ready") var ready: String?
    @Option(startup, "marker") var marker: String?
    @OptionGroup var endpoint: WorkloadEndpointOptions<StartupCommand>
    @Option(startup, "timeout") var timeout: String?
    @OptionGroup var workloadImage: WorkloadImageOptions<StartupCommand>
    @Flag(startup, "snapshot") var snapshot = false
    @Option(startup, "accel") var accel: String?
    @Option(startup, "host_port", parsing: .unconditional) var hostPort: String?
    @Option(startup, "kvm_probe_timeout") var kvmProbeTimeout: String?
    @Option(startup, "bridge") var bridge: String?
    @OptionGroup var commandBackend: CommandBackendOptions

    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { startup }

    /// Every flag but the backends: each backend is one scenario with these values.
    var parameters: RawParameters {
        var r = workloadImage.add(to: endpoint.add(to: commandBackend.parameters)).setting([
            "runs": runs, "ready": ready, "marker": marker, "timeout": timeout,
            "accel": accel, "host_port": hostPort, "kvm_probe_timeout": kvmProbeTimeout, "bridge": bridge,
        ])
        r.flag("snapshot", snapshot)
        return r
    }

    static func resolve(_ s: ValidatedScenario) throws -> StartupConfig { try StartupScenario.config(s) }

    /// One configuration per backend.
    func configs() throws -> [StartupConfig] {
        try backends.map { name in
            var r = parameters
            r["backend"] = name
            do {
                return try Self.resolve(try scenario(name: "startup-\(name)", r))
            } catch let e as StartupError {
                throw ValidationError(e.message)
            }
        }
    }

    func validate() throws {
        if Set(backends).count != backends.count { throw ValidationError("each backend once, please: \(backends.joined(separator: " "))") }
        _ = try configs()
    }

    func run() async throws {
        let configs = try configs()
        if run.printConfig { return printConfigs(configs) }
        var all: [StartupScenario.BackendResult] = []
        var notRun: [String] = []
        let result = try await runMeasured(name: "startup-" + backends.joined(separator: "-"), options: run) { ctx, dir in
            for c in configs {
                if ctx.stop.isStopped { break }
                do {
                    all += try await StartupScenario.run(c, scenario: "startup-\(c.backend)", ctx: ctx, compare: false)
                } catch let e as ScenarioNotRun {
                    note("edgemeter: \(e.reason)")
                    notRun.append(e.reason)
                    dir.addNote(ScenarioNote(scenario: "startup-\(c.backend)", status: "not run", reason: e.reason))
                }
            }
            if Set(all.map(\.backend)).count >= 2 { ctx.addSection(StartupScenario.comparison(all)) }
            // No backend could run: a set-up error (exit 2), and no run directory is kept.
            if all.isEmpty && !notRun.isEmpty && !ctx.stop.isStopped { throw ExitCode(2) }
        }
        if !run.json && !all.isEmpty {
            print(StartupScenario.phaseTable(all, title: "Startup phases"))
            if Set(all.map(\.backend)).count >= 2 { print(StartupScenario.comparison(all)) }
            for (cold, snap) in zip(all, all.dropFirst()) where snap.snapshotStep != nil && snap.backend.hasPrefix(cold.backend) {
                print(StartupScenario.snapshotComparison(cold: cold, snapshot: snap))
            }
        }
        reportLine(result.directory, complete: result.complete)
        if !result.complete { throw ExitCode(130) }
        if !notRun.isEmpty || all.contains(where: { $0.okRuns < $0.attempts.count }) { throw ExitCode(1) }
    }
}

/// The options of the `cmd` backend only: a preset, or the template of each step, and their variables.
struct CommandBackendOptions: ParsableArguments {
    @Option(startup, "preset") var preset: String?
    @Option(startup, "create") var create: String?
    @Option(startup, "start") var start: String?
    @Option(startup, "running") var running: String?
    @Option(startup, "ready_command") var readyCommand: String?
    @Option(startup, "ready_output") var readyOutput: String?
    @Option(startup, "stop") var stop: String?
    @Option(startup, "remove") var remove: String?
    @Flag(startup, "detached") var detached = false
    @Option(startup, "host") var host: String?
    @Option(startup, "vars") var `var`: [String] = []

    var parameters: RawParameters {
        var r = RawParameters().setting([
            "preset": preset, "create": create, "start": start, "running": running, "ready_command": readyCommand,
            "ready_output": readyOutput, "stop": stop, "remove": remove, "host": host,
        ])
        r.flag("detached", detached)
        r.list("vars", `var`)
        return r
    }
}

struct ImageBuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build the minimal edgemeter image through the Docker Engine API (import of a tar).",
        discussion: """
        The image holds busybox-static (with its applet links), this edgemeter binary at \
        /usr/local/bin/edgemeter and every shared library `ldd` lists for it, at the same paths. \
        The startup probes and the calculator services run from it, e.g.
          docker run --rm edgemeter-base:latest edgemeter serve calculator --role ...

        With --agent the image is edgemeter-agent:latest, whose entrypoint is `edgemeter \
        agent` run as nobody (65534), arguments `--config /etc/edgemeter/agent.yaml` unless \
        given (the DaemonSet of `edgemeter k8s manifests` mounts its ConfigMap there), e.g.
          docker run -d --network host -v $PWD/a.yaml:/etc/edgemeter/agent.yaml \\
            edgemeter-agent:latest
        """
    )

    @Option(name: .long, help: "Image reference to create (default edgemeter-base:latest, with --agent edgemeter-agent:latest).")
    var tag: String?

    @Flag(name: .long, help: "Build the agent image: `edgemeter agent` as the entrypoint, non-root.")
    var agent = false

    @Option(name: .long, help: "With --agent: the port the image exposes (the agent's listen port).")
    var agentPort = 9427

    @Option(name: .long, help: "The binary to put at /usr/local/bin/edgemeter (default: this executable).")
    var binary: String?

    @Option(name: .long, help: "busybox-static binary.")
    var busybox = "/bin/busybox"

    func run() async throws {
        let exe = binary ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
        let reference = tag ?? (agent ? ImageBuilder.agentReference : ImageBuilder.defaultReference)
        let builder = ImageBuilder(reference: reference, busybox: busybox, binaries: [(source: exe, destination: "/usr/local/bin/edgemeter")],
                                   instructions: agent ? ImageBuilder.agentInstructions(port: agentPort) : [])
        let built = try await failingWithUsageError(on: StartupError.self) {
            let client = try DockerAPIClient()
            try await client.ping()
            return try await builder.build(client: client)
        }
        print("built \(built.reference) \(built.imageID) from \(built.files.count) files (\(built.tarBytes / 1_048_576) MiB tar) in \(String(format: "%.0f", built.milliseconds)) ms")
        for f in built.files { print("  \(f)") }
    }
}

struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove leftovers of killed runs: lab topologies, edgemeter-* containers (docker, podman, runc, crun), lab docker networks, snapshot images, LXC containers, QEMU VMs, OCI bundles, the edgemeter-br0 bridge, footprint iptables counting rules.",
        discussion: "The image built by `edgemeter image build` is kept. Engines that are not installed or not running are skipped."
    )

    func run() async throws {
        var removed: [String] = []
        // Lab topologies from their state files (also those whose `lab up` was killed midway).
        let lab = LabExecutor()
        for s in lab.states() {
            do {
                removed += try await lab.down(s.topology).map { "lab \(s.topology): \($0)" }
            } catch {
                note("edgemeter: \(error)")
            }
        }
        removed += lab.removeStaleTemporaries().map { "lab: \($0)" }
        if let client = try? DockerAPIClient(), (try? await client.ping()) != nil {
            removed += await DockerBackend.removeLabelled(client: client, label: "edgemeter", images: true)
        } else {
            note("edgemeter: dockerd not reachable; Docker leftovers not checked")
        }
        let podman = DockerAPIClient(endpoint: .unix(path: DockerBackend.podmanSocket))
        if (try? await podman.ping()) != nil {
            removed += await DockerBackend.removeLabelled(client: podman, label: "edgemeter", images: true).map { "podman " + $0 }
        }
        removed += await LXCBackend.removeLeftovers()
        removed += QEMUBackend.removeLeftovers()
        removed += await OCIRuntimeBackend.removeLeftovers()
        removed += FootprintDeployment.removeLeftoverRules()
        if FileManager.default.fileExists(atPath: "/sys/class/net/edgemeter-br0") {
            do {
                try await IPRoute().deleteLink("edgemeter-br0")
                removed.append("bridge edgemeter-br0")
            } catch {
                note("edgemeter: bridge edgemeter-br0 not removed: \(error)")
            }
        }
        if removed.isEmpty {
            print("nothing to clean up")
        } else {
            for r in removed { print("removed \(r)") }
        }
    }
}
