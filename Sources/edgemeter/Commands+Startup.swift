import ArgumentParser
import EdgeMeterLab
import Foundation
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterStartup
import EdgeMeterSystem

/// Parses a command given as a JSON array of strings (`'["busybox","httpd","-f"]'`): an argument
/// list, never split by a shell.
func argvArgument(_ text: String, flag: String) throws -> [String] {
    guard let data = text.data(using: .utf8), let list = try? JSONSerialization.jsonObject(with: data) as? [String], !list.isEmpty else {
        throw ValidationError("\(flag) must be a JSON array of strings such as '[\"busybox\",\"httpd\",\"-f\"]', got \(text)")
    }
    return list
}

struct StartupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
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

    @Argument(help: "Backends: docker, lxc, qemu, cmd, podman, runc, crun (one or more).")
    var backends: [String]

    @Option(name: .customShort("n"), help: "Runs per backend.")
    var runs = 5

    @Option(name: .long, help: "Ready check: exit, marker, tcp, http, icmp.")
    var ready = "marker"

    @Option(name: .long, help: "Marker line for --ready marker.")
    var marker = ReadyCheck.defaultMarker

    @Option(name: .long, help: "Guest/container port for tcp and http (default 22 for tcp, 80 for http).")
    var port: Int?

    @Option(name: .long, help: "Path for --ready http.")
    var path = "/"

    @Option(name: .long, help: ArgumentHelp("Limit for create through ready of one run (default 60s, 120s for qemu).", valueName: "DURATION"))
    var timeout: String?

    @Option(name: .long, help: "docker/podman image.")
    var image = ImageBuilder.defaultReference

    @Option(name: .long, help: ArgumentHelp("docker/podman workload as a JSON array (default: the built-in busybox workload for the ready check).", valueName: "JSON"))
    var command: String?

    @Flag(name: .long, help: "docker/qemu: also start from a snapshot (docker commit of a running container / VM state saved to a file) and compare with cold starts.")
    var snapshot = false

    @Option(name: .long, help: "qemu accelerator: auto (prove KVM boots a guest, else TCG), kvm, tcg.")
    var accel = "auto"

    @Option(name: .long, help: "qemu host port forwarded to the guest port (the lab used 1234 → 22).")
    var hostPort = 1234

    @Option(name: .long, help: ArgumentHelp("How long --accel auto lets a KVM guest take to print its marker.", valueName: "DURATION"))
    var kvmProbeTimeout = "8s"

    @Option(name: .long, help: "lxc bridge (created, and removed afterwards, when missing).")
    var bridge = "edgemeter-br0"

    @Option(name: .long, help: "cmd preset: \(CommandTemplate.presets.keys.sorted().joined(separator: ", ")) (not run on the development machine).")
    var preset: String?

    @Option(name: .long, help: ArgumentHelp("cmd: create command (JSON array).", valueName: "JSON"))
    var create: String?
    @Option(name: .long, help: ArgumentHelp("cmd: start command (JSON array).", valueName: "JSON"))
    var start: String?
    @Option(name: .long, help: ArgumentHelp("cmd: command repeated until it exits 0 = running (JSON array).", valueName: "JSON"))
    var running: String?
    @Option(name: .long, help: ArgumentHelp("cmd: command repeated until it exits 0 = ready (JSON array); replaces --ready.", valueName: "JSON"))
    var readyCommand: String?
    @Option(name: .long, help: ArgumentHelp("cmd: stop command (JSON array); default SIGTERM to a --detached start.", valueName: "JSON"))
    var stop: String?
    @Option(name: .long, help: ArgumentHelp("cmd: remove command (JSON array).", valueName: "JSON"))
    var remove: String?
    @Flag(name: .long, help: "cmd: the start command keeps running as the instance (a server in the foreground).")
    var detached = false
    @Option(name: .long, help: "cmd: host for tcp/http/icmp ready checks.")
    var host = "127.0.0.1"
    @Option(name: .long, help: ArgumentHelp("cmd: a {key} placeholder value, key=value (repeatable).", valueName: "KEY=VALUE"))
    var `var`: [String] = []

    @OptionGroup var run: RunOptions

    func configs() throws -> [StartupConfig] {
        try backends.map { name in
            guard StartupConfig.backends.contains(name) else {
                throw ValidationError("unknown backend \"\(name)\": use \(StartupConfig.backends.joined(separator: ", "))")
            }
            var c = StartupConfig(backend: name)
            c.runs = runs
            do {
                c.ready = try StartupConfig.readyCheck(kind: ready, marker: marker, port: port, path: path)
            } catch { throw ValidationError("--ready: \(error)") }
            c.timeout = try timeout.map { try durationArgument($0, flag: "--timeout") } ?? (name == "qemu" ? .seconds(120) : .seconds(60))
            c.image = image
            c.command = try command.map { try argvArgument($0, flag: "--command") }
            c.snapshot = snapshot
            guard let a = QEMUAccel(rawValue: accel) else { throw ValidationError("--accel must be auto, kvm or tcg, got \"\(accel)\"") }
            c.accel = a
            c.hostPort = hostPort
            c.kvmProbeTimeout = try durationArgument(kvmProbeTimeout, flag: "--kvm-probe-timeout")
            c.bridge = bridge
            if name == "cmd" {
                if let preset, CommandTemplate.presets[preset] == nil {
                    throw ValidationError("--preset must be one of \(CommandTemplate.presets.keys.sorted().joined(separator: ", ")), got \"\(preset)\"")
                }
                var t = preset.flatMap { CommandTemplate.presets[$0] }
                if let start { let argv = try argvArgument(start, flag: "--start"); if t == nil { t = CommandTemplate(start: argv) } else { t?.start = argv } }
                if let v = create { t?.create = try argvArgument(v, flag: "--create") }
                if let v = running { t?.running = try argvArgument(v, flag: "--running") }
                if let v = readyCommand { t?.ready = try argvArgument(v, flag: "--ready-command") }
                if let v = stop { t?.stop = try argvArgument(v, flag: "--stop") }
                if let v = remove { t?.remove = try argvArgument(v, flag: "--remove") }
                if detached { t?.detached = true }
                t?.host = host
                c.template = t
                c.preset = preset
                for kv in `var` {
                    guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else { throw ValidationError("--var must look like key=value, got \"\(kv)\"") }
                    c.variables[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
                }
            }
            if let p = c.problem() { throw ValidationError(p) }
            return c
        }
    }

    func validate() throws {
        if runs <= 0 { throw ValidationError("-n must be a positive integer, got \(runs)") }
        if Set(backends).count != backends.count { throw ValidationError("each backend once, please: \(backends.joined(separator: " "))") }
        _ = try configs()
    }

    func run() async throws {
        let configs = try configs()
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

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Local container images (no registry is reachable).",
        subcommands: [ImageBuildCommand.self]
    )
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
        """
    )

    @Option(name: .long, help: "Image reference to create.")
    var tag = ImageBuilder.defaultReference

    @Option(name: .long, help: "The binary to put at /usr/local/bin/edgemeter (default: this executable).")
    var binary: String?

    @Option(name: .long, help: "busybox-static binary.")
    var busybox = "/bin/busybox"

    func run() async throws {
        let exe = binary ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
        let builder = ImageBuilder(reference: tag, busybox: busybox, binaries: [(source: exe, destination: "/usr/local/bin/edgemeter")])
        do {
            let client = try DockerAPIClient()
            try await client.ping()
            let built = try await builder.build(client: client)
            print("built \(built.reference) \(built.imageID) from \(built.files.count) files (\(built.tarBytes / 1_048_576) MiB tar) in \(String(format: "%.0f", built.milliseconds)) ms")
            for f in built.files { print("  \(f)") }
        } catch let e as StartupError {
            note("edgemeter: \(e.message)")
            throw ExitCode(2)
        }
    }
}

struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove leftovers of killed runs: lab topologies, edgemeter-* containers (docker, podman, runc, crun), snapshot images, LXC containers, QEMU VMs, OCI bundles, the edgemeter-br0 bridge.",
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
