import Foundation
import Yams

/// The type a suite parameter must have. Validation turns YAML scalars into `ParameterValue`s and
/// reports anything else as `file:line: what is wrong, what is expected`.
public enum ParameterType: Sendable, Equatable {
    case positiveInteger
    case nonNegativeInteger
    /// `250ms`, `1.5s`, `200us`, `2m`, or a bare number of seconds.
    case duration
    case bool
    case string
    case stringList
    case oneOf([String])
    case positiveNumber
    /// Any finite number, negative included.
    case number
    /// One positive integer or a list of them (`expect_status: 200` or `[200, 204]`; repeatable on the CLI).
    case positiveIntegerList
    /// Lab routes: a list of `{node: NODE, to: PREFIX, via: ROUTER}` maps or `"NODE PREFIX via ROUTER"`
    /// texts (as `edgemeter lab route add NAME NODE PREFIX via ROUTER`); the value is the texts.
    case routeList

    public var expectation: String {
        switch self {
        case .positiveInteger: return "a positive integer"
        case .nonNegativeInteger: return "a non-negative integer"
        case .duration: return "a duration such as 250ms, 1.5s, 200us or 2m"
        case .bool: return "true or false"
        case .string: return "a string"
        case .stringList: return "a list of strings"
        case .oneOf(let values): return "one of " + values.joined(separator: ", ")
        case .positiveNumber: return "a positive number"
        case .number: return "a number"
        case .positiveIntegerList: return "a positive integer or a list of them"
        case .routeList: return "a list of routes such as {node: front, to: 192.168.2.0/24, via: rt2}"
        }
    }
}

public enum ParameterValue: Sendable, Equatable {
    case integer(Int)
    case number(Double)
    case duration(Duration)
    case bool(Bool)
    case string(String)
    case strings([String])
    case integers([Int])
}

/// Where a scenario's parameters came from: a suite file or `edgemeter KIND` flags. Declarations
/// may differ on purpose between the two (a default, a bound only a suite needs) and say why.
public enum ScenarioOrigin: String, Sendable, Equatable {
    case suite
    case commandLine
}

/// What a scenario kind accepts. Each probe/backend module contributes one schema; the suite loader
/// validates every scenario against its kind's schema before anything runs.
public struct ScenarioSchema: Sendable {
    public var kind: String
    public var parameters: [String: ParameterType]
    public var required: [String]
    /// Per-value checks after the type matched (a range, a format); a message without the
    /// file:line prefix, or nil.
    public var valueCheck: @Sendable (_ key: String, ParameterValue) -> String?
    /// Values a scenario gets for keys it does not give (after the `required` check).
    public var defaults: [String: ParameterValue]
    /// Extra cross-field checks; return a message (without the file:line prefix) to reject.
    public var check: @Sendable (ValidatedScenario) -> (key: String, message: String)?

    public init(kind: String, parameters: [String: ParameterType], required: [String] = [],
                defaults: [String: ParameterValue] = [:],
                valueCheck: @escaping @Sendable (String, ParameterValue) -> String? = { _, _ in nil },
                check: @escaping @Sendable (ValidatedScenario) -> (key: String, message: String)? = { _ in nil }) {
        (self.kind, self.parameters, self.required) = (kind, parameters, required)
        (self.defaults, self.valueCheck, self.check) = (defaults, valueCheck, check)
    }
}

/// A scenario that passed validation: typed parameters plus the line each came from.
public struct ValidatedScenario: Sendable {
    public var name: String
    public var kind: String
    public var line: Int
    public var parameters: [String: ParameterValue]
    public var lines: [String: Int]
    public var origin: ScenarioOrigin

    public init(name: String, kind: String, line: Int, parameters: [String: ParameterValue], lines: [String: Int] = [:],
                origin: ScenarioOrigin = .suite) {
        (self.name, self.kind, self.line, self.parameters, self.lines, self.origin) = (name, kind, line, parameters, lines, origin)
    }

    public func int(_ key: String) -> Int? {
        if case .integer(let v)? = parameters[key] { return v }
        return nil
    }
    public func number(_ key: String) -> Double? {
        switch parameters[key] {
        case .number(let v)?: return v
        case .integer(let v)?: return Double(v)
        default: return nil
        }
    }
    public func duration(_ key: String) -> Duration? {
        if case .duration(let v)? = parameters[key] { return v }
        return nil
    }
    public func bool(_ key: String) -> Bool? {
        if case .bool(let v)? = parameters[key] { return v }
        return nil
    }
    public func string(_ key: String) -> String? {
        if case .string(let v)? = parameters[key] { return v }
        return nil
    }
    public func strings(_ key: String) -> [String]? {
        if case .strings(let v)? = parameters[key] { return v }
        return nil
    }
    public func integers(_ key: String) -> [Int]? {
        if case .integers(let v)? = parameters[key] { return v }
        return nil
    }
}

public struct Suite: Sendable {
    public var name: String
    public var description: String
    public var scenarios: [ValidatedScenario]
    public var path: String
    /// The suite-level `topology: NAME|FILE`: every scenario without its own `topology` runs in it.
    public var topology: String?
    /// The suite-level `compare:` list: scenarios of the run set side by side (`SuiteComparison`).
    public var comparisons: [SuiteComparison]

    public init(name: String, description: String, scenarios: [ValidatedScenario], path: String, topology: String? = nil,
                comparisons: [SuiteComparison] = []) {
        (self.name, self.description, self.scenarios, self.path, self.topology) = (name, description, scenarios, path, topology)
        self.comparisons = comparisons
    }

    /// The topology a scenario runs in: its own `topology`, else the suite's; nil = none (the host only).
    public func topology(of scenario: ValidatedScenario) -> String? { scenario.string("topology") ?? topology }
}

/// The lab topologies a suite may name, as the suite loader needs them to validate `topology:`,
/// `from:` and node names in targets and URLs. Core reads no files: the lab module provides the
/// lookup (`SuiteTopologies.catalog` in EdgeMeterRun).
public struct TopologyCatalog: Sendable {
    /// What the loader needs to know of one topology.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var file: String
        public var nodes: [String]
        public init(name: String, file: String, nodes: [String]) { (self.name, self.file, self.nodes) = (name, file, nodes) }
    }
    /// `reference` (a built-in name or a file; relative files against `suiteDirectory`) → the
    /// topology, or a message saying what is wrong and what to do (without the file:line prefix).
    public var lookup: @Sendable (_ reference: String, _ suiteDirectory: String) -> Result<Entry, TopologyLookupError>
    /// Kinds whose scenarios may run inside a node (`from: NODE`).
    public var kindsWithFrom: Set<String>

    public init(kindsWithFrom: Set<String>, lookup: @escaping @Sendable (String, String) -> Result<Entry, TopologyLookupError>) {
        (self.kindsWithFrom, self.lookup) = (kindsWithFrom, lookup)
    }
}

public struct TopologyLookupError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where scenarios name hosts: the host of each `targets` item (`HOST`, `HOST:PORT`, `[v6]:PORT`)
/// and of an http/load/calc `url`. In a scenario with a topology such a host is a node name or an
/// IP literal.
public enum NodeReference {
    /// The host part of a target (`front:50000` → `front`); nil for an IPv6 literal.
    public static func host(ofTarget t: String) -> String? {
        if t.hasPrefix("[") { return nil }
        let parts = t.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1 { return t }
        if parts.count == 2 { return String(parts[0]) }
        return nil // an IPv6 literal without brackets
    }

    /// The port of a target, when it has one.
    public static func port(ofTarget t: String) -> Int? {
        if t.hasPrefix("["), let close = t.firstIndex(of: "]") {
            let rest = t[t.index(after: close)...]
            return rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil
        }
        let parts = t.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 ? Int(parts[1]) : nil
    }

    /// The host of an `http://HOST[:PORT]/...` URL (nil for an IPv6 literal or a path-only URL).
    public static func host(ofURL u: String) -> String? { authority(u).map { host(ofTarget: String($0)) } ?? nil }

    /// The port of an `http://HOST[:PORT]/...` URL (80 when none is written).
    public static func port(ofURL u: String) -> Int? {
        guard let a = authority(u) else { return nil }
        return port(ofTarget: String(a)) ?? 80
    }

    /// The URL with its host (and port, when given) replaced: `http://front:50000/x` → `http://10.203.0.10:50000/x`.
    public static func replacingHost(ofURL u: String, with host: String, port: Int? = nil) -> String {
        guard let a = authority(u), let r = u.range(of: a) else { return u }
        let p = port ?? NodeReference.port(ofTarget: String(a))
        return u.replacingCharacters(in: r, with: host + (p.map { ":\($0)" } ?? ""))
    }

    static func authority(_ u: String) -> Substring? {
        guard let scheme = u.range(of: "://") else { return nil }
        let rest = u[scheme.upperBound...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let a = rest[..<end]
        return a.isEmpty ? nil : a
    }

    /// An IPv4 or IPv6 literal (not a name).
    public static func isLiteral(_ host: String) -> Bool {
        if host.contains(":") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }
}

/// A suite file problem, always located: `lab.yaml:14: ...`.
public struct SuiteError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var message: String
    public var description: String { "\(file):\(line): \(message)" }
    public init(file: String, line: Int, message: String) { (self.file, self.line, self.message) = (file, line, message) }
}

/// Every problem found in a suite file, in file order: validation does not stop at the first one, so
/// a suite with eight mistakes is fixed in one round. Printed one located problem per line.
public struct SuiteErrors: Error, CustomStringConvertible, Equatable {
    public var problems: [SuiteError]
    public init(_ problems: [SuiteError]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// The closest candidate to a misspelt word (`intervall` → `interval`), or nil when none is close:
/// edit distance at most 2 (1 for words of up to 4 letters), or one is a prefix of the other.
public func nearestWord(to word: String, in candidates: [String]) -> String? {
    // Optimal string alignment distance: insertions, deletions, substitutions and adjacent
    // transpositions (`pign` → `ping`) each cost one.
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = Swift.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = Swift.min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
    let w = Array(word.lowercased())
    var best: (String, Int)?
    for c in candidates {
        let d = distance(w, Array(c.lowercased()))
        let limit = w.count <= 4 ? 1 : 2
        if d <= limit, best == nil || d < best!.1 { best = (c, d) }
    }
    if let best { return best.0 }
    if w.count >= 3, let p = candidates.first(where: { $0.lowercased().hasPrefix(word.lowercased()) }) { return p }
    return nil
}

/// " (did you mean `count`?)" or "".
func suggestion(_ word: String, _ candidates: [String]) -> String {
    nearestWord(to: word, in: candidates).map { " (did you mean `\($0)`?)" } ?? ""
}

/// Parses a duration the way suite files and CLI flags write them.
public func parseDuration(_ text: String) -> Duration? {
    let t = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        let number = String(t.dropLast(suffix.count))
        guard let v = Double(number), v.isFinite, v >= 0 else { return nil }
        return .nanoseconds(Int64((v * scale * 1e9).rounded()))
    }
    if let v = Double(t), v.isFinite, v >= 0 { return .nanoseconds(Int64((v * 1e9).rounded())) }
    return nil
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
    public var nanoseconds: Int64 {
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}

/// Loads and validates a suite. Nothing runs until this returns, so a typo on line 40 never wastes
/// the first 39 lines' measurements.
public enum SuiteLoader {
    /// Keys every scenario accepts whatever its kind: `capture: IFACE` records wire-level timings
    /// beside the scenario's own (libpcap), `capture_filter` narrows that capture (BPF).
    /// `topology: NAME|FILE` runs the scenario in that lab topology (brought up before it, shared with
    /// the next scenarios naming the same one); `from: NODE` runs it inside that node (default: the host).
    /// `description` is free text shown with the scenario's progress (what it measures, what it cannot yet).
    public static let commonParameters: [String: ParameterType] = ["capture": .string, "capture_filter": .string,
                                                                  "topology": .string, "from": .string, "description": .string]

    /// Validates the whole file and throws `SuiteErrors` listing every problem found (in line order),
    /// not only the first.
    ///
    /// `topologies` checks `topology:` (the suite's and each scenario's), `from:` and the node names in
    /// `targets`, `url` and `routes` against the topology files; without it only their types are checked.
    public static func load(yaml: String, file: String, schemas: [ScenarioSchema], topologies: TopologyCatalog? = nil) throws -> Suite {
        let byKind = Dictionary(schemas.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw SuiteErrors([SuiteError(file: file, line: yamlErrorLine(error), message: "not valid YAML: \(yamlProblem(error))")])
        }
        guard let root, case .mapping(let top) = root else {
            throw SuiteErrors([SuiteError(file: file, line: 1, message: "a suite must be a mapping with `name` and `scenarios`")])
        }
        var problems: [SuiteError] = []
        func problem(_ line: Int, _ message: String) { problems.append(SuiteError(file: file, line: line, message: message)) }
        let topKeys = ["name", "description", "topology", "scenarios", "compare"]
        var name: String?
        var topology: String?
        var topologyLine = 1
        var description = ""
        var scenarioNodes: [Node]?
        var scenariosLine = 1
        var scenariosPresent = false
        var misspeltScenarios = false
        var compareNode: Node?
        for (k, v) in top {
            let key = k.string ?? ""
            let line = k.mark?.line ?? 1
            switch key {
            case "name":
                guard case .scalar(let s) = v, !s.string.isEmpty else {
                    problem(line, "`name` must be a non-empty string"); name = ""; continue
                }
                name = s.string
            case "description":
                description = v.string ?? ""
            case "topology":
                guard case .scalar(let s) = v, !s.string.isEmpty else {
                    problem(line, "`topology` must be a topology name (nat, bridged, two-subnet, edge-cloud) or a topology file"); continue
                }
                topology = s.string
                topologyLine = line
            case "scenarios":
                scenariosPresent = true
                scenariosLine = line
                guard case .sequence(let seq) = v else {
                    problem(line, "`scenarios` must be a list of scenarios"); continue
                }
                scenarioNodes = Array(seq)
            case "compare":
                compareNode = v
            default:
                if nearestWord(to: key, in: topKeys) == "scenarios" { misspeltScenarios = true }
                problem(line, "unknown key `\(key)` at the top level\(suggestion(key, topKeys)); expected one of: \(topKeys.joined(separator: ", "))")
            }
        }
        if name == nil { problem(1, "missing `name`: give the suite a name (used in the report directory)") }
        // A misspelt `scenarios` key is one mistake, not two.
        if (scenarioNodes?.isEmpty ?? !scenariosPresent) && !misspeltScenarios {
            problem(scenariosLine, "`scenarios` is missing or empty: list at least one scenario")
        }
        var scenarios: [ValidatedScenario] = []
        var seen: [String: Int] = [:]
        for node in scenarioNodes ?? [] {
            let (scenario, found) = validateScenario(node, file: file, byKind: byKind)
            problems += found
            guard let s = scenario else { continue }
            if let first = seen[s.name] {
                problem(s.line, "duplicate scenario name \"\(s.name)\" (first used on line \(first)); names must be unique")
                continue
            }
            seen[s.name] = s.line
            scenarios.append(s)
        }
        problems += checkTopologies(suiteTopology: topology.map { ($0, topologyLine) }, scenarios: scenarios, file: file, catalog: topologies)
        var comparisons: [SuiteComparison] = []
        if let compareNode {
            let (parsed, found) = SuiteComparison.parse(compareNode, file: file, scenarios: scenarios)
            comparisons = parsed
            problems += found
        }
        if !problems.isEmpty {
            // Stable order: by line, then as found.
            let ordered = problems.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element)
            throw SuiteErrors(ordered)
        }
        return Suite(name: name ?? "", description: description, scenarios: scenarios, path: file, topology: topology, comparisons: comparisons)
    }

    /// `topology:` names a topology the catalog finds; `from:` and every host in `targets`, `url`
    /// and `routes` of a scenario with a topology is one of its nodes (or an IP literal).
    static func checkTopologies(suiteTopology: (String, Int)?, scenarios: [ValidatedScenario], file: String,
                                catalog: TopologyCatalog?) -> [SuiteError] {
        var problems: [SuiteError] = []
        let suiteDirectory = URL(fileURLWithPath: file).deletingLastPathComponent().path
        var cache: [String: Result<TopologyCatalog.Entry, TopologyLookupError>] = [:]
        func lookup(_ ref: String) -> Result<TopologyCatalog.Entry, TopologyLookupError>? {
            guard let catalog else { return nil }
            if let r = cache[ref] { return r }
            let r = catalog.lookup(ref, suiteDirectory)
            cache[ref] = r
            return r
        }
        if let st = suiteTopology, case .failure(let e)? = lookup(st.0) {
            problems.append(SuiteError(file: file, line: st.1, message: "`topology`: \(e.message)"))
        }
        for s in scenarios {
            func problem(_ key: String, _ message: String) {
                problems.append(SuiteError(file: file, line: s.lines[key] ?? s.line, message: "scenario \"\(s.name)\": \(message)"))
            }
            let ref = s.string("topology") ?? suiteTopology?.0
            guard let ref else {
                if s.string("from") != nil {
                    problem("from", "`from` names a node of a lab topology: give the scenario (or the suite) a `topology: NAME`")
                }
                continue
            }
            if let catalog, s.string("from") != nil, !catalog.kindsWithFrom.contains(s.kind) {
                problem("from", "kind \(s.kind) runs from the host only (`from` works for \(catalog.kindsWithFrom.sorted().joined(separator: ", "))); "
                        + "remove `from`: node names in its URL are still resolved from the host")
            }
            guard let result = lookup(ref) else { continue }
            let entry: TopologyCatalog.Entry
            switch result {
            case .failure(let e):
                // The suite's own topology is reported once, at its line.
                if s.string("topology") != nil { problem("topology", "`topology`: \(e.message)") }
                continue
            case .success(let e): entry = e
            }
            func checkNode(_ key: String, _ node: String, what: String) {
                guard !entry.nodes.contains(node) else { return }
                problem(key, "\(what) `\(node)` is not a node of topology \(entry.name)\(suggestion(node, entry.nodes)); its nodes: \(entry.nodes.joined(separator: ", "))")
            }
            if let from = s.string("from") { checkNode("from", from, what: "`from`") }
            for t in s.strings("targets") ?? [] {
                if let h = NodeReference.host(ofTarget: t), !NodeReference.isLiteral(h) { checkNode("targets", h, what: "target") }
            }
            if let u = s.string("url"), let h = NodeReference.host(ofURL: u), !NodeReference.isLiteral(h) {
                checkNode("url", h, what: "the URL's host")
            }
            for r in s.strings("routes") ?? [] {
                let words = r.split(separator: " ").map(String.init)
                guard words.count == 4, words[2] == "via" else {
                    problem("routes", "route \"\(r)\" must read `NODE PREFIX via ROUTER`, e.g. \"front 192.168.2.0/24 via rt2\" (as `edgemeter lab route add`)")
                    continue
                }
                checkNode("routes", words[0], what: "the route's node")
                if !NodeReference.isLiteral(words[3]) { checkNode("routes", words[3], what: "the route's router") }
            }
        }
        return problems
    }

    /// Validates one scenario; returns it (nil when it cannot be built at all) with every problem found in it.
    static func validateScenario(_ node: Node, file: String, byKind: [String: ScenarioSchema]) -> (ValidatedScenario?, [SuiteError]) {
        let line = node.mark?.line ?? 1
        var problems: [SuiteError] = []
        func problem(_ l: Int, _ message: String) { problems.append(SuiteError(file: file, line: l, message: message)) }
        guard case .mapping(let map) = node else {
            return (nil, [SuiteError(file: file, line: line, message: "a scenario must be a mapping with `name`, `kind` and its parameters")])
        }
        var name: String?
        var kind: String?
        var kindLine = line
        for (k, v) in map {
            if k.string == "name" { name = v.string }
            if k.string == "kind" { kind = v.string; kindLine = k.mark?.line ?? line }
        }
        let kinds = byKind.keys.sorted()
        guard let name, !name.isEmpty else {
            return (nil, [SuiteError(file: file, line: line, message: "scenario without `name`: every scenario needs a unique name")])
        }
        guard let kind else {
            return (nil, [SuiteError(file: file, line: line, message: "scenario \"\(name)\" has no `kind`; expected one of: \(kinds.joined(separator: ", "))")])
        }
        guard let schema = byKind[kind] else {
            return (nil, [SuiteError(file: file, line: kindLine, message: "scenario \"\(name)\": unknown kind `\(kind)`\(suggestion(kind, kinds)); expected one of: \(kinds.joined(separator: ", "))")])
        }
        var params: [String: ParameterValue] = [:]
        var lines: [String: Int] = [:]
        let known = Set(schema.parameters.keys).union(commonParameters.keys).sorted()
        for (k, v) in map {
            let key = k.string ?? ""
            let kl = k.mark?.line ?? line
            if key == "name" || key == "kind" { continue }
            guard let type = schema.parameters[key] ?? commonParameters[key] else {
                problem(kl, "scenario \"\(name)\": unknown key `\(key)` for kind \(kind)\(suggestion(key, known)); expected one of: \(known.joined(separator: ", "))")
                continue
            }
            guard let value = convert(v, type) else {
                let text: String? = if case .scalar(let sc) = v { sc.string } else { nil }
                problem(v.mark?.line ?? kl, "scenario \"\(name)\": " + mismatch("`\(key)`", type, text: text, rendered: render(v)))
                continue
            }
            if let message = schema.valueCheck(key, value) {
                problem(v.mark?.line ?? kl, "scenario \"\(name)\": \(message)")
                continue
            }
            params[key] = value
            lines[key] = kl
        }
        for key in schema.required where params[key] == nil && !map.contains(where: { $0.key.string == key }) {
            problem(line, "scenario \"\(name)\": missing `\(key)` (\(schema.parameters[key]?.expectation ?? "required"))")
        }
        for (key, value) in schema.defaults where params[key] == nil { params[key] = value }
        if params["capture_filter"] != nil && params["capture"] == nil {
            problem(lines["capture_filter"] ?? line, "scenario \"\(name)\": `capture_filter` needs `capture: IFACE` (the interface to capture on)")
        }
        let scenario = ValidatedScenario(name: name, kind: kind, line: line, parameters: params, lines: lines)
        // Cross-field checks only make sense on a scenario whose keys are all valid.
        if problems.isEmpty, let p = schema.check(scenario) {
            problem(lines[p.key] ?? line, "scenario \"\(name)\": \(p.message)")
        }
        return (scenario, problems)
    }

    /// "`count` must be a positive integer, got "ten"": a value of the wrong type, named as the user
    /// wrote it (`label`), in a suite or on the command line.
    public static func mismatch(_ label: String, _ type: ParameterType, text: String?, rendered: String) -> String {
        if type == .duration, let text, text.trimmingCharacters(in: .whitespaces).hasPrefix("-") {
            return "\(label) must be a positive duration, got \(rendered): a negative time has no meaning here; give e.g. 0.2, 200ms or 1s"
        }
        return "\(label) must be \(type.expectation), got \(rendered)"
    }

    public static func render(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    static func convert(_ node: Node, _ type: ParameterType) -> ParameterValue? {
        switch (type, node) {
        case (.stringList, .sequence(let seq)), (.positiveIntegerList, .sequence(let seq)):
            var items: [String] = []
            for item in seq {
                guard case .scalar(let s) = item else { return nil }
                items.append(s.string)
            }
            return convert(list: items, type)
        case (.routeList, .sequence(let seq)):
            var items: [String] = []
            for item in seq {
                switch item {
                case .scalar(let s):
                    items.append(s.string)
                case .mapping(let m):
                    var f: [String: String] = [:]
                    for (k, v) in m {
                        guard let key = k.string, case .scalar(let value) = v else { return nil }
                        f[key] = value.string
                    }
                    guard f.count == 3, let node = f["node"], let to = f["to"], let via = f["via"] else { return nil }
                    items.append("\(node) \(to) via \(via)")
                default:
                    return nil
                }
            }
            return items.isEmpty || items.contains(where: \.isEmpty) ? nil : .strings(items)
        case (.positiveIntegerList, .scalar(let s)):
            return convert(list: [s.string], type)
        case (_, .scalar(let s)):
            return convert(text: s.string, type)
        default:
            return nil
        }
    }

    /// A list parameter from its items (a YAML sequence, repeated CLI flags, a JSON array).
    public static func convert(list items: [String], _ type: ParameterType) -> ParameterValue? {
        guard !items.isEmpty, !items.contains(where: \.isEmpty) else { return nil }
        switch type {
        case .stringList:
            return .strings(items)
        case .positiveIntegerList:
            var out: [Int] = []
            for text in items {
                guard let v = Int(text), v > 0 else { return nil }
                out.append(v)
            }
            return .integers(out)
        default:
            return nil
        }
    }

    /// A scalar parameter from its text, as a suite's YAML scalar or a CLI flag's value.
    public static func convert(text: String, _ type: ParameterType) -> ParameterValue? {
        switch type {
        case .positiveInteger:
            guard let v = Int(text), v > 0 else { return nil }
            return .integer(v)
        case .nonNegativeInteger:
            guard let v = Int(text), v >= 0 else { return nil }
            return .integer(v)
        case .positiveNumber:
            guard let v = Double(text), v.isFinite, v > 0 else { return nil }
            return .number(v)
        case .number:
            guard let v = Double(text), v.isFinite else { return nil }
            return .number(v)
        case .duration:
            guard let d = parseDuration(text) else { return nil }
            return .duration(d)
        case .bool:
            switch text.lowercased() {
            case "true", "yes", "on": return .bool(true)
            case "false", "no", "off": return .bool(false)
            default: return nil
            }
        case .string:
            return text.isEmpty ? nil : .string(text)
        case .oneOf(let allowed):
            return allowed.contains(text) ? .string(text) : nil
        case .stringList, .positiveIntegerList, .routeList:
            return nil
        }
    }

    public static func yamlErrorLine(_ e: YamlError) -> Int {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return 1
        }
    }
    public static func yamlProblem(_ e: YamlError) -> String {
        switch e {
        case .scanner(_, let p, _, _), .parser(_, let p, _, _), .composer(_, let p, _, _): return p
        default: return "\(e)"
        }
    }
}
