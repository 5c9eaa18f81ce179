import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// Runs a scenario's measurement once per round of `--rounds N --every D` (`RoundsConfig`), each
/// round's samples labelled `round=k`, on the monotonic clock through `ScheduleCursor` (no drift).
/// Without rounds the body runs once with the context unchanged. A stop request (Ctrl-C, SIGTERM,
/// an outer deadline) ends the wait between rounds at once; a round that throws ends the scenario.
public enum ScenarioRounds {
    /// The context of round `sequence`: the same as `ctx`, its sink labelling every sample.
    public static func context(_ ctx: ScenarioContext, sequence: Int) -> ScenarioContext {
        ScenarioContext(runID: ctx.runID, sink: RoundSink(ctx.sink, sequence: sequence), stop: ctx.stop, directory: ctx.directory,
                        suiteDirectory: ctx.suiteDirectory, progress: ctx.progress, addSection: ctx.addSection)
    }

    /// Blocking form (ping, tcping: their sockets live on the calling thread).
    public static func run(_ rounds: RoundsConfig?, ctx: ScenarioContext, clock: any MeasurementClock = SystemClock(),
                           body: (ScenarioContext) throws -> Void) throws {
        guard let rounds else { return try body(ctx) }
        var cursor = ScheduleCursor(rounds.schedule, start: clock.monotonicNanoseconds())
        while true {
            switch cursor.next(now: clock.monotonicNanoseconds(), stopped: ctx.stop.isStopped) {
            case .end:
                return
            case .run(let r):
                ctx.progress("round \(r.sequence)/\(rounds.rounds)")
                try body(context(ctx, sequence: r.sequence))
            case .wait(let until, _):
                _ = clock.sleep(untilNanoseconds: until, stop: { ctx.stop.isStopped })
            }
        }
    }

    /// Async form (http, calc).
    public static func run(_ rounds: RoundsConfig?, ctx: ScenarioContext, clock: any MeasurementClock = SystemClock(),
                           body: (ScenarioContext) async throws -> Void) async throws {
        guard let rounds else { return try await body(ctx) }
        var cursor = ScheduleCursor(rounds.schedule, start: clock.monotonicNanoseconds())
        let stop = ctx.stop
        while true {
            switch cursor.next(now: clock.monotonicNanoseconds(), stopped: stop.isStopped) {
            case .end:
                return
            case .run(let r):
                ctx.progress("round \(r.sequence)/\(rounds.rounds)")
                try await body(context(ctx, sequence: r.sequence))
            case .wait(let until, _):
                _ = await clock.sleep(untilNanoseconds: until, stop: { stop.isStopped })
            }
        }
    }
}
