import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterSystem

/// `edgemeter proxy`: a TCP or UDP relay that impairs both directions with the lab's link model.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Relay TCP or UDP to a service, delaying and dropping with the link model.",
        discussion: """
        For a service the lab topology does not own. Each direction gets the \
        same impairment (delay, jitter, loss, rate), so a request/response \
        pays 2 × --delay. TCP: connect() to the proxy is not delayed; each \
        direction's bytes are delayed as a stream, in order; a chunk the model \
        drops is held for 200 ms (a retransmission) and sent, never deleted. \
        UDP: datagrams are delayed or dropped one by one. Runs until Ctrl-C or \
        --duration; prints the per-direction counters. See docs/calibrate.md.

        Examples:
          edgemeter proxy --listen 127.0.0.1:9000 \\
            --upstream 127.0.0.1:51000 --delay 20ms
          edgemeter proxy --udp --listen 127.0.0.1:5353 \\
            --upstream 127.0.0.1:53 --delay 5ms --loss 1%
        """
    )

    @Option(help: ArgumentHelp("Address to listen on (port 0: any free port, printed).", valueName: "ADDR:PORT")) var listen: String
    @Option(help: ArgumentHelp("The service to relay to.", valueName: "ADDR:PORT")) var upstream: String
    @Flag(help: "Relay UDP datagrams instead of TCP connections.") var udp = false
    @Option(help: ArgumentHelp("Delay per direction.", valueName: "DURATION")) var delay: String = "0ms"
    @Option(help: ArgumentHelp("Jitter per direction (uniform: ± this; normal: σ, truncated at 3σ).", valueName: "DURATION")) var jitter: String = "0ms"
    @Option(help: "Jitter distribution: uniform or normal.") var distribution: String = "uniform"
    @Option(help: ArgumentHelp("Loss per direction: 1% (Bernoulli) or 'gemodel P R 1-H 1-K'.", valueName: "LOSS")) var loss: String = "0%"
    @Option(help: ArgumentHelp("Rate limit per direction (tc units: 10mbit, 500kbit).", valueName: "RATE")) var rate: String?
    @Option(help: "Seed of the loss and jitter draws (same seed, same draws).") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Stop after this long (default: until Ctrl-C).", valueName: "DURATION")) var duration: String?
    @Option(help: ArgumentHelp("SCHED_FIFO priority of the proxy's threads, 1-99; 0 = ordinary scheduling. With one, idle CPUs also poll while the proxy runs (PM QoS). Default: 10 as root, else 0.", valueName: "PRIORITY"))
    var realtime: Int32?

    /// The per-direction spec the options describe; throws a ValidationError naming the bad option.
    func spec() throws -> ImpairmentSpec {
        guard let d = parseDuration(delay), d <= .seconds(10) else { throw ValidationError("--delay must be a duration up to 10s such as 20ms, got \"\(delay)\"") }
        guard let j = parseDuration(jitter), j <= .seconds(10) else { throw ValidationError("--jitter must be a duration up to 10s such as 5ms, got \"\(jitter)\"") }
        guard let dist = JitterDistribution(rawValue: distribution) else { throw ValidationError("--distribution must be uniform or normal, got \"\(distribution)\"") }
        guard let l = ImpairmentSpec.parseLoss(loss) else {
            throw ValidationError("--loss must be a percentage 0-100 such as 1% or 'gemodel P R 1-H 1-K', got \"\(loss)\"")
        }
        var r: UInt64?
        if let rate {
            guard let v = ImpairmentSpec.parseRate(rate) else { throw ValidationError("--rate must be a rate from 8kbit to 100gbit such as 10mbit, got \"\(rate)\"") }
            r = v
        }
        let s = ImpairmentSpec(delayNanoseconds: d.nanoseconds, jitterNanoseconds: j.nanoseconds, distribution: dist, loss: l, rateBitsPerSecond: r)
        if let p = s.problems.first { throw ValidationError(p) }
        return s
    }

    func validate() throws {
        _ = try spec()
        if let duration, parseDuration(duration) == nil { throw ValidationError("--duration must be a duration such as 30s, got \"\(duration)\"") }
        if let realtime, !(0...99).contains(realtime) { throw ValidationError("--realtime must be 0 (ordinary scheduling) or a SCHED_FIFO priority 1-99, got \(realtime)") }
        if let realtime, realtime > 0, geteuid() != 0 { throw ValidationError("--realtime \(realtime) needs root (SCHED_FIFO and /dev/cpu_dma_latency): run with sudo, or --realtime 0") }
    }

    func run() async throws {
        let s = try spec()
        let proxy: ImpairProxy
        do {
            proxy = try ImpairProxy(listen: listen, upstream: upstream, udp: udp, toUpstream: s, toClient: s, seed: seed)
        } catch {
            throw usageError("\(error)")
        }
        proxy.realtimePriority = realtime ?? (geteuid() == 0 ? 10 : 0)
        proxy.start()
        print("proxy \(udp ? "udp" : "tcp") \(proxy.listenAddress.hostPort) -> \(proxy.upstream.hostPort); each direction: \(Self.describe(s))")
        print("scheduling: " + (proxy.realtimePriority > 0 ? "SCHED_FIFO \(proxy.realtimePriority)" : "ordinary") + "; " + proxy.idleHold.provenance)
        fflush(nil)
        let stop = StopFlag()
        let traps = SignalTrap.install(stop, onFirst: "stopping the proxy", onSecond: "exiting")
        defer { traps.forEach { $0.cancel() } }
        let deadline = duration.flatMap(parseDuration).map { ContinuousClock.now + $0 }
        while !stop.isStopped {
            if let deadline, ContinuousClock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        proxy.stop()
        for d in ProxyDirection.allCases {
            let c = proxy.counters(d)
            print("\(d.rawValue): \(c.chunks) \(udp ? "datagrams" : "chunks"), \(c.bytes) bytes, \(udp ? "\(c.dropped) dropped" : "\(c.stalls) retransmission stalls")")
        }
        if !udp { print("connections: \(proxy.connectionsAccepted)") }
        for e in proxy.connectionErrors.prefix(5) { note("proxy: \(e)") }
    }

    static func describe(_ s: ImpairmentSpec) -> String {
        var parts = [String(format: "delay %.3f ms", Double(s.delayNanoseconds) / 1e6)]
        if s.jitterNanoseconds > 0 { parts.append(String(format: "jitter %.3f ms ", Double(s.jitterNanoseconds) / 1e6) + s.distribution.rawValue) }
        if s.loss != .none { parts.append(String(format: "loss %.2f %%", s.loss.meanLossFraction * 100)) }
        if let r = s.rateBitsPerSecond { parts.append("rate \(r) bit/s") }
        return parts.joined(separator: ", ")
    }
}
