import Foundation
import EdgeMeterCore

/// One call a front end made to a back-end service while serving a request, as seen on the wire.
public struct HopCall: Sendable, Equatable {
    /// The service's name (`sum`, `mul`, ...), or its endpoint when unknown.
    public var service: String
    public var exchange: WireHTTPExchange
}

/// One request to a front end and the calls it made for it, all from capture timestamps of the
/// same interface (so the segments add up and exclude what happens inside each host before
/// send()/after recv()).
public struct RequestHops: Sendable, Equatable {
    /// The client's request to the front end.
    public var request: WireHTTPExchange
    /// The front end's calls made between the request's first byte and its response's first
    /// byte, in the order they started.
    public var calls: [HopCall]

    /// The last byte of the client's request → the first byte of the first call (the front end
    /// reading, parsing and dispatching); nil without calls.
    public var inNs: Int64? {
        guard let first = calls.first else { return nil }
        return first.exchange.requestStartNs - (request.requestEndNs ?? request.requestStartNs)
    }
    /// Sum of the gaps between one call's last response byte and the next call's first request
    /// byte (the front end's work between calls; 0 with one call, negative when calls overlap).
    public var betweenNs: Int64? {
        guard calls.count > 1 else { return calls.isEmpty ? nil : 0 }
        var total: Int64 = 0
        for i in 1..<calls.count {
            guard let end = calls[i - 1].exchange.responseEndNs else { return nil }
            total += calls[i].exchange.requestStartNs - end
        }
        return total
    }
    /// The last call's last response byte → the first byte of the front end's response ("back").
    public var backNs: Int64? {
        guard let last = calls.last?.exchange.responseEndNs, let start = request.responseStartNs else { return nil }
        return start - last
    }
}

/// Splits the HTTP requests a capture saw on a bridge the services share into per-request hop
/// breakdowns: client → front end → each operation service → back.
public enum HopBreakdown {
    /// - Parameters:
    ///   - front: the front end's address and port; its requests are the rows.
    ///   - services: endpoint (`172.17.0.2:50001`) → service name for the calls.
    /// - Returns: the rows, and how many calls from the front end could not be given to exactly one
    ///   request (they started while two requests to the front end were in progress, e.g. under
    ///   load with several connections).
    public static func compute(_ a: WireAnalysis, front: IPAddress, frontPort: UInt16,
                               services: [String: String]) -> (rows: [RequestHops], ambiguousCalls: Int) {
        let requests = a.http.filter { $0.server == front && $0.serverPort == frontPort }.sorted { $0.requestStartNs < $1.requestStartNs }
        var rows = requests.map { RequestHops(request: $0, calls: []) }
        var ambiguous = 0
        let calls = a.http.filter { $0.client == front && !($0.server == front && $0.serverPort == frontPort) }
            .sorted { $0.requestStartNs < $1.requestStartNs }
        for c in calls {
            let owners = rows.indices.filter { i in
                let r = rows[i].request
                let end = r.responseStartNs ?? r.responseEndNs ?? Int64.max
                return c.requestStartNs >= r.requestStartNs && c.requestStartNs <= end
            }
            guard owners.count == 1 else {
                if owners.count > 1 { ambiguous += 1 }
                continue
            }
            let key = WireSamples.endpoint(c.server, c.serverPort)
            rows[owners[0]].calls.append(HopCall(service: services[key] ?? key, exchange: c))
        }
        return (rows, ambiguous)
    }

    static func ms(_ ns: Int64?) -> Double? { ns.map { Double($0) / 1e6 } }

    /// Samples (probe `wire`, metric `latency`, ms), per request row:
    /// - `hop_front_first_byte` / `hop_front_response`: client → front end, request's first byte →
    ///   response's first / last byte;
    /// - `hop_in`: request's last byte → the first call's first byte;
    /// - `hop_<service>` (one per call, label `call` its index): the call's first request byte →
    ///   its last response byte;
    /// - `hop_between`: the gaps between calls; `hop_back`: the last call's end → the front end's
    ///   response's first byte.
    /// Labels: `local_port` (the client's port, the application sample's `local_port`), `request`
    /// (row index), `calls`, `server`.
    public static func samples(_ rows: [RequestHops], runID: String, scenario: String, target: (RequestHops) -> String,
                               labels base: [String: String]) -> [Sample] {
        var out: [Sample] = []
        for (i, r) in rows.enumerated() {
            var l = base
            l["local_port"] = String(r.request.clientPort)
            l["request"] = String(i)
            l["calls"] = r.calls.map(\.service).joined(separator: "+")
            l["server"] = WireSamples.endpoint(r.request.server, r.request.serverPort)
            if let s = r.request.status { l["status"] = String(s) }
            let t = target(r)
            let at = WireSamples.date(r.request.requestStartNs)
            func add(_ phase: String, _ v: Int64?, _ why: String, _ extra: [String: String] = [:]) {
                out.append(Sample(runID: runID, scenario: scenario, probe: WireSamples.probe, target: t, metric: "latency", phase: phase,
                                  value: ms(v), unit: "ms", timestamp: at, status: v == nil ? .timeout : .ok, reason: v == nil ? why : "",
                                  labels: l.merging(extra) { _, n in n }))
            }
            add("hop_front_first_byte", r.request.firstByteNs, "no response from the front end captured")
            add("hop_front_response", r.request.responseNs, "the front end's response end was not captured")
            add("hop_in", r.inNs, r.calls.isEmpty ? "no call from the front end captured for this request" : "not captured")
            for (k, c) in r.calls.enumerated() {
                add("hop_\(c.service)", c.exchange.responseNs, "the \(c.service) service's response end was not captured",
                    ["call": String(k), "service_server": WireSamples.endpoint(c.exchange.server, c.exchange.serverPort)])
            }
            add("hop_between", r.betweenNs, r.calls.isEmpty ? "no call from the front end captured for this request" : "a call's response end was not captured")
            add("hop_back", r.backNs, r.calls.isEmpty ? "no call from the front end captured for this request" : "not captured")
        }
        return out
    }

    /// A Markdown section: one row per request (the first `maxRows`) and the distribution of each
    /// segment over all rows.
    public static func markdown(_ rows: [RequestHops], interface: String, frontName: String, ambiguousCalls: Int, maxRows: Int = 10) -> String {
        func f(_ ns: Int64?) -> String { ns.map { Format.fixed(Double($0) / 1e6, 3) } ?? "—" }
        var s = "### Per-hop breakdown on `\(interface)` (wire, capture timestamps)\n\n"
        s += "Each row is one request to the front end \(frontName); `in` = request's last byte → first call, each call = its request's "
        s += "first byte → its response's last byte, `between` = gaps between calls, `back` = last call's end → the front end's first "
        s += "response byte. All in ms.\n\n"
        if maxRows == 0 { s = "### Per-hop distribution on `\(interface)`: \(frontName) (wire, capture timestamps, ms)\n" }
        if maxRows > 0 && !rows.isEmpty {
            s += "| # | client port | status | first byte | response | in | calls | between | back |\n|---:|---:|---:|---:|---:|---:|---|---:|---:|\n"
        }
        for (i, r) in rows.prefix(maxRows).enumerated() {
            let calls = r.calls.map { "\($0.service) \(f($0.exchange.responseNs))" }.joined(separator: ", ")
            s += "| \(i) | \(r.request.clientPort) | \(r.request.status.map(String.init) ?? "") | \(f(r.request.firstByteNs)) | \(f(r.request.responseNs)) "
            s += "| \(f(r.inNs)) | \(calls.isEmpty ? "none captured" : calls) | \(f(r.betweenNs)) | \(f(r.backNs)) |\n"
        }
        var segments: [(String, [Int64])] = [("client → front end first byte", rows.compactMap(\.request.firstByteNs)),
                                             ("client → front end response", rows.compactMap(\.request.responseNs)),
                                             ("in (front end → first call)", rows.compactMap(\.inNs))]
        var services: [String] = []
        for r in rows { for c in r.calls where !services.contains(c.service) { services.append(c.service) } }
        for name in services {
            segments.append(("front end → \(name) → back", rows.flatMap { $0.calls.filter { $0.service == name }.compactMap(\.exchange.responseNs) }))
        }
        segments.append(("between calls", rows.compactMap(\.betweenNs)))
        segments.append(("back (last call → response)", rows.compactMap(\.backNs)))
        s += "\n| segment | measured | p50 ms | p90 ms | max ms |\n|---|---:|---:|---:|---:|\n"
        for (name, v) in segments where !v.isEmpty {
            let v = v.sorted()
            func q(_ p: Double) -> String { Quantile.rounded(v, p).map(f) ?? "—" }
            s += "| \(name) | \(v.count) | \(q(0.5)) | \(q(0.9)) | \(q(1)) |\n"
        }
        let withCalls = rows.filter { !$0.calls.isEmpty }.count
        s += "\n\(rows.count) requests to the front end, \(withCalls) with their calls captured"
        if ambiguousCalls > 0 { s += "; \(ambiguousCalls) calls started while two requests were in progress and are not attributed" }
        s += ".\n"
        return s
    }
}
