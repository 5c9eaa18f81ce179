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

/// The schedule and address options ping and tcping share, with ping's letters.
struct ScheduleOptions: ParsableArguments {
    // `.unconditional`: `-c -3` reaches validation ("must be a positive integer, got -3") instead of
    // being read as a flag named -3.
    @Option(name: .shortAndLong, parsing: .unconditional, help: "Requests (ping) or attempts (tcping) per target (default: until Ctrl-C or the deadline).")
    var count: Int?

    @Option(name: .shortAndLong, parsing: .unconditional, help: ArgumentHelp("Interval between requests to each target: seconds (0.2) or 200ms.", valueName: "DURATION"))
    var interval: String = "1"

    @Option(name: [.customShort("W"), .customLong("timeout")], parsing: .unconditional, help: ArgumentHelp("How long to wait for each reply (tcping: for the connect, then for the first byte).", valueName: "DURATION"))
    var timeout: String = "1"

    @Option(name: [.customShort("w"), .customLong("deadline")], parsing: .unconditional, help: ArgumentHelp("Stop after this long whatever the count (as ping -w).", valueName: "DURATION"))
    var deadline: String?

    @Flag(name: .customShort("4"), help: "Resolve names to IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Resolve names to IPv6 only.")
    var ipv6 = false

    @Flag(name: .shortAndLong, help: "Quiet: print only the closing statistics.")
    var quiet = false

    func validate() throws {
        if let c = count, c <= 0 { throw ValidationError("-c/--count must be a positive integer, got \(c)") }
        if ipv4 && ipv6 { throw ValidationError("-4 and -6 exclude each other: give one") }
        if try intervalDuration().nanoseconds < 1_000_000 { throw ValidationError("-i/--interval must be at least 1ms, got \(interval)") }
        if try timeoutDuration().nanoseconds <= 0 { throw ValidationError("-W/--timeout must be more than 0, got \(timeout)") }
        if let d = try deadlineDuration(), d.nanoseconds <= 0 { throw ValidationError("-w/--deadline must be more than 0, got \(deadline ?? "")") }
    }

    func intervalDuration() throws -> Duration { try durationArgument(interval, flag: "-i/--interval") }
    func timeoutDuration() throws -> Duration { try durationArgument(timeout, flag: "-W/--timeout") }
    func deadlineDuration() throws -> Duration? { try deadline.map { try durationArgument($0, flag: "-w/--deadline") } }
    var family: AddressFamilyPreference { ipv4 ? .ipv4 : ipv6 ? .ipv6 : .any }
}

struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
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
        """
    )

    @Argument(help: "Hosts or addresses to ping.")
    var targets: [String]

    @OptionGroup var schedule: ScheduleOptions

    @Option(name: .customShort("s"), parsing: .unconditional, help: "ICMP payload bytes (as ping -s).")
    var size: Int = 56

    @Option(name: .long, help: "ICMP socket kind: auto (datagram, then raw), datagram, raw.")
    var socket: String = "auto"

    @Option(name: .long, help: ArgumentHelp(
        "off (default): sleep until each send, as a client that idles between echoes. on: busy-wait through the last "
        + "1 ms before each send, so the CPU is warm when the echo leaves; on loopback that lowers RTTs by several µs, "
        + "and at -i 1ms or less it keeps a core busy for the whole run. Each sample is labelled spin=on|off.",
        valueName: "on|off"))
    var spin: String = "off"

    @OptionGroup var run: RunOptions

    func validate() throws {
        if size < 0 || size > 65_000 { throw ValidationError("-s must be 0-65000 bytes, got \(size)") }
        guard ICMPSocketMode(rawValue: socket) != nil else { throw ValidationError("--socket must be auto, datagram or raw, got \"\(socket)\"") }
        guard ICMPSpinMode(rawValue: spin) != nil else { throw ValidationError("--spin must be on or off, got \"\(spin)\"") }
    }

    func run() async throws {
        let options = ICMPOptions(count: schedule.count, interval: try schedule.intervalDuration(),
                                  timeout: try schedule.timeoutDuration(), payloadBytes: size,
                                  deadline: try schedule.deadlineDuration(),
                                  socketMode: ICMPSocketMode(rawValue: socket) ?? .auto,
                                  spin: ICMPSpinMode(rawValue: spin) ?? .off)
        let family = schedule.family
        var totals: [PingTargetTotals] = []
        let printLines = !schedule.quiet && !run.json
        let result: (summaries: [Summary], complete: Bool, directory: RunDirectory)
        let unresolved = FailedSampleWatch(phase: "resolve")
        do {
            result = try await runMeasured(name: "ping", options: run, showProgress: !printLines) { ctx, _ in
                totals = try PingScenario.run(scenario: "ping", targets: targets, family: family, options: options,
                                              ctx: unresolved.watching(ctx), onLine: printLines ? { print($0); fflush(nil) } : nil)
            }
        } catch let e as ICMPProbeError {
            if !printLines { for (_, reason) in unresolved.failures { note("edgemeter: \(reason)") } }
            note("edgemeter: \(e)")
            throw ExitCode(2)
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

struct TCPingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcping",
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

    @Argument(help: "Targets as HOST:PORT ([::1]:80 for IPv6).")
    var targets: [String]

    @OptionGroup var schedule: ScheduleOptions

    @Option(name: .long, help: "Bytes to send once connected (enables the first_byte phase).")
    var payload: String?

    @Option(name: .long, help: "A string the reply must contain (needs --payload).")
    var expect: String?

    @OptionGroup var run: RunOptions

    func validate() throws {
        if expect != nil && payload == nil { throw ValidationError("--expect needs --payload: give the bytes to send first") }
        for t in targets {
            do { _ = try Resolver.splitHostPort(t) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() async throws {
        let options = TCPConnectOptions(count: schedule.count, interval: try schedule.intervalDuration(),
                                        timeout: try schedule.timeoutDuration(), deadline: try schedule.deadlineDuration(),
                                        payload: payload.map { Array($0.utf8) }, expect: expect.map { Array($0.utf8) })
        let family = schedule.family
        var totals: [TCPingTargetTotals] = []
        let printLines = !schedule.quiet && !run.json
        let unresolved = FailedSampleWatch(phase: "resolve")
        let result: (summaries: [Summary], complete: Bool, directory: RunDirectory)
        do {
            result = try await runMeasured(name: "tcping", options: run, showProgress: !printLines) { ctx, _ in
                totals = try TCPingScenario.run(scenario: "tcping", targets: targets, family: family, options: options,
                                                ctx: unresolved.watching(ctx), onLine: printLines ? { print($0); fflush(nil) } : nil)
            }
        } catch let e as ResolveError {
            if !printLines { for (_, reason) in unresolved.failures { note("edgemeter: \(reason)") } }
            note("edgemeter: \(e)")
            throw ExitCode(2)
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
