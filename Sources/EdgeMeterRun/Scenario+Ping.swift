import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterSystem

/// Per-target totals for ping's closing lines.
public typealias PingTargetTotals = ProbeTotals

extension ProbeTotals {
    /// Echo requests sent (every request, failed sends included).
    public var transmitted: Int { attempts }
    /// Echo replies received.
    public var received: Int { succeeded }
    /// Requests answered by an error (destination unreachable) or whose send failed.
    public var errors: Int { count(.unreachable) + count(.error) }
    public var firstSendAt: Date? { firstAttemptAt }
    public var lastSendAt: Date? { lastAttemptAt }
}

/// The schedule ping and tcping share: how many, how often, how long to wait, which family.
public struct ProbeSchedule: Sendable, Equatable {
    public var targets: [String]
    /// nil: until the deadline or Ctrl-C (the command line only; a suite scenario needs a bound).
    public var count: Int?
    public var interval: Duration
    public var timeout: Duration
    public var deadline: Duration?
    public var family: AddressFamilyPreference
    /// `--rounds N --every D`: the whole measurement N times (nil: once, no `round` label).
    public var rounds: RoundsConfig?

    public init(_ s: ValidatedScenario) {
        rounds = RoundsConfig(s)
        targets = s.strings("targets") ?? []
        count = s.int("count")
        interval = s.duration("interval") ?? .seconds(1)
        timeout = s.duration("timeout") ?? .seconds(1)
        deadline = s.duration("deadline")
        family = AddressFamilyPreference(rawValue: s.string("family") ?? "any") ?? .any
    }

    static let intervalDefaults = """
        the command line follows iputils ping (1 s, so `edgemeter ping HOST` paces as ping does); a suite \
        scenario is a measurement, so it samples ten times faster
        """

    /// `count`, `interval`, `timeout`, `deadline`, `family`.
    static var parameters: [ParameterSpec] {
        [
            ParameterSpec("count", cli: "-c/--count", .positiveInteger,
                          help: "Requests (ping) or attempts (tcping) per target (default: until Ctrl-C or the deadline; a suite scenario needs `count` or `deadline`)."),
            ParameterSpec("interval", cli: "-i/--interval", .duration, default: .duration(.milliseconds(100)),
                          cliDefault: .duration(.seconds(1)), differBecause: intervalDefaults,
                          help: "Interval between requests to each target: seconds (0.2) or 200ms (default: 1s; 100ms in a suite).",
                          valueName: "DURATION", validate: ValueCheck.atLeast(.milliseconds(1))),
            ParameterSpec("timeout", cli: "-W/--timeout", .duration, default: .duration(.seconds(1)),
                          help: "How long to wait for each reply (tcping: for the connect, then for the first byte).",
                          valueName: "DURATION", validate: ValueCheck.positive),
            ParameterSpec("deadline", cli: "-w/--deadline", .duration,
                          help: "Stop after this long whatever the count (as ping -w).", valueName: "DURATION", validate: ValueCheck.positive),
            ParameterSpec("family", cli: "-4/-6", .oneOf(["any", "ipv4", "ipv6"]), default: .string("any"),
                          help: "Resolve names to IPv4 only (-4) or IPv6 only (-6)."),
        ]
    }

    /// A suite scenario must end by itself; `edgemeter ping` without -c or -w runs until Ctrl-C.
    static let bounded: KindDeclaration.Check = { s in
        s.origin == .suite && s.int("count") == nil && s.duration("deadline") == nil
            ? ("targets", "give {count} or {deadline} so the scenario ends by itself") : nil
    }
}

/// What one ping scenario measures, from a suite scenario or `edgemeter ping` flags alike.
public struct PingConfig: Sendable, Equatable {
    public var schedule: ProbeSchedule
    public var payloadBytes: Int
    public var socket: ICMPSocketMode
    public var spin: ICMPSpinMode

    public init(_ s: ValidatedScenario) {
        schedule = ProbeSchedule(s)
        payloadBytes = s.int("payload") ?? 56
        socket = ICMPSocketMode(rawValue: s.string("socket") ?? "auto") ?? .auto
        spin = ICMPSpinMode(rawValue: s.string("spin") ?? "off") ?? .off
    }

    public var options: ICMPOptions {
        ICMPOptions(count: schedule.count, interval: schedule.interval, timeout: schedule.timeout, payloadBytes: payloadBytes,
                    deadline: schedule.deadline, socketMode: socket, spin: spin)
    }
}

/// ICMP echo as a scenario: resolves the targets, builds an `ICMPProbe` and runs it.
///
/// Samples (probe `ping`): `latency/resolve` once per target (getaddrinfo time), and `rtt/echo`
/// per request (see `ICMPProbe`).
public enum PingScenario {
    public static let declaration = KindDeclaration(
        kind: "ping",
        measures: { _ in "ICMP echo round trip" },
        parameters: [ParameterSpec("targets", cli: "HOST", .stringList, help: "Hosts or addresses to ping.")]
            + ProbeSchedule.parameters + [
            ParameterSpec("payload", cli: "-s", .nonNegativeInteger, default: .integer(56), unit: "bytes",
                          help: "ICMP payload bytes (as ping -s).", valueName: "BYTES", validate: ValueCheck.atMost(65_000, " bytes")),
            ParameterSpec("socket", cli: "--socket", .oneOf(["auto", "datagram", "raw"]), default: .string("auto"),
                          help: "ICMP socket kind: auto (datagram, then raw), datagram, raw."),
            ParameterSpec("spin", cli: "--spin", .oneOf(ICMPSpinMode.allCases.map(\.rawValue)), default: .string("off"),
                          help: "off (default): sleep until each send, as a client that idles between echoes. on: busy-wait through the last "
                              + "1 ms before each send, so the CPU is warm when the echo leaves; on loopback that lowers RTTs by several µs, "
                              + "and at -i 1ms or less it keeps a core busy for the whole run. Each sample is labelled spin=on|off.",
                          valueName: "on|off"),
        ] + RoundsConfig.parameters,
        required: ["targets"],
        checks: [ProbeSchedule.bounded, RoundsConfig.check])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { PingConfig($0) }, runsInNode: true) { s, ctx in
        let c = PingConfig(s)
        // In a topology with `from: NODE`, the ICMP sockets are opened inside the node.
        _ = try ScenarioLab.inSource(ctx.lab) {
            try ScenarioRounds.run(c.schedule.rounds, ctx: ctx) { ctx in
                _ = try run(scenario: s.name, targets: c.schedule.targets, family: c.schedule.family, options: c.options, ctx: ctx, onLine: nil)
            }
        }
    }

    /// Resolves every target, runs the probe, records samples. `onLine` receives ping-style lines.
    public static func run(scenario: String, targets: [String], family: AddressFamilyPreference, options: ICMPOptions,
                           ctx: ScenarioContext, onLine: ((String) -> Void)?) throws -> [PingTargetTotals] {
        let resolved = resolveTargets(targets.map { ($0, $0) }, probe: "ping", scenario: scenario, ctx: ctx, onLine: onLine) {
            try Resolver.resolve($0, family: family, socketType: Int32(SOCK_DGRAM.rawValue))
        }
        guard !resolved.isEmpty else { throw ICMPProbeError(message: "no target could be resolved; check the names") }
        let probe = try ICMPProbe(targets: resolved, options: options, scope: SampleScope(runID: ctx.runID, scenario: scenario), onLine: onLine)
        return probe.run(schedule: options.schedule, clock: SystemClock(), stop: ctx.stop, sink: ctx.sink)
    }
}

/// Resolves each target once, before any timing starts, and records one `latency/resolve` sample per
/// target (getaddrinfo time; a failed one with its reason, also passed to `onLine`). `targets` pairs
/// the name samples carry with the text to resolve. Returns the targets that resolved, named.
func resolveTargets(_ targets: [(name: String, text: String)], probe: String, scenario: String, ctx: ScenarioContext,
                    onLine: ((String) -> Void)?, _ resolve: (String) throws -> ResolvedTarget) -> [ResolvedTarget] {
    var resolved: [ResolvedTarget] = []
    for (name, text) in targets {
        do {
            var r = try resolve(text)
            r.name = name
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: probe, target: name, metric: "latency",
                                   phase: "resolve", value: Double(r.resolveNanoseconds) / 1e6, unit: "ms", timestamp: r.resolvedAt,
                                   status: .ok, labels: ["address": r.address.host, "clock": "monotonic"]))
            resolved.append(r)
        } catch {
            ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: probe, target: name, metric: "latency",
                                   phase: "resolve", value: nil, unit: "ms", timestamp: Date(), status: .error, reason: "\(error)"))
            onLine?("edgemeter: \(error)")
        }
    }
    return resolved
}
