import Foundation
import EdgeMeterCore
import EdgeMeterStartup
import EdgeMeterSystem

/// What one startup measurement needs, from a suite scenario or from `edgemeter startup` flags.
public struct StartupConfig: Sendable, Equatable {
    public var backend: String
    public var runs = 5
    public var ready: ReadyCheck = .marker(ReadyCheck.defaultMarker)
    public var timeout: Duration = .seconds(60)
    /// docker/podman: image and workload command (nil = built-in busybox workload).
    public var image = ImageBuilder.defaultReference
    public var command: [String]?
    /// docker/qemu: also start from a snapshot (docker commit / VM state saved to a file) and compare.
    public var snapshot = false
    /// qemu
    public var accel: QEMUAccel = .auto
    public var hostPort = 1234
    public var kvmProbeTimeout: Duration = .seconds(8)
    /// lxc
    public var bridge = "edgemeter-br0"
    /// cmd
    public var template: CommandTemplate?
    public var preset: String?
    public var variables: [String: String] = [:]
    /// runc/crun: a host binary put at /usr/local/bin/edgemeter in the bundle's rootfs (with its
    /// `ldd` libraries, as in edgemeter-base), so `command` can run edgemeter. Default: this
    /// executable when it is the edgemeter CLI.
    public var ociBinary: String? = StartupConfig.currentEdgemeter()

    public init(backend: String) { self.backend = backend }

    public static let backends = ["docker", "lxc", "qemu", "cmd", "podman", "runc", "crun"]

    static func currentEdgemeter() -> String? {
        guard let exe = Bundle.main.executablePath, URL(fileURLWithPath: exe).lastPathComponent == "edgemeter" else { return nil }
        return exe
    }

    var ociBinaries: [(source: String, destination: String)] {
        ociBinary.map { [(source: $0, destination: "/usr/local/bin/edgemeter")] } ?? []
    }
    public static let readyKinds = ["exit", "marker", "tcp", "http", "icmp"]

    /// Builds the ready check from its kind and options; tcp defaults to guest port 22 (the lab's
    /// forward 1234 → 22), http to port 80 and path `/`.
    public static func readyCheck(kind: String, marker: String?, port: Int?, path: String?) throws -> ReadyCheck {
        switch kind {
        case "exit": return .exit
        case "marker": return .marker(marker ?? ReadyCheck.defaultMarker)
        case "tcp": return .tcp(port: port ?? 22)
        case "http": return .http(port: port ?? 80, path: path ?? "/")
        case "icmp": return .icmp
        default: throw StartupError("ready must be one of \(readyKinds.joined(separator: ", ")), got \"\(kind)\"")
        }
    }

    /// Problems no engine needs to see (a cross-field check shared by the suite schema and the CLI).
    public func problem() -> String? {
        if snapshot && !["docker", "qemu", "podman"].contains(backend) {
            return "snapshot is supported for docker, podman and qemu only, not \(backend)"
        }
        if backend == "qemu", case .icmp = ready {
            return "ready icmp is not available for qemu (user-mode NAT has no route into the guest): use tcp, http or marker"
        }
        if backend == "qemu" && snapshot {
            switch ready {
            case .tcp, .http: break
            default: return "a restored VM does not boot again, so its marker/exit is never seen: use ready tcp or http with snapshot"
            }
        }
        if backend == "cmd" && template == nil {
            return "the cmd backend needs a start command (or a preset: \(CommandTemplate.presets.keys.sorted().joined(separator: ", ")))"
        }
        if !(1...65535).contains(hostPort) { return "host port must be 1-65535, got \(hostPort)" }
        return nil
    }
}

/// Startup phases of containers and VMs (issue 4): the `startup` scenario kind, its per-backend
/// phase table and, when a run measured several backends, a comparison with ratios.
///
/// Samples (probe `startup`, metric `startup`, unit ms, target = backend): one per phase per attempt
/// (`create`, `start`, `running`, `ready`, `stop`, `remove`, `total` = create through ready), failed
/// attempts included with status and reason. With snapshots, a `snapshot` metric sample (`commit`
/// for docker, `save` for qemu) and the clone attempts under target `docker-snapshot`/`qemu-snapshot`.
public enum StartupScenario {
    public static let declaration = KindDeclaration(
        kind: "startup",
        measures: { s in [s.first?.key.target, "start-up to ready"].compactMap { $0 }.joined(separator: " ") },
        parameters: [
            ParameterSpec("backend", cli: "BACKEND", .oneOf(StartupConfig.backends),
                          help: "Backends: docker, lxc, qemu, cmd, podman, runc, crun (one or more)."),
            ParameterSpec("runs", cli: "-n", .positiveInteger, default: .integer(5), help: "Runs per backend."),
            ParameterSpec("ready", cli: "--ready", .oneOf(StartupConfig.readyKinds),
                          help: "Ready check: exit, marker, tcp, http, icmp (default: marker; exit for cmd)."),
            ParameterSpec("marker", cli: "--marker", .string, default: .string(ReadyCheck.defaultMarker), help: "Marker line for --ready marker."),
            ParameterSpec("port", cli: "--port", .positiveInteger, help: "Guest/container port for tcp and http (default 22 for tcp, 80 for http).",
                          validate: ValueCheck.within(1...65535, "")),
            ParameterSpec("path", cli: "--path", .string, default: .string("/"), help: "Path for --ready http."),
            ParameterSpec("timeout", cli: "--timeout", .duration, help: "Limit for create through ready of one run (default 60s, 120s for qemu).",
                          valueName: "DURATION", validate: ValueCheck.positive),
            ParameterSpec("image", cli: "--image", .string, default: .string(ImageBuilder.defaultReference), help: "docker/podman image."),
            ParameterSpec("command", cli: "--command", .stringList,
                          help: "docker/podman workload as a JSON array (default: the built-in busybox workload for the ready check).",
                          valueName: "JSON", jsonArray: true),
            ParameterSpec("snapshot", cli: "--snapshot", .bool, default: .bool(false),
                          help: "docker/qemu: also start from a snapshot (docker commit of a running container / VM state saved to a file) and compare with cold starts."),
            ParameterSpec("accel", cli: "--accel", .oneOf(QEMUAccel.allCases.map(\.rawValue)), default: .string("auto"),
                          help: "qemu accelerator: auto (prove KVM boots a guest, else TCG), kvm, tcg."),
            ParameterSpec("host_port", cli: "--host-port", .positiveInteger, default: .integer(1234),
                          help: "qemu host port forwarded to the guest port (the lab used 1234 → 22).", validate: ValueCheck.within(1...65535, "")),
            ParameterSpec("kvm_probe_timeout", cli: "--kvm-probe-timeout", .duration, default: .duration(.seconds(8)),
                          help: "How long --accel auto lets a KVM guest take to print its marker.", valueName: "DURATION"),
            ParameterSpec("bridge", cli: "--bridge", .string, default: .string("edgemeter-br0"),
                          help: "lxc bridge (created, and removed afterwards, when missing)."),
            ParameterSpec("preset", cli: "--preset", .oneOf(CommandTemplate.presets.keys.sorted()),
                          help: "cmd preset: \(CommandTemplate.presets.keys.sorted().joined(separator: ", ")) (not run on the development machine)."),
            ParameterSpec("create", cli: "--create", .stringList, help: "cmd: create command (JSON array).", valueName: "JSON", jsonArray: true),
            ParameterSpec("start", cli: "--start", .stringList, help: "cmd: start command (JSON array).", valueName: "JSON", jsonArray: true),
            ParameterSpec("running", cli: "--running", .stringList, help: "cmd: command repeated until it exits 0 = running (JSON array).",
                          valueName: "JSON", jsonArray: true),
            ParameterSpec("ready_command", cli: "--ready-command", .stringList,
                          help: "cmd: command repeated until it exits 0 = ready (JSON array); replaces --ready.", valueName: "JSON", jsonArray: true),
            ParameterSpec("ready_output", cli: "--ready-output", .string, help: "cmd: text the ready command must print as well."),
            ParameterSpec("stop", cli: "--stop", .stringList, help: "cmd: stop command (JSON array); the default is SIGTERM to a --detached start.",
                          valueName: "JSON", jsonArray: true),
            ParameterSpec("remove", cli: "--remove", .stringList, help: "cmd: remove command (JSON array).", valueName: "JSON", jsonArray: true),
            ParameterSpec("detached", cli: "--detached", .bool, default: .bool(false),
                          help: "cmd: the start command keeps running as the instance (a server in the foreground)."),
            ParameterSpec("host", cli: "--host", .string, default: .string("127.0.0.1"), help: "cmd: host for tcp/http/icmp ready checks."),
            ParameterSpec("vars", cli: "--var", .stringList, help: "cmd: a {key} placeholder value, key=value (repeatable).",
                          valueName: "KEY=VALUE", validate: { v in
                guard case .strings(let list) = v, let bad = list.first(where: { StartupScenario.variable($0) == nil }) else { return nil }
                return "{} entries must look like key=value, got \"\(bad)\""
            }),
        ],
        required: ["backend"],
        checks: [{ s in
            do {
                if let p = try config(s).problem() { return ("backend", p) }
            } catch {
                return ("backend", "\(error)")
            }
            return nil
        }])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { try config($0) }) { s, ctx in
        try await run(try config(s), scenario: s.name, ctx: ctx)
    }

    static func variable(_ kv: String) -> (String, String)? {
        guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else { return nil }
        return (String(kv[..<eq]), String(kv[kv.index(after: eq)...]))
    }

    /// The configuration of one backend's measurement: the one place a scenario (from a suite or
    /// from `edgemeter startup` flags, one per backend) becomes a `StartupConfig`.
    public static func config(_ s: ValidatedScenario) throws -> StartupConfig {
        var c = StartupConfig(backend: s.string("backend") ?? "docker")
        c.runs = s.int("runs") ?? 5
        c.ready = try StartupConfig.readyCheck(kind: s.string("ready") ?? (c.backend == "cmd" ? "exit" : "marker"),
                                               marker: s.string("marker"), port: s.int("port"), path: s.string("path"))
        c.timeout = s.duration("timeout") ?? (c.backend == "qemu" ? .seconds(120) : .seconds(60))
        if let i = s.string("image") { c.image = i }
        c.command = s.strings("command")
        c.snapshot = s.bool("snapshot") ?? false
        c.accel = QEMUAccel(rawValue: s.string("accel") ?? "auto") ?? .auto
        c.hostPort = s.int("host_port") ?? 1234
        c.kvmProbeTimeout = s.duration("kvm_probe_timeout") ?? .seconds(8)
        if let b = s.string("bridge") { c.bridge = b }
        c.preset = s.string("preset")
        for kv in s.strings("vars") ?? [] {
            guard let pair = variable(kv) else { throw StartupError("`vars` entries must look like key=value, got \"\(kv)\"") }
            c.variables[pair.0] = pair.1
        }
        if c.backend == "cmd" {
            var t = c.preset.flatMap { CommandTemplate.presets[$0] } ?? (s.strings("start").map { CommandTemplate(start: $0) })
            if let start = s.strings("start") { t?.start = start }
            if let v = s.strings("create") { t?.create = v }
            if let v = s.strings("running") { t?.running = v }
            if let v = s.strings("ready_command") { t?.ready = v }
            if let v = s.string("ready_output") { t?.readyOutput = v }
            if let v = s.strings("stop") { t?.stop = v }
            if let v = s.strings("remove") { t?.remove = v }
            if s.bool("detached") == true { t?.detached = true }
            if let v = s.string("host") { t?.host = v }
            c.template = t
        }
        return c
    }

    /// Builds the backend(s) of `config`: the cold one and, with `snapshot`, the clone one.
    public static func backends(_ c: StartupConfig, runID: String) throws -> [StartupBackend] {
        switch c.backend {
        case "docker":
            let client = try DockerAPIClient()
            var list: [StartupBackend] = [DockerBackend(client: client, image: c.image, command: c.command, runID: runID)]
            if c.snapshot { list.append(DockerBackend(client: client, image: c.image, command: c.command, runID: runID + "s", fromSnapshot: true)) }
            return list
        case "podman":
            guard which("podman") != nil else {
                throw ScenarioNotRun("podman is not installed here: apt-get install -y podman, then `podman system service --time=0 unix:///run/podman/podman.sock &`")
            }
            let client = DockerAPIClient.podman()
            var list: [StartupBackend] = [DockerBackend(client: client, image: c.image, command: c.command, runID: runID, engine: "podman")]
            if c.snapshot {
                list.append(DockerBackend(client: client, image: c.image, command: c.command, runID: runID + "s", fromSnapshot: true, engine: "podman"))
            }
            return list
        case "runc", "crun":
            guard let runtime = which(c.backend) else {
                throw ScenarioNotRun("\(c.backend) is not installed here: apt-get install -y \(c.backend)")
            }
            return [OCIRuntimeBackend(runtime: runtime, runID: runID, command: c.command, binaries: c.ociBinaries)]
        case "lxc":
            return [LXCBackend(runID: runID, bridge: c.bridge)]
        case "qemu":
            var list: [StartupBackend] = [QEMUBackend(runID: runID, accel: c.accel, hostPort: c.hostPort, kvmProbeTimeout: c.kvmProbeTimeout)]
            if c.snapshot {
                list.append(QEMUBackend(runID: runID + "s", accel: c.accel, hostPort: c.hostPort, kvmProbeTimeout: c.kvmProbeTimeout,
                                        fromSnapshot: true, snapshotReady: c.ready))
            }
            return list
        case "cmd":
            guard let t = c.template else { throw StartupError(c.problem() ?? "cmd needs a start command") }
            return [CommandBackend(template: t, variables: c.variables, runID: runID, preset: c.preset)]
        default:
            throw StartupError("unknown backend \(c.backend): use one of \(StartupConfig.backends.joined(separator: ", "))")
        }
    }

    /// Runs one backend's attempts (and its snapshot clones), adds its phase table and, when this run
    /// already measured other backends, the comparison. A missing engine becomes `ScenarioNotRun`.
    @discardableResult
    public static func run(_ c: StartupConfig, scenario: String, ctx: ScenarioContext, compare: Bool = true) async throws -> [BackendResult] {
        if let p = c.problem() { throw StartupError(p) }
        let tag = ctx.runID + scenario
        var results: [BackendResult] = []
        let list: [StartupBackend]
        do {
            list = try backends(c, runID: tag)
        } catch let e as StartupError {
            throw ScenarioNotRun("\(c.backend): \(e.message)")
        }
        for backend in list {
            if ctx.stop.isStopped { break }
            let plan = StartupPlan(scenario: scenario, runs: c.runs, ready: c.ready, readyTimeout: c.timeout)
            ctx.progress("\(backend.name): \(c.runs) run(s), ready = \(c.ready)")
            let attempts: [StartupAttempt]
            do {
                attempts = try await StartupProbe(backends: [backend], plan: plan, runID: ctx.runID, progress: ctx.progress)
                    .attempts(on: backend, schedule: .closedLoop(count: c.runs), clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
            } catch let e as StartupError {
                throw ScenarioNotRun("\(backend.name): \(e.message)")
            }
            var result = BackendResult(scenario: scenario, backend: backend.name, ready: c.ready.kind, attempts: attempts,
                                       labels: backend.labels)
            if let step = backend.snapshotStep {
                result.snapshotStep = (step.what, step.milliseconds)
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "startup", target: backend.name, metric: "snapshot",
                                       phase: step.phase, value: step.milliseconds, unit: "ms", timestamp: Date(),
                                       status: .ok, labels: backend.labels.merging(["clock": "monotonic"]) { a, _ in a }))
            }
            results.append(result)
        }
        guard !results.isEmpty else { return [] }
        ctx.addSection(phaseTable(results, title: "Startup phases: \(scenario)"))
        if results.count == 2, let cold = results.first, let snap = results.last, snap.snapshotStep != nil {
            ctx.addSection(snapshotComparison(cold: cold, snapshot: snap))
        }
        // Every startup scenario of this run so far, read back from the run's own samples.csv (the
        // run directory owns them; nothing outlives the run in this process).
        let all = compare ? measuredSoFar(in: ctx.directory, runID: ctx.runID) : results
        if compare && Set(all.map(\.backend)).count >= 2 && Set(all.map(\.scenario)).count >= 2 {
            // Keyed: each later startup scenario replaces the previous comparison, so the run ends
            // with one comparison covering every startup scenario (at the end of summary.md).
            ctx.addSection(comparisonSectionKey + "\n" + comparison(all))
        }
        return results
    }

    public struct BackendResult: Sendable {
        public var scenario: String
        public var backend: String
        public var ready: String
        public var attempts: [StartupAttempt]
        public var labels: [String: String]
        public var snapshotStep: (what: String, ms: Double)?

        public init(scenario: String, backend: String, ready: String, attempts: [StartupAttempt], labels: [String: String]) {
            self.scenario = scenario
            self.backend = backend
            self.ready = ready
            self.attempts = attempts
            self.labels = labels
        }

        public func median(_ phase: StartupPhase) -> Double? {
            let v = attempts.compactMap { $0.phases[phase] }.sorted()
            guard !v.isEmpty else { return nil }
            return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
        }
        public var okRuns: Int { attempts.filter { $0.failure == nil }.count }
    }

    /// The startup results of run `runID` recorded so far in `directory/samples.csv` (empty when
    /// there is none yet), for the cross-backend comparison.
    static func measuredSoFar(in directory: URL, runID: String) -> [BackendResult] {
        let path = directory.appendingPathComponent("samples.csv").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let samples = try? SampleCSV.parse(text, file: path) else { return [] }
        return results(from: samples.filter { $0.runID == runID })
    }

    /// Rebuilds per-backend results from startup samples (probe `startup`, metric `startup`): one
    /// result per scenario and backend, in the order they first appear, one attempt per `run` label.
    public static func results(from samples: [Sample]) -> [BackendResult] {
        var order: [String] = []
        var groups: [String: [Sample]] = [:]
        for s in samples where s.probe == "startup" && s.metric == "startup" {
            let key = s.scenario + "\u{0}" + s.target
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(s)
        }
        return order.compactMap { key in
            guard let rows = groups[key], let first = rows.first else { return nil }
            var runs: [Int] = []
            var byRun: [Int: [Sample]] = [:]
            for r in rows {
                let n = Int(r.labels["run"] ?? "") ?? 0
                if byRun[n] == nil { runs.append(n) }
                byRun[n, default: []].append(r)
            }
            let attempts = runs.enumerated().map { i, n -> StartupAttempt in
                var phases: [StartupPhase: Double] = [:]
                var failure: String?
                for r in byRun[n] ?? [] {
                    guard let phase = StartupPhase(rawValue: r.phase) else { continue }
                    if let v = r.value { phases[phase] = v } else if failure == nil, phase != .total { failure = "\(phase.rawValue): \(r.reason)" }
                }
                return StartupAttempt(index: i, phases: phases, failure: failure)
            }
            return BackendResult(scenario: first.scenario, backend: first.target, ready: first.labels["ready"] ?? "",
                                 attempts: attempts, labels: first.labels)
        }
    }

    static func fmt(_ v: Double?) -> String {
        guard let v else { return "—" }
        return v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v)
    }

    /// Medians per phase (ms), one row per backend.
    public static func phaseTable(_ results: [BackendResult], title: String) -> String {
        var s = "### \(title)\n\nMedians in ms over successful attempts; `total` = create through ready, client-side monotonic clock.\n\n"
        s += "| backend | ready check | ok/runs | create | start | running | ready | stop | remove | total | provenance |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in results {
            let prov = r.labels.filter { ["accel", "image", "template", "kernel", "source", "accel_note", "preset", "runtime"].contains($0.key) }
                .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            s += "| \(r.backend) | \(r.ready) | \(r.okRuns)/\(r.attempts.count) | "
            s += [StartupPhase.create, .start, .running, .ready, .stop, .remove, .total].map { fmt(r.median($0)) }.joined(separator: " | ")
            s += " | \(prov) |\n"
        }
        let failures = results.flatMap { r in r.attempts.compactMap { a in a.failure.map { "- \(r.backend) run \(a.index + 1): \($0)" } } }
        if !failures.isEmpty { s += "\nFailed attempts:\n" + failures.prefix(20).joined(separator: "\n") + "\n" }
        return s
    }

    public static func snapshotComparison(cold: BackendResult, snapshot: BackendResult) -> String {
        var s = "### Snapshot vs cold start (\(cold.backend))\n\n"
        if let step = snapshot.snapshotStep { s += "Snapshot taken once: \(step.what): \(fmt(step.ms)) ms.\n\n" }
        s += "| phase | cold median ms | from snapshot median ms | ratio |\n|---|---|---|---|\n"
        for p in [StartupPhase.create, .start, .running, .ready, .total] {
            let a = cold.median(p), b = snapshot.median(p)
            s += "| \(p.rawValue) | \(fmt(a)) | \(fmt(b)) | \(ratioText(a, b)) |\n"
        }
        return s
    }

    static func ratioText(_ a: Double?, _ b: Double?) -> String {
        guard let a, let b, a > 0, b > 0 else { return "—" }
        return b <= a ? String(format: "%.2f× faster", a / b) : String(format: "%.2f× slower", b / a)
    }

    /// First line of the suite's startup comparison section: `RunDirectory.addSection` replaces an
    /// earlier section with the same first line (an HTML comment, invisible in rendered Markdown).
    public static let comparisonSectionKey = "<!-- section: startup-comparison -->"

    /// Every backend measured in this run so far, fastest total first, with ratios to the others.
    public static func comparison(_ results: [BackendResult]) -> String {
        let rows = results.filter { $0.median(.total) != nil }.sorted { ($0.median(.total) ?? 0) < ($1.median(.total) ?? 0) }
        var s = "### Startup comparison: \(rows.map(\.backend).joined(separator: ", "))\n\n"
        s += "Medians in ms. Ratios are the slower backend's median divided by the faster one's.\n\n"
        s += "| backend | scenario | ready check | ok/runs | total (create→ready) | ready phase | × vs fastest total |\n|---|---|---|---|---|---|---|\n"
        let fastest = rows.first?.median(.total)
        for r in rows {
            let ratio = fastest.flatMap { f in r.median(.total).map { String(format: "%.1f×", $0 / f) } } ?? "—"
            s += "| \(r.backend) | \(r.scenario) | \(r.ready) | \(r.okRuns)/\(r.attempts.count) | \(fmt(r.median(.total))) | \(fmt(r.median(.ready))) | \(ratio) |\n"
        }
        var lines: [String] = []
        for (i, a) in rows.enumerated() {
            for b in rows[(i + 1)...] {
                if let x = a.median(.total), let y = b.median(.total), x > 0 {
                    lines.append("- \(a.backend) ready (create→ready) \(String(format: "%.1f", y / x))× faster than \(b.backend) (\(fmt(x)) ms vs \(fmt(y)) ms)")
                }
            }
        }
        if !lines.isEmpty { s += "\n" + lines.joined(separator: "\n") + "\n" }
        return s
    }
}
