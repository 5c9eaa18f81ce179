import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterSystem

/// Per-target totals for tcping's closing lines (`attempts`, `name`, `address` are `ProbeTotals`'s).
public typealias TCPingTargetTotals = ProbeTotals

extension ProbeTotals {
    public var connected: Int { succeeded }
    public var refused: Int { count(.refused) }
    public var timeouts: Int { count(.timeout) }
    public var unreachable: Int { count(.unreachable) }
}

/// TCP connect time as a scenario: resolves the targets, builds a `TCPConnectProbe` and runs it.
///
/// Samples (probe `tcping`): `latency/resolve` once per target; per attempt `latency/connect` and,
/// with a payload, `latency/first_byte` (see `TCPConnectProbe`).
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
        let probe = TCPConnectProbe(targets: resolved, options: options, scope: SampleScope(runID: ctx.runID, scenario: scenario), onLine: onLine)
        return probe.run(schedule: options.schedule, clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
    }
}
