import Foundation
import EdgeMeterCore

extension SeededRandom {
    /// Uniform in [-1, 1), from the top 53 bits.
    public mutating func symmetricUnit() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }
}

/// The noise-free delay of one node over time (the trace's level), in milliseconds.
public enum DelayLevel: Sendable, Equatable {
    case constant(Double)
    /// `high` for the first half of each `periodSeconds` (from t = 0), `low` for the second half;
    /// `highFirst` false swaps the halves.
    case square(low: Double, high: Double, periodSeconds: Double, highFirst: Bool)
    /// `from` until `startSeconds`, linear to `to` at `endSeconds`, `to` after.
    case ramp(from: Double, to: Double, startSeconds: Double, endSeconds: Double)
    /// `base`, and `peak` during [atSeconds, atSeconds + lengthSeconds).
    case spike(base: Double, peak: Double, atSeconds: Double, lengthSeconds: Double)

    public func milliseconds(atSeconds t: Double) -> Double {
        switch self {
        case .constant(let v):
            return v
        case let .square(low, high, period, highFirst):
            let firstHalf = t.truncatingRemainder(dividingBy: period) < period / 2
            return firstHalf == highFirst ? high : low
        case let .ramp(from, to, start, end):
            if t <= start { return from }
            if t >= end { return to }
            return from + (to - from) * (t - start) / (end - start)
        case let .spike(base, peak, at, length):
            return t >= at && t < at + length ? peak : base
        }
    }
}

/// One node of a trace.
public struct TraceNode: Sendable {
    public var name: String
    public var level: DelayLevel
    /// Expected interruption of a move there (the policy's move-cost input), in milliseconds.
    public var moveCostMilliseconds: Double
}

/// A scripted delay trace: per node a level over time, sampled every `sampleIntervalNanoseconds`
/// with uniform noise in [-noise, +noise) ms from a seeded generator (one draw per node per sample,
/// nodes in order), clamped at 0.
public struct DelayTrace: Sendable {
    public var name: String
    /// What the trace is, for the report.
    public var summary: String
    public var nodes: [TraceNode]
    public var initialActive: String
    public var durationNanoseconds: Int64
    public var sampleIntervalNanoseconds: Int64 = 100_000_000
    public var noiseMilliseconds: Double
    public var seed: UInt64 = 1

    /// The delay at `percentile` of the node's distribution at `t`: the level plus the noise's
    /// quantile (uniform noise: level + noise · (2q − 1), q = percentile/100).
    public func trueMilliseconds(_ node: TraceNode, atSeconds t: Double, percentile: DelayPercentile) -> Double {
        max(0, node.level.milliseconds(atSeconds: t) + noiseMilliseconds * (2 * percentile.value / 100 - 1))
    }

    public static let names = ["square", "ramp", "spike"]

    /// The three traces, scaled to the requirement `z` (levels are multiples of it; at 20 ms they
    /// are the figures in docs/migration.md). 10 minutes, 10 samples/s per node, noise ±5 % of `z`.
    public static func named(_ name: String, requirementMilliseconds z: Double, seed: UInt64 = 1) -> DelayTrace? {
        // Every trace: node_1 (active at the start, move cost 250 ms) and node_2 (300 ms) vary,
        // node_3 stays far at 4×Z (400 ms); 10 minutes; noise ±5 % of Z.
        func trace(_ summary: String, node1: DelayLevel, node2: DelayLevel) -> DelayTrace {
            DelayTrace(name: name, summary: summary,
                       nodes: [TraceNode(name: "node_1", level: node1, moveCostMilliseconds: 250),
                               TraceNode(name: "node_2", level: node2, moveCostMilliseconds: 300),
                               TraceNode(name: "node_3", level: .constant(4 * z), moveCostMilliseconds: 400)],
                       initialActive: "node_1", durationNanoseconds: Int64(600) * 1_000_000_000, noiseMilliseconds: 0.05 * z, seed: seed)
        }
        switch name {
        case "square":
            return trace("node_1 and node_2 in anti-phase square waves between 1.1×Z and 0.9×Z (10 s period, node_1 high first), node_3 at 4×Z",
                         node1: .square(low: 0.9 * z, high: 1.1 * z, periodSeconds: 10, highFirst: true),
                         node2: .square(low: 0.9 * z, high: 1.1 * z, periodSeconds: 10, highFirst: false))
        case "ramp":
            return trace("node_1 ramps linearly from 0.5×Z to 2×Z over 10 min, node_2 steady at 0.75×Z, node_3 at 4×Z",
                         node1: .ramp(from: 0.5 * z, to: 2 * z, startSeconds: 0, endSeconds: 600), node2: .constant(0.75 * z))
        case "spike":
            return trace("node_1 at 0.6×Z with one spike to 3×Z for 2 s at t = 300 s, node_2 steady at 0.75×Z, node_3 at 4×Z",
                         node1: .spike(base: 0.6 * z, peak: 3 * z, atSeconds: 300, lengthSeconds: 2), node2: .constant(0.75 * z))
        default:
            return nil
        }
    }
}

/// One move a policy decided during a replay.
public struct ReplayMove: Sendable, Equatable {
    /// Nanoseconds from the trace's start.
    public var atNanoseconds: Int64
    public var from: String
    public var to: String
}

/// What one policy did over one trace.
public struct ReplayOutcome: Sendable {
    public var trace: String
    public var policy: String
    public var durationNanoseconds: Int64
    public var moves: [ReplayMove]
    /// Time the active node's true delay at the requirement's percentile (`DelayTrace.trueMilliseconds`)
    /// was above the requirement, summed over sample intervals (each interval judged at its start).
    public var violationNanoseconds: Int64
    /// Moves undone within the cooldown: a move A → B followed by a move B → A less than the
    /// cooldown later counts the first one.
    public var wastedMoves: Int
    /// Sum of the moves' expected interruptions (their targets' move costs), in milliseconds.
    public var interruptionMilliseconds: Double
    public var decisionCounts: [DecisionKind: Int]
    /// Every decision that was not `stay_requirement_met`, in order (the interesting ones).
    public var notableDecisions: [Decision]

    public var migrationsPerHour: Double { Double(moves.count) / (Double(durationNanoseconds) / 3.6e12) }
}

/// Replays a trace through the delay windows into policies on a `ManualClock`.
public struct Replay {
    public var requirement: DelayRequirement
    public var hysteresis: Hysteresis
    public var window: Duration
    /// How often the policies decide (every decision sees the same windows).
    public var decisionInterval: Duration

    public init(requirement: DelayRequirement, hysteresis: Hysteresis, window: Duration = .seconds(30), decisionInterval: Duration = .seconds(1)) {
        self.requirement = requirement
        self.hysteresis = hysteresis
        self.window = window
        self.decisionInterval = decisionInterval
    }

    /// Runs the trace: at each sample instant every node gets one sample (level + noise) in its
    /// window, stamped on the manual clock; at every decision instant (from the first decision
    /// interval on) each policy decides from the same observations and its own active node, and a
    /// decision that moves (`migrate`, or an `alert` naming a target) moves its active node at once. Violation time is charged per sample interval to
    /// the node active during it.
    public func run(_ trace: DelayTrace, policies: [any MigrationPolicy]) throws -> [ReplayOutcome] {
        let clock = ManualClock(start: 0)
        var windows = try trace.nodes.map { try DelayWindow(node: $0.name, length: window, clock: clock) }
        var rng = SeededRandom(seed: trace.seed)
        var policies = policies
        var active = Array(repeating: trace.initialActive, count: policies.count)
        var moves = Array(repeating: [ReplayMove](), count: policies.count)
        var violation = Array(repeating: Int64(0), count: policies.count)
        var counts = Array(repeating: [DecisionKind: Int](), count: policies.count)
        var notable = Array(repeating: [Decision](), count: policies.count)
        let costs = Dictionary(uniqueKeysWithValues: trace.nodes.map { ($0.name, $0.moveCostMilliseconds) })
        let step = trace.sampleIntervalNanoseconds
        let decisionEvery = max(1, decisionInterval.nanoseconds)
        var nextDecision = decisionEvery
        var t: Int64 = 0
        while t < trace.durationNanoseconds {
            let seconds = Double(t) / 1e9
            for (i, node) in trace.nodes.enumerated() {
                let v = max(0, node.level.milliseconds(atSeconds: seconds) + trace.noiseMilliseconds * rng.symmetricUnit())
                try windows[i].add(milliseconds: v)
            }
            if t >= nextDecision {
                nextDecision += decisionEvery
                let observations = windows.indices.map { windows[$0].observe() }
                for k in policies.indices {
                    let input = PolicyInput(nowNanoseconds: t, requirement: requirement, activeNode: active[k], nodes: observations,
                                            moveCostMilliseconds: costs, hysteresis: hysteresis)
                    let d = policies[k].decide(input)
                    counts[k][d.kind, default: 0] += 1
                    if d.kind != .stayRequirementMet { notable[k].append(d) }
                    if d.movesService, let to = d.target {
                        moves[k].append(ReplayMove(atNanoseconds: t, from: active[k], to: to))
                        active[k] = to
                    }
                }
            }
            for k in policies.indices {
                if let node = trace.nodes.first(where: { $0.name == active[k] }),
                   trace.trueMilliseconds(node, atSeconds: seconds, percentile: requirement.percentile) > requirement.maxMilliseconds {
                    violation[k] += step
                }
            }
            clock.advance(by: step)
            t += step
        }
        return policies.indices.map { k in
            ReplayOutcome(trace: trace.name, policy: policies[k].name, durationNanoseconds: trace.durationNanoseconds, moves: moves[k],
                          violationNanoseconds: violation[k], wastedMoves: Self.wasted(moves[k], cooldownNanoseconds: hysteresis.cooldownNanoseconds),
                          interruptionMilliseconds: moves[k].reduce(0) { $0 + (costs[$1.to] ?? 0) },
                          decisionCounts: counts[k], notableDecisions: notable[k])
        }
    }

    /// Moves A → B undone by the next move B → A less than `cooldownNanoseconds` later.
    public static func wasted(_ moves: [ReplayMove], cooldownNanoseconds: Int64) -> Int {
        guard moves.count > 1 else { return 0 }
        var n = 0
        for i in 0..<(moves.count - 1) {
            let a = moves[i], b = moves[i + 1]
            if b.from == a.to, b.to == a.from, b.atNanoseconds - a.atNanoseconds < cooldownNanoseconds { n += 1 }
        }
        return n
    }

    /// The replay table: one row per trace and policy.
    public static func markdown(_ outcomes: [ReplayOutcome]) -> String {
        var out = "| trace | policy | migrations | migrations/h | time in violation | wasted moves | interruption | decisions |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---|\n"
        for o in outcomes {
            let decisions = DecisionKind.allCases.compactMap { k in o.decisionCounts[k].map { "\(k.rawValue) \($0)" } }.joined(separator: ", ")
            out += "| \(o.trace) | \(o.policy) | \(o.moves.count) | \(formatMilliseconds(o.migrationsPerHour)) | "
                + "\(formatMilliseconds(Double(o.violationNanoseconds) / 1e9)) s | \(o.wastedMoves) | "
                + "\(formatMilliseconds(o.interruptionMilliseconds)) ms | \(decisions) |\n"
        }
        return out
    }
}
