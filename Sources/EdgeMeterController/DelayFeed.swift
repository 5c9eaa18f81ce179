import Foundation
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP

/// `edgemeter feed`: a run's delays.csv to a controller (`POST /delays`) or to a scheduler-plugins
/// `NetworkTopology` resource.
public enum DelayFeed {
    /// Metrics in the order `NetworkTopology` prefers them for a (from, to) pair: the network's own
    /// round trip first, then the handshake, then a whole HTTP exchange.
    public static let networkPreference = ["ping_rtt", "tcp_connect", "http_total"]

    /// The `NetworkTopology` (networktopology.diktyo.x-k8s.io/v1alpha1, the CRD in
    /// kubernetes-sigs/scheduler-plugins manifests/networktopology/crd.yaml) for the rows: one
    /// origin per `from`, one cost per `to`, `networkCost` = the measured p90 in ms rounded to the
    /// nearest integer (the CRD takes integers ≥ 0). Per pair the metric is `metric`, or the first of
    /// `networkPreference` the rows have. Pairs without a p90 (every attempt lost) and pairs from a
    /// node to itself are left out, each named in a comment.
    public static func networkTopology(_ rows: [DelayRow], name: String, namespace: String, configmapName: String,
                                       topologyKey: String, metric: String?) throws -> String {
        var pairs: [String: [String: DelayRow]] = [:]
        var origins: [String] = []
        for r in rows {
            if let metric, r.metric != metric { continue }
            if pairs[r.from] == nil { origins.append(r.from) }
            if let have = pairs[r.from]?[r.to] {
                let rank = { (m: String) in networkPreference.firstIndex(of: m) ?? networkPreference.count }
                if rank(r.metric) >= rank(have.metric) { continue }
            }
            pairs[r.from, default: [:]][r.to] = r
        }
        guard !origins.isEmpty else {
            throw ControllerError("no delays.csv row\(metric.map { " has metric \($0)" } ?? "")"
                                  + "; run ping, tcping or http scenarios first (or choose another --metric)", field: "--metric")
        }
        func quote(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var out = """
        # Written by edgemeter feed from delays.csv: networkCost = measured p90 in ms, rounded.
        apiVersion: networktopology.diktyo.x-k8s.io/v1alpha1
        kind: NetworkTopology
        metadata:
          name: \(quote(name))
          namespace: \(quote(namespace))
        spec:
          configmapName: \(quote(configmapName))
          weights:
          - name: UserDefined
            topologyList:
            - topologyKey: \(quote(topologyKey))
              originList:

        """
        for o in origins {
            out += "      - origin: \(quote(o))\n"
            var costs = ""
            var skipped: [String] = []
            for (to, r) in pairs[o]!.sorted(by: { $0.key < $1.key }) {
                if to == o { skipped.append("\(to) (the origin itself)"); continue }
                guard let p90 = r.p90Milliseconds else { skipped.append("\(to) (\(r.metric): no answer in \(r.samples) attempts)"); continue }
                costs += "        # \(r.metric) p90 \(Format.fixed(p90, 3)) ms, \(r.received)/\(r.samples) answered, "
                    + "\(Format.timestamp(r.windowStart)) to \(Format.timestamp(r.windowEnd))\n"
                costs += "        - destination: \(quote(to))\n          networkCost: \(Int(p90.rounded()))\n"
            }
            for s in skipped { out += "        # left out: \(s)\n" }
            out += costs.isEmpty ? "        costList: []\n" : "        costList:\n" + costs
        }
        return out
    }

    /// What `post` did.
    public struct PostResult: Sendable {
        public var posted: [DelayRow]
        /// Rows not posted, each with the reason.
        public var skipped: [(row: DelayRow, reason: String)]
        public var answer: String
    }

    /// One request to the controller at `base` (a new connection, bearer `token` when given); the response.
    public static func exchange(_ base: HTTPTarget, method: String, path: String, token: String?, body: [UInt8] = [],
                         timeout: Duration) async throws -> HTTPResponseInfo {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if !body.isEmpty { headers.append(("Content-Type", "application/json")) }
        let basePath = base.path == "/" ? "" : (base.path.hasSuffix("/") ? String(base.path.dropLast()) : base.path)
        let amount = TimeAmount.nanoseconds(timeout.nanoseconds)
        do {
            let addr = try await HTTPConnection.resolve(host: base.host, port: base.port)
            let conn = try await HTTPConnection.connect(to: addr, targetName: "\(base.host):\(base.port)", timeout: amount)
            defer { conn.close() }
            let r = try await conn.send(HTTPRequestSpec(method: method, path: basePath + path, headers: headers, body: body),
                                        host: base.hostHeader, keepAlive: false, timeout: amount)
            return r.response
        } catch {
            throw ControllerError("\(method) \(base)\(path.dropFirst()) failed: \(describe(error)); is `edgemeter controller` running there?",
                                  status: 502, field: "--controller")
        }
    }

    /// Posts the rows to the controller at `base`. Rows go to the nodes of `service` (or of every
    /// service) that judge their metric; the others are skipped with the reason (no node of that
    /// name, another metric, every attempt lost). The node a row feeds is its `to` when a node has
    /// that name, else the node whose probe target is the row's target (a run made outside a lab
    /// topology names targets, not nodes).
    ///
    /// By default the rows carry no window times, so the controller stamps their samples at arrival
    /// (a finished run's figures count as current); `keepTimestamps` sends window_start/window_end,
    /// and rows older than the service's window then leave it at once.
    public static func post(_ rows: [DelayRow], controller base: HTTPTarget, token: String?, service: String?,
                            keepTimestamps: Bool = false, timeout: Duration = .seconds(10)) async throws -> PostResult {
        let statusPath = "/status" + (service.map { "?service=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
        let st = try await exchange(base, method: "GET", path: statusPath, token: nil, timeout: timeout)
        guard st.status == 200, let obj = try? JSONSerialization.jsonObject(with: Data(st.bodyText.utf8)) as? [String: Any],
              let services = obj["services"] as? [[String: Any]] else {
            throw ControllerError("GET \(base)status answered \(st.statusLine): \(st.bodyText.prefix(300))", status: 502,
                                  field: st.status == 404 ? "--service" : "--controller")
        }
        var accepts: [String: Set<String>] = [:]   // node → metrics some service judges
        var byTarget: [String: String] = [:]       // a node's probe target → its name
        for s in services {
            guard let metric = s["metric"] as? String, let nodes = s["nodes"] as? [[String: Any]] else { continue }
            for n in nodes {
                guard let name = n["name"] as? String else { continue }
                accepts[name, default: []].insert(metric)
                if let t = n["target"] as? String { byTarget[t] = name }
            }
        }
        var posted: [DelayRow] = []
        var skipped: [(row: DelayRow, reason: String)] = []
        for var r in rows {
            // A row names its node by the lab's node name, or by the node's probe target.
            if accepts[r.to] == nil, let name = byTarget[r.target] { r.to = name }
            guard let metrics = accepts[r.to] else { skipped.append((r, "the controller has no node \(r.to)")); continue }
            guard metrics.contains(r.metric) else {
                skipped.append((r, "node \(r.to) is judged on \(metrics.sorted().joined(separator: ", ")), not \(r.metric)")); continue
            }
            guard r.received > 0 else { skipped.append((r, "every attempt was lost")); continue }
            posted.append(r)
        }
        guard !posted.isEmpty else {
            let why = skipped.map { "\($0.0.from)→\($0.0.to) \($0.0.metric): \($0.1)" }.joined(separator: "; ")
            throw ControllerError("no row of delays.csv fits the controller's services: \(why.isEmpty ? "the file has no rows" : why)",
                                  field: "RUN_DIR")
        }
        var list: [[String: Any]] = []
        for r in posted {
            // from, target and received ride along (the controller ignores them; `edgemeter matrix`'s
            // collector checks the origin and keeps the row whole).
            var o: [String: Any] = ["node": r.to, "metric": r.metric, "samples": r.samples, "received": r.received,
                                    "loss_percent": r.lossPercent, "from": r.from, "target": r.target]
            if keepTimestamps {
                o["window_start"] = Format.timestamp(r.windowStart)
                o["window_end"] = Format.timestamp(r.windowEnd)
            }
            o["p50_ms"] = r.p50Milliseconds
            o["p90_ms"] = r.p90Milliseconds
            o["p99_ms"] = r.p99Milliseconds
            list.append(o)
        }
        var body: [String: Any] = ["delays": list]
        if let service { body["service"] = service }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let r = try await exchange(base, method: "POST", path: "/delays", token: token, body: Array(data), timeout: timeout)
        guard r.status == 200 else {
            throw ControllerError("POST \(base)delays answered \(r.statusLine): \(r.bodyText.trimmingCharacters(in: .whitespacesAndNewlines))",
                                  status: r.status, field: r.status == 401 ? "--token-file" : nil)
        }
        return PostResult(posted: posted, skipped: skipped, answer: r.bodyText)
    }
}
