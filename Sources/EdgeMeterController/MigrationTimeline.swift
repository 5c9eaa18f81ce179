import Foundation
import EdgeMeterPolicy

/// One answer (or failure) a client saw through the client path. `endNanoseconds` is CLOCK_MONOTONIC,
/// absolute (the same clock as the controller's decisions and the executor's phases).
public struct ClientAnswer: Sendable, Equatable {
    public var endNanoseconds: Int64
    /// The node that answered (`X-Edgemeter-Node`); nil for a failure.
    public var node: String?
    public var ok: Bool
    public init(endNanoseconds: Int64, node: String?, ok: Bool) { (self.endNanoseconds, self.node, self.ok) = (endNanoseconds, node, ok) }
}

/// Something the experiment did at runtime (a link changed, the requirement changed), CLOCK_MONOTONIC.
public struct TimelineEvent: Sendable, Equatable {
    public var atNanoseconds: Int64
    public var what: String
    public init(atNanoseconds: Int64, what: String) { (self.atNanoseconds, self.what) = (atNanoseconds, what) }
}

/// One move of a service, from the controller's audit trail and the client's answers. Every time is
/// CLOCK_MONOTONIC nanoseconds; nil when it did not happen (a failed move has no `switch`).
public struct MoveTimeline: Sendable, Equatable {
    public var index: Int
    public var from: String
    public var to: String
    /// The executor's outcome (`completed`, `rolled_back`, ...).
    public var outcome: String
    /// The first decision of the unbroken run of decisions that ends in this move and in which the
    /// active node was not `stay_requirement_met` (at risk, alerting, waiting out dwell or cooldown):
    /// when the controller first saw the violation.
    public var onsetNanoseconds: Int64
    /// The decision that moved (`migrate`, or an `alert` naming the least-bad node; the policy's clock reading when it decided).
    public var decisionNanoseconds: Int64
    /// End of `wait_ready`: the target answers as the service.
    public var targetReadyNanoseconds: Int64?
    /// End of `switch`: new requests go to the target from here on.
    public var switchNanoseconds: Int64?
    /// End of `stop_old`: the old instance is stopped and removed.
    public var oldStoppedNanoseconds: Int64?
    /// The client's last answer from `from` and first answer from `to` after the decision (response ends).
    public var lastOldAnswerNanoseconds: Int64?
    public var firstNewAnswerNanoseconds: Int64?
    /// Client requests that failed between the decision and the end of `stop_old` (or the next move).
    public var failedRequests: Int
    /// The longest time between two consecutive successful answers (any node; response ends, ms)
    /// from the last answer before the decision to the end of `stop_old` (or the first answer from
    /// the new node, when later): the longest the client went without an answer around the move.
    /// At a fixed request rate R it is at least 1/R; a request that waited shows as more.
    public var longestSilenceMilliseconds: Double?
    /// The runtime event that came last before the onset (what caused the violation), if any.
    public var cause: String?
    /// The decision's reason.
    public var reason: String
    /// The deciding decision's kind: `migrate` (the target meets the requirement) or `alert` (no
    /// node meets it; moved to the least-bad node).
    public var decisionKind: String = "migrate"

    /// Client-side interruption: first answer from the new node minus last answer from the old one
    /// (response ends, ms). ≤ 0 means the answers overlapped (requests still finishing on the old
    /// node while the new one already answered). Its resolution is the client's request spacing.
    public var interruptionMilliseconds: Double? {
        guard let a = lastOldAnswerNanoseconds, let b = firstNewAnswerNanoseconds else { return nil }
        return Double(b - a) / 1e6
    }

    /// `t` as milliseconds after the onset.
    public func offset(_ t: Int64?) -> Double? { t.map { Double($0 - onsetNanoseconds) / 1e6 } }
}

/// Builds the per-move timelines and the reports (Markdown, CSV) of a migration experiment.
public enum MigrationTimeline {
    /// The moves in `decisions` (oldest first) with the client's view from `answers`.
    public static func moves(decisions: [DecisionRecord], answers: [ClientAnswer], events: [TimelineEvent] = []) -> [MoveTimeline] {
        let ds = decisions.sorted { $0.decision.input.nowNanoseconds < $1.decision.input.nowNanoseconds }
        let sortedAnswers = answers.sorted { $0.endNanoseconds < $1.endNanoseconds }
        let migrateIdx = ds.indices.filter { ds[$0].decision.movesService && ds[$0].migration != nil }
        var out: [MoveTimeline] = []
        for (n, i) in migrateIdx.enumerated() {
            let d = ds[i]
            let m = d.migration!
            var onset = d.decision.input.nowNanoseconds
            var j = i - 1
            while j >= 0, ds[j].decision.kind != .stayRequirementMet, !ds[j].decision.movesService,
                  ds[j].decision.kind != .stayInsufficientData {
                onset = ds[j].decision.input.nowNanoseconds
                j -= 1
            }
            func end(_ p: MigrationPhase) -> Int64? {
                m.phases.first { $0.name == p.rawValue && $0.outcome == .ok }?.endNanoseconds
            }
            let decided = d.decision.input.nowNanoseconds
            let nextDecision = n + 1 < migrateIdx.count ? ds[migrateIdx[n + 1]].decision.input.nowNanoseconds : Int64.max
            let window = sortedAnswers.filter { $0.endNanoseconds >= decided && $0.endNanoseconds < nextDecision }
            let lastOld = window.last { $0.ok && $0.node == m.from }?.endNanoseconds
            let firstNew = window.first { $0.ok && $0.node == m.to }?.endNanoseconds
            let failEnd = end(.stopOld) ?? m.phases.last?.endNanoseconds ?? decided
            let failed = sortedAnswers.filter { !$0.ok && $0.endNanoseconds >= decided && $0.endNanoseconds <= max(failEnd, firstNew ?? failEnd) }.count
            let cause = events.last { $0.atNanoseconds <= onset }?.what
            let silenceEnd = max(end(.stopOld) ?? decided, firstNew ?? decided)
            let okEnds = sortedAnswers.filter(\.ok).map(\.endNanoseconds)
            var around = okEnds.filter { $0 >= decided && $0 <= silenceEnd }
            if let before = okEnds.last(where: { $0 < decided }) { around.insert(before, at: 0) }
            let silence = around.count >= 2 ? zip(around.dropFirst(), around).map { Double($0 - $1) / 1e6 }.max() : nil
            out.append(MoveTimeline(index: n + 1, from: m.from, to: m.to, outcome: m.outcome.rawValue, onsetNanoseconds: onset,
                                    decisionNanoseconds: decided, targetReadyNanoseconds: end(.waitReady), switchNanoseconds: end(.switchPath),
                                    oldStoppedNanoseconds: end(.stopOld), lastOldAnswerNanoseconds: lastOld, firstNewAnswerNanoseconds: firstNew,
                                    failedRequests: failed, longestSilenceMilliseconds: silence, cause: cause, reason: d.decision.reason,
                                    decisionKind: d.decision.kind.rawValue))
        }
        return out
    }

    /// Mean and the half-width of its 95 % confidence interval (Student's t, n − 1 degrees of
    /// freedom); the half-width is nil with fewer than 2 values.
    public static func meanCI95(_ xs: [Double]) -> (mean: Double, halfWidth: Double?)? {
        guard !xs.isEmpty else { return nil }
        let n = Double(xs.count)
        let mean = xs.reduce(0, +) / n
        guard xs.count >= 2 else { return (mean, nil) }
        let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        return (mean, tQuantile975(degreesOfFreedom: xs.count - 1) * (variance / n).squareRoot())
    }

    /// The 97.5 % quantile of Student's t distribution (two-sided 95 %).
    public static func tQuantile975(degreesOfFreedom df: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                               2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        if df >= 1 && df <= table.count { return table[df - 1] }
        if df <= 40 { return 2.021 }
        if df <= 60 { return 2.000 }
        if df <= 120 { return 1.980 }
        return 1.960
    }

    static func ms(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "" }

    /// moves.csv: one row per move; times in ms after the violation onset, interruption in ms.
    public static func movesCSV(_ moves: [MoveTimeline]) -> String {
        var out = "move,from,to,outcome,cause,onset_ms,decision_ms,target_ready_ms,switch_ms,old_stopped_ms,last_old_answer_ms,first_new_answer_ms,interruption_ms,longest_silence_ms,failed_requests,decision_kind\n"
        for m in moves {
            let cells: [String] = [String(m.index), m.from, m.to, m.outcome, csvField(m.cause ?? ""), "0.0", ms(m.offset(m.decisionNanoseconds)),
                                   ms(m.offset(m.targetReadyNanoseconds)), ms(m.offset(m.switchNanoseconds)), ms(m.offset(m.oldStoppedNanoseconds)),
                                   ms(m.offset(m.lastOldAnswerNanoseconds)), ms(m.offset(m.firstNewAnswerNanoseconds)),
                                   m.interruptionMilliseconds.map { String(format: "%.3f", $0) } ?? "",
                                   m.longestSilenceMilliseconds.map { String(format: "%.3f", $0) } ?? "", String(m.failedRequests),
                                   m.decisionKind]
            out += cells.joined(separator: ",") + "\n"
        }
        return out
    }

    /// decisions.csv: one row per decision, times in ms after `originNanoseconds`.
    public static func decisionsCSV(_ decisions: [DecisionRecord], originNanoseconds: Int64) -> String {
        var out = "t_ms,trigger,kind,active_before,active_after,target,active_ms,target_ms,requirement,reason\n"
        for d in decisions.sorted(by: { $0.decision.input.nowNanoseconds < $1.decision.input.nowNanoseconds }) {
            let x = d.decision
            out += [ms(Double(x.input.nowNanoseconds - originNanoseconds) / 1e6), csvField(d.trigger), x.kind.rawValue, d.activeBefore,
                    d.activeAfter ?? "", x.target ?? "", ms(x.activeMilliseconds), ms(x.targetMilliseconds),
                    csvField(x.input.requirement.description), csvField(x.reason)].joined(separator: ",") + "\n"
        }
        return out
    }

    /// delay-windows.csv of the experiment (not a run directory's delays.csv): every node's window as each decision saw it (ms after the origin).
    public static func delaysCSV(_ decisions: [DecisionRecord], originNanoseconds: Int64) -> String {
        var out = "t_ms,node,active,sent,received,loss_percent,p50_ms,p90_ms,p99_ms\n"
        for d in decisions.sorted(by: { $0.decision.input.nowNanoseconds < $1.decision.input.nowNanoseconds }) {
            for o in d.decision.input.nodes {
                out += [ms(Double(d.decision.input.nowNanoseconds - originNanoseconds) / 1e6), o.node, o.node == d.activeBefore ? "1" : "0",
                        String(o.sent), String(o.received), String(format: "%.1f", o.lossPercent),
                        ms3(o.p50Milliseconds), ms3(o.p90Milliseconds), ms3(o.p99Milliseconds)].joined(separator: ",") + "\n"
            }
        }
        return out
    }

    static func ms3(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "" }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// The Markdown report: the moves' timelines, the interruption (mean, 95 % CI) and the client's failures.
    public static func markdown(title: String, moves: [MoveTimeline], requests: Int, failed: Int, rate: Double,
                                notes: [String] = []) -> String {
        var out = "# \(title)\n\n"
        out += "Client: \(requests) requests at \(String(format: "%.0f", rate))/s through the client path, **\(failed) failed**. "
        out += "Interruption resolution: the request spacing, \(String(format: "%.1f", 1000 / rate)) ms.\n\n"
        out += "Times in ms after the violation onset (the first decision that found the active node at risk), CLOCK_MONOTONIC.\n\n"
        out += "| move | cause | from → to | decided by | outcome | decision | target ready | switch | old stopped | interruption | longest silence | failed |\n"
        out += "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for m in moves {
            out += "| \(m.index) | \(m.cause ?? "") | \(m.from) → \(m.to) | \(m.decisionKind) | \(m.outcome) | \(ms(m.offset(m.decisionNanoseconds))) | "
                + "\(ms(m.offset(m.targetReadyNanoseconds))) | \(ms(m.offset(m.switchNanoseconds))) | \(ms(m.offset(m.oldStoppedNanoseconds))) | "
                + "\(m.interruptionMilliseconds.map { String(format: "%.1f ms", $0) } ?? "-") | "
                + "\(m.longestSilenceMilliseconds.map { String(format: "%.1f ms", $0) } ?? "-") | \(m.failedRequests) |\n"
        }
        let xs = moves.compactMap(\.interruptionMilliseconds)
        if let s = meanCI95(xs) {
            out += "\nInterruption over \(xs.count) move(s): mean \(String(format: "%.1f", s.mean)) ms"
            if let h = s.halfWidth { out += String(format: ", 95 %% CI [%.1f, %.1f] ms (Student's t)", s.mean - h, s.mean + h) }
            out += String(format: "; min %.1f, max %.1f ms (≤ 0: the old node's last answer came after the new node's first).\n", xs.min()!, xs.max()!)
        }
        let ys = moves.compactMap(\.longestSilenceMilliseconds)
        if let s = meanCI95(ys) {
            out += "\nLongest silence over \(ys.count) move(s): mean \(String(format: "%.1f", s.mean)) ms"
            if let h = s.halfWidth { out += String(format: ", 95 %% CI [%.1f, %.1f] ms", s.mean - h, s.mean + h) }
            out += String(format: "; min %.1f, max %.1f ms (request spacing %.1f ms).\n", ys.min()!, ys.max()!, 1000 / rate)
        }
        if !notes.isEmpty { out += "\n" + notes.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        return out
    }
}
