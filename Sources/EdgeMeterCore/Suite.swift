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

    var expectation: String {
        switch self {
        case .positiveInteger: return "a positive integer"
        case .nonNegativeInteger: return "a non-negative integer"
        case .duration: return "a duration such as 250ms, 1.5s, 200us or 2m"
        case .bool: return "true or false"
        case .string: return "a string"
        case .stringList: return "a list of strings"
        case .oneOf(let values): return "one of " + values.joined(separator: ", ")
        case .positiveNumber: return "a positive number"
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
}

/// What a scenario kind accepts. Each probe/backend module contributes one schema; the suite loader
/// validates every scenario against its kind's schema before anything runs.
public struct ScenarioSchema: Sendable {
    public var kind: String
    public var parameters: [String: ParameterType]
    public var required: [String]
    /// Extra cross-field checks; return a message (without the file:line prefix) to reject.
    public var check: @Sendable (ValidatedScenario) -> (key: String, message: String)?

    public init(kind: String, parameters: [String: ParameterType], required: [String] = [],
                check: @escaping @Sendable (ValidatedScenario) -> (key: String, message: String)? = { _ in nil }) {
        self.kind = kind
        self.parameters = parameters
        self.required = required
        self.check = check
    }
}

/// A scenario that passed validation: typed parameters plus the line each came from.
public struct ValidatedScenario: Sendable {
    public var name: String
    public var kind: String
    public var line: Int
    public var parameters: [String: ParameterValue]
    public var lines: [String: Int]

    public init(name: String, kind: String, line: Int, parameters: [String: ParameterValue], lines: [String: Int] = [:]) {
        self.name = name
        self.kind = kind
        self.line = line
        self.parameters = parameters
        self.lines = lines
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
}

public struct Suite: Sendable {
    public var name: String
    public var description: String
    public var scenarios: [ValidatedScenario]
    public var path: String
}

/// A suite file problem, always located: `lab.yaml:14: ...`.
public struct SuiteError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var message: String
    public var description: String { "\(file):\(line): \(message)" }
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }
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
    public static let commonParameters: [String: ParameterType] = ["capture": .string, "capture_filter": .string]

    public static func load(yaml: String, file: String, schemas: [ScenarioSchema]) throws -> Suite {
        let byKind = Dictionary(schemas.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw SuiteError(file: file, line: yamlErrorLine(error), message: "not valid YAML: \(yamlProblem(error))")
        }
        guard let root, case .mapping(let top) = root else {
            throw SuiteError(file: file, line: 1, message: "a suite must be a mapping with `name` and `scenarios`")
        }
        let topKeys = ["name", "description", "scenarios"]
        var name: String?
        var description = ""
        var scenarioNodes: [Node]?
        var scenariosLine = 1
        for (k, v) in top {
            let key = k.string ?? ""
            let line = k.mark?.line ?? 1
            switch key {
            case "name":
                guard case .scalar(let s) = v, !s.string.isEmpty else {
                    throw SuiteError(file: file, line: line, message: "`name` must be a non-empty string")
                }
                name = s.string
            case "description":
                description = v.string ?? ""
            case "scenarios":
                guard case .sequence(let seq) = v else {
                    throw SuiteError(file: file, line: line, message: "`scenarios` must be a list of scenarios")
                }
                scenarioNodes = Array(seq)
                scenariosLine = line
            default:
                throw SuiteError(file: file, line: line, message: "unknown key `\(key)` at the top level; expected one of: \(topKeys.joined(separator: ", "))")
            }
        }
        guard let name else { throw SuiteError(file: file, line: 1, message: "missing `name`: give the suite a name (used in the report directory)") }
        guard let scenarioNodes, !scenarioNodes.isEmpty else {
            throw SuiteError(file: file, line: scenariosLine, message: "`scenarios` is missing or empty: list at least one scenario")
        }
        var scenarios: [ValidatedScenario] = []
        var seen: [String: Int] = [:]
        for node in scenarioNodes {
            let s = try validateScenario(node, file: file, byKind: byKind)
            if let first = seen[s.name] {
                throw SuiteError(file: file, line: s.line, message: "duplicate scenario name \"\(s.name)\" (first used on line \(first)); names must be unique")
            }
            seen[s.name] = s.line
            scenarios.append(s)
        }
        return Suite(name: name, description: description, scenarios: scenarios, path: file)
    }

    static func validateScenario(_ node: Node, file: String, byKind: [String: ScenarioSchema]) throws -> ValidatedScenario {
        let line = node.mark?.line ?? 1
        guard case .mapping(let map) = node else {
            throw SuiteError(file: file, line: line, message: "a scenario must be a mapping with `name`, `kind` and its parameters")
        }
        var name: String?
        var kind: String?
        var kindLine = line
        for (k, v) in map {
            if k.string == "name" { name = v.string }
            if k.string == "kind" { kind = v.string; kindLine = k.mark?.line ?? line }
        }
        guard let name, !name.isEmpty else {
            throw SuiteError(file: file, line: line, message: "scenario without `name`: every scenario needs a unique name")
        }
        guard let kind else {
            throw SuiteError(file: file, line: line, message: "scenario \"\(name)\" has no `kind`; expected one of: \(byKind.keys.sorted().joined(separator: ", "))")
        }
        guard let schema = byKind[kind] else {
            throw SuiteError(file: file, line: kindLine, message: "scenario \"\(name)\": unknown kind `\(kind)`; expected one of: \(byKind.keys.sorted().joined(separator: ", "))")
        }
        var params: [String: ParameterValue] = [:]
        var lines: [String: Int] = [:]
        for (k, v) in map {
            let key = k.string ?? ""
            let kl = k.mark?.line ?? line
            if key == "name" || key == "kind" { continue }
            guard let type = schema.parameters[key] ?? commonParameters[key] else {
                let known = Set(schema.parameters.keys).union(commonParameters.keys).sorted()
                throw SuiteError(file: file, line: kl, message: "scenario \"\(name)\": unknown key `\(key)` for kind \(kind); expected one of: \(known.joined(separator: ", "))")
            }
            guard let value = convert(v, type) else {
                throw SuiteError(file: file, line: v.mark?.line ?? kl, message: "scenario \"\(name)\": `\(key)` must be \(type.expectation), got \(render(v))")
            }
            params[key] = value
            lines[key] = kl
        }
        for key in schema.required where params[key] == nil {
            throw SuiteError(file: file, line: line, message: "scenario \"\(name)\": missing `\(key)` (\(schema.parameters[key]?.expectation ?? "required"))")
        }
        if params["capture_filter"] != nil && params["capture"] == nil {
            throw SuiteError(file: file, line: lines["capture_filter"] ?? line, message: "scenario \"\(name)\": `capture_filter` needs `capture: IFACE` (the interface to capture on)")
        }
        let scenario = ValidatedScenario(name: name, kind: kind, line: line, parameters: params, lines: lines)
        if let problem = schema.check(scenario) {
            throw SuiteError(file: file, line: lines[problem.key] ?? line, message: "scenario \"\(name)\": \(problem.message)")
        }
        return scenario
    }

    static func render(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    static func convert(_ node: Node, _ type: ParameterType) -> ParameterValue? {
        switch type {
        case .stringList:
            if case .sequence(let seq) = node {
                var out: [String] = []
                for item in seq {
                    guard case .scalar(let s) = item, !s.string.isEmpty else { return nil }
                    out.append(s.string)
                }
                return out.isEmpty ? nil : .strings(out)
            }
            return nil
        default:
            guard case .scalar(let s) = node else { return nil }
            let text = s.string
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
            case .stringList:
                return nil
            }
        }
    }

    static func yamlErrorLine(_ e: YamlError) -> Int {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return 1
        }
    }
    static func yamlProblem(_ e: YamlError) -> String {
        switch e {
        case .scanner(_, let p, _, _), .parser(_, let p, _, _), .composer(_, let p, _, _): return p
        default: return "\(e)"
        }
    }
}
