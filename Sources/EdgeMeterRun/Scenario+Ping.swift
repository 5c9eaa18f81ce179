import Foundation
import EdgeMeterCore
import EdgeMeterProbes

/// Per-target totals for ping's closing lines.
public struct PingTargetTotals: Sendable {
    public var name: String
    public var address: String
    public var transmitted = 0
    public var received = 0
    public var errors = 0
    public var firstSendAt: Date?
    public var lastSendAt: Date?
}

/// ICMP echo: turns `ICMPProbe` results into samples.
///
/// Samples (probe `ping`): `latency/resolve` once per target (getaddrinfo time), and
/// `rtt/echo` per request with labels `seq`, `icmp_id`, `family`, `socket` (raw|datagram),
/// `timestamp` (kernel|userspace), `clock` (realtime-paired|monotonic), `spin` (on|off: whether the
/// probe busy-waited before each send, `ICMPSpinMode`), `ttl`, `bytes`.
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
        let probe = try ICMPProbe(targets: resolved, options: options, stop: ctx.stop)
        var totals = resolved.map { PingTargetTotals(name: $0.name, address: $0.address.host) }
        for s in probe.sockets {
            let fam = s.target.address.family == AF_INET6 ? "ipv6" : "ipv4"
            onLine?("PING \(s.target.name) (\(s.target.address.host)) \(options.payloadBytes)(\(options.payloadBytes + (fam == "ipv6" ? 48 : 28))) bytes of data, \(s.mode.rawValue) socket, \(s.kernelTimestamps ? "kernel" : "user-space") receive stamps, spin \(options.spin.rawValue).")
        }
        probe.run { r in
            let sock = probe.sockets[r.targetIndex]
            let target = sock.target
            totals[r.targetIndex].transmitted += 1
            if totals[r.targetIndex].firstSendAt == nil { totals[r.targetIndex].firstSendAt = r.sentAt }
            totals[r.targetIndex].lastSendAt = r.sentAt
            var labels = ["seq": "\(r.sequence)", "icmp_id": "\(r.identifier)", "family": target.address.family == AF_INET6 ? "ipv6" : "ipv4",
                          "socket": sock.mode.rawValue, "address": target.address.host, "payload_bytes": "\(options.payloadBytes)",
                          "spin": options.spin.rawValue]
            let sample: Sample
            switch r.outcome {
            case .reply(let rtt, let bytes, let ttl, let kernel, let from):
                totals[r.targetIndex].received += 1
                labels["timestamp"] = kernel ? "kernel" : "userspace"
                labels["clock"] = kernel ? "realtime-paired" : "monotonic"
                labels["bytes"] = "\(bytes)"
                if let ttl { labels["ttl"] = "\(ttl)" }
                let ms = Double(rtt) / 1e6
                sample = Sample(runID: ctx.runID, scenario: scenario, probe: "ping", target: target.name, metric: "rtt", phase: "echo",
                                value: ms, unit: "ms", timestamp: r.sentAt, status: .ok, labels: labels)
                onLine?("\(bytes) bytes from \(from): icmp_seq=\(r.sequence)\(ttl.map { " ttl=\($0)" } ?? "") time=\(formatMs(ms)) ms")
            case .timeout(let reason):
                sample = Sample(runID: ctx.runID, scenario: scenario, probe: "ping", target: target.name, metric: "rtt", phase: "echo",
                                value: nil, unit: "ms", timestamp: r.sentAt, status: .timeout, reason: reason, labels: labels)
                onLine?("no answer from \(target.address.host): icmp_seq=\(r.sequence) (\(reason))")
            case .unreachable(let reason):
                totals[r.targetIndex].errors += 1
                sample = Sample(runID: ctx.runID, scenario: scenario, probe: "ping", target: target.name, metric: "rtt", phase: "echo",
                                value: nil, unit: "ms", timestamp: r.sentAt, status: .unreachable, reason: reason, labels: labels)
                onLine?("From \(target.address.host) icmp_seq=\(r.sequence) \(reason)")
            case .error(let reason):
                totals[r.targetIndex].errors += 1
                sample = Sample(runID: ctx.runID, scenario: scenario, probe: "ping", target: target.name, metric: "rtt", phase: "echo",
                                value: nil, unit: "ms", timestamp: r.sentAt, status: .error, reason: reason, labels: labels)
                onLine?("\(target.address.host) icmp_seq=\(r.sequence): \(reason)")
            }
            ctx.sink.record(sample)
        }
        return totals
    }

    /// ping's precision: 3 significant decimals below 100 ms.
    public static func formatMs(_ ms: Double) -> String {
        ms >= 100 ? String(format: "%.0f", ms) : ms >= 10 ? String(format: "%.1f", ms) : ms >= 1 ? String(format: "%.2f", ms) : String(format: "%.3f", ms)
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
