import XCTest
import EdgeMeterCore
@testable import EdgeMeterPolicy

/// The lab's controller: the node whose newest answer was fastest wins, with no statistics and no hysteresis.
final class FirstResponsePolicyTests: XCTestCase {
    let req = DelayRequirement(percentile: .p90, maxMilliseconds: 20)

    func input(_ t: Int64, active: String, _ nodes: [NodeObservation]) -> PolicyInput {
        PolicyInput(nowNanoseconds: t, requirement: req, activeNode: active, nodes: nodes, moveCostMilliseconds: ["node_3": 400])
    }

    func testItMovesToTheNodeThatAnsweredFirstWhateverItsDistribution() {
        var p = FirstResponsePolicy()
        // node_3's newest answer was 5 ms but its p90 is 80 ms: the lab's controller moves there anyway.
        let d = p.decide(input(0, active: "node_1", [obs("node_1", p90: 30, newest: 30.03), obs("node_2", p90: 10, newest: 9.38),
                                                      obs("node_3", p90: 80, newest: 5)]))
        XCTAssertEqual(d.kind, .migrate)
        XCTAssertEqual(d.target, "node_3")
        XCTAssertEqual(d.reason, "migrate to node_3: active newest answer 30.03 ms > 20 ms required, node_3 answered first in 5 ms, expected interruption 400 ms")
    }

    func testTheLabsMessageWhenTheActiveNodeAnsweredFirst() {
        var p = FirstResponsePolicy()
        let d = p.decide(input(0, active: "node_1", [obs("node_1", p90: 30), obs("node_2", p90: 40), obs("node_3", p90: 80)]))
        XCTAssertEqual(d.kind, .stayBestIsActive)
        XCTAssertEqual(d.reason, "can't migrate service! Best node is the one active node_1")
    }

    func testStaysWhileTheNewestAnswerMeetsTheRequirement() {
        var p = FirstResponsePolicy()
        // Its window's p90 is 50 ms, but only the newest answer counts.
        let d = p.decide(input(0, active: "node_1", [obs("node_1", p90: 50, newest: 20), obs("node_2", p90: 5)]))
        XCTAssertEqual(d.kind, .stayRequirementMet)
        XCTAssertEqual(d.reason, "stay: active node_1 answered in 20 ms ≤ 20 ms required")
    }

    func testNoHysteresisItMovesBackAtOnce() {
        var p = FirstResponsePolicy()
        let one = p.decide(input(0, active: "node_1", [obs("node_1", p90: 22), obs("node_2", p90: 18)]))
        XCTAssertEqual(one.target, "node_2")
        let two = p.decide(input(1, active: "node_2", [obs("node_1", p90: 18), obs("node_2", p90: 22)]))
        XCTAssertEqual(two.kind, .migrate, "1 ns later, no dwell, no cooldown")
        XCTAssertEqual(two.target, "node_1")
        XCTAssertEqual(p.state.lastMoveNanoseconds, 1)
    }

    func testNoAnswersAtAll() {
        var p = FirstResponsePolicy()
        let d = p.decide(input(0, active: "node_1", [obs("node_1", p90: nil, received: 0), obs("node_2", p90: nil, received: 0)]))
        XCTAssertEqual(d.kind, .stayInsufficientData)
        XCTAssertEqual(d.reason, "stay: no node answered (active node_1 has no answer in the window)")
    }
}
