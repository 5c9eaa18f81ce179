import Foundation
import EdgeMeterCore
import EdgeMeterProbes

public struct TCPingTargetTotals: Sendable {
    public var name: String
    public var address: String
    public var attempts = 0
    public var connected = 0
    public var refused = 0
    public var timeouts = 0
    public var unreachable = 0
}

/// TCP connect time: turns `TCPConnectProbe` attempts into samples.
///
/// Samples (probe `tcping`): `latency/resolve` once per target; per attempt `latency/connect` and,
/// with a payload, `latency/first_byte` — both emitted for every attempt, failed ones included.
/// Labels: `seq`, `family`, `address`, `local_port` (to match the connection on the wire),
/// `clock=monotonic`.
/// What one tcping scenario measures, from a suite scenario or `edgemeter tcping` flags alike.
public struct TCPingConfig: Sendable, Equatable {
    public var schedule: ProbeSchedule
    public var payload: String?
    public var expect: String?
    /// Start a loopback listener on each target host (the target is then HOST, its port ephemeral).
    public var listener: Bool

    public init(_ s: ValidatedScenario) {
        schedule = ProbeSchedule(s)
        payload = s.string("payload")
        expect = s.string("expect")
        listener = s.bool("listener") ?? false
    }

    public var options: TCPConnectOptions {
        TCPConnectOptions(count: schedule.count, interval: schedule.interval, timeout: schedule.timeout, deadline: schedule.deadline,
                          payload: payload.map { Array($0.utf8) }, expect: expect.map { Array($0.utf8) })
    }
}

public enum TCPingScenario {
    public static let declaration = KindDeclaration(
        kind: "tcping",
        parameters: [ParameterSpec("targets", cli: "HOST:PORT", .stringList, help: "Targets as HOST:PORT ([::1]:80 for IPv6).")]
            + ProbeSchedule.parameters + [
            ParameterSpec("payload", cli: "--payload", .string, help: "Bytes to send once connected (enables the first_byte phase)."),
            ParameterSpec("expect", cli: "--expect", .string, help: "A string the reply must contain (needs --payload)."),
            ParameterSpec("listener", cli: "--listener", .bool, default: .bool(false),
                          help: "Start a loopback listener on each target HOST (no port) and probe it."),
        ],
        required: ["targets"],
        checks: [ProbeSchedule.bounded, { s in
            if s.string("expect") != nil && s.string("payload") == nil { return ("expect", "{expect} needs {payload}: give the bytes to send first") }
            if s.bool("listener") != true {
                for t in s.strings("targets") ?? [] {
                    do { _ = try Resolver.splitHostPort(t) } catch { return ("targets", "\(error); or set {listener: true} to probe a listener the run starts on that host") }
                }
            }
            return nil
        }])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { TCPingConfig($0) }) { s, ctx in
        _ = try run(TCPingConfig(s), scenario: s.name, ctx: ctx, onLine: nil)
    }

    /// Runs a configuration: with `listener`, first starts a loopback listener per target host.
    public static func run(_ c: TCPingConfig, scenario: String, ctx: ScenarioContext, onLine: ((String) -> Void)?) throws -> [TCPingTargetTotals] {
        var targets = c.schedule.targets
        var names: [String]?
        var listeners: [LoopbackListener] = []
        defer { listeners.forEach { $0.close() } }
        if c.listener {
            // The target keeps the host's name (stable across runs); the ephemeral port is in the
            // `address` label.
            names = targets
            targets = try targets.map { host in
                let l = try LoopbackListener(host: host, echo: c.payload != nil)
                listeners.append(l)
                ctx.progress("listener on \(l.address.hostPort)")
                return l.address.hostPort
            }
        }
        return try run(scenario: scenario, targets: targets, names: names, family: c.schedule.family, options: c.options, ctx: ctx, onLine: onLine)
    }

    /// `names`, when given, are what the samples call each target (default: the HOST:PORT text).
    public static func run(scenario: String, targets: [String], names: [String]? = nil, family: AddressFamilyPreference,
                           options: TCPConnectOptions, ctx: ScenarioContext, onLine: ((String) -> Void)?) throws -> [TCPingTargetTotals] {
        let named = targets.enumerated().map { (k, text) in (name: names?[k] ?? text, text: text) }
        let resolved = resolveTargets(named, probe: "tcping", scenario: scenario, ctx: ctx, onLine: onLine) { text in
            let (host, port) = try Resolver.splitHostPort(text)
            return try Resolver.resolve(host, port: port, family: family)
        }
        guard !resolved.isEmpty else { throw ResolveError(target: "", message: "no target could be resolved; check the HOST:PORT arguments") }
        var totals = resolved.map { TCPingTargetTotals(name: $0.name, address: $0.address.hostPort) }
        let probe = TCPConnectProbe(targets: resolved, options: options, stop: ctx.stop)
        func status(_ s: TCPAttempt.Status) -> SampleStatus {
            switch s {
            case .ok: return .ok
            case .refused: return .refused
            case .timeout: return .timeout
            case .unreachable: return .unreachable
            case .error: return .error
            }
        }
        probe.run { a in
            let t = resolved[a.targetIndex]
            totals[a.targetIndex].attempts += 1
            switch a.connectStatus {
            case .ok: totals[a.targetIndex].connected += 1
            case .refused: totals[a.targetIndex].refused += 1
            case .timeout: totals[a.targetIndex].timeouts += 1
            case .unreachable: totals[a.targetIndex].unreachable += 1
            case .error: break
            }
            var labels = ["seq": "\(a.sequence)", "family": t.address.family == AF_INET6 ? "ipv6" : "ipv4",
                          "address": t.address.hostPort, "clock": "monotonic"]
            if let p = a.localPort { labels["local_port"] = "\(p)" }
            let connectMs = a.connectNanoseconds.map { Double($0) / 1e6 }
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "tcping", target: t.name, metric: "latency",
                                   phase: "connect", value: connectMs, unit: "ms", timestamp: a.startedAt,
                                   status: status(a.connectStatus), reason: a.reason, labels: labels))
            var line = a.connectStatus == .ok
                ? "connected to \(t.address.hostPort): seq=\(a.sequence) time=\(PingScenario.formatMs(connectMs ?? 0)) ms"
                : "\(t.address.hostPort): seq=\(a.sequence) \(a.reason)"
            if let fb = a.firstByteStatus {
                let fbMs = a.firstByteNanoseconds.map { Double($0) / 1e6 }
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: "tcping", target: t.name, metric: "latency",
                                       phase: "first_byte", value: fbMs, unit: "ms", timestamp: a.startedAt,
                                       status: status(fb), reason: a.firstByteReason, labels: labels))
                if a.connectStatus == .ok {
                    line += fb == .ok ? " first_byte=\(PingScenario.formatMs(fbMs ?? 0)) ms" : " first_byte: \(a.firstByteReason)"
                }
            }
            onLine?(line)
        }
        return totals
    }
}
