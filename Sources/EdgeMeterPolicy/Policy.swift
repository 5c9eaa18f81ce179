import Foundation
import EdgeMeterCore

/// A delay requirement: the client-side delay at `percentile` must be at most `maxMilliseconds`
/// (written `20ms@p90`).
public struct DelayRequirement: Codable, Sendable, Equatable, CustomStringConvertible {
    public var percentile: DelayPercentile
    public var maxMilliseconds: Double

    public init(percentile: DelayPercentile, maxMilliseconds: Double) {
        self.percentile = percentile
        self.maxMilliseconds = maxMilliseconds
    }

    /// Parses `DELAY@PERCENTILE`: `20ms@p90`, `0.5s@p99`, `15@p50` (bare numbers are ms).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        let example = "write it like 20ms@p90 (a delay, @, one of p50, p90, p99)"
        guard parts.count == 2 else { throw PolicyError("requirement \"\(text)\" has no @PERCENTILE; \(example)") }
        guard let p = DelayPercentile(rawValue: parts[1].lowercased()) else {
            throw PolicyError("requirement \"\(text)\": \"\(parts[1])\" is not a percentile; \(example)")
        }
        let delayText = String(parts[0])
        let ms: Double?
        if let v = Double(delayText) { ms = v } else { ms = parseDuration(delayText).map { $0.seconds * 1000 } }
        guard let m = ms, m.isFinite, m > 0 else {
            throw PolicyError("requirement \"\(text)\": \"\(delayText)\" is not a positive delay; \(example)")
        }
        self.init(percentile: p, maxMilliseconds: m)
    }

    public var description: String { "\(formatMilliseconds(maxMilliseconds)) ms at \(percentile.rawValue)" }
}

/// What edgemeter's policy does when the active node misses the requirement and no node meets it.
public enum NoneMeetsAction: String, Codable, Sendable, CaseIterable {
    /// Alert, and move to the least-bad node when it is better than the active one by the margin
    /// (same dwell, cooldown and sample rules as a move to a node that meets the requirement).
    case moveToBest = "move-to-best"
    /// Alert and stay (a move is only ever made to a node that meets the requirement).
    case alertOnly = "alert-only"

    /// Parses `move-to-best` or `alert-only`, naming `flag` in the error.
    public init(parsing text: String, flag: String) throws {
        guard let v = NoneMeetsAction(rawValue: text) else {
            throw PolicyError("\(flag) \"\(text)\" is not one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")); "
                              + "move-to-best moves to the least-bad node, alert-only stays")
        }
        self = v
    }
}

/// The rules that keep the policy from flapping. Times are nanoseconds on the policy's clock.
public struct Hysteresis: Codable, Sendable, Equatable {
    /// A target must offer at most `requirement × (1 − marginPercent/100)`, and the active node is at
    /// risk from that level on: a move never lands on a node that sits at the requirement's edge.
    public var marginPercent: Double
    /// How long the active node must have stayed above the margin level (continuously, at every
    /// decision) before it is moved.
    public var dwellNanoseconds: Int64
    /// No move within this time after the previous one.
    public var cooldownNanoseconds: Int64
    /// A node's window needs at least this many received samples to be judged.
    public var minSamples: Int
    /// A node's newest sample must be at most this old to be judged.
    public var maxSampleAgeNanoseconds: Int64
    /// When no node meets the requirement: move to the least-bad node (default) or only alert.
    public var whenNoneMeets: NoneMeetsAction

    public init(marginPercent: Double = 10, dwell: Duration = .seconds(3), cooldown: Duration = .seconds(30), minSamples: Int = 20,
                maxSampleAge: Duration = .seconds(2), whenNoneMeets: NoneMeetsAction = .moveToBest) {
        self.marginPercent = marginPercent
        self.dwellNanoseconds = dwell.nanoseconds
        self.cooldownNanoseconds = cooldown.nanoseconds
        self.minSamples = minSamples
        self.maxSampleAgeNanoseconds = maxSampleAge.nanoseconds
        self.whenNoneMeets = whenNoneMeets
    }

    enum CodingKeys: String, CodingKey {
        case marginPercent, dwellNanoseconds, cooldownNanoseconds, minSamples, maxSampleAgeNanoseconds, whenNoneMeets
    }

    /// Reads state written before `whenNoneMeets` existed as `moveToBest`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        marginPercent = try c.decode(Double.self, forKey: .marginPercent)
        dwellNanoseconds = try c.decode(Int64.self, forKey: .dwellNanoseconds)
        cooldownNanoseconds = try c.decode(Int64.self, forKey: .cooldownNanoseconds)
        minSamples = try c.decode(Int.self, forKey: .minSamples)
        maxSampleAgeNanoseconds = try c.decode(Int64.self, forKey: .maxSampleAgeNanoseconds)
        whenNoneMeets = try c.decodeIfPresent(NoneMeetsAction.self, forKey: .whenNoneMeets) ?? .moveToBest
    }

    /// None of it: every rule off (margin 0, no dwell, no cooldown, one sample, any age).
    public static let none = Hysteresis(marginPercent: 0, dwell: .zero, cooldown: .zero, minSamples: 1, maxSampleAge: .seconds(1_000_000_000))

    /// Checks the figures a user gave, naming the flag.
    public func validate() throws {
        guard marginPercent.isFinite, marginPercent >= 0, marginPercent < 100 else {
            throw PolicyError("--margin must be a percentage from 0 up to (not including) 100, such as 10%; got \(marginPercent)")
        }
        guard dwellNanoseconds >= 0 else { throw PolicyError("--dwell must be 0 s or more, such as 3s") }
        guard cooldownNanoseconds >= 0 else { throw PolicyError("--cooldown must be 0 s or more, such as 30s") }
        guard minSamples >= 1 else { throw PolicyError("--min-samples must be at least 1, such as 20; got \(minSamples)") }
        guard maxSampleAgeNanoseconds > 0 else { throw PolicyError("--max-age must be longer than 0 s, such as 2s") }
    }
}

/// Everything one decision is made from. Codable, so a decision's inputs can be stored and shown
/// (the controller's audit trail).
public struct PolicyInput: Codable, Sendable, Equatable {
    /// Monotonic nanoseconds of the decision on the policy's clock.
    public var nowNanoseconds: Int64
    public var requirement: DelayRequirement
    public var activeNode: String
    /// One observation per node the service could run on, the active one included.
    public var nodes: [NodeObservation]
    /// Expected interruption of a move to each node, in milliseconds: the measured startup time of
    /// the service there (startup probes). A node without an entry has an unknown cost.
    public var moveCostMilliseconds: [String: Double]
    public var hysteresis: Hysteresis

    public init(nowNanoseconds: Int64, requirement: DelayRequirement, activeNode: String, nodes: [NodeObservation],
                moveCostMilliseconds: [String: Double] = [:], hysteresis: Hysteresis = Hysteresis()) {
        self.nowNanoseconds = nowNanoseconds
        self.requirement = requirement
        self.activeNode = activeNode
        self.nodes = nodes
        self.moveCostMilliseconds = moveCostMilliseconds
        self.hysteresis = hysteresis
    }

    public func observation(_ node: String) -> NodeObservation? { nodes.first { $0.node == node } }
}

/// What a policy remembers between decisions: when the active node's trouble began and the last move.
public struct PolicyState: Codable, Sendable, Equatable {
    /// When the active node first went above the margin level, at the decision that saw it; nil while it is fine.
    public var atRiskSinceNanoseconds: Int64?
    /// When the last move was decided.
    public var lastMoveNanoseconds: Int64?
    public var lastMoveFrom: String?
    public var lastMoveTo: String?

    public init() {}

    /// Notes a move from `from` to `to` decided at `now`: the cooldown runs from here.
    mutating func recordMove(at now: Int64, from: String, to: String) {
        lastMoveNanoseconds = now
        lastMoveFrom = from
        lastMoveTo = to
    }
}

/// The kind of a decision, machine-readable.
public enum DecisionKind: String, Codable, Sendable, CaseIterable {
    /// The active node meets the requirement.
    case stayRequirementMet = "stay_requirement_met"
    /// The active node misses the requirement but is the best node there is (the lab's
    /// "can't migrate service! Best node is the one active ...").
    case stayBestIsActive = "stay_best_is_active"
    /// Too few or too old samples to judge a node (named in the reason with the figure).
    case stayInsufficientData = "stay_insufficient_data"
    /// A better node exists, but the dwell time or the cooldown has not passed yet.
    case stayHysteresis = "stay_hysteresis"
    /// Move to `target`.
    case migrate
    /// The active node misses the requirement and no node meets it (with the margin). With
    /// `whenNoneMeets` `moveToBest`, an alert that names a `target` also moves there (the least-bad node).
    case alert
}

/// One decision, with its reason and everything it was made from.
public struct Decision: Codable, Sendable, Equatable {
    /// The policy that decided ("edgemeter", "first-response").
    public var policy: String
    public var kind: DecisionKind
    /// A sentence for people and logs.
    public var reason: String
    /// The node to move to (migrate, and an alert that moves to the least-bad node).
    public var target: String?
    /// The active node's delay at the requirement's percentile (the newest sample for first-response).
    public var activeMilliseconds: Double?
    /// The target's delay as the policy judged it (migrate only).
    public var targetMilliseconds: Double?
    /// The move's expected interruption (the target's cost input; migrate only, nil when unknown).
    public var expectedInterruptionMilliseconds: Double?
    public var input: PolicyInput
    /// The policy's memory before this decision.
    public var stateBefore: PolicyState

    public var nowNanoseconds: Int64 { input.nowNanoseconds }

    /// The decision moves the service to `target`: a `migrate`, or an `alert` that moves to the
    /// least-bad node (`whenNoneMeets` `moveToBest`). Executors act on these.
    public var movesService: Bool { target != nil && (kind == .migrate || kind == .alert) }
}

/// One policy behind one interface: the controller (and the replay) call `decide` with the inputs
/// of the moment and act on a `migrate` decision. `decide` assumes a `migrate` it returns is
/// carried out (it starts the cooldown); it does no I/O and reads no clock.
public protocol MigrationPolicy: Sendable {
    var name: String { get }
    var state: PolicyState { get }
    mutating func decide(_ input: PolicyInput) -> Decision
}

/// The rules of one policy: what it decides on `input`, given its memory (which the rules update).
/// `RuledPolicy` keeps the memory between decisions.
public protocol PolicyRules: Sendable {
    /// The policy's name in decisions, the audit trail and replays ("edgemeter", "first-response").
    static var name: String { get }
    static func decide(_ input: PolicyInput, state: inout PolicyState, decision: DecisionMaker) -> Decision
}

/// Writes the decisions of one `decide` call: each carries the policy's name, the call's input and
/// the policy's memory as it was when the call began.
public struct DecisionMaker: Sendable {
    let policy: String
    let input: PolicyInput
    let before: PolicyState

    public func callAsFunction(_ kind: DecisionKind, _ reason: String, active: Double? = nil, target: String? = nil,
                               targetMs: Double? = nil, cost: Double? = nil) -> Decision {
        Decision(policy: policy, kind: kind, reason: reason, target: target, activeMilliseconds: active,
                 targetMilliseconds: targetMs, expectedInterruptionMilliseconds: cost, input: input, stateBefore: before)
    }
}

/// A policy made of its rules: it stores the memory (`state`) the rules read and update from one
/// decision to the next.
public struct RuledPolicy<Rules: PolicyRules>: MigrationPolicy {
    public var name: String { Rules.name }
    public private(set) var state: PolicyState

    public init(state: PolicyState = PolicyState()) { self.state = state }

    public mutating func decide(_ input: PolicyInput) -> Decision {
        let decision = DecisionMaker(policy: name, input: input, before: state)
        return Rules.decide(input, state: &state, decision: decision)
    }
}

/// edgemeter's policy (`EdgeMeterRules`).
public typealias EdgeMeterPolicy = RuledPolicy<EdgeMeterRules>
/// The lab's controller, for comparison (`FirstResponseRules`).
public typealias FirstResponsePolicy = RuledPolicy<FirstResponseRules>

/// Milliseconds as a short figure: at most two decimals, no trailing zeros (22.36, 20, 18.5).
public func formatMilliseconds(_ ms: Double) -> String {
    guard ms.isFinite else { return "\(ms)" }
    var s = String(format: "%.2f", ms)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}

func formatSeconds(_ ns: Int64) -> String { formatMilliseconds(Double(ns) / 1e9) + " s" }

/// edgemeter's policy: percentiles over a window, a margin, a dwell time, a cooldown, and the
/// minimum-samples and sample-age rules.
///
/// A node's figure is its delay at the requirement's percentile, except that a node losing more
/// samples than the percentile leaves room for (over 10 % at p90) misses the requirement whatever
/// its received samples say. The rules, in order, with T = requirement × (1 − margin) (the margin level):
/// 1. The active node has too few received samples or its newest is too old: stay (insufficient data).
/// 2. The active node's delay at the percentile is ≤ T: stay (requirement met); the dwell clock resets.
/// 3. Above T the active node is at risk; the dwell clock starts at the first decision that sees it.
///    Targets are the other nodes with enough fresh samples whose delay is ≤ T, best first (lowest
///    delay, then lowest move cost, then name).
/// 4. No target: if the active node still meets the requirement (T < delay ≤ requirement), stay
///    (requirement met). Otherwise, among the nodes with enough fresh samples: if the active node
///    has the lowest delay, stay (best is active, the lab's message); if another node does, alert (no
///    node meets the requirement with the margin). With `whenNoneMeets` `moveToBest` (the default)
///    the alert also moves to that least-bad node when its delay is ≤ active × (1 − margin) and the
///    dwell and cooldown of rule 5 have passed (the alert then names the target; before, it says
///    what it waits for). If no other node has enough fresh samples, stay (insufficient data),
///    naming the first such node.
/// 5. A target exists: if the active node has been at risk for less than the dwell, or the last
///    move is less than the cooldown ago, stay (hysteresis). Otherwise migrate to the best target.
///
/// Because the active node is at risk from T on and a target must offer ≤ T, a slow rise is
/// answered before the requirement is broken (the dwell runs while the delay crosses the margin
/// band), while a level that swings around the requirement finds no node worth moving to.
public enum EdgeMeterRules: PolicyRules {
    public static let name = "edgemeter"

    public static func decide(_ input: PolicyInput, state: inout PolicyState, decision: DecisionMaker) -> Decision {
        let h = input.hysteresis
        let req = input.requirement
        let p = req.percentile
        let marginLevel = req.maxMilliseconds * (1 - h.marginPercent / 100)
        let now = input.nowNanoseconds

        /// Why a node cannot be judged, nil when it can.
        func insufficiency(_ o: NodeObservation?, _ node: String) -> String? {
            guard let o else { return "\(node) has no delay observation" }
            if o.received < h.minSamples {
                return "\(node) has \(o.received) received samples in the window, fewer than the \(h.minSamples) required"
            }
            guard let age = o.newestAgeNanoseconds else { return "\(node) has no samples in the window" }
            if age > h.maxSampleAgeNanoseconds {
                return "\(node)'s newest sample is \(formatSeconds(age)) old, older than the \(formatSeconds(h.maxSampleAgeNanoseconds)) allowed"
            }
            if o.milliseconds(at: p) == nil { return "\(node) has no received samples in the window" }
            return nil
        }

        let activeName = input.activeNode
        let activeObs = input.observation(activeName)
        if let why = insufficiency(activeObs, activeName) {
            state.atRiskSinceNanoseconds = nil
            return decision(.stayInsufficientData, "stay: active node \(why)")
        }
        // More loss than the percentile leaves room for (over 10 % at p90) misses the requirement
        // whatever the received samples say: from the client's side a lost request is later than any bound.
        let lossLimit = 100 - p.value
        func figure(_ o: NodeObservation) -> Double { o.lossPercent > lossLimit ? .infinity : o.milliseconds(at: p)! }
        let active = figure(activeObs!)
        let activeRecorded = activeObs!.milliseconds(at: p)
        let activeText = active.isFinite ? "\(p.rawValue) \(formatMilliseconds(active)) ms"
            : "\(formatMilliseconds(activeObs!.lossPercent)) % of samples lost (more than the \(formatMilliseconds(lossLimit)) % a \(p.rawValue) requirement allows)"
        let label = "active \(activeName) \(activeText)"
        let reqText = "\(formatMilliseconds(req.maxMilliseconds)) ms required"
        let misses = active.isFinite ? "\(label) > \(reqText)" : label
        let marginText = "\(formatMilliseconds(marginLevel)) ms (\(reqText) less the \(formatMilliseconds(h.marginPercent)) % margin)"
        if active <= marginLevel {
            state.atRiskSinceNanoseconds = nil
            return decision(.stayRequirementMet, "stay: \(label) ≤ \(marginText)", active: activeRecorded)
        }
        if state.atRiskSinceNanoseconds == nil { state.atRiskSinceNanoseconds = now }
        let atRiskFor = now - state.atRiskSinceNanoseconds!

        var judged: [(node: String, ms: Double)] = []
        var unjudged: [String] = []
        for o in input.nodes where o.node != activeName {
            if let why = insufficiency(o, o.node) { unjudged.append(why) } else { judged.append((o.node, figure(o))) }
        }
        let cost = { (n: String) in input.moveCostMilliseconds[n] ?? .infinity }
        let targets = judged.filter { $0.ms <= marginLevel }.sorted {
            ($0.ms, cost($0.node), $0.node) < ($1.ms, cost($1.node), $1.node)
        }
        guard let best = targets.first else {
            if active <= req.maxMilliseconds {
                return decision(.stayRequirementMet, "stay: \(label) ≤ \(reqText), above the margin level \(formatMilliseconds(marginLevel)) ms, "
                                 + "but no other node offers ≤ \(formatMilliseconds(marginLevel)) ms", active: activeRecorded)
            }
            if judged.isEmpty, let why = unjudged.first {
                return decision(.stayInsufficientData, "stay: \(misses), but \(why)", active: activeRecorded)
            }
            if let other = judged.min(by: { ($0.ms, cost($0.node), $0.node) < ($1.ms, cost($1.node), $1.node) }), other.ms < active {
                let head = "alert: no node meets \(req) with the \(formatMilliseconds(h.marginPercent)) % margin "
                    + "(≤ \(formatMilliseconds(marginLevel)) ms)"
                let otherText = "\(p.rawValue) \(formatMilliseconds(other.ms)) ms"
                let activeShort = active.isFinite ? "\(formatMilliseconds(active)) ms" : activeText
                guard h.whenNoneMeets == .moveToBest else {
                    return decision(.alert, "\(head): \(label), best other node \(other.node) \(formatMilliseconds(other.ms)) ms", active: activeRecorded)
                }
                let betterLevel = active * (1 - h.marginPercent / 100)
                guard other.ms <= betterLevel else {
                    return decision(.alert, "\(head); staying: the best other node \(other.node) (\(otherText)) is not better than "
                                    + "the active \(activeName)'s \(activeShort) by the \(formatMilliseconds(h.marginPercent)) % margin",
                                    active: activeRecorded, targetMs: other.ms)
                }
                if atRiskFor < h.dwellNanoseconds {
                    return decision(.alert, "\(head); moving to \(other.node), the best (\(otherText) against the active's \(activeShort)), "
                                    + "once the active has been at risk for the \(formatSeconds(h.dwellNanoseconds)) dwell "
                                    + "(\(formatSeconds(atRiskFor)) so far)", active: activeRecorded, targetMs: other.ms)
                }
                if let last = state.lastMoveNanoseconds, now - last < h.cooldownNanoseconds {
                    return decision(.alert, "\(head); not moving to \(other.node), the best (\(otherText) against the active's \(activeShort)): "
                                    + "the last move (\(state.lastMoveFrom ?? "?") → \(state.lastMoveTo ?? "?")) was \(formatSeconds(now - last)) ago, "
                                    + "within the \(formatSeconds(h.cooldownNanoseconds)) cooldown", active: activeRecorded, targetMs: other.ms)
                }
                let c = input.moveCostMilliseconds[other.node]
                state.recordMove(at: now, from: activeName, to: other.node)
                state.atRiskSinceNanoseconds = nil
                return decision(.alert, "alert: no node meets \(req); moving to \(other.node), the best: \(otherText) against the active's "
                                + "\(activeShort), expected interruption \(c.map { formatMilliseconds($0) + " ms" } ?? "unknown (no startup time measured there)")",
                                active: activeRecorded, target: other.node, targetMs: other.ms, cost: c)
            }
            return decision(.stayBestIsActive, "can't migrate service! Best node is the one active \(activeName) "
                            + "(\(active.isFinite ? "\(activeText) > \(reqText)" : activeText); no other node offers less)", active: activeRecorded)
        }
        let offer = "\(best.node) offers \(formatMilliseconds(best.ms)) ms"
        if atRiskFor < h.dwellNanoseconds {
            return decision(.stayHysteresis, "stay: \(label)\(active.isFinite ? " > \(formatMilliseconds(marginLevel)) ms" : "") for \(formatSeconds(atRiskFor)) "
                            + "of the \(formatSeconds(h.dwellNanoseconds)) dwell; \(offer)", active: activeRecorded, target: nil, targetMs: best.ms)
        }
        if let last = state.lastMoveNanoseconds, now - last < h.cooldownNanoseconds {
            return decision(.stayHysteresis, "stay: the last move (\(state.lastMoveFrom ?? "?") → \(state.lastMoveTo ?? "?")) was "
                            + "\(formatSeconds(now - last)) ago, within the \(formatSeconds(h.cooldownNanoseconds)) cooldown; "
                            + "\(label), \(offer)", active: activeRecorded, targetMs: best.ms)
        }
        let c = input.moveCostMilliseconds[best.node]
        let over = !active.isFinite ? "" : active > req.maxMilliseconds ? " > \(reqText)" : " > \(marginText)"
        let reason = "migrate to \(best.node): \(active.isFinite ? "active \(activeText)" : label)\(over), "
            + "\(offer), expected interruption \(c.map { formatMilliseconds($0) + " ms" } ?? "unknown (no startup time measured there)")"
        state.recordMove(at: now, from: activeName, to: best.node)
        state.atRiskSinceNanoseconds = nil
        return decision(.migrate, reason, active: activeRecorded, target: best.node, targetMs: best.ms, cost: c)
    }
}

/// The lab's controller, for comparison: on each decision it looks at the newest answer of every
/// node (the node that answered first is the one whose newest answer took least), with no window
/// statistics and no hysteresis.
///
/// 1. The active node's newest answer is ≤ the requirement: stay (requirement met).
/// 2. Otherwise the node with the smallest newest answer (nodes without an answer in the window are
///    skipped) is the best: the active one → stay (best is active, the lab's message); another →
///    migrate there. If the active node has no answer either and no node has: stay (insufficient data).
public enum FirstResponseRules: PolicyRules {
    public static let name = "first-response"

    public static func decide(_ input: PolicyInput, state: inout PolicyState, decision: DecisionMaker) -> Decision {
        let req = input.requirement
        let reqText = "\(formatMilliseconds(req.maxMilliseconds)) ms required"
        let activeName = input.activeNode
        let active = input.observation(activeName)?.newestMilliseconds
        if let a = active, a <= req.maxMilliseconds {
            return decision(.stayRequirementMet, "stay: active \(activeName) answered in \(formatMilliseconds(a)) ms ≤ \(reqText)", active: a)
        }
        let answered = input.nodes.compactMap { o in o.newestMilliseconds.map { (node: o.node, ms: $0) } }
        guard let first = answered.min(by: { ($0.ms, $0.node) < ($1.ms, $1.node) }) else {
            return decision(.stayInsufficientData, "stay: no node answered (active \(activeName) has no answer in the window)", active: nil)
        }
        if first.node == activeName {
            return decision(.stayBestIsActive, "can't migrate service! Best node is the one active \(activeName)", active: active)
        }
        let c = input.moveCostMilliseconds[first.node]
        let was = active.map { "active newest answer \(formatMilliseconds($0)) ms > \(reqText)" } ?? "active \(activeName) did not answer"
        state.recordMove(at: input.nowNanoseconds, from: activeName, to: first.node)
        return decision(.migrate, "migrate to \(first.node): \(was), \(first.node) answered first in \(formatMilliseconds(first.ms)) ms, "
                        + "expected interruption \(c.map { formatMilliseconds($0) + " ms" } ?? "unknown")",
                        active: active, target: first.node, targetMs: first.ms, cost: c)
    }
}
