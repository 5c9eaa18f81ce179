import Foundation
import Yams
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterRun
import EdgeMeterLab

/// `edgemeter agent --config FILE`: what to probe, where to serve, who may be probed through
/// `/probe`, where to push delays. Loaded and checked whole before anything runs; every problem is
/// reported as `FILE:LINE: message` (as suites are), all of them at once.
///
/// ```yaml
/// listen: 127.0.0.1:9427          # default; 0.0.0.0:9427 to serve other hosts
/// node: edge-1                    # this agent's origin in pushed delays (default: the host name)
/// interval: 1s                    # default interval of every probe
/// topology: edge-cloud            # optional: targets may name its nodes
/// nodes: {cloud: 10.0.0.5}        # optional: more node names → addresses (hosts outside a lab)
/// probe_cidrs: [127.0.0.0/8]      # /probe answers only for targets inside these (default: none)
/// probe_timeout: 5s               # /probe's limit without X-Prometheus-Scrape-Timeout-Seconds
/// controller:                     # optional: POST /delays every window
///   url: http://127.0.0.1:9000
///   token_file: /run/secrets/edgemeter-token   # else EDGEMETER_CONTROLLER_TOKEN
///   window: 10s
/// probes:
///   - {name: loop, kind: ping, targets: [127.0.0.1]}
///   - {name: api, kind: http, url: http://cloud:8000/healthz, interval: 5s}
/// ```
///
/// A probe takes the suite format's keys of its kind (`ping`, `tcping`, `http`, `calc`) with the
/// same types, checks and messages; `vehicle` takes `url`, `interval`, `timeout`,
/// `front_distance`, `rear_distance`. Keys that bound a suite scenario (`count`, `deadline`) or
/// start a workload (`calculator`) have no place in an agent that runs until stopped.
public struct AgentConfig: Sendable {
    public var file: String
    public var listenHost: String
    public var listenPort: Int
    /// The origin name of pushed delays (`from`).
    public var node: String
    /// Networks `/probe` may reach; empty: none (every /probe answers 403).
    public var probeCIDRs: [CIDR]
    /// `/probe`'s time limit when Prometheus sends no `X-Prometheus-Scrape-Timeout-Seconds`.
    public var probeTimeout: Duration
    public var controller: ControllerPush?
    public var probes: [AgentProbe]

    public static let defaultPort = 9427
    public static let defaultInterval: Duration = .seconds(1)

    /// Where and how often windowed delay summaries go.
    public struct ControllerPush: Sendable {
        public var url: HTTPTarget
        /// The file holding the bearer token; nil: the environment variable EDGEMETER_CONTROLLER_TOKEN.
        public var tokenFile: String?
        /// One summary per target and metric per window, posted at the window's end.
        public var window: Duration
        /// Feed only this service's nodes (`POST /delays` `service`).
        public var service: String?
    }

    /// The probes' targets, counted over all probes.
    public var targetCount: Int { probes.reduce(0) { $0 + $1.targets.count } }
}

/// One probe of the agent: a suite-style scenario of one kind, run every `interval` until stopped.
public struct AgentProbe: Sendable {
    /// Unique in the file; the `name` label of its series.
    public var name: String
    public var kind: String
    /// The validated keys, as a suite scenario of the same kind has them (`interval` included).
    public var scenario: ValidatedScenario
    public var targets: [AgentTarget]
    public var interval: Duration
    public var line: Int
}

/// One target as written (`target` label) and what is probed: the same text, or a topology node's
/// name replaced by its address.
public struct AgentTarget: Sendable, Equatable {
    /// As written in the file: `127.0.0.1`, `cloud:8000`, `http://cloud:8000/healthz`.
    public var name: String
    /// What the probe connects to: the name with a node replaced by its address.
    public var address: String
    /// The topology node the target names (the `to` of pushed delays), nil for an address.
    public var node: String?
}

/// A network in CIDR notation, IPv4 or IPv6 (`10.0.0.0/8`, `::1/128`).
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public var bytes: [UInt8]
    public var prefixLength: Int
    public var text: String
    public var description: String { text }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard let addr = CIDR.parseAddress(String(parts[0])) else { return nil }
        let maxLength = addr.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...maxLength).contains(l) else { return nil }
            length = l
        } else if parts.count > 2 { return nil }
        (bytes, prefixLength, self.text) = (addr, length, text)
    }

    /// 4 bytes for an IPv4 literal, 16 for IPv6; nil for anything else.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let b = withUnsafeBytes(of: &v6) { Array($0) }
            // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address.
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return Array(b[12...]) }
            return b
        }
        return nil
    }

    /// Whether the address (4 or 16 bytes) is inside this network.
    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var left = prefixLength
        for i in bytes.indices where left > 0 {
            let n = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - n))
            if address[i] & mask != bytes[i] & mask { return false }
            left -= n
        }
        return true
    }
}

/// Loads an agent configuration.
public enum AgentConfigLoader {
    /// The kinds an agent runs, with their declarations (the suite's for ping, tcping, http, calc).
    public static var declarations: [String: KindDeclaration] {
        var d: [String: KindDeclaration] = [:]
        for k in ScenarioKinds.all where ["ping", "tcping", "http", "calc"].contains(k.declaration.kind) { d[k.declaration.kind] = k.declaration }
        d["vehicle"] = VehicleAttempts.declaration
        return d
    }

    /// Keys a suite scenario has that an agent refuses, with the reason.
    static let refused: [String: String] = [
        "count": "the agent probes until it is stopped: remove `count` (the interval sets the pace)",
        "deadline": "the agent probes until it is stopped: remove `deadline`",
        "calculator": "the agent probes running servers: remove `calculator` and give the front end's `url`",
        "capture": "the agent does not capture packets: remove `capture` (use `edgemeter capture` beside it)",
        "capture_filter": "the agent does not capture packets: remove `capture_filter`",
        "from": "an agent runs on its node: start one agent per node instead of `from`",
    ]

    public static func load(file: String) throws -> AgentConfig {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw SuiteErrors([SuiteError(file: file, line: 1, message: "cannot read the agent configuration: check the path and its permissions")])
        }
        return try load(yaml: text, file: file)
    }

    /// `hostName` is the default `node`.
    public static func load(yaml: String, file: String, hostName: String = ProcessInfo.processInfo.hostName) throws -> AgentConfig {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: yaml) } catch let e as YamlError {
            throw SuiteErrors([SuiteError(file: file, line: SuiteLoader.yamlErrorLine(e), message: "not valid YAML: \(SuiteLoader.yamlProblem(e))")])
        }
        guard let root, case .mapping(let top) = root else {
            throw SuiteErrors([SuiteError(file: file, line: 1, message: "an agent configuration is a mapping with `probes` (and `listen`, `probe_cidrs`, ...)")])
        }
        var problems: [SuiteError] = []
        func problem(_ line: Int, _ message: String) { problems.append(SuiteError(file: file, line: line, message: message)) }
        func line(_ n: Yams.Node) -> Int { n.mark?.line ?? 1 }
        func scalar(_ n: Yams.Node) -> String? { if case .scalar(let s) = n { return s.string }; return nil }

        var config = AgentConfig(file: file, listenHost: "127.0.0.1", listenPort: AgentConfig.defaultPort, node: hostName,
                                 probeCIDRs: [], probeTimeout: .seconds(5), controller: nil, probes: [])
        var interval = AgentConfig.defaultInterval
        var topologyRef: (String, Int)?
        var nodeAddresses: [String: String] = [:]
        var probeNodes: [Yams.Node] = []
        var probesLine = 1
        let topKeys = ["listen", "node", "interval", "topology", "nodes", "probe_cidrs", "probe_timeout", "controller", "probes"]
        for (k, v) in top {
            let key = k.string ?? ""
            let l = line(k)
            switch key {
            case "listen":
                guard let t = scalar(v), let hp = splitListen(t) else {
                    problem(line(v), "`listen` must be HOST:PORT such as 127.0.0.1:\(AgentConfig.defaultPort) (0.0.0.0:PORT serves every interface)"); continue
                }
                (config.listenHost, config.listenPort) = hp
            case "node":
                guard let t = scalar(v), !t.isEmpty else { problem(line(v), "`node` must be this agent's node name, such as edge-1"); continue }
                config.node = t
            case "interval", "probe_timeout":
                guard let t = scalar(v), let d = parseDuration(t), d > .zero else {
                    problem(line(v), "`\(key)` must be a positive duration such as 1s or 500ms, got \(SuiteLoader.render(v))"); continue
                }
                if key == "interval" {
                    guard d >= .milliseconds(10) else { problem(line(v), "`interval` must be at least 10ms: an agent samples, it does not load"); continue }
                    interval = d
                } else { config.probeTimeout = d }
            case "topology":
                guard let t = scalar(v), !t.isEmpty else { problem(line(v), "`topology` must be a topology name (edge-cloud, ...) or file"); continue }
                topologyRef = (t, line(v))
            case "nodes":
                guard case .mapping(let map) = v, !map.isEmpty else {
                    problem(line(v), "`nodes` must map node names to addresses, such as {cloud: 10.0.0.5, edge: 10.0.1.5}"); continue
                }
                for (nk, nv) in map {
                    guard let n = nk.string, !n.isEmpty, let a = scalar(nv), NodeReference.isLiteral(a) else {
                        problem(line(nk), "`nodes`: \(nk.string ?? "?") must map to an IP address such as 10.0.0.5, got \(SuiteLoader.render(nv))"); continue
                    }
                    nodeAddresses[n] = a
                }
            case "probe_cidrs":
                let items: [String]
                switch v {
                case .sequence(let seq): items = seq.compactMap(scalar)
                case .scalar(let s): items = [s.string]
                default: items = []
                }
                if items.isEmpty { problem(line(v), "`probe_cidrs` must be a list of networks such as [127.0.0.0/8, 10.203.0.0/16]") }
                for item in items {
                    guard let c = CIDR(item) else {
                        problem(line(v), "`probe_cidrs`: \"\(item)\" is not a network in CIDR notation such as 10.0.0.0/8 or ::1/128"); continue
                    }
                    config.probeCIDRs.append(c)
                }
            case "controller":
                if let c = controller(v, problem: problem) { config.controller = c }
            case "probes":
                probesLine = l
                guard case .sequence(let seq) = v, !seq.isEmpty else { problem(l, "`probes` must be a list of probes, each with `name` and `kind`"); continue }
                probeNodes = Array(seq)
            default:
                problem(l, "unknown key `\(key)` at the top level\(suggestionText(key, topKeys)); expected one of: \(topKeys.joined(separator: ", "))")
            }
        }
        if probeNodes.isEmpty && !problems.contains(where: { $0.line == probesLine }) {
            problem(probesLine, "`probes` is missing or empty: list at least one probe, such as {name: loop, kind: ping, targets: [127.0.0.1]}")
        }

        // The topology, for node names in targets.
        var topology: Topology?
        if case let (ref, l)? = topologyRef {
            do { topology = try TopologyFiles.loadDeployment(ref, relativeTo: URL(fileURLWithPath: file).deletingLastPathComponent().path).topology } catch {
                problem(l, "`topology`: \(error)")
            }
        }

        var seen: [String: Int] = [:]
        for n in probeNodes {
            // Names are checked before the probe itself, so an invalid probe still claims its name.
            if case .mapping(let m) = n, let name = m.first(where: { $0.key.string == "name" })?.value.string, !name.isEmpty {
                let l = n.mark?.line ?? 1
                if let first = seen[name] {
                    problem(l, "duplicate probe name \"\(name)\" (first used on line \(first)); names must be unique")
                    continue
                }
                seen[name] = l
            }
            guard let p = probe(n, file: file, interval: interval, topology: topology, hasTopology: topologyRef != nil,
                                nodes: nodeAddresses, problems: &problems) else { continue }
            config.probes.append(p)
        }
        if !problems.isEmpty {
            throw SuiteErrors(problems.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element))
        }
        return config
    }

    static func suggestionText(_ word: String, _ candidates: [String]) -> String {
        nearestWord(to: word, in: candidates).map { " (did you mean `\($0)`?)" } ?? ""
    }

    /// `HOST:PORT` or `[v6]:PORT`, port 0-65535 (`--listen`'s form too).
    public static func listenAddress(_ text: String) -> (String, Int)? { splitListen(text) }

    /// `HOST:PORT` or `[v6]:PORT`, port 0-65535.
    static func splitListen(_ text: String) -> (String, Int)? {
        var host: String, portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host, port)
    }

    static func controller(_ v: Yams.Node, problem: (Int, String) -> Void) -> AgentConfig.ControllerPush? {
        let l = v.mark?.line ?? 1
        guard case .mapping(let map) = v else { problem(l, "`controller` must be a mapping with `url` (and `token_file`, `window`, `service`)"); return nil }
        var url: HTTPTarget?, tokenFile: String?, window: Duration = .seconds(10), service: String?
        let keys = ["url", "token_file", "window", "service"]
        var ok = true
        for (k, val) in map {
            let key = k.string ?? ""
            let vl = val.mark?.line ?? l
            let text: String? = if case .scalar(let s) = val { s.string } else { nil }
            switch key {
            case "url":
                do { url = try HTTPTarget(url: text ?? "") } catch { problem(vl, "`controller.url`: \(error)"); ok = false }
            case "token_file":
                guard let t = text, !t.isEmpty else { problem(vl, "`controller.token_file` must be the path of the file holding the bearer token"); ok = false; continue }
                tokenFile = t
            case "window":
                guard let t = text, let d = parseDuration(t), d >= .seconds(1) else {
                    problem(vl, "`controller.window` must be a duration of at least 1s, such as 10s"); ok = false; continue
                }
                window = d
            case "service":
                guard let t = text, !t.isEmpty else { problem(vl, "`controller.service` must be a service name"); ok = false; continue }
                service = t
            default:
                problem(k.mark?.line ?? l, "unknown key `\(key)` in `controller`\(suggestionText(key, keys)); expected one of: \(keys.joined(separator: ", "))")
                ok = false
            }
        }
        guard ok else { return nil }
        guard let url else { problem(l, "`controller` needs `url`, such as http://127.0.0.1:9000"); return nil }
        return AgentConfig.ControllerPush(url: url, tokenFile: tokenFile, window: window, service: service)
    }

    /// Validates one probe against its kind's declaration; nil when it cannot be built (problems added).
    static func probe(_ node: Yams.Node, file: String, interval: Duration, topology: Topology?, hasTopology: Bool,
                      nodes: [String: String] = [:], problems: inout [SuiteError]) -> AgentProbe? {
        let line = node.mark?.line ?? 1
        var found: [SuiteError] = []
        func problem(_ l: Int, _ message: String) { found.append(SuiteError(file: file, line: l, message: message)) }
        defer { problems += found }
        guard case .mapping(let map) = node else { problem(line, "a probe must be a mapping with `name`, `kind` and its keys"); return nil }
        let decls = declarations
        let kinds = decls.keys.sorted()
        var name: String?, kind: String?, kindLine = line
        for (k, v) in map {
            if k.string == "name" { name = v.string }
            if k.string == "kind" { kind = v.string; kindLine = k.mark?.line ?? line }
        }
        guard let name, !name.isEmpty else { problem(line, "probe without `name`: every probe needs a unique name (its series' `name` label)"); return nil }
        guard let kind else { problem(line, "probe \"\(name)\" has no `kind`; expected one of: \(kinds.joined(separator: ", "))"); return nil }
        guard let decl = decls[kind] else {
            let suite = ["load", "startup", "capture", "reach", "footprint"].contains(kind) ? " (a suite kind the agent does not run continuously)" : ""
            problem(kindLine, "probe \"\(name)\": unknown kind `\(kind)`\(suite)\(suggestionText(kind, kinds)); expected one of: \(kinds.joined(separator: ", "))")
            return nil
        }
        var params: [String: ParameterValue] = [:]
        var lines: [String: Int] = [:]
        let suiteSpecs = decl.parameters.filter(\.inSuite)
        let known = (suiteSpecs.map(\.key).filter { refused[$0] == nil } + ["description"]).sorted()
        for (k, v) in map {
            let key = k.string ?? ""
            let kl = k.mark?.line ?? line
            if key == "name" || key == "kind" || key == "description" { continue }
            if let why = refused[key] { problem(kl, "probe \"\(name)\": \(why)"); continue }
            guard let spec = suiteSpecs.first(where: { $0.key == key }) else {
                problem(kl, "probe \"\(name)\": unknown key `\(key)` for kind \(kind)\(suggestionText(key, known)); expected one of: \(known.joined(separator: ", "))")
                continue
            }
            let value: ParameterValue?
            switch v {
            case .scalar(let s):
                value = spec.type == .positiveIntegerList || spec.type == .stringList
                    ? SuiteLoader.convert(list: [s.string], spec.type) : SuiteLoader.convert(text: s.string, spec.type)
            case .sequence(let seq):
                let items = seq.compactMap { n -> String? in if case .scalar(let s) = n { return s.string }; return nil }
                value = items.count == seq.count ? SuiteLoader.convert(list: items, spec.type) : nil
            default:
                value = nil
            }
            guard let value else {
                let text: String? = if case .scalar(let sc) = v { sc.string } else { nil }
                problem(v.mark?.line ?? kl, "probe \"\(name)\": " + SuiteLoader.mismatch("`\(key)`", spec.type, text: text, rendered: SuiteLoader.render(v)))
                continue
            }
            if let message = spec.validate?(value) {
                problem(v.mark?.line ?? kl, "probe \"\(name)\": " + decl.render(message.replacingOccurrences(of: "{}", with: "{\(key)}"), .suite))
                continue
            }
            params[key] = value
            lines[key] = kl
        }
        // Required keys, except the bounds an agent refuses.
        for key in decl.required where refused[key] == nil && params[key] == nil && !map.contains(where: { $0.key.string == key }) {
            problem(line, "probe \"\(name)\": missing `\(key)` (\(decl.spec(key)?.type.expectation ?? "required"))")
        }
        for s in suiteSpecs where params[s.key] == nil && s.key != "interval" { if let d = s.suiteDefault { params[s.key] = d } }
        params["interval"] = params["interval"] ?? .duration(interval)
        guard found.isEmpty else { return nil }
        // The kind's cross-field checks, on a scenario that runs until stopped (as `edgemeter KIND`
        // without a count does), worded as a suite words them.
        let scenario = ValidatedScenario(name: name, kind: kind, line: line, parameters: params, lines: lines, origin: .commandLine)
        for check in decl.checks {
            if let p = check(scenario) {
                problem(lines[p.key] ?? line, "probe \"\(name)\": \(decl.render(p.message, .suite))")
                return nil
            }
        }
        // Targets: a list (ping, tcping) or one URL (http, calc, vehicle); node names → addresses.
        var targets: [AgentTarget] = []
        func nodeAddress(_ host: String, key: String) -> String? {
            guard !NodeReference.isLiteral(host), host != "localhost" else { return nil }
            if let a = nodes[host] { return a }
            guard hasTopology else { return nil }
            guard let topology else { return nil } // the topology's own problem is reported
            guard let n = topology.node(host) else {
                problem(lines[key] ?? line, "probe \"\(name)\": `\(host)` is not a node of topology \(topology.name)\(suggestionText(host, topology.nodes.map(\.name))); its nodes: \(topology.nodes.map(\.name).joined(separator: ", "))")
                return nil
            }
            guard let a = n.interfaces.compactMap(\.address).first else {
                problem(lines[key] ?? line, "probe \"\(name)\": node \(host) has no fixed address in topology \(topology.name); give its address instead")
                return nil
            }
            return a.description
        }
        if let list = scenario.strings("targets") {
            for t in list {
                if let h = NodeReference.host(ofTarget: t), let a = nodeAddress(h, key: "targets") {
                    let port = NodeReference.port(ofTarget: t)
                    targets.append(AgentTarget(name: t, address: a + (port.map { ":\($0)" } ?? ""), node: h))
                } else {
                    targets.append(AgentTarget(name: t, address: t, node: nil))
                }
            }
        } else if let url = scenario.string("url") {
            if let h = NodeReference.host(ofURL: url), let a = nodeAddress(h, key: "url") {
                targets.append(AgentTarget(name: url, address: NodeReference.replacingHost(ofURL: url, with: a), node: h))
            } else {
                targets.append(AgentTarget(name: url, address: url, node: nil))
            }
        }
        guard found.isEmpty else { return nil }
        return AgentProbe(name: name, kind: kind, scenario: scenario, targets: targets, interval: scenario.duration("interval") ?? interval, line: line)
    }
}
