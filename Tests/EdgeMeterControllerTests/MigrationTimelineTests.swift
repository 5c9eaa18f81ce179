import Foundation
import XCTest
@testable import EdgeMeterPolicy
@testable import EdgeMeterController

/// The per-move timeline from an audit trail and client answers, on made-up clock readings (ms).
final class MigrationTimelineTests: XCTestCase {
    static let ms: Int64 = 1_000_000

    func record(_ t: Int64, _ kind: DecisionKind, active: String, to: String? = nil, phases: [(String, Int64, Int64)] = []) -> DecisionRecord {
        let req = DelayRequirement(percentile: .p90, maxMilliseconds: 20)
        let input = PolicyInput(nowNanoseconds: t * Self.ms, requirement: req, activeNode: active,
                                nodes: [NodeObservation(node: active, sent: 10, received: 10, lossPercent: 0, p50Milliseconds: 30,
                                                        p90Milliseconds: 31, p99Milliseconds: 32, newestMilliseconds: 30, newestAgeNanoseconds: 0)])
        let d = Decision(policy: "edgemeter", kind: kind, reason: "\(kind.rawValue) at \(t)", target: to, activeMilliseconds: 31,
                         targetMilliseconds: to == nil ? nil : 10, expectedInterruptionMilliseconds: nil, input: input, stateBefore: PolicyState())
        var r = DecisionRecord(id: 0, service: "edge-app", at: Date(), trigger: "probe loop", decision: d, activeBefore: active, activeAfter: to ?? active,
                               decideMilliseconds: 0.1, totalMilliseconds: 0.1)
        if let to {
            r.migration = MigrationReport(executor: "docker", service: "edge-app", from: active, to: to, startedAt: Date(),
                                          phases: phases.map { MigrationStep(name: $0.0, startNanoseconds: $0.1 * Self.ms, endNanoseconds: $0.2 * Self.ms, outcome: .ok) })
        }
        return r
    }

    func answers(_ from: Int64, _ to: Int64, every: Int64, node: String) -> [ClientAnswer] {
        stride(from: from, to: to, by: Int(every)).map { ClientAnswer(endNanoseconds: $0 * Self.ms, node: node, ok: true) }
    }

    func testAMoveIsTimedFromTheOnsetAndTheClientGap() throws {
        let ds = [
            record(500, .stayInsufficientData, active: "node_2"),
            record(1000, .stayHysteresis, active: "node_2"),
            record(1500, .stayHysteresis, active: "node_2"),
            record(2000, .migrate, active: "node_2", to: "node_1",
                   phases: [("start_target", 2001, 2400), ("wait_ready", 2400, 2450), ("switch", 2450, 2451), ("stop_old", 2451, 2900)]),
            record(2500, .stayRequirementMet, active: "node_1"),
        ]
        // node_2 answers until 2460 (a request sent before the switch), node_1 from 2470.
        let a = answers(0, 2470, every: 10, node: "node_2") + answers(2470, 4000, every: 10, node: "node_1")
            + [ClientAnswer(endNanoseconds: 100 * Self.ms, node: nil, ok: false)]
        let events = [TimelineEvent(atNanoseconds: 0, what: "start"), TimelineEvent(atNanoseconds: 3000 * Self.ms, what: "later")]
        let moves = MigrationTimeline.moves(decisions: ds.shuffled(), answers: a.shuffled(), events: events)
        XCTAssertEqual(moves.count, 1)
        let m = try XCTUnwrap(moves.first)
        XCTAssertEqual(m.from, "node_2")
        XCTAssertEqual(m.to, "node_1")
        XCTAssertEqual(m.onsetNanoseconds, 1000 * Self.ms, "the first hysteresis decision, not the insufficient-data one")
        XCTAssertEqual(m.offset(m.decisionNanoseconds), 1000)
        XCTAssertEqual(m.offset(m.targetReadyNanoseconds), 1450)
        XCTAssertEqual(m.offset(m.switchNanoseconds), 1451)
        XCTAssertEqual(m.offset(m.oldStoppedNanoseconds), 1900)
        XCTAssertEqual(try XCTUnwrap(m.interruptionMilliseconds), 10, accuracy: 1e-9, "last node_2 answer 2460, first node_1 answer 2470")
        XCTAssertEqual(m.failedRequests, 0, "the failure at 100 ms is before the decision")
        XCTAssertEqual(m.cause, "start")
        let csv = MigrationTimeline.movesCSV(moves)
        XCTAssertTrue(csv.hasPrefix("move,from,to,outcome,cause,onset_ms,decision_ms,target_ready_ms,switch_ms,old_stopped_ms"), csv)
        XCTAssertTrue(csv.contains("1,node_2,node_1,completed,start,0.0,1000.0,1450.0,1451.0,1900.0,1460.0,1470.0,10.000,10.000,0,migrate"), csv)
        let md = MigrationTimeline.markdown(title: "t", moves: moves, requests: a.count, failed: 1, rate: 100)
        XCTAssertTrue(md.contains("**1 failed**"), md)
        XCTAssertTrue(md.contains("| 1 | start | node_2 → node_1 | migrate | completed | 1000.0 | 1450.0 | 1451.0 | 1900.0 | 10.0 ms | 10.0 ms | 0 |"), md)
    }

    func testAnAlertThatMovesIsAMoveAndEndsTheOnsetRun() throws {
        let ds = [
            record(1000, .alert, active: "node_1"),
            record(2000, .alert, active: "node_1", to: "node_2",
                   phases: [("start_target", 2000, 2100), ("wait_ready", 2100, 2200), ("switch", 2200, 2201), ("stop_old", 2201, 2500)]),
            record(3000, .stayBestIsActive, active: "node_2"),
            record(4000, .alert, active: "node_2"),
            record(5000, .alert, active: "node_2", to: "node_1",
                   phases: [("start_target", 5000, 5100), ("wait_ready", 5100, 5200), ("switch", 5200, 5201), ("stop_old", 5201, 5500)]),
            record(6000, .alert, active: "node_1"),
        ]
        XCTAssertTrue(ds[1].decision.movesService)
        XCTAssertFalse(ds[0].decision.movesService, "an alert without a target does not move")
        let moves = MigrationTimeline.moves(decisions: ds, answers: answers(0, 7000, every: 10, node: "node_1"))
        XCTAssertEqual(moves.map { "\($0.from)→\($0.to) \($0.decisionKind)" }, ["node_1→node_2 alert", "node_2→node_1 alert"])
        XCTAssertEqual(moves.map { $0.onsetNanoseconds / Self.ms }, [1000, 3000], "the second run starts after the first move")
        XCTAssertTrue(MigrationTimeline.movesCSV(moves).contains(",alert\n"))
    }

    func testFailuresDuringAMoveAreCountedAndAnOverlapIsNegative() throws {
        let ds = [
            record(1000, .alert, active: "node_1"),
            record(2000, .migrate, active: "node_1", to: "node_2",
                   phases: [("start_target", 2000, 2100), ("wait_ready", 2100, 2200), ("switch", 2200, 2201), ("stop_old", 2201, 2500)]),
        ]
        // The old node's last answer (2230) comes after the new node's first (2210): no gap.
        let a = answers(1900, 2240, every: 10, node: "node_1") + answers(2210, 2600, every: 10, node: "node_2")
            + [ClientAnswer(endNanoseconds: 2300 * Self.ms, node: nil, ok: false), ClientAnswer(endNanoseconds: 2700 * Self.ms, node: nil, ok: false)]
        let m = try XCTUnwrap(MigrationTimeline.moves(decisions: ds, answers: a).first)
        XCTAssertEqual(m.onsetNanoseconds, 1000 * Self.ms, "an alert is part of the violation")
        XCTAssertEqual(try XCTUnwrap(m.interruptionMilliseconds), -20, accuracy: 1e-9)
        XCTAssertEqual(m.failedRequests, 1, "2300 is inside the move, 2700 after stop_old")
        XCTAssertEqual(try XCTUnwrap(m.longestSilenceMilliseconds), 10, accuracy: 1e-9, "answers every 10 ms throughout")
        // Without node_2's answers between 2240 and 2400 the client waits 170 ms (2230 → 2400).
        let gap = a.filter { !($0.node == "node_2" && $0.endNanoseconds < 2400 * Self.ms) }
        let g = try XCTUnwrap(MigrationTimeline.moves(decisions: ds, answers: gap).first)
        XCTAssertEqual(try XCTUnwrap(g.longestSilenceMilliseconds), 170, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(g.interruptionMilliseconds), 170, accuracy: 1e-9)
        XCTAssertNil(m.cause)
    }

    func testMeanAndStudentConfidenceInterval() throws {
        XCTAssertNil(MigrationTimeline.meanCI95([]))
        XCTAssertNil(try XCTUnwrap(MigrationTimeline.meanCI95([5])).halfWidth)
        // mean 20, sample sd 10 (n = 4): half-width t(3) 3.182 · 10 / 2 = 15.91.
        let s = try XCTUnwrap(MigrationTimeline.meanCI95([10, 20, 30, 20 + 0]))
        XCTAssertEqual(s.mean, 20, accuracy: 1e-9)
        let sd = (200.0 / 3).squareRoot()
        XCTAssertEqual(try XCTUnwrap(s.halfWidth), 3.182 * sd / 2, accuracy: 1e-9)
        XCTAssertEqual(MigrationTimeline.tQuantile975(degreesOfFreedom: 9), 2.262)
        XCTAssertEqual(MigrationTimeline.tQuantile975(degreesOfFreedom: 1000), 1.960)
    }
}
