import Foundation
import EdgeMeterCore
import EdgeMeterCapture
import EdgeMeterProbes

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
    let pcapPath = ctx.directory.appendingPathComponent("\(filePrefix)-\(FileName.safe(interface)).pcap").path
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

/// The probes whose samples the wire analysis can pair, by their `probe` name: each declares its
/// keys (`WireMatchable`), the capture hook looks them up here instead of comparing probe names.
public enum WireMatchTable {
    public static let probes: [any WireMatchable.Type] = [ICMPProbe.self, TCPConnectProbe.self, HTTPProbe.self, CalcProbe.self]
    /// probe name → the keys it declares.
    public static let keys: [String: [WireKey]] = Dictionary(probes.map { ($0.probeName, $0.wireKeys) }, uniquingKeysWith: { a, _ in a })

    /// How a sample of `probe` in `phase` is found on the wire, or nil when it has no wire counterpart.
    public static func match(probe: String, phase: String) -> WireMatch? {
        keys[probe]?.first { $0.phase == phase }?.match
    }

    /// Whether `probe` declares `match` for some phase.
    static func declares(_ probe: String, _ match: WireMatch) -> Bool {
        keys[probe]?.contains { $0.match == match } ?? false
    }
}

extension WireMatch {
    /// The wire phase an application sample is compared with, and the phase of the difference.
    var pairedWirePhase: String {
        switch self {
        case .icmpEcho: return "icmp_echo"
        case .tcpHandshake: return "tcp_syn_synack"
        case .httpFirstByte: return "http_first_byte"
        }
    }

    /// Other wire phases of the same exchange: they take the application's target but give no difference.
    var attributedWirePhases: [String] {
        self == .tcpHandshake ? ["tcp_synack_ack", "tcp_handshake"] : []
    }

    var overheadPhase: String {
        switch self {
        case .icmpEcho: return "stack_overhead_echo"
        case .tcpHandshake: return "stack_overhead_connect"
        case .httpFirstByte: return "stack_overhead_first_byte"
        }
    }

    /// The match a wire phase belongs to, and whether it is the compared one.
    static func forWirePhase(_ phase: String) -> (match: WireMatch, compared: Bool)? {
        for m in WireMatch.allCases {
            if m.pairedWirePhase == phase { return (m, true) }
            if m.attributedWirePhases.contains(phase) { return (m, false) }
        }
        return nil
    }
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

    /// One overhead figure: the phase of the difference (`stack_overhead_*`) and the two samples.
    typealias PhasePair = (phase: String, pair: Pair)

    /// The application samples that have a wire counterpart, indexed by the keys their probe declares.
    struct AppIndex {
        /// `icmp_id/seq` → echo sample.
        var echo: [String: Sample] = [:]
        /// `local_port` → connect sample.
        var connect: [String: Sample] = [:]
        /// `local_port/request` → HTTP first-byte sample.
        var firstByte: [String: Sample] = [:]
        /// HTTP first-byte samples without a local port, in order (paired in order per server).
        var firstByteInOrder: [Sample] = []
        /// Application samples (milliseconds) that a wire exchange could pair.
        var timedCount = 0

        init(_ appSamples: [Sample]) {
            for s in appSamples where s.probe != WireSamples.probe {
                guard let match = WireMatchTable.match(probe: s.probe, phase: s.phase) else { continue }
                if s.unit == "ms" { timedCount += 1 }
                switch match {
                case .icmpEcho:
                    if let id = s.labels["icmp_id"], let seq = s.labels["seq"] { echo["\(id)/\(seq)"] = s }
                case .tcpHandshake:
                    if let p = s.labels["local_port"] { connect[p] = s }
                case .httpFirstByte:
                    if let p = s.labels["local_port"] { firstByte["\(p)/\(s.labels["request"] ?? "0")"] = s } else { firstByteInOrder.append(s) }
                }
            }
        }
    }

    public static func record(analysis a: WireAnalysis, capture: CaptureResult?, interface: String, pcapPath: String,
                              appSamples: [Sample], scenario: String, ctx: ScenarioContext) {
        // The wire samples go under the application's scenario name when it is unique.
        let appScenarios = Set(appSamples.filter { $0.probe != WireSamples.probe }.map(\.scenario))
        let scenario = appScenarios.count == 1 ? appScenarios.first! : scenario
        let base = ["interface": interface, "tstamp_precision": capture?.precision ?? "", "clock": "capture"]
        var wire = WireSamples.samples(a, runID: ctx.runID, scenario: scenario, target: nil, labels: base)
        let index = AppIndex(appSamples)
        let pairs = pair(&wire, index: index, appSamples: appSamples)
        attributeRest(&wire, interface: interface)
        wire.forEach(ctx.sink.record)
        if let capture {
            WireSamples.captureSamples(capture, interface: interface, runID: ctx.runID, scenario: scenario, target: interface,
                                       labels: ["pcap": pcapPath]).forEach(ctx.sink.record)
        }
        let diffs = differences(pairs)
        diffs.samples(runID: ctx.runID, scenario: scenario).forEach(ctx.sink.record)
        ctx.addSection(markdown(a, capture: capture, interface: interface, pcapPath: pcapPath, scenario: scenario, differences: diffs,
                                pairCount: pairs.count, appTimed: index.timedCount))
        let flowsPath = URL(fileURLWithPath: pcapPath).deletingPathExtension().path + "-flows.csv"
        do { try WireSamples.writeTable(.flows, a, to: flowsPath) } catch { ctx.progress("\(error)") }
    }

    /// Local ports are only unique per client address: a pair also needs the wire server's port to
    /// be the application target's (a container calling another one may use the same port number
    /// as this host).
    static func samePort(_ app: Sample, _ wire: Sample) -> Bool {
        guard let server = wire.labels["server"], let wp = server.split(separator: ":").last.flatMap({ Int($0) }) else { return true }
        return targetPort(app.target).map { $0 == wp } ?? true
    }

    /// Pairs wire samples with application samples by the declared keys; a paired wire sample gets
    /// the application's target and `app_probe`. Returns the pairs that give a difference, in wire order.
    static func pair(_ wire: inout [Sample], index: AppIndex, appSamples: [Sample]) -> [PhasePair] {
        // Without local ports, HTTP requests pair in order with the wire requests to the server the
        // application targeted (its host:port appears in the target), when the counts agree; other
        // wire requests (e.g. a front end's calls to its back ends) stay under their own server.
        let firstBytePhase = WireMatch.httpFirstByte.pairedWirePhase
        var inOrder: [String: [Sample]] = [:] // wire server endpoint → app samples in order
        if !index.firstByteInOrder.isEmpty {
            let wireServers = Set(wire.filter { $0.phase == firstBytePhase }.compactMap { $0.labels["server"] })
            for server in wireServers {
                let apps = index.firstByteInOrder.filter { $0.target.contains(server) }
                let count = wire.filter { $0.phase == firstBytePhase && $0.labels["server"] == server }.count
                if !apps.isEmpty && apps.count == count { inOrder[server] = apps }
            }
        }
        var pairs: [PhasePair] = []
        for i in wire.indices {
            let w = wire[i]
            guard let (match, compared) = WireMatch.forWirePhase(w.phase) else { continue }
            var app: Sample?
            switch match {
            case .icmpEcho:
                if let id = w.labels["icmp_id"], let seq = w.labels["seq"] { app = index.echo["\(id)/\(seq)"] }
            case .tcpHandshake:
                if let p = w.labels["local_port"], let s = index.connect[p], samePort(s, w) { app = s }
            case .httpFirstByte:
                if let p = w.labels["local_port"], let s = index.firstByte["\(p)/\(w.labels["request"] ?? "0")"], samePort(s, w) {
                    app = s
                } else if let server = w.labels["server"], var q = inOrder[server], !q.isEmpty {
                    app = q.removeFirst()
                    inOrder[server] = q
                }
            }
            guard let app else { continue }
            wire[i].target = app.target
            wire[i].labels["app_probe"] = app.probe
            if compared { pairs.append((match.overheadPhase, Pair(app: app, wire: wire[i]))) }
        }
        // A request paired in order also pairs its probe's connect phase with that connection's handshake.
        let connectKeyed = Dictionary(appSamples.filter {
            pairsConnectThroughRequests($0.probe) && WireMatchTable.match(probe: $0.probe, phase: $0.phase) == .tcpHandshake
        }.map { ("\($0.probe) \($0.target)/\($0.labels["seq"] ?? "")", $0) }, uniquingKeysWith: { a, _ in a })
        let handshake = WireMatch.tcpHandshake
        for (phase, p) in pairs where phase == WireMatch.httpFirstByte.overheadPhase && p.app.labels["local_port"] == nil {
            guard let port = p.wire.labels["local_port"], let app = connectKeyed["\(p.app.probe) \(p.app.target)/\(p.app.labels["seq"] ?? "")"],
                  let i = wire.firstIndex(where: { $0.phase == handshake.pairedWirePhase && $0.labels["local_port"] == port }) else { continue }
            wire[i].target = app.target
            wire[i].labels["app_probe"] = app.probe
            pairs.append((handshake.overheadPhase, Pair(app: app, wire: wire[i])))
        }
        return pairs
    }

    /// A probe that declares both an HTTP first byte and a handshake (its connect pairs through its requests).
    static func pairsConnectThroughRequests(_ probe: String) -> Bool {
        WireMatchTable.declares(probe, .httpFirstByte) && WireMatchTable.declares(probe, .tcpHandshake)
    }

    /// Everything else seen on a matched connection (its other phases, its flow totals) or for a
    /// matched echo's address goes under the application's target too; decode counters go under
    /// the interface.
    static func attributeRest(_ wire: inout [Sample], interface: String) {
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
            if wire[i].phase == WireMatch.icmpEcho.pairedWirePhase, let d = wire[i].labels["dst"] { addressTarget[d] = wire[i].target }
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
    }

    /// The application − wire differences of the pairs.
    struct Differences {
        /// One per pair, in pair order: the difference (nil when a side failed) and the pair.
        var rows: [(phase: String, pair: Pair)] = []
        /// overhead phase → (app, wire, difference) in milliseconds, for the pairs where both sides have a value.
        var byPhase: [String: [(app: Double, wire: Double, diff: Double)]] = [:]
        /// overhead phase → pairs with a failed side.
        var failed: [String: Int] = [:]

        /// Samples of probe `wire`, metric as the application's, phase `stack_overhead_*`: the
        /// difference, or a failed sample saying which side failed.
        func samples(runID: String, scenario: String) -> [Sample] {
            rows.map { phase, p in
                var labels = p.wire.labels
                labels["app_probe"] = p.app.probe
                labels["app_phase"] = p.app.phase
                labels["wire_phase"] = p.wire.phase
                labels["app_clock"] = p.app.labels["clock"] ?? ""
                if let av = p.app.value, let wv = p.wire.value {
                    return Sample(runID: runID, scenario: scenario, probe: WireSamples.probe, target: p.app.target,
                                  metric: p.app.metric, phase: phase, value: av - wv, unit: "ms", timestamp: p.app.timestamp,
                                  status: .ok, labels: labels)
                }
                let why = p.app.value == nil ? "the application sample failed (\(p.app.reason))" : "the wire sample failed (\(p.wire.reason))"
                return Sample(runID: runID, scenario: scenario, probe: WireSamples.probe, target: p.app.target,
                              metric: p.app.metric, phase: phase, value: nil, unit: "ms", timestamp: p.app.timestamp,
                              status: p.app.value == nil ? p.app.status : p.wire.status, reason: why, labels: labels)
            }
        }
    }

    static func differences(_ pairs: [PhasePair]) -> Differences {
        var d = Differences()
        d.rows = pairs
        for (phase, p) in pairs {
            if let av = p.app.value, let wv = p.wire.value {
                d.byPhase[phase, default: []].append((av, wv, av - wv))
            } else {
                d.failed[phase, default: 0] += 1
            }
        }
        return d
    }

    /// The wire analysis section plus the application-vs-wire table.
    static func markdown(_ a: WireAnalysis, capture: CaptureResult?, interface: String, pcapPath: String, scenario: String,
                         differences d: Differences, pairCount: Int, appTimed: Int) -> String {
        var md = WireSamples.markdown(a, source: "`\(interface)` during scenario \(scenario) (\(URL(fileURLWithPath: pcapPath).lastPathComponent))",
                                      capture: capture, interface: interface)
        md += "\n### Application vs wire (\(interface))\n\n"
        md += "Each row pairs an application sample with the same echo/connection/request on the wire; overhead = application − wire: "
        md += "what the sockets, this host's stack and scheduling add to the time between the packets.\n\n"
        md += "| overhead | pairs | app p50 ms | wire p50 ms | overhead p50 ms | overhead p90 ms | overhead max ms |\n|---|---:|---:|---:|---:|---:|---:|\n"
        func q(_ v: [Double], _ p: Double) -> String { Format.fixed(Quantile.rounded(v.sorted(), p) ?? 0, 3) }
        for phase in d.byPhase.keys.sorted() {
            let rows = d.byPhase[phase]!
            md += "| \(phase) | \(rows.count) | \(q(rows.map(\.app), 0.5)) | \(q(rows.map(\.wire), 0.5)) | \(q(rows.map(\.diff), 0.5)) | \(q(rows.map(\.diff), 0.9)) | \(q(rows.map(\.diff), 1)) |\n"
        }
        md += "\n\(pairCount) of \(appTimed) application samples (echo, connect, HTTP first byte) matched on the wire"
        if !d.failed.isEmpty { md += " (\(d.failed.values.reduce(0, +)) pairs with a failed side)" }
        if appTimed - pairCount > 0 { md += "; the others were not captured (filter, interface) or carry no `icmp_id`/`seq` or `local_port` label" }
        md += ".\n"
        return md
    }
}
