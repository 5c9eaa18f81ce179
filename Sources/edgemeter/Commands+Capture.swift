import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterCapture
import EdgeMeterRun

private let capture = CaptureScenario.declaration

struct CaptureCommand: AsyncParsableCommand, KindCommand {
    static let configuration = CommandConfiguration.kind(capture,
        abstract: "Capture packets with libpcap into a pcap file and analyse them (flows, handshakes, echoes, HTTP).",
        discussion: """
        Immediate mode, nanosecond timestamps when the interface supports them (the precision used is \
        recorded), drop counters from pcap_stats at the end (stored as samples, phase capture_dropped). \
        The pcap file is standard (tshark/Wireshark open it) and written with mode 0600. Interfaces: \
        lo, docker0, bridges, veth, any (Linux cooked SLL2). Needs root or CAP_NET_RAW+CAP_NET_ADMIN.

        Stops after --duration, after --count packets, or on Ctrl-C.

        Examples:
          edgemeter capture --list
          edgemeter capture -i lo -f "icmp or tcp" --duration 5 -w /tmp/lo.pcap
          edgemeter capture -i docker0 --count 1000 --user nobody
        """
    )

    @Option(capture, "interface") var interface: String?
    @Option(capture, "filter") var filter: String?

    @Argument(help: ArgumentHelp("A filter expression after the options, as tcpdump takes it: edgemeter capture -i lo icmp or tcp port 80", valueName: "EXPRESSION"))
    var expression: [String] = []

    @Option(capture, "write") var write: String?
    @Option(capture, "duration") var duration: String?

    // `-c` as well, as tcpdump; the declaration's label (in messages) is `--count`.
    @Option(name: [.customShort("c"), .customLong("count")], parsing: .unconditional, help: capture.help("packets"))
    var count: String?

    @Option(capture, "snaplen", parsing: .unconditional) var snaplen: String?
    @Option(capture, "buffer_kib", parsing: .unconditional) var bufferSize: String?
    @Flag(capture, "promiscuous") var promiscuous = false

    @Flag(name: .long, help: "List the interfaces libpcap can capture on and exit.")
    var list = false

    @Option(capture, "user") var user: String?

    @OptionGroup var output: OutputOptions

    static var declaration: KindDeclaration { capture }

    /// The BPF filter: -f, or the words after the options joined by spaces (tcpdump's way).
    var parameters: RawParameters {
        var r = RawParameters()
        r.set(["interface": interface, "filter": filter ?? (expression.isEmpty ? nil : expression.joined(separator: " ")),
               "write": write, "duration": duration, "packets": count, "snaplen": snaplen, "buffer_kib": bufferSize, "user": user])
        r.flag("promiscuous", promiscuous)
        return r
    }

    static func resolve(_ s: ValidatedScenario) -> CaptureConfig { CaptureConfig(s) }

    func validate() throws {
        if list { return }
        if filter != nil && !expression.isEmpty {
            throw ValidationError("give the filter once: either -f \"\(filter!)\" or the expression \"\(expression.joined(separator: " "))\" after the options, not both")
        }
        guard let i = interface, !i.isEmpty else {
            throw ValidationError("give the interface to capture on with -i IFACE (see `edgemeter capture --list`)")
        }
        _ = try config()
        if let u = user, Privileges.ids(of: u) == nil { throw ValidationError("--user \(u): no such user on this machine; give an existing account such as nobody") }
    }

    func run() async throws {
        if list {
            let ifs: [CaptureInterface]
            do { ifs = try LiveCapture.interfaces() } catch { throw usageError("\(error)") }
            for i in ifs {
                var line = i.name.padding(toLength: max(12, i.name.count + 1), withPad: " ", startingAt: 0)
                line += i.isUp ? "up  " : "down"
                if i.isLoopback { line += " loopback" }
                if !i.addresses.isEmpty { line += " " + i.addresses.joined(separator: " ") }
                if let d = i.description { line += " (\(d))" }
                print(line)
            }
            return
        }
        guard let c = try configToRun(printOnly: output.printConfig) else { return }
        let iface = c.interface
        var opts = CaptureOptions(interface: iface, filter: c.filter, snapLength: Int32(c.snapLength), bufferSize: c.bufferKiB.map { Int32($0 * 1024) })
        opts.promiscuous = c.promiscuous ?? false
        let until = c.duration.map { ContinuousClock.now + $0 }
        let write = c.write, user = c.user, count = c.packets
        let safe = FileName.safe(iface)
        do {
            let result = try await runMeasured(name: "capture-\(safe)", options: output.runOptions) { ctx, dir in
                try dir.begin() // the pcap file goes into the run directory (removed again if the capture cannot start)
                let path = write ?? dir.url.appendingPathComponent("capture-\(safe).pcap").path
                let session: CaptureSession
                do {
                    session = try CaptureSession(options: opts, writePath: path, user: user, giveToUser: [dir.url.path],
                                                 parentStop: ctx.stop)
                } catch let e as CaptureError {
                    throw usageError("\(e)")
                }
                note("capturing on \(iface) (\(LinkType.name(session.capture.linkType)), \(session.capture.precision)second timestamps) into \(path)"
                     + (user.map { ", running as \($0)" } ?? ""))
                session.start(until: until, maxCount: count)
                let (result, analysis) = try await session.finish()
                WireReport.record(analysis: analysis, capture: result, interface: iface, pcapPath: path, appSamples: [],
                                  scenario: "capture", ctx: ctx)
                let st = result.stats
                note("\(result.packets) packets captured (stopped by \(result.stopReason)); pcap_stats: received \(st.map { String($0.received) } ?? "?"), dropped \(st.map { String($0.dropped) } ?? "?"), interface dropped \(st.map { String($0.interfaceDropped) } ?? "?")")
                note("\(analysis.flows.count) flows, \(analysis.handshakes.count) TCP handshakes, \(analysis.echoes.count) ICMP echoes, \(analysis.http.count) HTTP requests")
            }
            try printSummary(result, json: output.json)
            reportLine(result.directory, complete: result.complete)
            if !result.complete { throw ExitCode(130) }
        }
    }
}

/// Prints the run's summary.md on stdout (the tables `run` prints), unless --json already printed JSON.
func printSummary(_ result: (summaries: [Summary], complete: Bool, directory: RunDirectory), json: Bool) throws {
    guard !json else { return }
    print(try String(contentsOf: result.directory.url.appendingPathComponent("summary.md"), encoding: .utf8))
}

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyse a pcap file: flows, TCP handshakes and retransmissions, ICMP echoes, HTTP/1.1 timings.",
        discussion: """
        Reads classic pcap (micro- or nanosecond, either byte order) with Ethernet, Linux cooked \
        (SLL/SLL2), raw IP or loopback link types; IPv4 and IPv6. Truncated or malformed packets are \
        counted and skipped. Writes a run directory with samples (probe wire), flows.csv, \
        handshakes.csv, http.csv and a report in summary.md. For pcapng, convert first: editcap -F pcap in.pcapng out.pcap.

        Examples:
          edgemeter analyze capture-docker0.pcap
          edgemeter analyze --no-samples big.pcap
        """
    )

    @Argument(help: "The pcap file.")
    var file: String

    @Flag(name: .customLong("no-samples"), help: "Write only the report and the CSV tables, no per-item samples (for very large files).")
    var noSamples = false

    @OptionGroup var output: OutputOptions

    mutating func run() async throws {
        let t0 = ContinuousClock.now
        let analysis: WireAnalysis
        do {
            analysis = try WireAnalyzer.analyze(path: file)
        } catch let e as CaptureError {
            throw usageError("\(e)")
        }
        let elapsed = ContinuousClock.now - t0
        let file = self.file
        let noSamples = self.noSamples
        let name = URL(fileURLWithPath: file).lastPathComponent
        note("analysed \(analysis.counters.frames) frames in \(String(format: "%.3f", elapsed.seconds)) s: \(analysis.flows.count) flows, \(analysis.handshakes.count) TCP handshakes, \(analysis.echoes.count) ICMP echoes, \(analysis.http.count) HTTP requests, \(analysis.counters.truncated + analysis.counters.truncatedRecords) truncated, \(analysis.counters.malformed) malformed")
        let result = try await runMeasured(name: "analyze-\(name)", options: output.runOptions) { ctx, dir in
            let labels = ["pcap": file, "clock": "capture"]
            if !noSamples {
                WireSamples.samples(analysis, runID: ctx.runID, scenario: "analyze", target: name, labels: labels, includeFlows: false)
                    .forEach(ctx.sink.record)
            }
            ctx.addSection(WireSamples.markdown(analysis, source: "`\(file)`"))
            try WireSamples.writeTable(.flows, analysis, to: dir.url.appendingPathComponent("flows.csv").path)
            try WireSamples.writeTable(.handshakes, analysis, to: dir.url.appendingPathComponent("handshakes.csv").path)
            try WireSamples.writeTable(.http, analysis, to: dir.url.appendingPathComponent("http.csv").path)
        }
        try printSummary(result, json: output.json)
        reportLine(result.directory, complete: result.complete)
        if !result.complete { throw ExitCode(130) }
    }
}

/// Writes a synthetic HTTP/1.1 pcap with known timings (for benchmarks and reproducible examples).
struct PcapGenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.internal(
        "pcap-generate", "Write a synthetic HTTP/1.1 pcap with known handshake and response timings (benchmark input).")

    @Argument(help: "Output pcap file.")
    var file: String

    @Option(name: .long, help: "Approximate number of packets (rounded to whole connections).")
    var packets: Int = 1_000_000

    @Option(name: .long, help: "Keep-alive requests per connection.")
    var requests: Int = 1

    @Option(name: .long, help: "Link type: ethernet or sll2.")
    var link: String = "ethernet"

    mutating func run() async throws {
        guard packets > 0, requests > 0 else { throw ValidationError("--packets and --requests must be positive") }
        guard link == "ethernet" || link == "sll2" else { throw ValidationError("--link must be ethernet or sll2, got \(link)") }
        var g = SyntheticHTTPTraffic(connections: 1, requestsPerConnection: requests)
        g.connections = max(1, packets / g.packetsPerConnection)
        let n = try g.write(to: file, link: link == "sll2" ? LinkType.linuxSLL2 : LinkType.ethernet)
        note("wrote \(n) packets (\(g.connections) connections × \(g.packetsPerConnection)) to \(file)")
    }
}
