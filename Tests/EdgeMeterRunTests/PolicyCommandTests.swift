import XCTest
import EdgeMeterTestSupport

/// `edgemeter policy replay` and `edgemeter serve edge-app / cloud-db` as a user runs them.
final class PolicyCommandTests: BinaryTestCase {
    func testReplayPrintsTheFlapTable() throws {
        let r = try runCommand(bin, ["policy", "replay", "--trace", "spike"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| trace | policy | migrations | migrations/h | time in violation | wasted moves | interruption | decisions |"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| spike | edgemeter | 0 | 0 | 2 s | 0 | 0 ms |"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| spike | first-response | 1 | 6 | 0 s | 0 | 300 ms |"), r.stdout)
        XCTAssertFalse(r.stdout.contains("| square |"), "only the trace asked for")

        // The flags reach the policy: without margin, dwell and with a short window the square wave flaps.
        let off = try runCommand(bin, ["policy", "replay", "--trace", "square", "--margin", "0%", "--dwell", "0s", "--cooldown", "0s",
                                       "--min-samples", "1", "--window", "2s"])
        XCTAssertEqual(off.status, 0, off.stderr)
        XCTAssertTrue(off.stdout.contains("| square | edgemeter | 120 | 720 |"), off.stdout)
    }

    func testBadFlagsNameTheFlagAndExit2() throws {
        let cases: [([String], String)] = [
            (["--trace", "sine"], "--trace must be one of square, ramp, spike, all; got \"sine\""),
            (["--requirement", "20ms"], "--requirement: requirement \"20ms\" has no @PERCENTILE; write it like 20ms@p90"),
            (["--margin", "120%"], "--margin must be a percentage from 0 up to (not including) 100, such as 10%; got \"120%\""),
            (["--dwell", "-3s"], "--dwell must be a positive duration, got \"-3s\""),
            (["--cooldown", "soon"], "--cooldown must be a duration such as 0.2, 200ms or 1s, got \"soon\""),
            (["--min-samples", "0"], "--min-samples must be a whole number of at least 1, such as 20; got \"0\""),
            (["--window", "0s"], "--window must be longer than 0 s, such as 30s"),
        ]
        for (args, message) in cases {
            let r = try runCommand(bin, ["policy", "replay"] + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(args): nothing replayed")
        }
    }

    func testServeEdgeAppRefusesBadFlags() throws {
        let r = try runCommand(bin, ["serve", "edge-app", "--node", "node 1"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--node must be a name of letters, digits, _, - or ., such as node_1; got \"node 1\""), r.stderr)
        let c = try runCommand(bin, ["serve", "edge-app", "--cloud", "https://127.0.0.1:8001"])
        XCTAssertEqual(c.status, 2)
        XCTAssertTrue(c.stderr.contains("--cloud: https://127.0.0.1:8001: https is not supported"), c.stderr)
    }
}
