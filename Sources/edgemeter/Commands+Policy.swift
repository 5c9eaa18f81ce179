import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterPolicy

/// `edgemeter policy ...`: the service migration policy (EdgeMeterPolicy).
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.group("policy", "The service migration policy: replay scripted delay traces through it.",
                                                           [PolicyReplayCommand.self])
}

/// `edgemeter policy replay`: the flap table (docs/migration.md).
struct PolicyReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay scripted delay traces through edgemeter's policy and the lab's first-response policy.",
        discussion: """
        Each trace gives three nodes 10 samples/s for 10 minutes on a virtual clock (no network, no \
        waiting): square (two nodes swapping between 1.1 and 0.9 times the requirement every 5 s), \
        ramp (the active node rising from 0.5 to 2 times the requirement) and spike (one 2 s spike to \
        3 times the requirement). Both policies decide once a second from the same delay windows. \
        The table shows migrations, migrations per hour, time in violation (the active node's true \
        delay at the percentile above the requirement), wasted moves (moved back within the \
        cooldown), the summed expected interruption and the decisions by kind. docs/migration.md \
        defines the traces and the rules.

        Examples:
          edgemeter policy replay
          edgemeter policy replay --trace square --margin 0% --dwell 0s
          edgemeter policy replay --requirement 50ms@p99 --window 60s
          edgemeter policy replay --when-none-meets alert-only
        """
    )

    @Option(help: ArgumentHelp("square, ramp, spike or all.", valueName: "NAME"))
    var trace: String = "all"

    @Option(help: ArgumentHelp("The delay requirement: DELAY@PERCENTILE (p50, p90, p99).", valueName: "REQ"))
    var requirement: String = "20ms@p90"

    @Option(parsing: .unconditional, help: ArgumentHelp("A target must offer the requirement less this margin; the active node is at risk above it.", valueName: "PERCENT"))
    var margin: String = "10%"

    @Option(parsing: .unconditional, help: ArgumentHelp("How long the active node must stay above the margin level before a move.", valueName: "DURATION"))
    var dwell: String = "3s"

    @Option(parsing: .unconditional, help: ArgumentHelp("No move within this time after the previous one.", valueName: "DURATION"))
    var cooldown: String = "30s"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Received samples a node's window needs to be judged.", valueName: "N"))
    var minSamples: String = "20"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Oldest a node's newest sample may be to be judged.", valueName: "DURATION"))
    var maxAge: String = "2s"

    @Option(parsing: .unconditional, help: ArgumentHelp("Length of each node's delay window.", valueName: "DURATION"))
    var window: String = "30s"

    @Option(help: ArgumentHelp("No node meets it: move-to-best (least-bad node) or alert-only.", valueName: "ACTION"))
    var whenNoneMeets: String = "move-to-best"

    @Option(help: ArgumentHelp("Seed of the traces' noise.", valueName: "N"))
    var seed: UInt64 = 1

    @Flag(help: "Also print every decision other than stay_requirement_met (time, policy, kind, reason).")
    var verbose = false

    struct Settings {
        var traces: [String]
        var requirement: DelayRequirement
        var hysteresis: Hysteresis
        var window: Duration
    }

    func settings() throws -> Settings {
        let traces: [String]
        if trace == "all" { traces = DelayTrace.names } else if DelayTrace.names.contains(trace) { traces = [trace] } else {
            throw ValidationError("--trace must be one of square, ramp, spike, all; got \"\(trace)\"")
        }
        let req: DelayRequirement
        do { req = try DelayRequirement(parsing: requirement) } catch { throw ValidationError("--requirement: \(error)") }
        var m = margin.trimmingCharacters(in: .whitespaces)
        if m.hasSuffix("%") { m.removeLast() }
        guard let marginValue = Double(m), marginValue.isFinite, marginValue >= 0, marginValue < 100 else {
            throw ValidationError("--margin must be a percentage from 0 up to (not including) 100, such as 10%; got \"\(margin)\"")
        }
        guard let n = Int(minSamples), n >= 1 else {
            throw ValidationError("--min-samples must be a whole number of at least 1, such as 20; got \"\(minSamples)\"")
        }
        let age = try durationArgument(maxAge, flag: "--max-age")
        guard age > .zero else { throw ValidationError("--max-age must be longer than 0 s, such as 2s") }
        let w = try durationArgument(window, flag: "--window")
        guard w > .zero else { throw ValidationError("--window must be longer than 0 s, such as 30s") }
        let h = Hysteresis(marginPercent: marginValue, dwell: try durationArgument(dwell, flag: "--dwell"),
                           cooldown: try durationArgument(cooldown, flag: "--cooldown"), minSamples: n, maxSampleAge: age,
                           whenNoneMeets: try noneMeetsArgument(whenNoneMeets))
        do { try h.validate() } catch { throw ValidationError("\(error)") }
        return Settings(traces: traces, requirement: req, hysteresis: h, window: w)
    }

    func validate() throws { _ = try settings() }

    func run() async throws {
        let s = try settings()
        let replay = Replay(requirement: s.requirement, hysteresis: s.hysteresis, window: s.window)
        var outcomes: [ReplayOutcome] = []
        var traces: [DelayTrace] = []
        for name in s.traces {
            let t = DelayTrace.named(name, requirementMilliseconds: s.requirement.maxMilliseconds, seed: seed)!
            traces.append(t)
            outcomes += try replay.run(t, policies: [EdgeMeterPolicy(), FirstResponsePolicy()])
        }
        let h = s.hysteresis
        print("Requirement \(s.requirement); margin \(formatMilliseconds(h.marginPercent)) %, dwell \(formatMilliseconds(Double(h.dwellNanoseconds) / 1e9)) s, "
              + "cooldown \(formatMilliseconds(Double(h.cooldownNanoseconds) / 1e9)) s, min samples \(h.minSamples), "
              + "max age \(formatMilliseconds(Double(h.maxSampleAgeNanoseconds) / 1e9)) s, when none meets \(h.whenNoneMeets.rawValue), window \(formatMilliseconds(s.window.seconds)) s, seed \(seed).")
        print("")
        for t in traces { print("- \(t.name): \(t.summary) (Z = \(formatMilliseconds(s.requirement.maxMilliseconds)) ms, noise ±\(formatMilliseconds(t.noiseMilliseconds)) ms)") }
        print("")
        print(Replay.markdown(outcomes), terminator: "")
        if verbose {
            for o in outcomes {
                print("")
                print("\(o.trace), \(o.policy):")
                for d in o.notableDecisions {
                    print("  \(formatMilliseconds(Double(d.nowNanoseconds) / 1e9)) s \(d.kind.rawValue): \(d.reason)")
                }
            }
        }
    }
}

/// `--when-none-meets ACTION` (replay, controller, migrate-demo).
func noneMeetsArgument(_ text: String, flag: String = "--when-none-meets") throws -> NoneMeetsAction {
    do { return try NoneMeetsAction(parsing: text, flag: flag) } catch { throw ValidationError("\(error)") }
}
