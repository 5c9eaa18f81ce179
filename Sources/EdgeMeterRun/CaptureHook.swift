import Foundation
import EdgeMeterCore
import EdgeMeterCapture

/// A sink that forwards every sample and keeps a copy, so the capture hook can match the
/// application's samples with what it saw on the wire.
final class TeeSink: SampleSink, @unchecked Sendable {
    let next: SampleSink
    private let lock = NSLock()
    private var kept: [Sample] = []
    init(_ next: SampleSink) { self.next = next }
    func record(_ sample: Sample) {
        next.record(sample)
        lock.lock(); kept.append(sample); lock.unlock()
    }
    var samples: [Sample] { lock.lock(); defer { lock.unlock() }; return kept }
}

/// Runs `body` (any probe or scenario) while capturing on `interface`, then records beside the
/// application's samples:
/// - the wire samples (probe `wire`, same scenario; phases `icmp_echo`, `tcp_syn_synack`,
///   `tcp_synack_ack`, `tcp_handshake`, `http_first_byte`, `http_response`, `flow`, ...), with the
///   target of the application sample they match (else the address seen on the wire);
/// - the capture's `pcap_stats` counters (`capture_received`, `capture_dropped`, ...);
/// - per echo/connection/request, the difference application − wire (probe `wire`, metric as the
///   application's, phases `stack_overhead_echo`, `stack_overhead_connect`,
///   `stack_overhead_first_byte`): the time the sockets, the stack of this host and its scheduling
///   add to what the wire shows.
///
/// The pcap is written to `<filePrefix>-<interface>.pcap` in the run directory (mode 0600; the
/// prefix is `capture`, or `capture-<scenario>` in a suite), the flows to
/// `<filePrefix>-<interface>-flows.csv`, and a Markdown section with the analysis and the app-vs-wire
/// table is added to summary.md. With `interface == nil` this only runs `body`.
///
/// Matching: ICMP by the `icmp_id` and `seq` labels; TCP connections by `local_port`; HTTP requests
/// by `local_port` and the request's index on the connection when the samples carry
/// `local_port`, otherwise in order when the numbers of requests agree.
///
/// `promiscuous` puts the interface in promiscuous mode for the capture: on a Linux bridge
/// (docker0) that is what makes the frames the bridge forwards between two containers visible.
/// `onAnalysis` gets the analysis and the application's samples after the wire samples are
/// recorded (for reports that need both, such as the per-hop breakdown).
public func withCapture<T>(interface: String?, filter: String? = nil, snapLength: Int32 = 65_535, bufferSize: Int32? = nil,
                           promiscuous: Bool = false, scenario: String, filePrefix: String = "capture", ctx: ScenarioContext,
                           onAnalysis: ((WireAnalysis, [Sample]) -> Void)? = nil,
                           body: (ScenarioContext) async throws -> T) async throws -> T {
    guard let interface else { return try await body(ctx) }
    let safe = String(interface.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    let pcapPath = ctx.directory.appendingPathComponent("\(filePrefix)-\(safe).pcap").path
    var opts = CaptureOptions(interface: interface, filter: filter, snapLength: snapLength, bufferSize: bufferSize)
    opts.promiscuous = promiscuous
    // Blocks, not a wake-up per packet: the figures come from the kernel's stamps after the run,
    // and a reader woken for every packet adds its wake-ups (IPIs, on a VM) to the very exchanges it
    // times (EDGEMETER_CAPTURE_IMMEDIATE=1 restores immediate mode for comparison).
    opts.immediate = ProcessInfo.processInfo.environment["EDGEMETER_CAPTURE_IMMEDIATE"] == "1"
    let session: CaptureSession
    do {
        session = try CaptureSession(options: opts, writePath: pcapPath, parentStop: ctx.stop)
    } catch let e as CaptureError {
        throw RunError.setup("--capture \(interface): \(e.description)")
    }
    session.start()
    ctx.progress("capturing on \(interface) (\(session.capture.precision)second timestamps, \(LinkType.name(session.capture.linkType))) into \(pcapPath)")
    let tee = TeeSink(ctx.sink)
    let inner = ScenarioContext(runID: ctx.runID, sink: tee, stop: ctx.stop, directory: ctx.directory, suiteDirectory: ctx.suiteDirectory,
                                progress: ctx.progress, addSection: ctx.addSection)
    let value: T
    do {
        value = try await body(inner)
    } catch {
        session.stop("measurement failed")
        _ = try? await session.finish()
        throw error
    }
    // The last replies are already buffered (immediate mode); give the loop one more poll round.
    try? await Task.sleep(for: .milliseconds(100))
    session.stop()
    let (result, analysis) = try await session.finish()
    WireReport.record(analysis: analysis, capture: result, interface: interface, pcapPath: pcapPath, appSamples: tee.samples,
                      scenario: scenario, ctx: ctx)
    onAnalysis?(analysis, tee.samples)
    return value
}

/// Records the wire samples, the capture counters and the app-vs-wire differences of one capture.
public enum WireReport {
    /// The port in an application sample's target (`http://h:p/path`, `h:p`, `[v6]:p`), if any.
    static func targetPort(_ target: String) -> Int? {
        var t = Substring(target)
        if let r = t.range(of: "://") { t = t[r.upperBound...] }
        if let slash = t.firstIndex(of: "/") { t = t[..<slash] }
        if let close = t.lastIndex(of: "]") { t = t[t.index(after: close)...] }
        guard let colon = t.lastIndex(of: ":") else { return nil }
        return Int(t[t.index(after: colon)...])
    }

    struct Pair {
        var app: Sample
        var wire: Sample
    }

    public static func record(analysis a: WireAnalysis, capture: CaptureResult?, interface: String, pcapPath: String,
                              appSamples: [Sample], scenario: String, ctx: ScenarioContext) {
        // The wire samples go under the application's scenario name when it is unique.
        let appScenarios = Set(appSamples.filter { $0.probe != WireSamples.probe }.map(\.scenario))
        let scenario = appScenarios.count == 1 ? appScenarios.first! : scenario
        let base = ["interface": interface, "tstamp_precision": capture?.precision ?? "", "clock": "capture"]
        var wire = WireSamples.samples(a, runID: ctx.runID, scenario: scenario, target: nil, labels: base)
        // Index the application samples.
        var echoApp: [String: Sample] = [:]
        var connectApp: [String: Sample] = [:]
        var httpFirstByteApp: [String: Sample] = [:]
        var httpOrdered: [Sample] = []
        // Local ports are only unique per client address: a pair also needs the wire server's port
        // to be the application target's (a container calling another one may use the same port
        // number as this host).
        func samePort(_ app: Sample, _ wire: Sample) -> Bool {
            guard let server = wire.labels["server"], let wp = server.split(separator: ":").last.flatMap({ Int($0) }) else { return true }
            return WireReport.targetPort(app.target).map { $0 == wp } ?? true
        }
        for s in appSamples where s.probe != WireSamples.probe {
            if s.phase == "echo", let id = s.labels["icmp_id"], let seq = s.labels["seq"] {
                echoApp["\(id)/\(seq)"] = s
            } else if s.phase == "connect", let p = s.labels["local_port"] {
                connectApp[p] = s
            }
            if (s.probe == "http" || s.probe == "calc") && s.phase == "first_byte" {
                if let p = s.labels["local_port"] { httpFirstByteApp["\(p)/\(s.labels["request"] ?? "0")"] = s }
                else { httpOrdered.append(s) }
            }
        }
        // Without local ports, HTTP requests pair in order with the wire requests to the server the
        // application targeted (its host:port appears in the target), when the counts agree; other
        // wire requests (e.g. a front end's calls to its back ends) stay under their own server.
        var httpQueues: [String: [Sample]] = [:] // wire server endpoint → app samples in order
        if !httpOrdered.isEmpty {
            let wireServers = Set(wire.filter { $0.phase == "http_first_byte" }.compactMap { $0.labels["server"] })
            for server in wireServers {
                let apps = httpOrdered.filter { $0.target.contains(server) }
                let count = wire.filter { $0.phase == "http_first_byte" && $0.labels["server"] == server }.count
                if !apps.isEmpty && apps.count == count { httpQueues[server] = apps }
            }
        }
        var pairs: [(String, Pair)] = []
        for i in wire.indices {
            let w = wire[i]
            var match: (String, Sample)?
            switch w.phase {
            case "icmp_echo":
                if let id = w.labels["icmp_id"], let seq = w.labels["seq"], let s = echoApp["\(id)/\(seq)"] { match = ("stack_overhead_echo", s) }
            case "tcp_syn_synack":
                if let p = w.labels["local_port"], let s = connectApp[p], samePort(s, w) { match = ("stack_overhead_connect", s) }
            case "tcp_synack_ack", "tcp_handshake":
                if let p = w.labels["local_port"], let s = connectApp[p], samePort(s, w) { match = ("", s) }
            case "http_first_byte":
                if let p = w.labels["local_port"], let s = httpFirstByteApp["\(p)/\(w.labels["request"] ?? "0")"], samePort(s, w) {
                    match = ("stack_overhead_first_byte", s)
                } else if let server = w.labels["server"], var q = httpQueues[server], !q.isEmpty {
                    match = ("stack_overhead_first_byte", q.removeFirst())
                    httpQueues[server] = q
                }
            default:
                break
            }
            if let (phase, app) = match {
                wire[i].target = app.target
                wire[i].labels["app_probe"] = app.probe
                if !phase.isEmpty { pairs.append((phase, Pair(app: app, wire: wire[i]))) }
            }
        }
        // An HTTP request paired in order also pairs its connect phase with that connection's handshake.
        let httpConnects = Dictionary(appSamples.filter { $0.probe == "http" && $0.phase == "connect" }
            .map { ("\($0.target)/\($0.labels["seq"] ?? "")", $0) }, uniquingKeysWith: { a, _ in a })
        for (phase, p) in pairs where phase == "stack_overhead_first_byte" && p.app.labels["local_port"] == nil {
            guard let port = p.wire.labels["local_port"], let app = httpConnects["\(p.app.target)/\(p.app.labels["seq"] ?? "")"],
                  let i = wire.firstIndex(where: { $0.phase == "tcp_syn_synack" && $0.labels["local_port"] == port }) else { continue }
            wire[i].target = app.target
            wire[i].labels["app_probe"] = app.probe
            pairs.append(("stack_overhead_connect", Pair(app: app, wire: wire[i])))
        }
        // Everything else seen on a matched connection (its other phases, its flow totals) or for a
        // matched echo's address goes under the application's target too; decode counters go under
        // the interface.
        // A connection is its local port and its server (port numbers repeat across clients).
        func connection(_ w: Sample) -> String? {
            guard let p = w.labels["local_port"], p != "0" else { return nil }
            guard let server = w.labels["server"] ?? w.labels["flow"].flatMap({ $0.split(separator: " ").last.map(String.init) }) else { return nil }
            return "\(p) \(server)"
        }
        var portTarget: [String: String] = [:]
        var addressTarget: [String: String] = [:]
        for i in wire.indices where wire[i].labels["app_probe"] != nil {
            if let c = connection(wire[i]) { portTarget[c] = wire[i].target }
            if wire[i].phase == "icmp_echo", let d = wire[i].labels["dst"] { addressTarget[d] = wire[i].target }
        }
        for i in wire.indices {
            if wire[i].phase.hasPrefix("decode_") { wire[i].target = interface; continue }
            if wire[i].labels["app_probe"] != nil { continue }
            if let c = connection(wire[i]), let t = portTarget[c] {
                wire[i].target = t
            } else if let f = wire[i].labels["flow"], f.hasPrefix("icmp"),
                      let dst = f.split(separator: " ").last.map({ String($0.split(separator: ":").first ?? "") }),
                      let t = addressTarget[dst] {
                wire[i].target = t
            }
        }
        wire.forEach(ctx.sink.record)
        if let capture {
            WireSamples.captureSamples(capture, interface: interface, runID: ctx.runID, scenario: scenario, target: interface,
                                       labels: ["pcap": pcapPath]).forEach(ctx.sink.record)
        }
        // Differences.
        var byPhase: [String: [(app: Double, wire: Double, diff: Double)]] = [:]
        var unmatched: [String: Int] = [:]
        for (phase, p) in pairs {
            var labels = p.wire.labels
            labels["app_probe"] = p.app.probe
            labels["app_phase"] = p.app.phase
            labels["wire_phase"] = p.wire.phase
            labels["app_clock"] = p.app.labels["clock"] ?? ""
            if let av = p.app.value, let wv = p.wire.value {
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: WireSamples.probe, target: p.app.target,
                                       metric: p.app.metric, phase: phase, value: av - wv, unit: "ms", timestamp: p.app.timestamp,
                                       status: .ok, labels: labels))
                byPhase[phase, default: []].append((av, wv, av - wv))
            } else {
                let why = p.app.value == nil ? "the application sample failed (\(p.app.reason))" : "the wire sample failed (\(p.wire.reason))"
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: WireSamples.probe, target: p.app.target,
                                       metric: p.app.metric, phase: phase, value: nil, unit: "ms", timestamp: p.app.timestamp,
                                       status: p.app.value == nil ? p.app.status : p.wire.status, reason: why, labels: labels))
                unmatched[phase, default: 0] += 1
            }
        }
        let appTimed = appSamples.filter { $0.probe != WireSamples.probe && $0.unit == "ms" && ($0.phase == "echo" || $0.phase == "connect" || (($0.probe == "http" || $0.probe == "calc") && $0.phase == "first_byte")) }.count
        let unpairedApp = appTimed - pairs.count
        var md = WireSamples.markdown(a, source: "`\(interface)` during scenario \(scenario) (\(URL(fileURLWithPath: pcapPath).lastPathComponent))",
                                      capture: capture, interface: interface)
        md += "\n### Application vs wire (\(interface))\n\n"
        md += "Each row pairs an application sample with the same echo/connection/request on the wire; overhead = application − wire: "
        md += "what the sockets, this host's stack and scheduling add to the time between the packets.\n\n"
        md += "| overhead | pairs | app p50 ms | wire p50 ms | overhead p50 ms | overhead p90 ms | overhead max ms |\n|---|---:|---:|---:|---:|---:|---:|\n"
        for phase in byPhase.keys.sorted() {
            let rows = byPhase[phase]!
            func med(_ v: [Double], _ q: Double) -> String {
                let s = v.sorted()
                return Format.fixed(s[min(s.count - 1, Int((q * Double(s.count - 1)).rounded()))], 3)
            }
            md += "| \(phase) | \(rows.count) | \(med(rows.map(\.app), 0.5)) | \(med(rows.map(\.wire), 0.5)) | \(med(rows.map(\.diff), 0.5)) | \(med(rows.map(\.diff), 0.9)) | \(med(rows.map(\.diff), 1)) |\n"
        }
        let matched = pairs.count
        md += "\n\(matched) of \(appTimed) application samples (echo, connect, HTTP first byte) matched on the wire"
        if !unmatched.isEmpty { md += " (\(unmatched.values.reduce(0, +)) pairs with a failed side)" }
        if unpairedApp > 0 { md += "; the others were not captured (filter, interface) or carry no `icmp_id`/`seq` or `local_port` label" }
        md += ".\n"
        ctx.addSection(md)
        let flowsPath = URL(fileURLWithPath: pcapPath).deletingPathExtension().path + "-flows.csv"
        try? WireSamples.flowsCSV(a).write(toFile: flowsPath, atomically: true, encoding: .utf8)
    }
}
