import XCTest
import EdgeMeterCore
@testable import EdgeMeterPolicy

/// The flap goals on the scripted traces (docs/migration.md), with the defaults of
/// `edgemeter policy replay`: 20 ms at p90, margin 10 %, dwell 3 s, cooldown 30 s, 20 samples, 30 s window.
final class ReplayTests: XCTestCase {
    let req = DelayRequirement(percentile: .p90, maxMilliseconds: 20)
    let s: Int64 = 1_000_000_000

    func replay(_ name: String, hysteresis: Hysteresis = Hysteresis()) throws -> (edgemeter: ReplayOutcome, firstResponse: ReplayOutcome) {
        let trace = try XCTUnwrap(DelayTrace.named(name, requirementMilliseconds: 20))
        let out = try Replay(requirement: req, hysteresis: hysteresis).run(trace, policies: [EdgeMeterPolicy(), FirstResponsePolicy()])
        XCTAssertEqual(out.map(\.policy), ["edgemeter", "first-response"])
        XCTAssertEqual(out.map { $0.decisionCounts.values.reduce(0, +) }, [599, 599], "one decision a second from 1 s to 599 s")
        return (out[0], out[1])
    }

    func testSquareWaveAtMostOneMoveWhileFirstResponseFlaps() throws {
        let (e, f) = try replay("square")
        XCTAssertLessThanOrEqual(e.moves.count, 1)
        // move-to-best (the default): while the windows fill, node_2 (low first) beats node_1 by the
        // margin for the 3 s dwell, and the alert moves there at 5 s; once both windows hold a high
        // half, neither beats the other by 10 % and it stays (stay_best_is_active or alert).
        XCTAssertEqual(e.moves, [ReplayMove(atNanoseconds: 5 * s, from: "node_1", to: "node_2")])
        XCTAssertEqual(e.decisionCounts[.migrate], nil, "the move is an alert's: no node meets 20 ms at p90")
        XCTAssertEqual(e.violationNanoseconds, 305 * s, "the active node is above 20 ms at p90 half of the time (plus node_1's first 5 s)")
        let alertOnly = try Replay(requirement: req, hysteresis: Hysteresis(whenNoneMeets: .alertOnly))
            .run(XCTUnwrap(DelayTrace.named("square", requirementMilliseconds: 20)), policies: [EdgeMeterPolicy()])[0]
        XCTAssertEqual(alertOnly.moves.count, 0)
        XCTAssertEqual(alertOnly.violationNanoseconds, 300 * s, "node_1 is above 20 ms at p90 half of the time, and alert-only stays on it")
        // The lab's controller follows every half-period: one move each 5 s, each undone 5 s later.
        XCTAssertEqual(f.moves.count, 120)
        XCTAssertEqual(f.migrationsPerHour, 720)
        XCTAssertEqual(f.wastedMoves, 119)
        XCTAssertEqual(f.interruptionMilliseconds, 60 * 250 + 60 * 300)
        XCTAssertEqual(f.violationNanoseconds, 1 * s, "it catches the first high phase after the 1 s decision")
    }

    func testSquareWaveFlapsWithoutHysteresis() throws {
        // The goal above can fail: with every rule off and a 2 s window, edgemeter's policy chases
        // the wave as the lab's does; with its rules on, the same window does not move.
        let trace = try XCTUnwrap(DelayTrace.named("square", requirementMilliseconds: 20))
        let off = try Replay(requirement: req, hysteresis: .none, window: .seconds(2)).run(trace, policies: [EdgeMeterPolicy()])
        XCTAssertEqual(off[0].moves.count, 120)
        let on = try Replay(requirement: req, hysteresis: Hysteresis(whenNoneMeets: .alertOnly), window: .seconds(2)).run(trace, policies: [EdgeMeterPolicy()])
        XCTAssertEqual(on[0].moves.count, 0)
        // With move-to-best a 2 s window (shorter than the wave's 5 s half) sees the nodes differ by
        // 20 %, more than the margin: the least-bad node changes every half-period and the policy
        // follows it at the cooldown's pace (30 s), not the wave's: 18 moves, none undone within the cooldown.
        let best = try Replay(requirement: req, hysteresis: Hysteresis(), window: .seconds(2)).run(trace, policies: [EdgeMeterPolicy()])[0]
        XCTAssertEqual(best.moves.count, 18)
        XCTAssertEqual(best.wastedMoves, 0)
        XCTAssertTrue(zip(best.moves.dropFirst(), best.moves).allSatisfy { $0.atNanoseconds - $1.atNanoseconds >= 30 * s })
    }

    func testSpikeNoMove() throws {
        let (e, f) = try replay("spike")
        XCTAssertEqual(e.moves, [])
        XCTAssertEqual(e.violationNanoseconds, 2 * s, "it rides out the 2 s spike")
        XCTAssertEqual(f.moves, [ReplayMove(atNanoseconds: 300 * s, from: "node_1", to: "node_2")])
        XCTAssertEqual(f.violationNanoseconds, 0)
    }

    func testSpikeMovesWithAShortWindowAndNoDwell() throws {
        // The spike goal can fail: a 5 s window lets the spike raise p90, and without dwell it moves.
        let trace = try XCTUnwrap(DelayTrace.named("spike", requirementMilliseconds: 20))
        let out = try Replay(requirement: req, hysteresis: Hysteresis(dwell: .zero), window: .seconds(5)).run(trace, policies: [EdgeMeterPolicy()])
        XCTAssertEqual(out[0].moves.count, 1)
    }

    func testRampNoMoreViolationThanFirstResponse() throws {
        let (e, f) = try replay("ramp")
        XCTAssertLessThanOrEqual(e.violationNanoseconds, f.violationNanoseconds)
        XCTAssertEqual(e.moves, [ReplayMove(atNanoseconds: 156 * s, from: "node_1", to: "node_2")])
        XCTAssertEqual(e.violationNanoseconds, 0, "it leaves node_1 while node_1's p90 is still between 18 and 20 ms")
        XCTAssertEqual(f.moves.count, 1)
        XCTAssertGreaterThan(f.violationNanoseconds, 0)
        XCTAssertEqual(e.decisionCounts[.stayHysteresis], 3, "the 3 s dwell")
    }

    func testRampWithoutTheMarginBandViolatesLonger() throws {
        // The ramp goal can fail: with no margin the policy waits for the violation itself, then the dwell.
        let (e, f) = try replay("ramp", hysteresis: Hysteresis(marginPercent: 0))
        XCTAssertGreaterThan(e.violationNanoseconds, f.violationNanoseconds)
    }

    func testTraceLevels() throws {
        let sq = DelayLevel.square(low: 18, high: 22, periodSeconds: 10, highFirst: true)
        XCTAssertEqual([0, 4.9, 5, 9.9, 10].map { sq.milliseconds(atSeconds: $0) }, [22, 22, 18, 18, 22])
        let ramp = DelayLevel.ramp(from: 10, to: 40, startSeconds: 0, endSeconds: 600)
        XCTAssertEqual([0, 300, 600, 700].map { ramp.milliseconds(atSeconds: $0) }, [10, 25, 40, 40])
        let spike = DelayLevel.spike(base: 12, peak: 60, atSeconds: 300, lengthSeconds: 2)
        XCTAssertEqual([299.9, 300, 301.9, 302].map { spike.milliseconds(atSeconds: $0) }, [12, 60, 60, 12])
        let trace = try XCTUnwrap(DelayTrace.named("ramp", requirementMilliseconds: 20))
        XCTAssertEqual(trace.noiseMilliseconds, 1)
        XCTAssertEqual(trace.trueMilliseconds(trace.nodes[1], atSeconds: 0, percentile: .p90), 15.8, accuracy: 1e-12)
        XCTAssertNil(DelayTrace.named("sine", requirementMilliseconds: 20))
    }

    func testWastedMoves() {
        let m = { (t: Int64, a: String, b: String) in ReplayMove(atNanoseconds: t * self.s, from: a, to: b) }
        XCTAssertEqual(Replay.wasted([m(0, "a", "b"), m(29, "b", "a")], cooldownNanoseconds: 30 * s), 1)
        XCTAssertEqual(Replay.wasted([m(0, "a", "b"), m(30, "b", "a")], cooldownNanoseconds: 30 * s), 0)
        XCTAssertEqual(Replay.wasted([m(0, "a", "b"), m(1, "b", "c")], cooldownNanoseconds: 30 * s), 0)
    }

    func testSeededNoiseIsDeterministicAndUniform() {
        var a = SeededRandom(seed: 7), b = SeededRandom(seed: 7)
        let xs = (0..<10_000).map { _ in a.symmetricUnit() }
        XCTAssertEqual(xs, (0..<10_000).map { _ in b.symmetricUnit() })
        XCTAssertTrue(xs.allSatisfy { $0 >= -1 && $0 < 1 })
        XCTAssertEqual(xs.reduce(0, +) / 10_000, 0, accuracy: 0.03)
    }

    func testMarkdownTable() throws {
        let (e, f) = try replay("spike")
        let md = Replay.markdown([e, f])
        let lines = md.split(separator: "\n")
        XCTAssertEqual(lines[0], "| trace | policy | migrations | migrations/h | time in violation | wasted moves | interruption | decisions |")
        XCTAssertEqual(lines[2], "| spike | edgemeter | 0 | 0 | 2 s | 0 | 0 ms | stay_requirement_met 598, stay_insufficient_data 1 |")
        XCTAssertEqual(lines[3], "| spike | first-response | 1 | 6 | 0 s | 0 | 300 ms | stay_requirement_met 598, migrate 1 |")
    }
}
