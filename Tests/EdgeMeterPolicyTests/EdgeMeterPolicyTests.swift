import XCTest
import EdgeMeterCore
@testable import EdgeMeterPolicy

/// An observation with the figure the requirement reads (p90) and the counts the rules read.
func obs(_ node: String, p90: Double?, received: Int = 30, sent: Int? = nil, ageNanoseconds: Int64? = 100_000_000,
         newest: Double? = nil) -> NodeObservation {
    NodeObservation(node: node, sent: sent ?? received, received: received, lossPercent: 0, p50Milliseconds: p90.map { $0 - 1 },
                    p90Milliseconds: p90, p99Milliseconds: p90.map { $0 + 1 }, newestMilliseconds: newest ?? p90,
                    newestAgeNanoseconds: ageNanoseconds)
}

final class EdgeMeterPolicyTests: XCTestCase {
    let s: Int64 = 1_000_000_000
    let req = DelayRequirement(percentile: .p90, maxMilliseconds: 20)
    let costs = ["node_1": 250.0, "node_2": 300, "node_3": 400]

    func input(_ t: Int64, active: String = "node_1", _ nodes: [NodeObservation], hysteresis: Hysteresis = Hysteresis()) -> PolicyInput {
        PolicyInput(nowNanoseconds: t, requirement: req, activeNode: active, nodes: nodes, moveCostMilliseconds: costs, hysteresis: hysteresis)
    }

    func testStayWhenTheRequirementIsMet() {
        var p = EdgeMeterPolicy()
        let d = p.decide(input(0, [obs("node_1", p90: 15), obs("node_2", p90: 5)]))
        XCTAssertEqual(d.kind, .stayRequirementMet)
        XCTAssertEqual(d.reason, "stay: active node_1 p90 15 ms ≤ 18 ms (20 ms required less the 10 % margin)")
        XCTAssertEqual(d.activeMilliseconds, 15)
        XCTAssertNil(p.state.atRiskSinceNanoseconds)
        // Inside the margin band with nowhere better to go: still met, but the dwell clock runs.
        let band = p.decide(input(s, [obs("node_1", p90: 19), obs("node_2", p90: 19.5)]))
        XCTAssertEqual(band.kind, .stayRequirementMet)
        XCTAssertEqual(band.reason, "stay: active node_1 p90 19 ms ≤ 20 ms required, above the margin level 18 ms, but no other node offers ≤ 18 ms")
        XCTAssertEqual(p.state.atRiskSinceNanoseconds, s)
    }

    func testMigrateOnlyAfterTheDwellWithTheLabsReasonFigures() {
        var p = EdgeMeterPolicy()
        let nodes = [obs("node_1", p90: 30.03), obs("node_2", p90: 9.38), obs("node_3", p90: 80)]
        let first = p.decide(input(10 * s, nodes))
        XCTAssertEqual(first.kind, .stayHysteresis)
        XCTAssertEqual(first.reason, "stay: active node_1 p90 30.03 ms > 18 ms for 0 s of the 3 s dwell; node_2 offers 9.38 ms")
        XCTAssertNil(first.target)
        let almost = p.decide(input(13 * s - 1, nodes))
        XCTAssertEqual(almost.kind, .stayHysteresis, "1 ns before the dwell has passed")
        let d = p.decide(input(13 * s, nodes))
        XCTAssertEqual(d.kind, .migrate)
        XCTAssertEqual(d.target, "node_2")
        XCTAssertEqual(d.reason, "migrate to node_2: active p90 30.03 ms > 20 ms required, node_2 offers 9.38 ms, expected interruption 300 ms")
        XCTAssertEqual(d.expectedInterruptionMilliseconds, 300)
        XCTAssertEqual(d.targetMilliseconds, 9.38)
        XCTAssertEqual(d.stateBefore.atRiskSinceNanoseconds, 10 * s, "the decision carries the memory it was made with")
        XCTAssertEqual(p.state.lastMoveNanoseconds, 13 * s)
        XCTAssertEqual(p.state.lastMoveFrom, "node_1")
        XCTAssertEqual(p.state.lastMoveTo, "node_2")
        XCTAssertNil(p.state.atRiskSinceNanoseconds)
    }

    func testTheDwellRestartsWhenTheViolationStops() {
        var p = EdgeMeterPolicy()
        let bad = [obs("node_1", p90: 25), obs("node_2", p90: 10)]
        XCTAssertEqual(p.decide(input(0, bad)).kind, .stayHysteresis)
        XCTAssertEqual(p.decide(input(2 * s, [obs("node_1", p90: 17), obs("node_2", p90: 10)])).kind, .stayRequirementMet)
        XCTAssertEqual(p.decide(input(3 * s, bad)).kind, .stayHysteresis, "the violation began again at 3 s")
        XCTAssertEqual(p.decide(input(6 * s - 1, bad)).kind, .stayHysteresis)
        XCTAssertEqual(p.decide(input(6 * s, bad)).kind, .migrate)
    }

    func testNoMoveWithinTheCooldown() {
        var p = EdgeMeterPolicy()
        let h = Hysteresis(marginPercent: 10, dwell: .zero, cooldown: .seconds(30), minSamples: 20, maxSampleAge: .seconds(2))
        let d = p.decide(input(0, [obs("node_1", p90: 25), obs("node_2", p90: 10), obs("node_3", p90: 12)], hysteresis: h))
        XCTAssertEqual(d.kind, .migrate, "no dwell: the first violation moves")
        let back = [obs("node_1", p90: 25), obs("node_2", p90: 26), obs("node_3", p90: 12)]
        let held = p.decide(input(30 * s - 1, active: "node_2", back, hysteresis: h))
        XCTAssertEqual(held.kind, .stayHysteresis)
        XCTAssertEqual(held.reason, "stay: the last move (node_1 → node_2) was 30 s ago, within the 30 s cooldown; active node_2 p90 26 ms, node_3 offers 12 ms")
        let moved = p.decide(input(30 * s, active: "node_2", back, hysteresis: h))
        XCTAssertEqual(moved.kind, .migrate)
        XCTAssertEqual(moved.target, "node_3")
    }

    func testTooFewOrTooOldSamplesNameTheNodeAndTheFigure() {
        var p = EdgeMeterPolicy()
        let few = p.decide(input(0, [obs("node_1", p90: 50, received: 19, sent: 25), obs("node_2", p90: 5)]))
        XCTAssertEqual(few.kind, .stayInsufficientData)
        XCTAssertEqual(few.reason, "stay: active node node_1 has 19 received samples in the window, fewer than the 20 required")
        XCTAssertEqual(p.decide(input(0, [obs("node_1", p90: 15, received: 20)])).kind, .stayRequirementMet, "20 samples are enough")

        let old = p.decide(input(0, [obs("node_1", p90: 15, ageNanoseconds: 2 * s + 1)]))
        XCTAssertEqual(old.kind, .stayInsufficientData)
        XCTAssertEqual(old.reason, "stay: active node node_1's newest sample is 2 s old, older than the 2 s allowed")
        XCTAssertEqual(p.decide(input(0, [obs("node_1", p90: 15, ageNanoseconds: 2 * s)])).kind, .stayRequirementMet, "2 s old is allowed")

        let missing = p.decide(input(0, active: "node_9", [obs("node_1", p90: 15)]))
        XCTAssertEqual(missing.kind, .stayInsufficientData)
        XCTAssertEqual(missing.reason, "stay: active node node_9 has no delay observation")

        // The active node violates and the only other node cannot be judged.
        var q = EdgeMeterPolicy()
        let other = q.decide(input(0, [obs("node_1", p90: 25), obs("node_2", p90: 5, received: 3)]))
        XCTAssertEqual(other.kind, .stayInsufficientData)
        XCTAssertEqual(other.reason, "stay: active node_1 p90 25 ms > 20 ms required, but node_2 has 3 received samples in the window, fewer than the 20 required")
        // A stale node is never a target, even with the best figure.
        var r = EdgeMeterPolicy()
        let h = Hysteresis(dwell: .zero)
        let d = r.decide(input(0, [obs("node_1", p90: 25), obs("node_2", p90: 5, ageNanoseconds: 3 * s), obs("node_3", p90: 12)], hysteresis: h))
        XCTAssertEqual(d.kind, .migrate)
        XCTAssertEqual(d.target, "node_3")
    }

    func testAlertWhenNoNodeMeetsTheRequirementWithTheMargin() {
        var p = EdgeMeterPolicy()
        // alert-only: the alert names the best other node and stays (WhenNoneMeetsTests covers move-to-best).
        let d = p.decide(input(0, [obs("node_1", p90: 30), obs("node_2", p90: 18.01), obs("node_3", p90: 80)], hysteresis: Hysteresis(whenNoneMeets: .alertOnly)))
        XCTAssertEqual(d.kind, .alert)
        XCTAssertEqual(d.reason, "alert: no node meets 20 ms at p90 with the 10 % margin (≤ 18 ms): active node_1 p90 30 ms, best other node node_2 18.01 ms")
        // Exactly at the margin level is a target.
        var q = EdgeMeterPolicy()
        XCTAssertEqual(q.decide(input(0, [obs("node_1", p90: 30), obs("node_2", p90: 18)], hysteresis: Hysteresis(dwell: .zero))).kind, .migrate)
    }

    func testBestNodeIsTheActiveOneGivesTheLabsMessage() {
        var p = EdgeMeterPolicy()
        let d = p.decide(input(0, [obs("node_1", p90: 25), obs("node_2", p90: 30), obs("node_3", p90: 80)]))
        XCTAssertEqual(d.kind, .stayBestIsActive)
        XCTAssertEqual(d.reason, "can't migrate service! Best node is the one active node_1 (p90 25 ms > 20 ms required; no other node offers less)")
    }

    func testTheBestTargetIsTheLowestDelayThenTheCheapestMove() {
        let h = Hysteresis(dwell: .zero)
        var p = EdgeMeterPolicy()
        XCTAssertEqual(p.decide(input(0, [obs("node_1", p90: 30), obs("node_3", p90: 9), obs("node_2", p90: 12)], hysteresis: h)).target, "node_3")
        var q = EdgeMeterPolicy()
        let tie = q.decide(input(0, [obs("node_1", p90: 30), obs("node_3", p90: 9), obs("node_2", p90: 9)], hysteresis: h))
        XCTAssertEqual(tie.target, "node_2", "same delay: node_2's 300 ms move beats node_3's 400 ms")
        var r = EdgeMeterPolicy()
        let unknown = r.decide(PolicyInput(nowNanoseconds: 0, requirement: req, activeNode: "a", nodes: [obs("a", p90: 30), obs("b", p90: 5)], hysteresis: h))
        XCTAssertEqual(unknown.reason, "migrate to b: active p90 30 ms > 20 ms required, b offers 5 ms, expected interruption unknown (no startup time measured there)")
        XCTAssertNil(unknown.expectedInterruptionMilliseconds)
    }

    func testAPreemptiveMoveSaysItIsAboveTheMarginLevel() {
        var p = EdgeMeterPolicy()
        let d = p.decide(input(0, [obs("node_1", p90: 19), obs("node_2", p90: 10)], hysteresis: Hysteresis(dwell: .zero)))
        XCTAssertEqual(d.kind, .migrate)
        XCTAssertEqual(d.reason, "migrate to node_2: active p90 19 ms > 18 ms (20 ms required less the 10 % margin), node_2 offers 10 ms, expected interruption 300 ms")
    }

    func testLossBeyondThePercentilesRoomMissesTheRequirement() throws {
        func lossy(_ node: String, p90: Double, lossPercent: Double) -> NodeObservation {
            var o = obs(node, p90: p90)
            o.lossPercent = lossPercent
            return o
        }
        let h = Hysteresis(dwell: .zero)
        // 10 % lost still leaves p90 to the received samples; 10.5 % does not.
        var p = EdgeMeterPolicy()
        XCTAssertEqual(p.decide(input(0, [lossy("node_1", p90: 5, lossPercent: 10), obs("node_2", p90: 3)], hysteresis: h)).kind, .stayRequirementMet)
        let d = p.decide(input(0, [lossy("node_1", p90: 5, lossPercent: 10.5), obs("node_2", p90: 9)], hysteresis: h))
        XCTAssertEqual(d.kind, .migrate)
        XCTAssertEqual(d.reason, "migrate to node_2: active node_1 10.5 % of samples lost (more than the 10 % a p90 requirement allows), "
                       + "node_2 offers 9 ms, expected interruption 300 ms")
        XCTAssertEqual(d.activeMilliseconds, 5, "the record keeps the received samples' p90")
        XCTAssertNoThrow(try JSONEncoder().encode(d), "no infinity in a decision")
        // A lossy node is never a target, however fast its answers.
        var q = EdgeMeterPolicy()
        let t = q.decide(input(0, [obs("node_1", p90: 30), lossy("node_2", p90: 2, lossPercent: 40), obs("node_3", p90: 12)], hysteresis: h))
        XCTAssertEqual(t.target, "node_3")
    }

    func testDecisionsAreCodableWithTheirInputs() throws {
        var p = EdgeMeterPolicy()
        let d = p.decide(input(7 * s, [obs("node_1", p90: 30), obs("node_2", p90: 10)], hysteresis: Hysteresis(dwell: .zero)))
        let data = try JSONEncoder().encode(d)
        let back = try JSONDecoder().decode(Decision.self, from: data)
        XCTAssertEqual(back, d)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["kind"] as? String, "migrate")
        XCTAssertEqual(json["policy"] as? String, "edgemeter")
        let inputJSON = try XCTUnwrap(json["input"] as? [String: Any])
        XCTAssertEqual(inputJSON["activeNode"] as? String, "node_1")
        XCTAssertEqual((inputJSON["nodes"] as? [Any])?.count, 2)
        XCTAssertEqual(inputJSON["nowNanoseconds"] as? Int, 7_000_000_000)
    }

    func testHysteresisValidationNamesTheFlag() {
        XCTAssertThrowsError(try Hysteresis(marginPercent: 100).validate()) {
            XCTAssertEqual("\($0)", "--margin must be a percentage from 0 up to (not including) 100, such as 10%; got 100.0")
        }
        XCTAssertThrowsError(try Hysteresis(minSamples: 0).validate()) {
            XCTAssertEqual("\($0)", "--min-samples must be at least 1, such as 20; got 0")
        }
        XCTAssertThrowsError(try Hysteresis(maxSampleAge: .zero).validate())
        XCTAssertNoThrow(try Hysteresis().validate())
    }
}
