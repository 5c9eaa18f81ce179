import Foundation
import EdgeMeterCore
import EdgeMeterCapture
import EdgeMeterProbes

/// The calculator deployment's Markdown sections and per-hop samples, after a capture.
extension CalculatorDeployment {
    /// Pairs each call the front end made for a calc probe request (on the wire) with the front
    /// end's own measurement of that call (its `Server-Timing` entry `hopN_<service>`, from sending
    /// the call on its pooled connection to having the reply) and records the difference
    /// front end − wire (probe `wire`, phase `stack_overhead_hop`, label `service`): what the front
    /// end's HTTP client, its container's stack and the veth add to the call as the bridge saw it.
    func serverTimingVersusWire(_ rows: [RequestHops], probeSamples: [String: Sample], serverTiming: [String: [Sample]],
                                interface: String, scenario: String, ctx: ScenarioContext) -> String {
        var byService: [String: [(app: Double, wire: Double)]] = [:]
        var services: [String] = []
        var unpaired = 0
        for r in rows {
            guard let app = probeSamples[String(r.request.clientPort)], let seq = app.labels["seq"], let hops = serverTiming[seq] else { continue }
            for (k, c) in r.calls.enumerated() {
                let phase = "hop\(k + 1)_\(c.service)"
                guard let st = hops.first(where: { $0.phase == phase && $0.target == app.target }), let av = st.value,
                      let wns = c.exchange.responseNs else { unpaired += 1; continue }
                let wv = Double(wns) / 1e6
                ctx.sink.record(Sample(runID: ctx.runID, scenario: scenario, probe: WireSamples.probe, target: app.target, metric: "latency",
                                       phase: "stack_overhead_hop", value: av - wv, unit: "ms", timestamp: st.timestamp, status: .ok,
                                       labels: ["service": c.service, "call": String(k), "seq": seq, "local_port": String(r.request.clientPort),
                                                "app_probe": CalcProbe.probeName, "app_phase": phase, "app_clock": "front end (Server-Timing)",
                                                "wire_phase": "hop_\(c.service)", "interface": interface, "clock": "capture"]))
                if !services.contains(c.service) { services.append(c.service) }
                byService[c.service, default: []].append((av, wv))
            }
        }
        return Self.serverTimingMarkdown(byService, services: services, unpaired: unpaired, interface: interface)
    }

    /// The per-hop comparison's section: one row per service, in `services` order, of the
    /// front end's timing and the wire's for the same calls (milliseconds); `unpaired` calls had no
    /// `Server-Timing` entry.
    static func serverTimingMarkdown(_ byService: [String: [(app: Double, wire: Double)]], services: [String], unpaired: Int,
                                     interface: String) -> String {
        func q(_ v: [Double], _ p: Double) -> String { Quantile.rounded(v.sorted(), p).map { Format.fixed($0, 3) } ?? "—" }
        var t = MarkdownTable(header: ["service", "pairs", "front end p50 ms", "wire p50 ms", "overhead p50 ms", "overhead p90 ms", "overhead max ms"],
                              alignments: [.left] + Array(repeating: .right, count: 6))
        for name in services {
            let v = byService[name]!
            let overhead = v.map { $0.app - $0.wire }
            t.add([name, "\(v.count)", q(v.map(\.app), 0.5), q(v.map(\.wire), 0.5), q(overhead, 0.5), q(overhead, 0.9), q(overhead, 1)])
        }
        var md = """
            ### Per hop: the front end's own timing vs the wire (\(interface))

            Front end: its `Server-Timing` entry for the call (sending on its pooled connection → reply parsed). Wire: the call's \
            first request byte → last response byte on \(interface). Overhead = front end − wire: its HTTP client, its \
            container's stack and the veth pair.
            """
        md += "\n\n" + t.text
        if unpaired > 0 { md += "\n\(unpaired) calls had no matching `Server-Timing` entry (failed request or a different call order).\n" }
        return md
    }

    /// Records the per-hop samples and adds the per-hop sections (probe requests, then the load's
    /// requests with the app-vs-wire comparison of their latency distribution).
    func report(_ a: WireAnalysis, interface: String, frontPort: Int, appSamples: [Sample],
                load: (result: LoadResult, started: Date, ended: Date)?, scenario: String, ctx: ScenarioContext) {
        guard let frontIP = IPAddress(front.address) else { return }
        var names: [String: String] = [:]
        for (role, f, port) in services { names["\(f.address):\(port)"] = role }
        let (rows, ambiguous) = HopBreakdown.compute(a, front: frontIP, frontPort: UInt16(frontPort), services: names)
        // A row whose client port is an HTTP probe sample's `local_port` is that probe request.
        var probeTargets: [String: Sample] = [:]
        var serverTiming: [String: [Sample]] = [:] // seq → the calc probe's hopN_<service> samples
        for s in appSamples where WireMatchTable.match(probe: s.probe, phase: s.phase) == .httpFirstByte {
            if let p = s.labels["local_port"] { probeTargets[p] = s }
        }
        for s in appSamples where s.probe == CalcProbe.probeName && s.labels["source"] == "server-timing" {
            serverTiming[s.labels["seq"] ?? "", default: []].append(s)
        }
        let probeRows = rows.filter { probeTargets[String($0.request.clientPort)] != nil }
        let otherRows = rows.filter { probeTargets[String($0.request.clientPort)] == nil }
        let frontName = "\(front.address):\(frontPort)"
        HopBreakdown.samples(probeRows, runID: ctx.runID, scenario: scenario,
                             target: { probeTargets[String($0.request.clientPort)]?.target ?? frontName },
                             labels: ["interface": interface, "clock": "capture", "source": "http_probe"]).forEach(ctx.sink.record)
        HopBreakdown.samples(otherRows, runID: ctx.runID, scenario: scenario, target: { _ in "load " + frontName },
                             labels: ["interface": interface, "clock": "capture", "source": load == nil ? "other" : "load"]).forEach(ctx.sink.record)
        var md = HopBreakdown.markdown(probeRows, interface: interface, frontName: "\(frontName) (the probe's requests, one per connection)",
                                       ambiguousCalls: 0)
        md += "\nServices: " + services.map { "\($0.role) \($0.fixture.address):\($0.port) (\($0.fixture.name))" }.joined(separator: ", ")
        md += "; front end \(front.name).\n"
        if !serverTiming.isEmpty {
            md += "\n" + serverTimingVersusWire(probeRows, probeSamples: probeTargets, serverTiming: serverTiming, interface: interface,
                                                 scenario: scenario, ctx: ctx)
        }
        if !otherRows.isEmpty {
            md += "\n" + HopBreakdown.markdown(otherRows, interface: interface,
                                               frontName: "\(frontName) (\(load == nil ? "other requests" : "requests of the fixed-rate load"))",
                                               ambiguousCalls: ambiguous, maxRows: 0)
        }
        if let load {
            let h = load.result.uncorrected
            let wire = otherRows.compactMap(\.request.responseNs).sorted()
            func q(_ p: Double) -> String { Quantile.rounded(wire, p).map { Format.fixed(Double($0) / 1e6, 3) } ?? "—" }
            func app(_ p: Double) -> String { h.totalCount > 0 ? Format.fixed(Double(h.valueAtPercentile(p * 100)) / 1e6, 3) : "—" }
            md += """

                ### Load: application vs wire (\(interface))

                Application: the load generator's uncorrected latency (request handed to the socket → last response byte, warm-up \
                excluded). Wire: client → front end, request's first byte → response's last byte, every request of the load seen on \
                \(interface). Distributions, not pairs (the load records histograms).

                | | requests | p50 ms | p90 ms | p99 ms |
                |---|---:|---:|---:|---:|
                | application (load) | \(h.totalCount) | \(app(0.5)) | \(app(0.9)) | \(app(0.99)) |
                | wire | \(wire.count) | \(q(0.5)) | \(q(0.9)) | \(q(0.99)) |

                """
        }
        ctx.addSection(md)
    }
}
