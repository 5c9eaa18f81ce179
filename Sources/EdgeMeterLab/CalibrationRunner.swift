import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// `edgemeter calibrate`: measures what the lab's link impairment really does. A two-node topology
/// (`client` and `server`) joined by two networks: `link`, where the client's interface goes
/// through the impairment forwarder, on which each case of a `CalibrationPlan` is set at runtime
/// (`LabExecutor.setLink`, the same impairment in each direction); and `direct`, with no forwarder.
/// The direct path is measured in the delay-0 case, attempt by attempt interleaved with the
/// forwarded one (the same probe process, the same server process), so a drift of the endpoints
/// weighs on both alike and the delay-0 error is the forwarder's own cost. Before anything is
/// sent, `ip route get` inside the client must pick the right lab interface for each address.
///
/// The probes are the harness's own (ICMP echo, TCP connect, HTTP on a new connection, HTTP on a
/// keep-alive connection), run by `edgemeter calibrate-probe` under `ip netns exec`, so every socket,
/// NIO's included, is in the client's namespace. The server runs `edgemeter serve calculator --role
/// sum` and answers `GET /healthz`; TCP connects go to the same port. Both endpoints run at
/// real-time priority (`endpointPriority`), and the client's TCP and keep-alive figures end at
/// kernel stamps (`KernelStampedTCP`), so the certificate measures the link, not how soon the
/// host's scheduler wakes the endpoints' threads.
public struct CalibrationRunner: Sendable {
    public var executor: LabExecutor
    /// The edgemeter binary (workloads and the in-namespace probe).
    public var binary: String
    public var topologyName = "calib"
    public static let subnet = "10.213.0.0/24"
    public static let clientAddress = "10.213.0.2"
    public static let serverAddress = "10.213.0.3"
    /// The `direct` network: the same two nodes, no forwarder.
    public static let directSubnet = "10.213.1.0/24"
    public static let clientDirectAddress = "10.213.1.2"
    public static let serverDirectAddress = "10.213.1.3"
    public static let serverPort = 8080
    /// Each probe's attempt timeout: above a 1 s SYN retransmission plus the largest round trip.
    public var attemptTimeoutMs = 3000
    /// SCHED_FIFO priority of the two endpoints (the server's workload and the client's probe, run
    /// under `chrt -f`); 0 = ordinary scheduling. Below the forwarder's 10, so a release still
    /// preempts them. On a host whose cores are busy (other builds), an ordinary thread woken by a
    /// request or response waits its turn behind them (0.5-3 ms here); a real-time one runs at once.
    /// The endpoints sleep between exchanges and use the CPU only to answer, so this takes nothing
    /// from the host's other work. Without `chrt` (util-linux) they run at ordinary priority.
    public var endpointPriority = 5

    /// `chrt -f PRIORITY` (absolute path), or nothing when not wanted or not installed.
    var realtimePrefix: [String] {
        guard endpointPriority > 0, let chrt = which("chrt") else { return [] }
        return [chrt, "-f", String(endpointPriority)]
    }

    public init(executor: LabExecutor = LabExecutor(), binary: String) {
        (self.executor, self.binary) = (executor, binary)
    }

    /// The topology file: `impair` is the client's `link` interface's impairment (nil = none, no
    /// forwarder on either path); the `direct` network is never impaired.
    public func topologyYAML(impair: LinkImpairment?) -> String {
        var fields: [String] = []
        if let i = impair {
            if let d = i.delay { fields.append("delay: \(d)") }
            if let j = i.jitter { fields.append("jitter: \(j)") }
            if let d = i.distribution { fields.append("distribution: \(d)") }
            if let l = i.loss { fields.append("loss: \"\(l)\"") }
        }
        let impairText = fields.isEmpty ? "" : ", impair: {\(fields.joined(separator: ", "))}"
        return """
        name: \(topologyName)
        description: edgemeter calibrate - a client and a server on one impaired link
        networks:
          - {name: link, subnet: \(Self.subnet)}
          - {name: direct, subnet: \(Self.directSubnet)}
        nodes:
          - name: client
            interfaces:
              - {network: link, address: \(Self.clientAddress)\(impairText)}
              - {network: direct, address: \(Self.clientDirectAddress)}
          - name: server
            interfaces:
              - {network: link, address: \(Self.serverAddress)}
              - {network: direct, address: \(Self.serverDirectAddress)}
            workload: [\(realtimePrefix.map { "\"\($0)\", " }.joined())edgemeter, serve, calculator, --role, sum, --host, 0.0.0.0, --port, "\(Self.serverPort)"]
            ports: [\(Self.serverPort)]

        """
    }

    /// The impairment a case sets on the client's link (each direction).
    public static func impairment(for c: CalibrationCase) -> LinkImpairment {
        var spec = ImpairmentSpec(delayNanoseconds: Int64((c.delayMs * 1e6).rounded()))
        if let j = c.jitter {
            switch j {
            case .uniform(let a, let b): spec.jitterNanoseconds = Int64(((b - a) / 2 * 1e6).rounded()); spec.distribution = .uniform
            case .normal(_, let sd, _, _): spec.jitterNanoseconds = Int64((sd * 1e6).rounded()); spec.distribution = .normal
            case .sumOfTwo: break
            }
        }
        if c.lossPerDirection > 0 { spec.loss = .bernoulli(percent: c.lossPerDirection * 100) }
        return LinkImpairment(spec)
    }

    /// What `run` measured: the certificate's rows and the direct path's p50 per probe.
    public struct Result: Sendable {
        public var rows: [CalibrationRow]
        /// p50 (ms) per probe on the `direct` network (no forwarder), measured interleaved with the
        /// delay-0 case.
        public var direct: [CalibrationProbe: Double]
        /// Every attempt, in completion order: (case, probe, value ms or nil when it failed).
        /// The direct path's attempts are under the case name `direct`.
        public var samples: [(caseName: String, probe: CalibrationProbe, valueMs: Double?)] = []
        /// The forwarder's own counters after each case (`GET /links`): how late it released
        /// frames against the model's release times, and its drops.
        public var forwarderNotes: [String] = []

        /// `case,probe,seq,status,value_ms`: one row per attempt (failures included, empty value).
        public var samplesCSV: String {
            var s = CSV.line(["case", "probe", "seq", "status", "value_ms"])
            var seq: [String: Int] = [:]
            for x in samples {
                let key = x.caseName + "/" + x.probe.rawValue
                seq[key, default: 0] += 1
                s += CSV.line([x.caseName, x.probe.rawValue, String(seq[key]!), x.valueMs == nil ? "failed" : "ok",
                               x.valueMs.map { String(format: "%.6f", $0) } ?? ""])
            }
            return s
        }
    }

    /// Builds the topology once with the client's `link` interface impaired (1 ms, so the forwarder
    /// is on the path) and, per case, sets the link through the forwarder's runtime API (`lab link
    /// set`), waits for frames queued under the previous setting to leave, and measures. The
    /// delay-0 case pairs every attempt with one on the `direct` network (`CalibrationSeries.order`)
    /// and is predicted as the direct path's p50: its error is the forwarder's own added latency.
    /// Every other case adds the delay-0 p50 of the same probe (path, server and forwarder cost), so
    /// a plan must start with its delay-0 case: any other plan is refused before anything is built.
    /// `progress` gets one line per case and probe. Stops between probes when `stop` is set; the
    /// topology is always taken down.
    public func run(_ cases: [CalibrationCase], stop: StopFlag, progress: @escaping @Sendable (String) -> Void) async throws -> Result {
        guard let first = cases.first else { return Result(rows: [], direct: [:]) }
        guard Self.isZero(first) else {
            throw LabError(.refused, "calibrate: the plan starts with \(first.name), not a case with no impairment; every prediction adds the delay-0 figures, so put a delay-0 case first")
        }
        var direct: [CalibrationProbe: Double] = [:]
        var samples: [(caseName: String, probe: CalibrationProbe, valueMs: Double?)] = []
        var rows: [CalibrationRow] = []
        var forwarderNotes: [String] = []
        try await withTopology(stop: stop, progress: progress) { client in
            var baseline: [CalibrationProbe: Double] = [:]
            var previousDelayMs = 1.0
            for c in cases {
                try checkStop(stop, "case \(c.name)")
                let impairment = Self.impairment(for: c)
                let report = try executor.setLink(topologyName, node: "client", network: "link", impairment: impairment)
                progress("case \(c.name): link set to \(report.impairment.summary)")
                // Frames queued under the previous setting keep their release times: let them leave.
                try await Task.sleep(for: .milliseconds(Int64(4 * previousDelayMs + 50)))
                previousDelayMs = c.delayMs + 3 * (c.jitter.map { $0.support.1 } ?? 0)
                let isZero = Self.isZero(c)
                for probe in CalibrationProbe.allCases {
                    guard let n = c.samples[probe], n > 0 else { continue }
                    try checkStop(stop, "case \(c.name)")
                    let both = try await measure(probe, count: n, intervalMs: c.intervalMs, namespace: client.namespace,
                                                 directAddress: isZero ? Self.serverDirectAddress : nil)
                    if isZero {
                        direct[probe] = CalibrationStatistics.median(both.direct.values)
                        samples += both.direct.attempts.map { ("direct", probe, $0) }
                        progress("direct (no forwarder) \(probe.rawValue): \(both.direct.values.count) ok, \(both.direct.failed) failed, p50 \(Format.fixed(direct[probe], 3)) ms")
                    }
                    let m = both.link
                    samples += m.attempts.map { (c.name, probe, $0) }
                    let base = isZero ? (direct[probe] ?? 0) : (baseline[probe] ?? direct[probe] ?? 0)
                    var row = CalibrationRow.judge(case: c, probe: probe, valuesMs: m.values, failed: m.failed, baselineMs: base)
                    if m.values.isEmpty { row.problem = "no attempt succeeded: \(m.firstFailure ?? "no output")" }
                    if isZero, let p = row.measuredP50Ms { baseline[probe] = p }
                    rows.append(row)
                    progress("case \(c.name) \(probe.rawValue): \(m.values.count) ok, \(m.failed) failed, p50 \(Format.fixed(row.measuredP50Ms, 3)) ms (predicted \(Format.fixed(row.predictedMs, 3)))")
                }
                if let link = try? executor.links(topologyName).first {
                    func text(_ d: ForwarderDirectionStats) -> String {
                        let late = [d.lateP50Microseconds, d.lateP99Microseconds, d.lateMaxMicroseconds].map { $0.map(String.init) ?? "-" }
                        return "\(d.forwarded) forwarded, \(d.droppedLoss) lost, late p50/p99/max \(late.joined(separator: "/")) µs"
                    }
                    let line = "forwarder after \(c.name): to network \(text(link.toNetwork)); to node \(text(link.toNode))"
                    forwarderNotes.append(line)
                    progress(line)
                }
            }
        }
        return Result(rows: rows, direct: direct, samples: samples, forwarderNotes: forwarderNotes)
    }

    /// The case that sets no impairment at all: predicted as the direct path.
    static func isZero(_ c: CalibrationCase) -> Bool { c.delayMs == 0 && c.jitter == nil && c.lossPerDirection == 0 }

    func checkStop(_ stop: StopFlag, _ before: String) throws {
        if stop.isStopped { throw LabError(.interrupted, "calibrate interrupted by \(stop.reason ?? "a stop request") before \(before)") }
    }

    /// Brings the topology up with the client's `link` impaired by 1 ms (so the forwarder is on the
    /// path; each case then sets its own impairment), checks the routes from the client, runs `body`
    /// with the client's state, and takes the topology down whatever happened.
    func withTopology(stop: StopFlag, progress: (String) -> Void, _ body: (LabState.NodeState) async throws -> Void) async throws {
        let impair = LinkImpairment(delay: "1ms")
        let topology = try TopologyLoader.load(yaml: topologyYAML(impair: impair), file: "calibrate")
        progress("lab up \(topology.name) (client link: \(impair.summary))")
        let state = try await executor.up(topology, binary: binary, stop: stop)
        var failure: Error?
        do {
            guard let client = state.node("client") else { throw LabError(.stepFailed, "calibrate: the topology has no client node") }
            for (address, network) in [(Self.serverAddress, "link"), (Self.serverDirectAddress, "direct")] {
                guard let port = client.interfaces.first(where: { $0.network == network }) else {
                    throw LabError(.stepFailed, "calibrate: the client has no interface on \(network)")
                }
                try checkRoute(namespace: client.namespace, to: address, device: port.device)
            }
            try await body(client)
        } catch {
            failure = error
        }
        do {
            _ = try await executor.down(topology.name)
        } catch {
            // Say both: what stopped the measurement, and what taking the topology down left.
            guard let failure else { throw error }
            throw LabError(.stepFailed, "\(failure); then, taking \(topology.name) down: \(error)")
        }
        if let failure { throw failure }
    }

    /// Refuses to send anything unless `ip route get ADDRESS` inside the client picks `device`, the
    /// client's lab interface on that address's network.
    func checkRoute(namespace: String, to address: String, device: String) throws {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        let r = try Command.runBlocking([ip, "-n", namespace, "-o", "route", "get", address], timeout: .seconds(5))
        switch ReachRunner.classifyRoute(status: r.status, output: r.ok ? r.stdout : r.combined, labDevices: [device]) {
        case .intoLab: return
        case .leavesLab(let dev):
            throw LabError(.refused, "calibrate: from the client, \(address) routes via \(dev), not the lab's \(device); nothing was sent. Check `ip -n \(namespace) route`")
        case .noRoute(let why):
            throw LabError(.refused, "calibrate: the client has no route to \(address) (\(why)); nothing was sent")
        }
    }

    /// What one probe run measured: successful figures (ms) and failed attempts.
    public struct Measurement: Sendable, Equatable {
        public var values: [Double] = []
        public var failed = 0
        public var firstFailure: String?
        /// Every attempt in order: its value, nil when it failed.
        public var attempts: [Double?] = []

        /// Adds one `calibrate-probe` line: `ok <ms>` or `fail <reason>`; any other line is ignored.
        mutating func record(_ line: Substring) {
            if line.hasPrefix("ok "), let v = Double(line.dropFirst(3).trimmingCharacters(in: .whitespaces)), v.isFinite {
                values.append(v)
                attempts.append(v)
            } else if line.hasPrefix("fail") {
                failed += 1
                attempts.append(nil)
                if firstFailure == nil { firstFailure = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces) }
            }
        }
    }

    /// Runs one `calibrate-probe` series in `namespace` against the server's `link` address, with
    /// every attempt paired with one to `directAddress` when given. Returns both paths' attempts
    /// (`direct` empty without a direct address).
    func measure(_ probe: CalibrationProbe, count: Int, intervalMs: Double, namespace: String, directAddress: String? = nil) async throws -> ProbeOutput {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        let argv = [ip, "netns", "exec", namespace] + realtimePrefix + [binary, "calibrate-probe", "--probe", probe.rawValue,
                    "--address", Self.serverAddress, "--port", String(Self.serverPort), "--count", String(count),
                    "--interval-ms", Format.fixed(intervalMs, 3), "--timeout-ms", String(attemptTimeoutMs)]
                    + (directAddress.map { ["--direct-address", $0] } ?? [])
        // Bound: every attempt (both paths) at its timeout, plus a minute.
        let paths: Int64 = directAddress == nil ? 1 : 2
        let bound = Duration.milliseconds(paths * Int64(count) * Int64(Double(attemptTimeoutMs) + intervalMs) + 60_000)
        let r = try await Command.run(argv, timeout: bound)
        let out = Self.parseProbeOutput(r.stdout)
        guard r.ok else {
            throw LabError(.stepFailed, "calibrate: the \(probe.rawValue) probe in \(namespace) failed (status \(r.status)\(r.timedOut ? ", timed out" : "")): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); run the command by hand to see why",
                           command: argv, output: r.combined)
        }
        let directCount = directAddress == nil ? 0 : count
        guard out.link.attempts.count == count, out.direct.attempts.count == directCount else {
            throw LabError(.stepFailed, "calibrate: the \(probe.rawValue) probe reported \(out.link.attempts.count) attempts on the link and \(out.direct.attempts.count) on the direct path, \(count) and \(directCount) were asked for",
                           command: argv, output: r.combined)
        }
        return out
    }

    /// `calibrate-probe`'s attempts split by path: `link` (unprefixed lines) and `direct` (lines
    /// prefixed `direct `).
    public struct ProbeOutput: Sendable, Equatable {
        public var link = Measurement()
        public var direct = Measurement()
    }

    /// Parses `calibrate-probe` output: one line per attempt, `ok <ms>` or `fail <reason>`, prefixed
    /// `direct ` for the direct path; other lines are ignored.
    public static func parseProbeOutput(_ text: String) -> ProbeOutput {
        var out = ProbeOutput()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("direct ") { out.direct.record(line.dropFirst("direct ".count)) } else { out.link.record(line) }
        }
        return out
    }

    /// The running kernel (`/proc/sys/kernel/osrelease`).
    public static func kernelRelease() -> String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "unknown").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
