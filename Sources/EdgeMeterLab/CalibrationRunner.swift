import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// `edgemeter calibrate`: measures what the lab's link impairment really does. For each case of a
/// `CalibrationPlan` it brings up a two-node topology (`client` and `server` on one network, the
/// case's `impair:` on the client's link: the same impairment in each direction), checks with
/// `ip route get` inside the client that the server's address is reached through the lab's link,
/// runs the probes from inside the client's namespace, and takes the topology down again.
///
/// The probes are the harness's own (ICMP echo, TCP connect, HTTP on a new connection, HTTP on a
/// keep-alive connection), run by `edgemeter calibrate-probe` under `ip netns exec`, so every socket,
/// NIO's included, is in the client's namespace. The server runs `edgemeter serve calculator --role
/// sum` and answers `GET /healthz`; TCP connects go to the same port.
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

    public init(executor: LabExecutor = LabExecutor(), binary: String) {
        (self.executor, self.binary) = (executor, binary)
    }

    /// The topology file of one case.
    public func topologyYAML(for c: CalibrationCase) -> String {
        var impair: [String] = []
        if c.delayMs > 0 { impair.append("delay: \(Self.durationText(c.delayMs))") }
        if let j = c.jitter {
            switch j {
            case .uniform(let a, let b): impair.append("jitter: \(Self.durationText((b - a) / 2)), distribution: uniform")
            case .normal(_, let sd, _, _): impair.append("jitter: \(Self.durationText(sd)), distribution: normal")
            case .sumOfTwo: break
            }
        }
        if c.lossPerDirection > 0 { impair.append("loss: \"\(Format.fixed(c.lossPerDirection * 100, 3))%\"") }
        let impairText = impair.isEmpty ? "" : ", impair: {\(impair.joined(separator: ", "))}"
        return """
        name: \(topologyName)
        description: edgemeter calibrate case \(c.name) - a client and a server on one impaired link
        networks:
          - {name: link, subnet: \(Self.subnet)}
        nodes:
          - name: client
            interfaces:
              - {network: link, address: \(Self.clientAddress)\(impairText)}
          - name: server
            interfaces:
              - {network: link, address: \(Self.serverAddress)}
            workload: [edgemeter, serve, calculator, --role, sum, --host, 0.0.0.0, --port, "\(Self.serverPort)"]
            ports: [\(Self.serverPort)]

        """
    }

    /// `20ms`, `0.5ms` → `500us`: the topology loader's duration syntax.
    static func durationText(_ ms: Double) -> String {
        ms == ms.rounded() ? "\(Int(ms))ms" : "\(Int((ms * 1000).rounded()))us"
    }

    /// Runs every case in order; delay-0 cases provide the baseline later cases' predictions add.
    /// `progress` gets one line per case and probe. Stops between probes when `stop` is set (the
    /// topology is taken down first).
    public func run(_ cases: [CalibrationCase], stop: StopFlag, progress: @escaping @Sendable (String) -> Void) async throws -> [CalibrationRow] {
        var rows: [CalibrationRow] = []
        var baseline: [CalibrationProbe: Double] = [:]
        for c in cases {
            if stop.isStopped { throw LabError(.interrupted, "calibrate interrupted by \(stop.reason ?? "a stop request") before case \(c.name)") }
            let topology = try TopologyLoader.load(yaml: topologyYAML(for: c), file: "calibrate:\(c.name)")
            progress("case \(c.name): lab up \(topology.name)")
            let state = try await executor.up(topology, binary: binary, stop: stop)
            var caseRows: [CalibrationRow] = []
            var failure: Error?
            do {
                guard let client = state.node("client") else { throw LabError(.stepFailed, "calibrate: the topology has no client node") }
                try checkRoute(namespace: client.namespace, devices: Set(client.interfaces.map(\.device)))
                for probe in CalibrationProbe.allCases {
                    guard let n = c.samples[probe], n > 0 else { continue }
                    if stop.isStopped { throw LabError(.interrupted, "calibrate interrupted by \(stop.reason ?? "a stop request") in case \(c.name)") }
                    let m = try await measure(probe, count: n, intervalMs: c.intervalMs, namespace: client.namespace)
                    let base = c.delayMs == 0 && c.jitter == nil && c.lossPerDirection == 0 ? 0 : (baseline[probe] ?? 0)
                    var row = CalibrationRow.judge(case: c, probe: probe, valuesMs: m.values, failed: m.failed, baselineMs: base)
                    if m.values.isEmpty { row.problem = "no attempt succeeded: \(m.firstFailure ?? "no output")" }
                    caseRows.append(row)
                    progress("case \(c.name) \(probe.rawValue): \(m.values.count) ok, \(m.failed) failed, p50 \(Format.fixed(row.measuredP50Ms, 3)) ms (predicted \(Format.fixed(row.predictedMs, 3)))")
                }
            } catch {
                failure = error
            }
            _ = try await executor.down(topology.name)
            if let failure { throw failure }
            if c.delayMs == 0 && c.jitter == nil && c.lossPerDirection == 0 {
                for r in caseRows { if let p = r.measuredP50Ms { baseline[r.probe] = p } }
            }
            rows += caseRows
        }
        return rows
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
    }

    func measure(_ probe: CalibrationProbe, count: Int, intervalMs: Double, namespace: String) async throws -> Measurement {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        let argv = [ip, "netns", "exec", namespace, binary, "calibrate-probe", "--probe", probe.rawValue,
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
            } else if line.hasPrefix("fail") {
                m.failed += 1
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
