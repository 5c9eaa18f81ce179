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
public enum TCPingScenario {
    public static let schema = ScenarioSchema(
        kind: "tcping",
        parameters: ["targets": .stringList, "count": .positiveInteger, "interval": .duration, "timeout": .duration,
                     "deadline": .duration, "payload": .string, "expect": .string, "listener": .bool,
                     "family": .oneOf(["any", "ipv4", "ipv6"])],
        required: ["targets"],
        check: { s in
            if s.int("count") == nil && s.duration("deadline") == nil {
                return ("targets", "give `count` or `deadline` so the scenario ends by itself")
            }
            if let i = s.duration("interval"), i.nanoseconds < 1_000_000 { return ("interval", "`interval` must be at least 1ms") }
            if let t = s.duration("timeout"), t.nanoseconds <= 0 { return ("timeout", "`timeout` must be more than 0") }
            if s.string("expect") != nil && s.string("payload") == nil { return ("expect", "`expect` needs a `payload` to send first") }
            if s.bool("listener") != true {
                for t in s.strings("targets") ?? [] {
                    do { _ = try Resolver.splitHostPort(t) } catch { return ("targets", "\(error); or set `listener: true` to probe a listener the run starts on that host") }
                }
            }
            return nil
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        let options = TCPConnectOptions(count: s.int("count"), interval: s.duration("interval") ?? .milliseconds(100),
                                        timeout: s.duration("timeout") ?? .seconds(1), deadline: s.duration("deadline"),
                                        payload: s.string("payload").map { Array($0.utf8) }, expect: s.string("expect").map { Array($0.utf8) })
        var targets = s.strings("targets") ?? []
        var names: [String]?
        var listeners: [LoopbackListener] = []
        defer { listeners.forEach { $0.close() } }
        if s.bool("listener") == true {
            // The target keeps the host's name (stable across runs); the ephemeral port is in the
            // `address` label.
            names = targets
            targets = try targets.map { host in
                let l = try LoopbackListener(host: host, echo: options.payload != nil)
                listeners.append(l)
                ctx.progress("listener on \(l.address.hostPort)")
                return l.address.hostPort
            }
        }
        _ = try run(scenario: s.name, targets: targets, names: names,
                    family: AddressFamilyPreference(rawValue: s.string("family") ?? "any") ?? .any,
                    options: options, ctx: ctx, onLine: nil)
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
