import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterRun

/// Parses durations for flags: a bare number is seconds (as in ping), or 250ms / 1.5s / 200us.
func durationArgument(_ text: String, flag: String) throws -> Duration {
    if text.trimmingCharacters(in: .whitespaces).hasPrefix("-") {
        throw ValidationError("\(flag) must be a positive duration, got \"\(text)\": a negative time has no meaning here; give e.g. 0.2, 200ms or 1s")
    }
    guard let d = parseDuration(text) else {
        throw ValidationError("\(flag) must be a duration such as 0.2, 200ms or 1s, got \"\(text)\"")
    }
    return d
}

private let ping = PingScenario.declaration
private let tcping = TCPingScenario.declaration

/// The schedule and address options ping and tcping share (one declaration: `ProbeSchedule`).
struct ScheduleOptions: ParsableArguments {
    @OptionGroup var timing: TimingOptions<PingCommand>
    @Option(ping, "deadline", parsing: .unconditional) var deadline: String?

    @Flag(name: .customShort("4"), help: "Resolve names to IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Resolve names to IPv6 only.")
    var ipv6 = false

    @Flag(name: .shortAndLong, help: "Quiet: print only the closing statistics.")
    var quiet = false

    func validate() throws {
        if ipv4 && ipv6 { throw ValidationError("-4 and -6 exclude each other: give one") }
    }

    func parameters(targets: [String]) -> RawParameters {
        var r = timing.add(to: RawParameters()).setting(["deadline": deadline, "family": ipv4 ? "ipv4" : ipv6 ? "ipv6" : nil])
        r.list("targets", targets)
        return r
    }
}

/// Runs ping or tcping: `round` once per round of `rounds` (once without), lines as they come
/// unless quiet, and each target's totals merged over the rounds. A run in which no target could be
/// resolved (`NoTarget`) is a usage error (exit 2) that names each failed name.
func measureTargets<NoTarget: Error>(_ name: String, run: RunOptions, quiet: Bool, rounds: RoundsConfig?, noTarget: NoTarget.Type,
                                     round: (ScenarioContext, ((String) -> Void)?) throws -> [ProbeTotals]) async throws
    -> (result: (summaries: [Summary], complete: Bool, directory: RunDirectory), unresolved: FailedSampleWatch, totals: [ProbeTotals]) {
    let printLines = !quiet && !run.json
    let unresolved = FailedSampleWatch(phase: "resolve")
    do {
        var totals: [ProbeTotals] = []
        let result = try await runMeasured(name: name, options: run, showProgress: !printLines) { ctx, _ in
            totals = []
            try ScenarioRounds.run(rounds, ctx: unresolved.watching(ctx)) { ctx in
                totals = ProbeTotals.merging(totals, try round(ctx, printLines ? { print($0); fflush(nil) } : nil))
            }
        }
        return (result, unresolved, totals)
    } catch let e as NoTarget {
        if !printLines { for (_, reason) in unresolved.failures { note("edgemeter: \(reason)") } }
        throw usageError("\(e)")
    }
}

struct PingCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(ping,
        abstract: "ICMP echo round trips to one or more targets (IPv4 and IPv6), fping-style.",
        discussion: """
        Prints one line per reply and ping's closing statistics plus percentiles, and writes a run \
        directory. Tries an unprivileged datagram ICMP socket, then a raw socket; uses the kernel's \
        receive stamps (SO_TIMESTAMPNS) when available. Each sample records which it used.

        Exit status: 0 when every target answered at least once, 1 when a target never answered, \
        2 for usage or setup errors and for a name that cannot be resolved (as fping; the other \
        targets are still pinged), 130 when stopped by Ctrl-C or SIGTERM (what was measured is kept).

        Examples:
          edgemeter ping -c 10 127.0.0.1 ::1
          edgemeter ping -c 1000 -i 1ms -q 127.0.0.1
          edgemeter ping -w 5s --socket raw --json 127.0.0.1
          edgemeter ping -c 20 -i 10ms --rounds 10 --every 30s 127.0.0.1
        """
    )

    @Argument(help: ping.help("targets"))
    var targets: [String]

    @OptionGroup var schedule: ScheduleOptions

    @Option(ping, "payload", parsing: .unconditional) var size: String?
    @Option(ping, "socket") var socket: String?
    @Option(ping, "spin") var spin: String?

    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { ping }

    var parameters: RawParameters { schedule.parameters(targets: targets).setting(["payload": size, "socket": socket, "spin": spin]) }

    static func resolve(_ s: ValidatedScenario) -> PingConfig { PingConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        let (result, unresolved, totals) = try await measureTargets("ping", run: run, quiet: schedule.quiet, rounds: c.schedule.rounds,
                                                                    noTarget: ICMPProbeError.self) { ctx, onLine in
            try PingScenario.run(scenario: "ping", targets: c.schedule.targets, family: c.schedule.family, options: c.options, ctx: ctx, onLine: onLine)
        }
        if !run.json {
            for t in totals {
                let elapsed = (t.lastSendAt?.timeIntervalSince(t.firstSendAt ?? Date()) ?? 0) * 1000
                let loss = t.transmitted == 0 ? 0 : Double(t.transmitted - t.received) / Double(t.transmitted) * 100
                print("\n--- \(t.name) ping statistics ---")
                print("\(t.transmitted) packets transmitted, \(t.received) received,\(t.errors > 0 ? " +\(t.errors) errors," : "") \(String(format: "%g", (loss * 1000).rounded() / 1000))% packet loss, time \(Int(elapsed))ms")
                if let s = result.summaries.first(where: { $0.key.target == t.name && $0.key.phase == "echo" }), s.received > 0 {
                    print("rtt min/avg/max/mdev = \(f3(s.min))/\(f3(s.mean))/\(f3(s.max))/\(f3(s.mdev)) ms")
                    var line = "rtt p50/p90/p99/p99.9 = \(f3(s.p50))/\(f3(s.p90))/\(f3(s.p99))/\(f3(s.p999)) ms"
                    if let ci = s.medianCI95 { line += ", median 95% CI [\(f3(ci.lowerBound)), \(f3(ci.upperBound))] ms" }
                    print(line)
                }
            }
        }
        try conclude(result, unresolved: unresolved, block: "ping statistics", printBlocks: !run.json)
    }
}

func f3(_ v: Double?) -> String { Format.fixed(v, 3) }

struct TCPingCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(tcping,
        abstract: "TCP connect time (SYN sent until connect completes), optionally time to first byte.",
        discussion: """
        Refused (RST), timed out (no SYN-ACK) and unreachable are told apart in each sample's status. \
        With --payload the probe sends those bytes once connected and times the first reply byte \
        (phase first_byte); --expect checks the reply contains a string.

        Exit status: 0 when every target connected at least once, 1 when one never did (every attempt \
        refused or timed out, as `nc -z` fails), 2 for usage errors and unresolvable names, 130 when \
        stopped by Ctrl-C or SIGTERM.

        Examples:
          edgemeter tcping -c 10 127.0.0.1:22
          edgemeter tcping -c 20 -i 100ms '[::1]:8080' 127.0.0.1:8080
          edgemeter tcping -c 5 --payload $'GET /\\r\\n\\r\\n' --expect HTTP 127.0.0.1:80
        """
    )

    @Argument(help: tcping.help("targets"))
    var targets: [String]

    @OptionGroup var schedule: ScheduleOptions

    @Option(tcping, "payload") var payload: String?
    @Option(tcping, "expect") var expect: String?
    @Flag(tcping, "listener") var listener = false

    @OptionGroup var run: RunOptions

    static var declaration: KindDeclaration { tcping }

    var parameters: RawParameters {
        var r = schedule.parameters(targets: targets)
        r.set(["payload": payload, "expect": expect])
        r.flag("listener", listener)
        return r
    }

    static func resolve(_ s: ValidatedScenario) -> TCPingConfig { TCPingConfig(s) }

    func run() async throws {
        guard let c = try configToRun(printOnly: run.printConfig) else { return }
        let (result, unresolved, totals) = try await measureTargets("tcping", run: run, quiet: schedule.quiet, rounds: c.schedule.rounds,
                                                                    noTarget: ResolveError.self) { ctx, onLine in
            try TCPingScenario.run(c, scenario: "tcping", ctx: ctx, onLine: onLine)
        }
        if !run.json {
            for t in totals {
                let loss = t.attempts == 0 ? 0 : Double(t.attempts - t.connected) / Double(t.attempts) * 100
                print("\n--- \(t.name) tcping statistics ---")
                print("\(t.attempts) attempts, \(t.connected) connected, \(t.refused) refused, \(t.timeouts) timed out, \(t.unreachable) unreachable, \(String(format: "%g", (loss * 1000).rounded() / 1000))% failed")
                for phase in ["connect", "first_byte"] {
                    if let s = result.summaries.first(where: { $0.key.target == t.name && $0.key.phase == phase }), s.received > 0 {
                        print("\(phase) min/avg/max/mdev = \(f3(s.min))/\(f3(s.mean))/\(f3(s.max))/\(f3(s.mdev)) ms, p50/p90/p99 = \(f3(s.p50))/\(f3(s.p90))/\(f3(s.p99)) ms")
                    }
                }
            }
        }
        try conclude(result, unresolved: unresolved, block: "tcping statistics", printBlocks: !run.json)
    }
}
