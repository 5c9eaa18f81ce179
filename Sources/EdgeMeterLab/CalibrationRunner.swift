import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// `edgemeter calibrate`: measures what the lab's link impairment really does. A two-node topology
/// (`client` and `server` on one network) is built twice: once without `impair` (the direct path,
/// no forwarder) and once with the client's link going through the impairment forwarder, on which
/// each case of a `CalibrationPlan` is set at runtime (`LabExecutor.setLink`, the same impairment
/// in each direction). Before anything is sent, `ip route get` inside the client must pick the
/// lab's link.
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

    /// The topology file: `impair` nil = no impairment (no forwarder on the path).
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
        nodes:
          - name: client
            interfaces:
              - {network: link, address: \(Self.clientAddress)\(impairText)}
          - name: server
            interfaces:
              - {network: link, address: \(Self.serverAddress)}
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
        /// p50 (ms) per probe with no forwarder on the path (the topology built without `impair`).
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

    /// First measures the direct path (the topology without `impair`: no forwarder) with the first
    /// case's sample counts, then builds the topology once with the client's link impaired (1 ms,
    /// so the forwarder is on the path) and, per case, sets the link through the forwarder's runtime
    /// API (`lab link set`), waits for frames queued under the previous setting to leave, and
    /// measures. Predictions: the delay-0 case is predicted as the direct path's p50 (its error is
    /// the forwarder's own added latency); every other case adds the delay-0 p50 of the same probe
    /// (path, server and forwarder cost). `progress` gets one line per case and probe. Stops
    /// between probes when `stop` is set; the topology is always taken down.
    public func run(_ cases: [CalibrationCase], stop: StopFlag, progress: @escaping @Sendable (String) -> Void) async throws -> Result {
        guard let first = cases.first else { return Result(rows: [], direct: [:]) }
        var direct: [CalibrationProbe: Double] = [:]
        var samples: [(caseName: String, probe: CalibrationProbe, valueMs: Double?)] = []
        try await withTopology(impair: nil, stop: stop, progress: progress) { client in
            for probe in CalibrationProbe.allCases {
                guard let n = first.samples[probe], n > 0 else { continue }
                try checkStop(stop, "the direct baseline")
                let m = try await measure(probe, count: n, intervalMs: first.intervalMs, namespace: client.namespace)
                direct[probe] = CalibrationStatistics.median(m.values)
                samples += m.attempts.map { ("direct", probe, $0) }
                progress("direct (no forwarder) \(probe.rawValue): \(m.values.count) ok, \(m.failed) failed, p50 \(Format.fixed(direct[probe], 3)) ms")
            }
        }
        var rows: [CalibrationRow] = []
        var forwarderNotes: [String] = []
        try await withTopology(impair: LinkImpairment(delay: "1ms"), stop: stop, progress: progress) { client in
            var baseline: [CalibrationProbe: Double] = [:]
            var previousDelayMs = 1.0
            for c in cases {
                try checkStop(stop, "case \(c.name)")
                let impairment = Self.impairment(for: c)
                let report = try executor.setLink(topologyName, node: "client", network: nil, impairment: impairment)
                progress("case \(c.name): link set to \(report.impairment.summary)")
                // Frames queued under the previous setting keep their release times: let them leave.
                try await Task.sleep(for: .milliseconds(Int64(4 * previousDelayMs + 50)))
                previousDelayMs = c.delayMs + 3 * (c.jitter.map { $0.support.1 } ?? 0)
                let isZero = c.delayMs == 0 && c.jitter == nil && c.lossPerDirection == 0
                for probe in CalibrationProbe.allCases {
                    guard let n = c.samples[probe], n > 0 else { continue }
                    try checkStop(stop, "case \(c.name)")
                    let m = try await measure(probe, count: n, intervalMs: c.intervalMs, namespace: client.namespace)
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

    func checkStop(_ stop: StopFlag, _ before: String) throws {
        if stop.isStopped { throw LabError(.interrupted, "calibrate interrupted by \(stop.reason ?? "a stop request") before \(before)") }
    }

    /// Brings the topology up, checks the route from the client, runs `body` with the client's
    /// state, and takes the topology down whatever happened.
    func withTopology(impair: LinkImpairment?, stop: StopFlag, progress: (String) -> Void,
                      _ body: (LabState.NodeState) async throws -> Void) async throws {
        let topology = try TopologyLoader.load(yaml: topologyYAML(impair: impair), file: "calibrate")
        progress("lab up \(topology.name)" + (impair.map { " (client link: \($0.summary))" } ?? " (no impairment)"))
        let state = try await executor.up(topology, binary: binary, stop: stop)
        var failure: Error?
        do {
            guard let client = state.node("client") else { throw LabError(.stepFailed, "calibrate: the topology has no client node") }
            try checkRoute(namespace: client.namespace, devices: Set(client.interfaces.map(\.device)))
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

    /// Refuses to send anything unless `ip route get SERVER` inside the client picks one of the
    /// client's lab interfaces.
    func checkRoute(namespace: String, devices: Set<String>) throws {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        let r = try Command.runBlocking([ip, "-n", namespace, "-o", "route", "get", Self.serverAddress], timeout: .seconds(5))
        switch ReachRunner.classifyRoute(status: r.status, output: r.ok ? r.stdout : r.combined, labDevices: devices) {
        case .intoLab: return
        case .leavesLab(let dev):
            throw LabError(.refused, "calibrate: from the client, \(Self.serverAddress) routes via \(dev), which is not the lab's link; nothing was sent. Check `ip -n \(namespace) route`")
        case .noRoute(let why):
            throw LabError(.refused, "calibrate: the client has no route to \(Self.serverAddress) (\(why)); nothing was sent")
        }
    }

    /// What one probe run measured: successful figures (ms) and failed attempts.
    public struct Measurement: Sendable, Equatable {
        public var values: [Double] = []
        public var failed = 0
        public var firstFailure: String?
        /// Every attempt in order: its value, nil when it failed.
        public var attempts: [Double?] = []
    }

    func measure(_ probe: CalibrationProbe, count: Int, intervalMs: Double, namespace: String) async throws -> Measurement {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        let argv = [ip, "netns", "exec", namespace] + realtimePrefix + [binary, "calibrate-probe", "--probe", probe.rawValue,
                    "--address", Self.serverAddress, "--port", String(Self.serverPort), "--count", String(count),
                    "--interval-ms", Format.fixed(intervalMs, 3), "--timeout-ms", String(attemptTimeoutMs)]
        // Bound: every attempt at its timeout, plus a minute.
        let bound = Duration.milliseconds(Int64(count) * Int64(Double(attemptTimeoutMs) + intervalMs) + 60_000)
        let r = try await Command.run(argv, timeout: bound)
        let m = Self.parseProbeOutput(r.stdout)
        guard r.ok else {
            throw LabError(.stepFailed, "calibrate: the \(probe.rawValue) probe in \(namespace) failed (status \(r.status)\(r.timedOut ? ", timed out" : "")): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); run the command by hand to see why",
                           command: argv, output: r.combined)
        }
        guard m.values.count + m.failed == count else {
            throw LabError(.stepFailed, "calibrate: the \(probe.rawValue) probe reported \(m.values.count + m.failed) attempts, \(count) were asked for",
                           command: argv, output: r.combined)
        }
        return m
    }

    /// Parses `calibrate-probe` output: one line per attempt, `ok <ms>` or `fail <reason>`; other
    /// lines are ignored.
    public static func parseProbeOutput(_ text: String) -> Measurement {
        var m = Measurement()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("ok "), let v = Double(line.dropFirst(3).trimmingCharacters(in: .whitespaces)), v.isFinite {
                m.values.append(v)
                m.attempts.append(v)
            } else if line.hasPrefix("fail") {
                m.failed += 1
                m.attempts.append(nil)
                if m.firstFailure == nil { m.firstFailure = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces) }
            }
        }
        return m
    }

    /// The running kernel (`/proc/sys/kernel/osrelease`).
    public static func kernelRelease() -> String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "unknown").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
