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

/// ICMP echo as a scenario: resolves the targets, builds an `ICMPProbe` and runs it.
///
/// Samples (probe `ping`): `latency/resolve` once per target (getaddrinfo time), and `rtt/echo`
/// per request (see `ICMPProbe`).
public enum PingScenario {
    public static let schema = ScenarioSchema(
        kind: "ping",
        parameters: ["targets": .stringList, "count": .positiveInteger, "interval": .duration, "timeout": .duration,
                     "payload": .nonNegativeInteger, "deadline": .duration, "socket": .oneOf(["auto", "datagram", "raw"]),
                     "family": .oneOf(["any", "ipv4", "ipv6"]), "spin": .oneOf(ICMPSpinMode.allCases.map(\.rawValue))],
        required: ["targets"],
        check: { s in
            if s.int("count") == nil && s.duration("deadline") == nil {
                return ("targets", "give `count` or `deadline` so the scenario ends by itself")
            }
            if let i = s.duration("interval"), i.nanoseconds < 1_000_000 { return ("interval", "`interval` must be at least 1ms") }
            if let t = s.duration("timeout"), t.nanoseconds <= 0 { return ("timeout", "`timeout` must be more than 0") }
            if let p = s.int("payload"), p > 65_000 { return ("payload", "`payload` must be at most 65000 bytes, got \(p)") }
            return nil
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        let options = ICMPOptions(count: s.int("count"), interval: s.duration("interval") ?? .milliseconds(100),
                                  timeout: s.duration("timeout") ?? .seconds(1), payloadBytes: s.int("payload") ?? 56,
                                  deadline: s.duration("deadline"), socketMode: ICMPSocketMode(rawValue: s.string("socket") ?? "auto") ?? .auto,
                                  spin: ICMPSpinMode(rawValue: s.string("spin") ?? "off") ?? .off)
        _ = try run(scenario: s.name, targets: s.strings("targets") ?? [],
                    family: AddressFamilyPreference(rawValue: s.string("family") ?? "any") ?? .any,
                    options: options, ctx: ctx, onLine: nil)
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
