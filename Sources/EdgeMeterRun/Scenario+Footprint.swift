import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterStartup
import EdgeMeterSystem

/// What one footprint measurement needs, from a suite scenario or from `edgemeter footprint` flags.
public struct FootprintConfig: Sendable, Equatable {
    public var deployments: [FootprintDeploymentKind] = FootprintDeploymentKind.measurable
    /// Open-loop request rate of the loaded phase, requests/s.
    public var rate: Double = 200
    /// Length of the loaded phase.
    public var duration: Duration = .seconds(10)
    /// Length of the idle phase before the load.
    public var idle: Duration = .seconds(3)
    public var connections = 4
    public var workload: FootprintWorkload
    /// Also measure a restart in place while a fixed-rate client runs.
    public var restart = false
    /// The restart client's interval between requests (its resolution).
    public var restartInterval: Duration = .milliseconds(5)

    public init(workload: FootprintWorkload) { self.workload = workload }
}

/// The figures of one deployment, as summary.md prints them.
public struct FootprintFigures: Sendable, Equatable {
    public var deployment: String
    /// Mean over the phase's one-second readings, bytes. Workload memory: the cgroup's charge for
    /// a container (pages first touched by another cgroup, e.g. shared libraries already in the
    /// page cache, are not in it), PSS of the tree for the process.
    public var idleWorkloadBytes: Double
    public var idleLayerBytes: Double
    public var loadedWorkloadBytes: Double
    public var loadedLayerBytes: Double
    /// PSS of the workload's processes (every deployment alike), mean over the phase.
    public var idleWorkloadPSSBytes: Double
    public var loadedWorkloadPSSBytes: Double
    public var engineBytes: Double
    /// The VM's memory reservation (`-m`), bytes; nil for the others.
    public var reservedBytes: UInt64?
    /// CPU seconds from the first to the last reading of the loaded phase, per 1000 answers.
    public var workloadCPUPer1000: Double?
    public var layerCPUPer1000: Double?
    public var engineCPUPer1000: Double?
    public var imageBytes: UInt64?
    public var writableBytes: UInt64?
    public var bytesPerRequest: Double?
    public var packetsPerRequest: Double?
    public var p50Milliseconds: Double?
    public var p99Milliseconds: Double?
    public var answers: Int
    public var errors: Int
}

/// The `footprint` kind: one workload as a host process, a Docker container, a podman container,
/// an LXC container and a QEMU VM, idle then under a fixed-rate open-loop load, with memory, CPU, disk, network and
/// latency per deployment (docs/footprint.md says what each figure covers).
///
/// Samples: probe `footprint`, target = deployment, one row per metric per one-second reading
/// (phase `idle` or `load`): `workload_memory` (cgroup or PSS, bytes), `workload_pss`,
/// `workload_rss`, `layer_pss`, `engine_pss`, `workload_cpu`, `layer_cpu`, `engine_cpu` (seconds,
/// cumulative), `exchange_bytes`, `exchange_packets` (cumulative); then per deployment the
/// summary figures (phase `summary`) and, with `restart`, probe `restart` rows.
public enum FootprintScenario {
    public static let declaration = KindDeclaration(
        kind: "footprint",
        measures: { _ in "memory/CPU/latency per deployment" },
        parameters: [
            ParameterSpec("deployments", cli: "DEPLOYMENT", .stringList, default: .strings(FootprintDeploymentKind.measurable.map(\.rawValue)),
                          help: "Where the workload runs: process, docker, podman, lxc, qemu (a TCG VM).",
                          validate: { v in
                guard case .strings(let list) = v else { return nil }
                if list.isEmpty { return "{} must name at least one deployment" }
                if let bad = list.first(where: { FootprintDeploymentKind(rawValue: $0) == nil }) {
                    return "{} must be process, docker, podman, lxc or qemu, got \"\(bad)\""
                }
                if Set(list).count != list.count { return "{} names a deployment twice" }
                return nil
            }),
            ParameterSpec("workload", cli: "--workload", .oneOf(["calculator", "httpd"]), default: .string("calculator"),
                          help: "calculator: the calculator's sum service (edgemeter serve calculator --role sum); httpd: busybox httpd serving /www/index.html, which the VM can run too."),
            ParameterSpec("rate", cli: "-r/--rate", .positiveNumber, default: .number(200), unit: "requests/s",
                          help: "Open-loop request rate of the loaded phase, requests per second.",
                          validate: { v in if case .number(let r) = v, r > 5000 { return "{} must be at most 5000 requests/s, got \(r)" }; return nil }),
            ParameterSpec("duration", cli: "-d/--duration", .duration, default: .duration(.seconds(10)),
                          help: "Length of the loaded phase.", valueName: "DURATION",
                          validate: { v in
                if case .duration(let d) = v, d < .seconds(1) || d > .seconds(300) { return "{} must be 1s-300s" }
                return nil
            }),
            ParameterSpec("idle", cli: "--idle", .duration, default: .duration(.seconds(3)),
                          help: "Length of the idle phase before the load.", valueName: "DURATION",
                          validate: { v in
                if case .duration(let d) = v, d < .seconds(1) || d > .seconds(60) { return "{} must be 1s-60s" }
                return nil
            }),
            ParameterSpec("connections", cli: "-c/--connections", .positiveInteger, default: .integer(4),
                          help: "Keep-alive connections of the load.", validate: ValueCheck.atMost(256, "")),
            ParameterSpec("image", cli: "--image", .string, default: .string(ImageBuilder.defaultReference),
                          help: "docker/podman image holding /usr/local/bin/edgemeter (`edgemeter image build`)."),
            ParameterSpec("command", cli: "--command", .stringList,
                          help: "The service as a JSON array; {port} is the port, `edgemeter` the binary (default: the calculator's sum service).",
                          valueName: "JSON", jsonArray: true),
            ParameterSpec("binary", cli: "--binary", .string,
                          help: "The host binary `edgemeter` stands for in the process deployment (default: this executable)."),
            ParameterSpec("port", cli: "--port", .positiveInteger, default: .integer(50001),
                          help: "The service's port inside a container (the process gets a free loopback port).",
                          validate: ValueCheck.within(1...65535, "")),
            ParameterSpec("path", cli: "--path", .string, help: "The request path (GET; default /sum?a=1&b=2, /index.html for httpd)."),
            ParameterSpec("restart", cli: "--restart", .bool, default: .bool(false),
                          help: "Also restart the service in place under a fixed-rate client and measure the interruption."),
            ParameterSpec("restart_interval", cli: "--restart-interval", .duration, default: .duration(.milliseconds(5)),
                          help: "Interval of the restart client's requests (its resolution).", valueName: "DURATION",
                          validate: { v in
                if case .duration(let d) = v, d <= .zero || d > .milliseconds(10) { return "{} must be more than 0 and at most 10ms" }
                return nil
            }),
        ],
        checks: [{ s in
            if let path = s.string("path"), !path.hasPrefix("/") { return ("path", "{path} must start with /, got \"\(path)\"") }
            if let rate = s.number("rate"), let d = s.duration("duration"), rate * Double(d.nanoseconds) / 1e9 > 1_000_000 {
                return ("rate", "{rate} × {duration} is more than 1 000 000 requests: lower one of them")
            }
            return nil
        }])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { try config($0) }) { s, ctx in
        _ = try await run(try config(s), scenario: s.name, ctx: ctx)
    }

    /// This executable when it is the edgemeter CLI.
    static func currentEdgemeter() -> String {
        Bundle.main.executablePath.flatMap { URL(fileURLWithPath: $0).lastPathComponent == "edgemeter" ? $0 : nil } ?? "edgemeter"
    }

    public static func config(_ s: ValidatedScenario) throws -> FootprintConfig {
        let httpd = s.string("workload") == "httpd"
        let w = FootprintWorkload(image: s.string("image") ?? ImageBuilder.defaultReference,
                                  command: s.strings("command") ?? (httpd ? FootprintWorkload.httpdCommand : FootprintWorkload.defaultCommand),
                                  binary: s.string("binary") ?? currentEdgemeter(), port: s.int("port") ?? 50001,
                                  path: s.string("path") ?? (httpd ? FootprintWorkload.httpdPath : FootprintWorkload.defaultPath))
        var c = FootprintConfig(workload: w)
        c.deployments = (s.strings("deployments") ?? FootprintDeploymentKind.measurable.map(\.rawValue)).compactMap(FootprintDeploymentKind.init)
        c.rate = s.number("rate") ?? 200
        c.duration = s.duration("duration") ?? .seconds(10)
        c.idle = s.duration("idle") ?? .seconds(3)
        c.connections = s.int("connections") ?? 4
        c.restart = s.bool("restart") ?? false
        c.restartInterval = s.duration("restart_interval") ?? .milliseconds(5)
        return c
    }

    /// What `run` measured.
    public struct Outcome: Sendable {
        public var figures: [FootprintFigures] = []
        public var restarts: [(deployment: String, method: String, downtime: RestartDowntime)] = []
        /// Deployments that could not run, with the reason.
        public var notRun: [(deployment: String, reason: String)] = []
    }

    /// Measures every deployment in turn, adds the footprint table (and the restart table) to
    /// summary.md. A deployment that cannot run here is reported and skipped; when none could
    /// run the scenario is "not run".
    public static func run(_ c: FootprintConfig, scenario: String, ctx: ScenarioContext) async throws -> Outcome {
        var out = Outcome()
        for kind in c.deployments {
            if ctx.stop.isStopped { break }
            let d = FootprintDeployment(kind: kind, workload: c.workload, runID: "\(ctx.runID)/\(scenario)")
            do {
                let (fig, restart) = try await measure(d, c, scenario: scenario, ctx: ctx)
                out.figures.append(fig)
                if let restart { out.restarts.append((kind.rawValue, d.restartMethod, restart)) }
            } catch let e as StartupError {
                ctx.progress("footprint \(kind.rawValue): not run: \(e.message)")
                out.notRun.append((kind.rawValue, e.message))
            } catch let e as HTTPClientError {
                ctx.progress("footprint \(kind.rawValue): not run: \(e)")
                out.notRun.append((kind.rawValue, "\(e)"))
            }
            await d.remove()
        }
        if out.figures.isEmpty {
            if ctx.stop.isStopped { return out }
            throw ScenarioNotRun("no footprint deployment could run: " + out.notRun.map { "\($0.deployment): \($0.reason)" }.joined(separator: "; "))
        }
        ctx.addSection(table(out.figures, config: c, notRun: out.notRun))
        if c.restart { ctx.addSection(restartTable(out.restarts, interval: c.restartInterval)) }
        return out
    }

    static func measure(_ d: FootprintDeployment, _ c: FootprintConfig, scenario: String,
                        ctx: ScenarioContext) async throws -> (FootprintFigures, RestartDowntime?) {
        let name = d.kind.rawValue
        ctx.progress("footprint \(name): starting")
        try await d.start()
        var target = HTTPTarget(host: d.host, port: d.port, path: c.workload.path)
        if d.host.contains(":") { target.host = "[\(d.host)]" }
        try await waitForAnswer(target, deadline: d.kind == .qemu ? .seconds(120) : .seconds(30), stop: ctx.stop, what: "the \(name) deployment")
        ctx.progress("footprint \(name): answering at \(target); idle \(KindDeclaration.describe(.duration(c.idle)))")

        let recorder = ReadingRecorder(deployment: d, scenario: scenario, ctx: ctx)
        // Idle phase: one reading a second.
        let idleStart = try await recorder.take(phase: "idle")
        let idleEnd = try await recorder.every(second: c.idle, phase: "idle", stop: ctx.stop) ?? idleStart
        // Loaded phase: the open-loop generator at `rate`, readings every second beside it.
        let loadStart = try await recorder.take(phase: "load")
        var options = LoadOptions(request: HTTPRequestSpec(path: c.workload.path), connections: c.connections, rate: c.rate, duration: c.duration)
        options.timeout = .seconds(2)
        let sampler = Task { try await recorder.every(second: c.duration + .seconds(60), phase: "load", stop: ctx.stop) }
        let result = try await LoadGenerator.run(target: target, options: options, stop: ctx.stop)
        sampler.cancel()
        _ = try? await sampler.value
        let loadEnd = try await recorder.take(phase: "load")
        let disk = await d.disk()
        var fig = figures(name, reserved: d.reservedBytes, idle: await recorder.readings(in: "idle"), loaded: await recorder.readings(in: "load"),
                          loadStart: loadStart, loadEnd: loadEnd, result: result, disk: disk)
        _ = idleEnd
        if !d.measuresNetwork {
            fig.bytesPerRequest = nil
            fig.packetsPerRequest = nil
            ctx.progress("footprint \(name): no network figures: counting the service's packets on lo needs iptables and root")
        }
        // A figure that does not apply (no writable layer for a process, no reservation but the VM's) has no row.
        for (metric, value, unit) in summaryMetrics(fig) {
            guard let value else { continue }
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "footprint", target: name, metric: metric, phase: "summary",
                                   value: value, unit: unit, timestamp: Date(), status: .ok))
        }
        ctx.progress(String(format: "footprint %@: %d answers, workload %.1f MiB loaded, %@ CPU s/1000 req",
                            name, fig.answers, fig.loadedWorkloadBytes / 1_048_576, fig.workloadCPUPer1000.map { String(format: "%.3f", $0) } ?? "—"))
        var restart: RestartDowntime?
        if c.restart && !ctx.stop.isStopped {
            restart = try await measureRestart(d, target: target, interval: c.restartInterval, scenario: scenario, ctx: ctx)
        }
        return (fig, restart)
    }

    /// Sends GET until the answer is 200 (every 100 ms).
    static func waitForAnswer(_ target: HTTPTarget, deadline: Duration, stop: StopFlag, what: String) async throws {
        let end = ContinuousClock.now + deadline
        var last = "no answer"
        while ContinuousClock.now < end && !stop.isStopped {
            let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(path: target.path), timeout: .seconds(1))
            if let r = x.response {
                if r.status == 200 { return }
                last = "HTTP \(r.status)"
            } else if let e = x.error {
                last = "\(e)"
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        throw StartupError("\(what) at \(target) did not answer 200 within \(deadline) (last: \(last)); check its command and image")
    }

    /// Figures from the readings (pure; see `FootprintFigures`).
    public static func figures(_ name: String, reserved: UInt64? = nil, idle: [FootprintReading], loaded: [FootprintReading], loadStart: FootprintReading,
                               loadEnd: FootprintReading, result: LoadResult, disk: FootprintDisk) -> FootprintFigures {
        func mean(_ r: [FootprintReading], _ f: (FootprintReading) -> UInt64) -> Double {
            r.isEmpty ? 0 : r.map { Double(f($0)) }.reduce(0, +) / Double(r.count)
        }
        let answers = result.responses
        let per1000: (Double) -> Double? = { answers > 0 ? $0 / Double(answers) * 1000 : nil }
        let net = loadEnd.exchangeBytes >= loadStart.exchangeBytes ? loadEnd.exchangeBytes - loadStart.exchangeBytes : 0
        let pkts = loadEnd.exchangePackets >= loadStart.exchangePackets ? loadEnd.exchangePackets - loadStart.exchangePackets : 0
        let h = result.uncorrected
        return FootprintFigures(
            deployment: name,
            idleWorkloadBytes: mean(idle, \.workloadMemoryBytes), idleLayerBytes: mean(idle, \.layerPSSBytes),
            loadedWorkloadBytes: mean(loaded, \.workloadMemoryBytes), loadedLayerBytes: mean(loaded, \.layerPSSBytes),
            idleWorkloadPSSBytes: mean(idle, \.workloadPSSBytes), loadedWorkloadPSSBytes: mean(loaded, \.workloadPSSBytes),
            engineBytes: mean(idle + loaded, \.enginePSSBytes), reservedBytes: reserved,
            workloadCPUPer1000: per1000(loadEnd.workloadCPUSeconds - loadStart.workloadCPUSeconds),
            layerCPUPer1000: per1000(loadEnd.layerCPUSeconds - loadStart.layerCPUSeconds),
            engineCPUPer1000: per1000(loadEnd.engineCPUSeconds - loadStart.engineCPUSeconds),
            imageBytes: disk.imageBytes, writableBytes: disk.writableBytes,
            bytesPerRequest: answers > 0 ? Double(net) / Double(answers) : nil,
            packetsPerRequest: answers > 0 ? Double(pkts) / Double(answers) : nil,
            p50Milliseconds: h.totalCount > 0 ? Double(h.valueAtPercentile(50)) / 1e6 : nil,
            p99Milliseconds: h.totalCount > 0 ? Double(h.valueAtPercentile(99)) / 1e6 : nil,
            answers: answers, errors: result.totalErrors + result.unsent)
    }

    static func summaryMetrics(_ f: FootprintFigures) -> [(String, Double?, String)] {
        [("idle_workload_memory", f.idleWorkloadBytes, "bytes"), ("idle_layer_memory", f.idleLayerBytes, "bytes"),
         ("loaded_workload_memory", f.loadedWorkloadBytes, "bytes"), ("loaded_layer_memory", f.loadedLayerBytes, "bytes"),
         ("idle_workload_pss", f.idleWorkloadPSSBytes, "bytes"), ("loaded_workload_pss", f.loadedWorkloadPSSBytes, "bytes"),
         ("engine_memory", f.engineBytes, "bytes"), ("reserved_memory", f.reservedBytes.map { Double($0) }, "bytes"),
         ("workload_cpu_per_1000", f.workloadCPUPer1000, "s"), ("layer_cpu_per_1000", f.layerCPUPer1000, "s"),
         ("engine_cpu_per_1000", f.engineCPUPer1000, "s"),
         ("image_size", f.imageBytes.map { Double($0) }, "bytes"),
         ("writable_layer", f.writableBytes.map { Double($0) }, "bytes"),
         ("bytes_per_request", f.bytesPerRequest, "bytes"), ("packets_per_request", f.packetsPerRequest, "packets"),
         ("latency_p50", f.p50Milliseconds, "ms"), ("latency_p99", f.p99Milliseconds, "ms"),
         ("answered_requests", Double(f.answers), "requests"), ("failed_requests", Double(f.errors), "requests")]
    }

    static func mib(_ b: Double) -> String { String(format: "%.1f", b / 1_048_576) }
    static func opt(_ v: Double?, _ f: String) -> String { v.map { String(format: f, $0) } ?? "—" }
    static func ratio(_ a: Double?, _ base: Double?) -> String {
        guard let a, let base, base > 0 else { return "—" }
        return String(format: "%.1f×", a / base)
    }

    /// The lab's VM-vs-container table with measured figures, ratios against the process.
    public static func table(_ figs: [FootprintFigures], config c: FootprintConfig, notRun: [(deployment: String, reason: String)] = []) -> String {
        var t = MarkdownTable(header: ["deployment", "PSS idle", "PSS loaded", "cgroup loaded", "layer idle", "layer loaded", "engine", "reserved",
                                       "CPU s/1000 workload", "CPU s/1000 layer", "CPU s/1000 engine", "image MB", "writable kB", "bytes/req",
                                       "pkts/req", "p50 ms", "p99 ms", "answers/errors", "× mem (PSS)", "× CPU"])
        let base = figs.first { $0.deployment == "process" }
        for f in figs {
            // The process and the VM have no cgroup, container layer or engine of their own.
            let bare = f.deployment == "process" || f.deployment == "qemu"
            let mem = f.loadedWorkloadPSSBytes + f.loadedLayerBytes
            let baseMem = base.map { $0.loadedWorkloadPSSBytes + $0.loadedLayerBytes }
            let cpu = f.workloadCPUPer1000.map { $0 + (f.layerCPUPer1000 ?? 0) }
            let baseCPU = base?.workloadCPUPer1000.map { $0 + (base?.layerCPUPer1000 ?? 0) }
            t.add([f.deployment, mib(f.idleWorkloadPSSBytes), mib(f.loadedWorkloadPSSBytes), bare ? "—" : mib(f.loadedWorkloadBytes),
                   bare ? "—" : mib(f.idleLayerBytes), bare ? "—" : mib(f.loadedLayerBytes), bare ? "—" : mib(f.engineBytes),
                   f.reservedBytes.map { mib(Double($0)) } ?? "—",
                   opt(f.workloadCPUPer1000, "%.3f"), bare ? "—" : opt(f.layerCPUPer1000, "%.3f"), bare ? "—" : opt(f.engineCPUPer1000, "%.3f"),
                   opt(f.imageBytes.map { Double($0) / 1e6 }, "%.1f"), opt(f.writableBytes.map { Double($0) / 1e3 }, "%.1f"),
                   opt(f.bytesPerRequest, "%.0f"), opt(f.packetsPerRequest, "%.2f"), opt(f.p50Milliseconds, "%.3f"), opt(f.p99Milliseconds, "%.3f"),
                   "\(f.answers)/\(f.errors)", ratio(mem, baseMem), ratio(cpu, baseCPU)])
        }
        var s = """
            ### Footprint: \(figs.map(\.deployment).joined(separator: ", "))

            One workload (`\(c.workload.command.joined(separator: " "))`, GET \(c.workload.path)), idle \
            \(KindDeclaration.describe(.duration(c.idle))), then \(KindDeclaration.describe(.number(c.rate))) requests/s open loop for \
            \(KindDeclaration.describe(.duration(c.duration))) over \(c.connections) connections. Memory in MiB, mean of the one-second \
            readings: workload PSS (smaps_rollup of its processes), the container's cgroup charge, layer = containerd-shim, conmon or lxc monitor \
            PSS, engine = dockerd+containerd or the podman service (PSS, shared by every container; lxc has none). CPU = utime+stime (the cgroup's usage for a \
            container) over the loaded phase per 1000 answers. Net = bytes/packets per answer, both directions, link-layer bytes: the \
            container's eth0, the process's port on lo (iptables counters). Latency: request written → last byte, client monotonic \
            clock. reserved = the VM's -m (the QEMU process's PSS is the whole VM: guest pages touched + QEMU). \
            × = (workload + layer) ÷ the process's. See docs/footprint.md.
            """
        s += "\n\n" + t.text
        if !notRun.isEmpty { s += "\nNot run: " + notRun.map { "\($0.deployment) (\($0.reason))" }.joined(separator: "; ") + "\n" }
        return s
    }

    /// The restart-downtime table.
    public static func restartTable(_ rows: [(deployment: String, method: String, downtime: RestartDowntime)], interval: Duration) -> String {
        var t = MarkdownTable(header: ["deployment", "restart", "gap ms", "first good answer ms", "failed requests", "sent/good", "note"])
        for r in rows {
            let d = r.downtime
            t.add([r.deployment, r.method, opt(d.gapMilliseconds, "%.1f"), opt(d.firstGoodMilliseconds, "%.1f"), "\(d.failed)", "\(d.sent)/\(d.good)",
                   d.problem ?? ""])
        }
        let intro = """
            ### Restart downtime

            A client sends GET every \(KindDeclaration.describe(.duration(interval))) (a thread and a new connection each, 1 s for connect → status line) \
            while the service is restarted in place. gap = the longest time between two consecutive good answers (200 within 1 s of the send) across the restart \
            (client monotonic clock, resolution = the interval); first good = restart issued → the first good answer to a request sent after the restart call returned; \
            failed = requests without a good answer from the restart on.
            """
        return intro + "\n\n" + t.text
    }

    /// Restarts the service while `FootprintRestartClient` sends a request every `interval`; the
    /// records go through `RestartDowntime.analyse` and to restart-<scenario>-<deployment>.csv.
    static func measureRestart(_ d: FootprintDeployment, target: HTTPTarget, interval: Duration, scenario: String,
                               ctx: ScenarioContext) async throws -> RestartDowntime {
        let name = d.kind.rawValue
        ctx.progress("footprint \(name): restart (\(d.restartMethod)) under a request every \(KindDeclaration.describe(.duration(interval)))")
        let client: FootprintRestartClient
        do {
            client = try FootprintRestartClient(host: d.host, port: d.port, path: target.path)
        } catch let e as StartupError {
            throw StartupError("restart of the \(name) deployment: \(e.message)")
        }
        client.start(interval: interval, maxInFlight: d.restartMaxInFlight)
        try? await Task.sleep(for: .seconds(1))
        let issued = monotonicNanos()
        var failure: Error?
        do { try await d.restart() } catch { failure = error }
        // An engine may give the restarted container a new address (podman does here): the client
        // follows it from the moment the call returned, and the table says so.
        var moved: String?
        if failure == nil && d.host != target.host && !target.host.contains(d.host) {
            client.retarget(host: d.host, port: d.port)
            moved = "came back at a new address: \(target.host) → \(d.host) (clients of the old one never see it again)"
        }
        // The engine may return before the old instance stopped, or before the new one listens:
        // wait for a good answer to a request sent after the call returned, then one more second
        // (at most `restartWindow` after the call was issued: 60 s, 240 s for the VM's new boot).
        let returned = monotonicNanos()
        let end = issued + UInt64(d.restartWindow.nanoseconds)
        while monotonicNanos() < end && !ctx.stop.isStopped && failure == nil {
            if client.all.contains(where: { $0.ok && $0.sentNanoseconds >= returned && $0.doneNanoseconds - $0.sentNanoseconds <= 1_000_000_000 }) { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await Task.sleep(for: .seconds(1))
        await client.stop()
        let records = client.all
        if let failure { throw failure }
        // Every request of the window, for a look at the outage: restart-<scenario>-<deployment>.csv.
        var csv = "sent_ms,done_ms,ok\n"
        for r in records.sorted(by: { $0.sentNanoseconds < $1.sentNanoseconds }) {
            csv += String(format: "%.3f,%.3f,%d\n", (Double(r.sentNanoseconds) - Double(issued)) / 1e6,
                          (Double(r.doneNanoseconds) - Double(issued)) / 1e6, r.ok ? 1 : 0)
        }
        try? csv.write(to: ctx.directory.appendingPathComponent("restart-\(FileName.safe(scenario))-\(name).csv"), atomically: true, encoding: .utf8)
        var downtime = RestartDowntime.analyse(records, restartIssuedNanoseconds: issued, returnedNanoseconds: returned)
        let capped = d.restartMaxInFlight < 1000
            ? "at most \(d.restartMaxInFlight) requests in flight (the guest answers too slowly for one every \(KindDeclaration.describe(.duration(interval)))): resolution ≈ its answer time"
            : nil
        if moved != nil || capped != nil { downtime.problem = [downtime.problem, moved, capped].compactMap { $0 }.joined(separator: "; ") }
        for (metric, value, unit) in [("gap", downtime.gapMilliseconds, "ms"), ("first_good", downtime.firstGoodMilliseconds, "ms"),
                                      ("failed", Double(downtime.failed), "requests")] {
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "restart", target: name, metric: metric, phase: "restart",
                                   value: value, unit: unit, timestamp: Date(), status: value == nil ? .error : .ok,
                                   reason: value == nil ? (downtime.problem ?? "") : "", labels: ["method": d.restartMethod]))
        }
        ctx.progress(String(format: "footprint %@: restart gap %@ ms, %d failed", name, opt(downtime.gapMilliseconds, "%.1f"), downtime.failed))
        return downtime
    }
}

/// Takes the one-second readings of one deployment and writes each as samples. An actor: during
/// the loaded phase a task beside the load generator takes them.
actor ReadingRecorder {
    let deployment: FootprintDeployment
    let scenario: String
    let ctx: ScenarioContext
    private var stored: [(phase: String, reading: FootprintReading)] = []

    init(deployment: FootprintDeployment, scenario: String, ctx: ScenarioContext) {
        (self.deployment, self.scenario, self.ctx) = (deployment, scenario, ctx)
    }

    func readings(in phase: String) -> [FootprintReading] { stored.filter { $0.phase == phase }.map(\.reading) }

    /// One reading now, recorded as samples of phase `p` (`idle` or `load`).
    @discardableResult
    func take(phase p: String) throws -> FootprintReading {
        let r = try deployment.read()
        stored.append((p, r))
        let name = deployment.kind.rawValue
        let now = Date()
        let labels = ["monotonic_s": String(format: "%.3f", r.monotonicSeconds)]
        for (metric, value, unit) in [("workload_memory", Double(r.workloadMemoryBytes), "bytes"), ("workload_pss", Double(r.workloadPSSBytes), "bytes"),
                                      ("workload_rss", Double(r.workloadRSSBytes), "bytes"), ("layer_pss", Double(r.layerPSSBytes), "bytes"),
                                      ("engine_pss", Double(r.enginePSSBytes), "bytes"), ("workload_cpu", r.workloadCPUSeconds, "s"),
                                      ("layer_cpu", r.layerCPUSeconds, "s"), ("engine_cpu", r.engineCPUSeconds, "s"),
                                      ("exchange_bytes", Double(r.exchangeBytes), "bytes"), ("exchange_packets", Double(r.exchangePackets), "packets")] {
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "footprint", target: name, metric: metric, phase: p,
                                   value: value, unit: unit, timestamp: now, status: .ok, labels: labels))
        }
        return r
    }

    /// A reading of `phase` every second for `length` (or until stopped/cancelled); returns the last one.
    func every(second length: Duration, phase: String, stop: StopFlag) async throws -> FootprintReading? {
        let end = ContinuousClock.now + length
        var last: FootprintReading?
        var next = ContinuousClock.now + .seconds(1)
        while next <= end && !stop.isStopped && !Task.isCancelled {
            try? await Task.sleep(until: next, clock: .continuous)
            if Task.isCancelled { break }
            last = try take(phase: phase)
            next += .seconds(1)
        }
        return last
    }
}
