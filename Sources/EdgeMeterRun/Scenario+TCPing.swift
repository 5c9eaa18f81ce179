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

/// TCP connect time as a scenario: resolves the targets, builds a `TCPConnectProbe` and runs it.
///
/// Samples (probe `tcping`): `latency/resolve` once per target; per attempt `latency/connect` and,
/// with a payload, `latency/first_byte` (see `TCPConnectProbe`).
public enum TCPingScenario {
    public static let declaration = KindDeclaration(
        kind: "tcping",
        measures: { s in s.contains { $0.key.phase == "first_byte" } ? "TCP connect + echo" : "TCP connect" },
        parameters: [ParameterSpec("targets", cli: "HOST:PORT", .stringList, help: "Targets as HOST:PORT ([::1]:80 for IPv6).")]
            + ProbeSchedule.parameters + [
            ParameterSpec("payload", cli: "--payload", .string, help: "Bytes to send once connected (enables the first_byte phase)."),
            ParameterSpec("expect", cli: "--expect", .string, help: "A string the reply must contain (needs --payload)."),
            ParameterSpec("listener", cli: "--listener", .bool, default: .bool(false),
                          help: "Start a loopback listener on each target HOST (no port) and probe it."),
        ] + RoundsConfig.parameters,
        required: ["targets"],
        checks: [ProbeSchedule.bounded, RoundsConfig.check, { s in
            if s.string("expect") != nil && s.string("payload") == nil { return ("expect", "{expect} needs {payload}: give the bytes to send first") }
            if s.bool("listener") != true {
                for t in s.strings("targets") ?? [] {
                    do { _ = try Resolver.splitHostPort(t) } catch { return ("targets", "\(error); or set {listener: true} to probe a listener the run starts on that host") }
                }
            }
            return nil
        }])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { TCPingConfig($0) }, runsInNode: true) { s, ctx in
        // In a topology with `from: NODE`, the connects are made inside the node.
        let lab = ctx.lab
        _ = try ScenarioLab.inSource(lab) {
            let c = TCPingConfig(s)
            try ScenarioRounds.run(c.schedule.rounds, ctx: ctx) { ctx in _ = try run(c, scenario: s.name, ctx: ctx, lab: lab, onLine: nil) }
        }
    }

    /// Runs a configuration: with `listener`, first starts a loopback listener per target host (in a
    /// topology, inside the node that has the target address).
    public static func run(_ c: TCPingConfig, scenario: String, ctx: ScenarioContext, lab: ScenarioLab? = nil,
                           onLine: ((String) -> Void)?) throws -> [TCPingTargetTotals] {
        var targets = c.schedule.targets
        var names: [String]?
        var listeners: [LoopbackListener] = []
        defer { listeners.forEach { $0.close() } }
        if c.listener {
            // The target keeps the host's name (stable across runs); the ephemeral port is in the
            // `address` label.
            names = targets
            targets = try targets.map { host in
                let l = try lab?.listener(host: host, echo: c.payload != nil) ?? LoopbackListener(host: host, echo: c.payload != nil)
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
        let probe = TCPConnectProbe(targets: resolved, options: options, scope: SampleScope(runID: ctx.runID, scenario: scenario), onLine: onLine)
        return probe.run(schedule: options.schedule, clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
    }
}
