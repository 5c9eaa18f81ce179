import XCTest
import EdgeMeterCore
import EdgeMeterRun

/// `--rounds N --every D` on a manual clock: the body runs N times, round k due at start + (k-1)·D
/// (a late round does not move the later ones), every sample labelled `round=k`, a stop request
/// ends the wait at once, no rounds means one unlabelled run.
final class ScenarioRoundsTests: XCTestCase {
    func context(_ sink: MemorySink, stop: StopFlag = StopFlag()) -> ScenarioContext {
        ScenarioContext(runID: "r", sink: sink, stop: stop, directory: URL(fileURLWithPath: NSTemporaryDirectory()), suiteDirectory: nil,
                        progress: { _ in }, addSection: { _ in })
    }

    func sample(_ clock: ManualClock) -> Sample {
        Sample(runID: "r", scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", value: 1, unit: "ms",
               timestamp: clock.wallNow(), status: .ok)
    }

    func testRoundsRunOnTheirDueTimesAndLabelTheirSamples() throws {
        let clock = ManualClock(start: 1_000_000_000)
        let sink = MemorySink()
        var starts: [Int64] = []
        try ScenarioRounds.run(RoundsConfig(rounds: 4, every: .seconds(30)), ctx: context(sink), clock: clock) { ctx in
            starts.append(clock.monotonicNanoseconds())
            ctx.sink.record(sample(clock))
            ctx.sink.record(sample(clock))
            // Round 2 overruns its slot by 5 s: round 3 starts at once, round 4 keeps its due time.
            clock.advance(by: starts.count == 2 ? .seconds(35) : .seconds(1))
        }
        XCTAssertEqual(starts, [1, 31, 66, 91].map { Int64($0) * 1_000_000_000 })
        XCTAssertEqual(sink.samples.map { $0.labels["round"] }, ["1", "1", "2", "2", "3", "3", "4", "4"])
    }

    func testAStopRequestEndsTheWaitBetweenRounds() async throws {
        let clock = ManualClock()
        let stop = StopFlag()
        let sink = MemorySink()
        var runs = 0
        try await ScenarioRounds.run(RoundsConfig(rounds: 10, every: .seconds(60)), ctx: context(sink, stop: stop), clock: clock) { ctx in
            runs += 1
            if runs == 2 { stop.stop(reason: "SIGINT") }
        }
        XCTAssertEqual(runs, 2)
    }

    func testWithoutRoundsTheBodyRunsOnceUnlabelled() throws {
        let clock = ManualClock()
        let sink = MemorySink()
        var runs = 0
        try ScenarioRounds.run(nil, ctx: context(sink), clock: clock) { ctx in
            runs += 1
            ctx.sink.record(sample(clock))
        }
        XCTAssertEqual(runs, 1)
        XCTAssertNil(sink.samples[0].labels["round"])
        XCTAssertEqual(clock.sleeps, [])
    }

    func testRoundsThatCannotEndByThemselvesAreRefused() {
        XCTAssertThrowsError(try PingScenario.declaration.validate(commandLine: ["targets": ["127.0.0.1"], "rounds": ["3"]], name: "ping")) { e in
            XCTAssertEqual("\(e)", "--rounds needs -c/--count or -w/--deadline: each round must end by itself before the next one")
        }
        XCTAssertNoThrow(try PingScenario.declaration.validate(commandLine: ["targets": ["127.0.0.1"], "rounds": ["3"], "deadline": ["2s"]], name: "ping"))
        let http = try? HTTPScenario.declaration.validate(commandLine: ["url": ["http://127.0.0.1:1/"], "rounds": ["3"]], name: "http")
        XCTAssertEqual(http.flatMap { RoundsConfig($0) }, RoundsConfig(rounds: 3, every: .seconds(30)), "http's count defaults to 5; every to 30s")
    }
}
