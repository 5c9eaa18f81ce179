import Foundation
import EdgeMeterCore
import EdgeMeterPolicy
import EdgeMeterHTTP

/// Reads the fields of a JSON request body, naming the field (`services[0].nodes[1].target`) in
/// every error.
struct JSONFields {
    let object: [String: Any]
    let path: String

    init(_ object: [String: Any], path: String) { (self.object, self.path) = (object, path) }

    static func body(_ data: Data, example: String) throws -> JSONFields {
        guard !data.isEmpty else { throw ControllerError("the request has no body; send JSON such as \(example)", field: "body") }
        guard let any = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw ControllerError("the body is not valid JSON; send JSON such as \(example)", field: "body")
        }
        guard let o = any as? [String: Any] else { throw ControllerError("the body must be a JSON object, such as \(example)", field: "body") }
        return JSONFields(o, path: "")
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func string(_ key: String, required: Bool = false, example: String) throws -> String? {
        guard has(key) else {
            if required { throw ControllerError("\(name(key)) is missing; give it, e.g. \"\(key)\": \(example)", field: name(key)) }
            return nil
        }
        guard let s = object[key] as? String, !s.isEmpty else {
            throw ControllerError("\(name(key)) must be a non-empty string, e.g. \"\(key)\": \(example)", field: name(key))
        }
        return s
    }

    /// A JSON number (not a boolean, not a string).
    func number(_ key: String, required: Bool = false, example: String) throws -> Double? {
        guard has(key) else {
            if required { throw ControllerError("\(name(key)) is missing; give it, e.g. \"\(key)\": \(example)", field: name(key)) }
            return nil
        }
        guard let v = JSONFields.finiteNumber(object[key]) else {
            throw ControllerError("\(name(key)) must be a number, e.g. \"\(key)\": \(example); got \(Self.show(object[key]))", field: name(key))
        }
        return v
    }

    func array(_ key: String, required: Bool = false, example: String) throws -> [Any]? {
        guard has(key) else {
            if required { throw ControllerError("\(name(key)) is missing; give it, e.g. \"\(key)\": \(example)", field: name(key)) }
            return nil
        }
        guard let a = object[key] as? [Any] else {
            throw ControllerError("\(name(key)) must be an array, e.g. \"\(key)\": \(example)", field: name(key))
        }
        return a
    }

    /// A finite JSON number; nil for booleans (JSONSerialization hands them out as NSNumber too),
    /// strings and everything else.
    static func finiteNumber(_ value: Any?) -> Double? {
        guard let value, !(value is String) else { return nil }
        if let n = value as? NSNumber {
            if String(cString: n.objCType) == "c" { return nil }
            return n.doubleValue.isFinite ? n.doubleValue : nil
        }
        if let d = value as? Double, d.isFinite { return d }
        if let i = value as? Int { return Double(i) }
        return nil
    }

    func unknownKeys(_ known: Set<String>) throws {
        if let k = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ControllerError("\(name(k)) is not a field here; known fields: \(known.sorted().joined(separator: ", "))", field: name(k))
        }
    }

    static func show(_ v: Any?) -> String {
        switch v {
        case let s as String: return "\"\(s)\""
        case let n as NSNumber: return String(cString: n.objCType) == "c" ? (n.boolValue ? "true" : "false") : "\(n)"
        case nil, is NSNull: return "null"
        case is [Any]: return "an array"
        default: return "an object"
        }
    }
}

/// The limits a delay must respect: anything above is a unit mistake or a broken probe.
public enum DelayLimits {
    /// One minute: no request/response delay worth steering by is longer.
    public static let maxMilliseconds: Double = 60_000
    /// Posted samples per row.
    public static let maxSamples = 100_000

    static func check(_ v: Double, field: String) throws {
        guard v >= 0 else { throw ControllerError("\(field) is \(formatMilliseconds(v)) ms; a delay cannot be negative", field: field) }
        guard v <= maxMilliseconds else {
            throw ControllerError("\(field) is \(formatMilliseconds(v)) ms, more than the \(Int(maxMilliseconds)) ms a delay can be; "
                                  + "delays are in milliseconds (was it given in µs or ns?)", field: field)
        }
    }
}

enum ServiceParsing {
    static let nameRule = "letters, digits, '.', '_' or '-'"

    static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 63 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    /// The requirement of a body: `"requirement": "20ms@p90"` or the lab's `"delay": 20` (ms,
    /// with `"percentile": "p90"`, the default).
    static func requirement(_ f: JSONFields, required: Bool) throws -> DelayRequirement? {
        if f.has("requirement") {
            let text = try f.string("requirement", example: "\"20ms@p90\"")!
            do {
                let r = try DelayRequirement(parsing: text)
                try DelayLimits.check(r.maxMilliseconds, field: f.name("requirement"))
                return r
            } catch let e as PolicyError {
                throw ControllerError("\(f.name("requirement")): \(e.description)", field: f.name("requirement"))
            }
        }
        guard let d = try f.number("delay", required: required, example: "20 (ms; or \"requirement\": \"20ms@p90\")") else { return nil }
        guard d > 0 else { throw ControllerError("\(f.name("delay")) must be more than 0 ms, e.g. 20", field: f.name("delay")) }
        try DelayLimits.check(d, field: f.name("delay"))
        var p = DelayPercentile.p90
        if let text = try f.string("percentile", example: "\"p90\"") {
            guard let q = DelayPercentile(rawValue: text.lowercased()) else {
                throw ControllerError("\(f.name("percentile")) \"\(text)\" is not one of p50, p90, p99", field: f.name("percentile"))
            }
            p = q
        }
        return DelayRequirement(percentile: p, maxMilliseconds: d)
    }

    /// The metric a target measures: `http_total` for http://, `tcp_connect` for tcp://.
    static func metric(ofTarget t: String) -> String? {
        if t.hasPrefix("http://") { return "http_total" }
        if t.hasPrefix("tcp://") { return "tcp_connect" }
        return nil
    }

    /// One service of `service_init`; `whenNoneMeets` is used when the body has no `when_none_meets`.
    static func service(_ f: JSONFields, whenNoneMeets: NoneMeetsAction = .moveToBest) throws -> ServiceRecord {
        try f.unknownKeys(["name", "nodes", "active_node", "requirement", "delay", "percentile", "policy", "metric", "window_s",
                           "margin_percent", "dwell_s", "cooldown_s", "min_samples", "max_age_s", "when_none_meets"])
        let name = try f.string("name", required: true, example: "\"edge-app\"")!
        guard validName(name) else { throw ControllerError("\(f.name("name")) \"\(name)\" must be 1-63 \(nameRule)", field: f.name("name")) }
        let rawNodes = try f.array("nodes", required: true, example: "[{\"name\": \"node_1\", \"target\": \"http://127.0.0.1:8001/healthz\"}]")!
        guard !rawNodes.isEmpty else { throw ControllerError("\(f.name("nodes")) is empty; a service needs at least one node", field: f.name("nodes")) }
        var nodes: [ServiceNode] = []
        for (i, raw) in rawNodes.enumerated() {
            let field = "\(f.name("nodes"))[\(i)]"
            var node: ServiceNode
            if let s = raw as? String {
                node = ServiceNode(name: s)
            } else if let o = raw as? [String: Any] {
                let nf = JSONFields(o, path: field)
                try nf.unknownKeys(["name", "target", "move_cost_ms"])
                node = ServiceNode(name: try nf.string("name", required: true, example: "\"node_1\"")!)
                if let t = try nf.string("target", example: "\"http://127.0.0.1:8001/healthz\" or \"tcp://127.0.0.1:8001\"") {
                    try ProbeTarget.check(t, field: nf.name("target"))
                    node.target = t
                }
                if let c = try nf.number("move_cost_ms", example: "250") {
                    guard c >= 0 else { throw ControllerError("\(nf.name("move_cost_ms")) must be 0 ms or more", field: nf.name("move_cost_ms")) }
                    try DelayLimits.check(c, field: nf.name("move_cost_ms"))
                    node.moveCostMilliseconds = c
                }
            } else {
                throw ControllerError("\(field) must be a node name or an object {\"name\", \"target\", \"move_cost_ms\"}", field: field)
            }
            guard validName(node.name) else { throw ControllerError("\(field).name \"\(node.name)\" must be 1-63 \(nameRule)", field: field + ".name") }
            guard !nodes.contains(where: { $0.name == node.name }) else {
                throw ControllerError("\(field).name \"\(node.name)\" is declared twice; node names are unique per service", field: field + ".name")
            }
            nodes.append(node)
        }
        let active = try f.string("active_node", required: true, example: "\"\(nodes[0].name)\"")!
        guard nodes.contains(where: { $0.name == active }) else {
            throw ControllerError("\(f.name("active_node")) \"\(active)\" is not one of the nodes (\(nodes.map(\.name).joined(separator: ", ")))",
                                  status: 404, field: f.name("active_node"))
        }
        let req = try requirement(f, required: true)!
        var h = Hysteresis(whenNoneMeets: whenNoneMeets)
        if let w = try f.string("when_none_meets", example: "\"move-to-best\"") {
            do { h.whenNoneMeets = try NoneMeetsAction(parsing: w, flag: f.name("when_none_meets")) } catch let e as PolicyError {
                throw ControllerError(e.description, field: f.name("when_none_meets"))
            }
        }
        func seconds(_ key: String, _ set: (Int64) -> Void, allowZero: Bool) throws {
            if let v = try f.number(key, example: "3") {
                guard allowZero ? v >= 0 : v > 0, v <= 86_400 else {
                    throw ControllerError("\(f.name(key)) must be \(allowZero ? "0" : "more than 0") to 86400 seconds; got \(v)", field: f.name(key))
                }
                set(Int64(v * 1e9))
            }
        }
        if let m = try f.number("margin_percent", example: "10") { h.marginPercent = m }
        try seconds("dwell_s", { h.dwellNanoseconds = $0 }, allowZero: true)
        try seconds("cooldown_s", { h.cooldownNanoseconds = $0 }, allowZero: true)
        try seconds("max_age_s", { h.maxSampleAgeNanoseconds = $0 }, allowZero: false)
        if let n = try f.number("min_samples", example: "20") {
            guard n >= 1, n <= Double(DelayLimits.maxSamples), n == n.rounded() else {
                throw ControllerError("\(f.name("min_samples")) must be a whole number from 1 to \(DelayLimits.maxSamples)", field: f.name("min_samples"))
            }
            h.minSamples = Int(n)
        }
        do { try h.validate() } catch let e as PolicyError {
            let flagged = e.description.hasPrefix("--margin") ? "margin_percent" : "hysteresis"
            throw ControllerError("\(f.name(flagged)): \(e.description)", field: f.name(flagged))
        }
        var window: Int64 = 30_000_000_000
        try seconds("window_s", { window = $0 }, allowZero: false)
        let policy = try f.string("policy", example: "\"edgemeter\"") ?? "edgemeter"
        guard ["edgemeter", "first-response"].contains(policy) else {
            throw ControllerError("\(f.name("policy")) \"\(policy)\" is not edgemeter or first-response", field: f.name("policy"))
        }
        let targetMetrics = Set(nodes.compactMap { $0.target.flatMap(metric(ofTarget:)) })
        var metric = targetMetrics.first ?? "http_total"
        if let m = try f.string("metric", example: "\"http_total\"") {
            guard DelayMetric.all.contains(m) else {
                throw ControllerError("\(f.name("metric")) \"\(m)\" is not one of \(DelayMetric.all.joined(separator: ", "))", field: f.name("metric"))
            }
            metric = m
        }
        if targetMetrics.count > 1 || (targetMetrics.count == 1 && targetMetrics.first != metric) {
            throw ControllerError("\(f.name("nodes")): the targets measure \(targetMetrics.sorted().joined(separator: " and ")) but the service "
                                  + "judges \(metric); give every node the same kind of target (all http:// or all tcp://)", field: f.name("nodes"))
        }
        return ServiceRecord(name: name, nodes: nodes, activeNode: active, requirement: req, hysteresis: h, windowNanoseconds: window,
                             policy: policy, metric: metric)
    }

    /// `service_init`'s body: `{"services": [SERVICE, ...]}` or one SERVICE object.
    static func serviceInit(_ body: JSONFields, whenNoneMeets: NoneMeetsAction = .moveToBest) throws -> [ServiceRecord] {
        var out: [ServiceRecord] = []
        if body.has("services") {
            try body.unknownKeys(["services"])
            let list = try body.array("services", example: "[{\"name\": \"edge-app\", ...}]")!
            guard !list.isEmpty else { throw ControllerError("services is empty; declare at least one service", field: "services") }
            for (i, s) in list.enumerated() {
                guard let o = s as? [String: Any] else { throw ControllerError("services[\(i)] must be an object", field: "services[\(i)]") }
                let r = try service(JSONFields(o, path: "services[\(i)]"), whenNoneMeets: whenNoneMeets)
                guard !out.contains(where: { $0.name == r.name }) else {
                    throw ControllerError("services[\(i)].name \"\(r.name)\" is declared twice", field: "services[\(i)].name")
                }
                out.append(r)
            }
        } else {
            out.append(try service(body, whenNoneMeets: whenNoneMeets))
        }
        return out
    }
}

/// A node's probe target: `http://HOST:PORT/PATH` or `tcp://HOST:PORT`.
public enum ProbeTarget {
    static func check(_ t: String, field: String) throws {
        if t.hasPrefix("http://") {
            guard (try? HTTPTarget(url: t)) != nil else {
                throw ControllerError("\(field) \"\(t)\" is not a valid http://HOST:PORT/PATH URL", field: field)
            }
        } else if t.hasPrefix("tcp://") {
            guard hostPort(String(t.dropFirst(6))) != nil else {
                throw ControllerError("\(field) \"\(t)\" is not tcp://HOST:PORT (port 1-65535)", field: field)
            }
        } else {
            throw ControllerError("\(field) \"\(t)\" must start with http:// or tcp:// (https is not supported: no TLS stack)", field: field)
        }
    }

    /// `HOST:PORT` or `[V6]:PORT`.
    public static func hostPort(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        var host = String(s[..<colon])
        guard let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else { return nil }
        return (host, port)
    }
}
