import Foundation

/// Whether a run's figures show every target working: the basis of every command's exit status
/// (0 = each target succeeded at least once, 1 = one never did or a scenario failed or did not run).
///
/// A target is judged on its decisive phase, per (scenario, probe, target):
/// - `total` when the probe records one (http, calc, startup): an attempt counts only if it met its
///   expectations end to end (a 404 or a failed ready check is not a success);
/// - else `echo` (ping) or `connect` (tcping);
/// - for the load generator's aggregate: at least one response that passed the status and body checks
///   (`responses/status_*` minus `errors/status` and `errors/body`);
/// - otherwise any successful sample.
/// Wire samples (probe `wire`) are derived from a capture and never decide.
public enum RunOutcome {
    public struct Failure: Sendable, Equatable, CustomStringConvertible {
        public var scenario: String
        public var target: String
        public var reason: String
        public init(scenario: String, target: String, reason: String) { (self.scenario, self.target, self.reason) = (scenario, target, reason) }
        public var description: String {
            target.isEmpty ? "scenario \(scenario): \(reason)" : "scenario \(scenario): \(target): \(reason)"
        }
    }

    public static func failures(summaries: [Summary], notes: [ScenarioNote] = []) -> [Failure] {
        var out: [Failure] = []
        struct Group: Hashable { var scenario: String; var probe: String; var target: String }
        var order: [Group] = []
        var groups: [Group: [Summary]] = [:]
        for s in summaries where s.key.probe != "wire" {
            let g = Group(scenario: s.key.scenario, probe: s.key.probe, target: s.key.target)
            if groups[g] == nil { order.append(g) }
            groups[g, default: []].append(s)
        }
        for g in order {
            let rows = groups[g] ?? []
            if let reason = failure(rows) {
                out.append(Failure(scenario: g.scenario, target: g.target, reason: reason))
            }
        }
        for n in notes where n.status == "failed" || n.status == "not run" {
            out.append(Failure(scenario: n.scenario, target: "", reason: "\(n.status): \(n.reason)"))
        }
        return out
    }

    /// Why a target's rows show no success, or nil when one attempt succeeded.
    static func failure(_ rows: [Summary]) -> String? {
        func counts(_ s: Summary) -> String {
            let parts = SampleStatus.allCases.filter { $0 != .ok }.compactMap { st -> String? in
                guard let n = s.statusCounts[st], n > 0 else { return nil }
                return "\(n) \(st.rawValue)"
            }
            return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
        }
        // The load generator's aggregate (checked first: its `errors/connect` count is not a connect phase).
        if rows.contains(where: { $0.key.metric == "responses" || $0.key.metric == "errors" }) {
            func total(_ metric: String, _ phase: ((String) -> Bool)) -> Double {
                rows.filter { $0.key.metric == metric && phase($0.key.phase) }
                    .reduce(0) { $0 + ($1.mean ?? 0) * Double($1.received) }
            }
            let responses = total("responses") { $0.hasPrefix("status_") }
            let rejected = total("errors") { $0 == "status" || $0 == "body" }
            if responses - rejected > 0 { return nil }
            let errors = total("errors") { _ in true }
            return "no request succeeded: \(Int(responses)) responses, \(Int(rejected)) rejected by the status/body checks, \(Int(errors)) errors"
        }
        for decisive in ["total", "echo", "connect"] {
            if let s = rows.first(where: { $0.key.phase == decisive && $0.key.metric != "errors" }) {
                return s.received > 0 ? nil : "no successful attempt: 0 of \(s.sent) \(decisive == "total" ? "attempts" : decisive == "echo" ? "echoes answered" : "connects")\(counts(s))"
            }
        }
        if rows.contains(where: { $0.received > 0 }) { return nil }
        return "no successful sample"
    }
}
