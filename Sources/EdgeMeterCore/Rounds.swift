import Foundation

/// `--rounds N --every DURATION` (suite keys `rounds`, `every`) on ping, tcping, http and calc: the
/// scenario's whole measurement (its `count` attempts per target) is repeated N times, round k due
/// at start + k·every on the monotonic clock (no drift; a round that runs past its slot delays only
/// itself, as `Schedule` does). Each sample of round k carries the label `round=k` (1-based), which
/// the report's smoke graphs group by (SmokePing-style: one round = one column of smoke).
public struct RoundsConfig: Sendable, Equatable {
    public var rounds: Int
    /// Between the due times of successive rounds.
    public var every: Duration

    public static let defaultEvery: Duration = .seconds(30)
    public static let maxRounds = 10_000
    public static let minEvery: Duration = .milliseconds(100)
    public static let maxEvery: Duration = .seconds(86_400)
    /// rounds × every at most: a week.
    public static let maxSpan: Duration = .seconds(7 * 86_400)

    public init(rounds: Int, every: Duration = RoundsConfig.defaultEvery) { (self.rounds, self.every) = (rounds, every) }

    /// nil when the scenario has no `rounds` (then it runs once, with no `round` label).
    public init?(_ s: ValidatedScenario) {
        guard let r = s.int("rounds") else { return nil }
        self.init(rounds: r, every: s.duration("every") ?? Self.defaultEvery)
    }

    /// The rounds' schedule: `rounds` rounds, `every` apart.
    public var schedule: Schedule { Schedule(count: rounds, interval: every) }

    /// The label samples of round `sequence` (1-based) get.
    public static let label = "round"

    /// `rounds` and `every`, appended to the kinds that take them (ping, tcping, http, calc).
    public static var parameters: [ParameterSpec] {
        [
            ParameterSpec("rounds", cli: "--rounds", .positiveInteger,
                          help: "Repeat the whole measurement this many rounds, --every apart; samples get round=1..N and the report draws smoke graphs (default: one round, unlabelled).",
                          validate: ValueCheck.within(1...maxRounds, "")),
            ParameterSpec("every", cli: "--every", .duration,
                          help: "Between the starts of successive rounds, e.g. 30s or 5m (default: 30s; needs --rounds).",
                          valueName: "DURATION", validate: { v in
                guard case .duration(let d) = v else { return nil }
                if d < minEvery { return "{} must be at least 100ms, got \(KindDeclaration.describe(v))" }
                if d > maxEvery { return "{} must be at most 24h (86400s), got \(KindDeclaration.describe(v))" }
                return nil
            }),
        ]
    }

    /// `every` without `rounds`; a span over a week; a round that cannot end by itself (ping and
    /// tcping without `count` or `deadline`).
    public static let check: KindDeclaration.Check = { s in
        if s.duration("every") != nil && s.int("rounds") == nil {
            return ("every", "{every} needs {rounds}: give the number of rounds too, e.g. {rounds: 10}")
        }
        guard let r = RoundsConfig(s) else { return nil }
        if Double(r.rounds) * r.every.seconds > maxSpan.seconds {
            return ("rounds", "{rounds} × {every} must be at most a week (604800s), got \(r.rounds) × \(KindDeclaration.describe(.duration(r.every))); use fewer rounds or a shorter interval")
        }
        if s.parameters["count"] == nil && s.parameters["deadline"] == nil && s.kind != "http" && s.kind != "calc" {
            return ("rounds", "{rounds} needs {count} or {deadline}: each round must end by itself before the next one")
        }
        return nil
    }
}

/// A sink that adds `round=<sequence>` to every sample and passes it on.
public final class RoundSink: SampleSink, @unchecked Sendable {
    public let base: SampleSink
    public let sequence: Int
    public init(_ base: SampleSink, sequence: Int) { (self.base, self.sequence) = (base, sequence) }
    public func record(_ sample: Sample) {
        var s = sample
        s.labels[RoundsConfig.label] = String(sequence)
        base.record(s)
    }
}

extension ProbeTotals {
    /// Per-target totals of several rounds added up (targets matched by name, in first-seen order).
    public static func merging(_ a: [ProbeTotals], _ b: [ProbeTotals]) -> [ProbeTotals] {
        var out = a
        for t in b {
            guard let i = out.firstIndex(where: { $0.name == t.name }) else { out.append(t); continue }
            out[i].attempts += t.attempts
            for (k, v) in t.statuses { out[i].statuses[k, default: 0] += v }
            if out[i].firstAttemptAt == nil { out[i].firstAttemptAt = t.firstAttemptAt }
            if t.lastAttemptAt != nil { out[i].lastAttemptAt = t.lastAttemptAt }
        }
        return out
    }
}
