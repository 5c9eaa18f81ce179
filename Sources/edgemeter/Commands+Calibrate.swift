import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterLab
import EdgeMeterProbes
import EdgeMeterSystem

/// `edgemeter calibrate`: the impairment certificate (predicted vs measured per case and probe).
struct CalibrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Certify the lab's link impairment: predicted vs measured delay, jitter, loss.",
        discussion: """
        Builds a two-node topology (client, server) joined by two networks: \
        `link` (10.213.0.0/24), where the client's interface goes through the \
        impairment forwarder, set per case at runtime (each direction), and \
        `direct` (10.213.1.0/24), no forwarder, measured interleaved with the \
        delay-0 case. From inside the client it measures ICMP RTT, TCP connect, \
        HTTP on a new connection and on a keep-alive connection. Cases: delay 0, \
        1, 5, 20, 100 ms; jitter 5 ms uniform and normal (1000 samples); loss \
        1 % and 5 %. Predictions: 2d for ICMP, connect and keep-alive, 4d for a \
        new connection, plus the delay-0 p50 of the same probe (delay 0 itself: \
        the direct path's p50, so its error is the forwarder's cost). A figure fails when \
        its p50 error exceeds max(0.5 ms, 5 %), its KS D exceeds 0.05, or the \
        predicted loss is outside the Wilson 95 % interval of the measured loss. \
        See docs/calibrate.md. Needs root. Exit 1 when any figure fails.

        Examples:
          edgemeter calibrate --quick
          edgemeter calibrate --out reports/calib
        """
    )

    @Flag(help: "CI mode: delay 0 and 20 ms, uniform jitter on ICMP, 5 % loss (about a minute).")
    var quick = false

    @Option(help: ArgumentHelp("Directory for calibration.md and calibration.csv (default reports/<UTC time>-calibrate).", valueName: "DIR"))
    var out: String?

    func run() async throws {
        guard geteuid() == 0 else {
            throw usageError("calibrate builds network namespaces: run it as root (sudo edgemeter calibrate)")
        }
        let started = Date()
        let dir = try createOutputDirectory(out, name: "calibrate", now: started)
        // Idle CPUs poll for the whole run (the forwarder holds the same request while frames
        // flow): the certificate measures the link, not a halted vCPU's wake-up.
        let idle = CPULatencyHold()
        if let why = idle.hold() { note("calibrate: cannot keep idle CPUs polling (\(why)); figures include the host's idle wake-ups") }
        defer { idle.release() }
        let runner = CalibrationRunner(binary: runningBinaryPath())
        let result: CalibrationRunner.Result
        do {
            result = try await interruptibleLabWork(onFirst: "taking the calibration topology down",
                                                    onSecond: "`edgemeter lab down calib` removes what was built") { [quick] stop in
                try await runner.run(quick ? CalibrationPlan.quick : CalibrationPlan.full, stop: stop) { note($0) }
            }
        } catch let e as SuiteErrors {
            throw usageError("the calibration topology does not validate: \(e)")
        }
        let rows = result.rows
        let direct = CalibrationProbe.allCases.compactMap { p in result.direct[p].map { "\(p.rawValue) \(Format.fixed($0, 3))" } }
        let provenance = CalibrationProvenance(kernel: CalibrationRunner.kernelRelease(), forwarder: Self.forwarderDescription,
                                               clock: "CLOCK_MONOTONIC (ICMP: kernel receive stamps, CLOCK_REALTIME)", date: started,
                                               notes: ["direct path, no forwarder (p50 ms): " + direct.joined(separator: ", "),
                                                       "mode: " + (quick ? "--quick" : "full"), idle.provenance] + result.forwarderNotes)
        let md = CalibrationTable.markdown(rows, provenance: provenance)
        do {
            try md.write(toFile: "\(dir)/calibration.md", atomically: true, encoding: .utf8)
            try CalibrationTable.csv(rows).write(toFile: "\(dir)/calibration.csv", atomically: true, encoding: .utf8)
            try result.samplesCSV.write(toFile: "\(dir)/samples.csv", atomically: true, encoding: .utf8)
        } catch {
            print(md)
            throw usageError("cannot write calibration.md/csv into \(dir) (\(error)); give a writable --out DIR")
        }
        print(md)
        print("written: \(dir)/calibration.md, \(dir)/calibration.csv, \(dir)/samples.csv")
        if rows.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }

    /// What applied the impairment (the table's header says it).
    static let forwarderDescription = "edgemeter lab AF_PACKET forwarder (userspace, one per topology), set per case through its runtime API; edgemeter \(EdgeMeterVersion.current)"
}

/// `edgemeter calibrate-probe` (hidden): the probes `calibrate` runs inside the client's namespace
/// under `ip netns exec`. Prints one line per attempt: `ok <ms>` or `fail <reason>`, prefixed
/// `direct ` for the attempts to `--direct-address`.
struct CalibrateProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.internal("calibrate-probe", "One calibration probe series (run by `edgemeter calibrate` inside a namespace).")

    @Option(help: "icmp, tcp-connect, http-keepalive or http-new-connection.") var probe: String
    @Option(help: "Server IPv4 address.") var address: String
    @Option(name: .customLong("direct-address"), help: "The server's address on the link with no forwarder: every attempt is paired with one there (lines prefixed `direct `).") var directAddress: String?
    @Option(help: "Server TCP port (tcp and http probes).") var port: Int = 8080
    @Option(help: "Attempts.") var count: Int = 100
    @Option(name: .customLong("interval-ms"), help: "Pause between attempts (ICMP: spacing of sends), ms.") var intervalMs: Double = 10
    @Option(name: .customLong("timeout-ms"), help: "Per-attempt timeout, ms.") var timeoutMs: Int = 3000

    func validate() throws {
        guard CalibrationProbe(rawValue: probe) != nil else {
            throw ValidationError("--probe must be one of \(CalibrationProbe.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(probe)\"")
        }
        guard count > 0, intervalMs >= 0, timeoutMs > 0 else { throw ValidationError("--count and --timeout-ms must be positive, --interval-ms not negative") }
    }

    func run() async throws {
        var series = CalibrationSeries(probe: CalibrationProbe(rawValue: probe)!, address: address, port: port, count: count,
                                       interval: .nanoseconds(Int64(intervalMs * 1e6)), timeout: .milliseconds(timeoutMs))
        series.directAddress = directAddress
        do {
            try await series.run { print($0); fflush(nil) }
        } catch {
            throw usageError("calibrate-probe \(probe) to \(address): \(error)")
        }
    }
}
