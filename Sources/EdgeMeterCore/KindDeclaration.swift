import Foundation

/// How `edgemeter KIND` spells one parameter.
public struct CLISpelling: Sendable, Equatable {
    /// As messages and help name it: `-c/--count`, `--socket`, `-s`, or a positional argument's
    /// name such as `HOST:PORT` (anything not starting with `-` is positional).
    public var label: String
    /// A list given as one JSON array (`--command '["busybox","httpd","-f"]'`), not repeated flags.
    public var jsonArray: Bool

    public init(_ label: String, jsonArray: Bool = false) { (self.label, self.jsonArray) = (label, jsonArray) }

    public var isPositional: Bool { !label.hasPrefix("-") }
    /// `c` of `-c/--count`.
    public var short: Character? {
        label.split(separator: "/").first { $0.hasPrefix("-") && !$0.hasPrefix("--") && $0.count == 2 }?.last
    }
    /// `count` of `-c/--count`.
    public var long: String? {
        label.split(separator: "/").first { $0.hasPrefix("--") }.map { String($0.dropFirst(2)) }
    }
}

/// One parameter of a scenario kind, declared once for the suite's `kind: KIND` and for the
/// `edgemeter KIND` command: key, CLI spelling, type, defaults, unit, help and per-value check.
public struct ParameterSpec: Sendable {
    /// The suite's YAML key.
    public var key: String
    /// nil: the parameter exists in suites only.
    public var cli: CLISpelling?
    /// false: the parameter exists on the command line only (e.g. a packet count for `capture`).
    public var inSuite: Bool
    public var type: ParameterType
    /// What a scenario gets without the key; nil: nothing (optional or required).
    public var suiteDefault: ParameterValue?
    /// What `edgemeter KIND` gets without the flag; equal to `suiteDefault` unless `defaultsDiffer` says why not.
    public var cliDefault: ParameterValue?
    /// Why the CLI and suite defaults differ (nil when they do not).
    public var defaultsDiffer: String?
    /// The unit of a number or the form of a value, for help and documentation (`ms`, `bytes`, `requests/s`).
    public var unit: String?
    public var help: String
    public var valueName: String?
    /// A check of one value whose type matched: a message template (see `KindDeclaration.render`) or nil.
    public var validate: (@Sendable (ParameterValue) -> String?)?

    public init(_ key: String, cli: String?, _ type: ParameterType, default value: ParameterValue? = nil,
                cliDefault: ParameterValue? = nil, differBecause: String? = nil, unit: String? = nil, help: String,
                valueName: String? = nil, jsonArray: Bool = false, suite: Bool = true,
                validate: (@Sendable (ParameterValue) -> String?)? = nil) {
        self.key = key
        self.cli = cli.map { CLISpelling($0, jsonArray: jsonArray) }
        self.inSuite = suite
        self.type = type
        self.suiteDefault = value
        self.cliDefault = cliDefault ?? value
        self.defaultsDiffer = differBecause
        self.unit = unit
        self.help = help
        self.valueName = valueName
        self.validate = validate
    }
}

/// A problem with one scenario's parameters given on the command line (the suite path reports the
/// same message located, `suite.yaml:14: scenario "x": ...`).
/// Made only by `KindDeclaration.validate(commandLine:name:)`.
public struct ParameterError: Error, CustomStringConvertible, Equatable {
    /// The parameter (YAML key) the message is about.
    public let key: String
    public let message: String
    public var description: String { message }
}

/// One scenario kind, declared once: its parameters, which are required, and the checks across
/// them. It produces the `ScenarioSchema` the suite loader validates `kind: KIND` with, and
/// validates `edgemeter KIND` flags into the same `ValidatedScenario` with the same messages.
///
/// Messages are templates: `{count}` becomes `` `count` `` in a suite and `-c/--count` on the
/// command line; `{listener: true}` becomes `` `listener: true` `` or `--listener`.
public struct KindDeclaration: Sendable {
    public typealias Check = @Sendable (ValidatedScenario) -> (key: String, message: String)?

    public var kind: String
    public var parameters: [ParameterSpec]
    public var required: [String]
    /// Cross-field checks, in order; the first problem is reported. They see `origin` to apply a
    /// rule to one path only (a suite scenario must end by itself; `edgemeter ping` runs until Ctrl-C).
    public var checks: [Check]
    /// What a scenario of this kind measured, in a few words, from its summaries (the "measured"
    /// column of `edgemeter run`'s verdict table); the kind's name when it does not say.
    public var measures: @Sendable ([Summary]) -> String

    public init(kind: String, measures: (@Sendable ([Summary]) -> String)? = nil, parameters: [ParameterSpec], required: [String] = [],
                checks: [Check] = []) {
        (self.kind, self.parameters, self.required, self.checks) = (kind, parameters, required, checks)
        self.measures = measures ?? { _ in kind }
    }

    public func spec(_ key: String) -> ParameterSpec? { parameters.first { $0.key == key } }

    /// How the user wrote the parameter: the YAML key in a suite, the flag on the command line.
    public func label(_ key: String, _ origin: ScenarioOrigin) -> String {
        if origin == .commandLine, let l = spec(key)?.cli?.label { return l }
        return "`\(key)`"
    }

    /// Substitutes `{key}` and `{key: value}` for the parameters this kind declares; other braces stay.
    public func render(_ template: String, _ origin: ScenarioOrigin) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            let token = rest[rest.index(after: open)..<close]
            let parts = token.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if let key = parts.first, let s = spec(key) {
                if parts.count == 1 {
                    out += label(key, origin)
                } else if origin == .suite || s.cli == nil {
                    out += "`\(key): \(parts[1])`"
                } else {
                    out += s.type == .bool && parts[1] == "true" ? label(key, origin) : "\(label(key, origin)) \(parts[1])"
                }
            } else {
                out += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// The schema the suite loader validates `kind: KIND` scenarios with.
    public var schema: ScenarioSchema {
        let suiteSpecs = parameters.filter(\.inSuite)
        let declaration = self
        return ScenarioSchema(
            kind: kind,
            parameters: Dictionary(suiteSpecs.map { ($0.key, $0.type) }, uniquingKeysWith: { a, _ in a }),
            required: required.filter { declaration.spec($0)?.inSuite == true },
            defaults: Dictionary(suiteSpecs.compactMap { s in s.suiteDefault.map { (s.key, $0) } }, uniquingKeysWith: { a, _ in a }),
            valueCheck: { key, value in declaration.spec(key)?.validate?(value).map { declaration.render(declaration.own($0, key), .suite) } },
            check: { s in declaration.crossCheck(s).map { ($0.key, declaration.render($0.message, .suite)) } })
    }

    /// `{}` in a per-value message is the parameter itself.
    func own(_ template: String, _ key: String) -> String { template.replacingOccurrences(of: "{}", with: "{\(key)}") }

    func crossCheck(_ s: ValidatedScenario) -> (key: String, message: String)? {
        for check in checks {
            if let p = check(s) { return p }
        }
        return nil
    }

    /// Validates `edgemeter KIND` flags, given by YAML key as the user typed them (one text per
    /// scalar, every text of a repeated flag or positional list), into the scenario a suite with
    /// the same values gives. Throws the first problem, worded as the suite words it.
    public func validate(commandLine raw: [String: [String]], name: String) throws -> ValidatedScenario {
        var params: [String: ParameterValue] = [:]
        for (key, texts) in raw.sorted(by: { $0.key < $1.key }) where !texts.isEmpty {
            guard let s = spec(key), let cli = s.cli else {
                throw ParameterError(key: key, message: "`\(key)` is not a parameter of `edgemeter \(kind)`")
            }
            let value: ParameterValue?
            switch s.type {
            case .stringList, .positiveIntegerList:
                if cli.jsonArray {
                    guard let data = texts[0].data(using: .utf8), let list = try? JSONSerialization.jsonObject(with: data) as? [String] else {
                        throw ParameterError(key: key, message: "\(cli.label) must be a JSON array of strings such as '[\"busybox\",\"httpd\",\"-f\"]', got \(texts[0])")
                    }
                    value = SuiteLoader.convert(list: list, s.type)
                } else {
                    value = SuiteLoader.convert(list: texts, s.type)
                }
            default:
                value = SuiteLoader.convert(text: texts[texts.count - 1], s.type)
            }
            guard let value else {
                let text = texts.joined(separator: " ")
                throw ParameterError(key: key, message: SuiteLoader.mismatch(cli.label, s.type, text: text, rendered: "\"\(text)\""))
            }
            if let message = s.validate?(value) {
                throw ParameterError(key: key, message: render(own(message, key), .commandLine))
            }
            params[key] = value
        }
        for s in parameters where params[s.key] == nil && s.cli != nil {
            if let d = s.cliDefault { params[s.key] = d }
        }
        for key in required where params[key] == nil && spec(key)?.cli != nil {
            throw ParameterError(key: key, message: "missing \(label(key, .commandLine)) (\(spec(key)?.type.expectation ?? "required"))")
        }
        let scenario = ValidatedScenario(name: name, kind: kind, line: 0, parameters: params, origin: .commandLine)
        if let p = crossCheck(scenario) {
            throw ParameterError(key: p.key, message: render(p.message, .commandLine))
        }
        return scenario
    }

    /// Help for the flag: the declared text, then the CLI default unless the text names one.
    public func cliHelp(_ key: String) -> String {
        guard let s = spec(key) else { return "" }
        guard let d = s.cliDefault, !s.help.contains("default") else { return s.help }
        let text = s.help.hasSuffix(".") ? String(s.help.dropLast()) : s.help
        return text + " (default: \(Self.describe(d)))."
    }

    /// A value as a user would write it: `1s`, `100ms`, `56`, `auto`.
    public static func describe(_ value: ParameterValue) -> String {
        switch value {
        case .integer(let v): return "\(v)"
        case .number(let v): return String(format: "%g", v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        case .strings(let v): return v.joined(separator: ", ")
        case .integers(let v): return v.map(String.init).joined(separator: ", ")
        case .duration(let d):
            let ns = d.nanoseconds
            if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
            if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
            if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
            return "\(ns)ns"
        }
    }
}

/// Per-value checks shared by declarations; messages are templates (`{}` is the parameter itself).
public enum ValueCheck {
    public static func atLeast(_ minimum: Duration) -> @Sendable (ParameterValue) -> String? {
        { v in
            guard case .duration(let d) = v, d < minimum else { return nil }
            return "{} must be at least \(KindDeclaration.describe(.duration(minimum)))"
        }
    }
    public static let positive: @Sendable (ParameterValue) -> String? = { v in
        if case .duration(let d) = v, d <= .zero { return "{} must be more than 0" }
        return nil
    }
    public static func atMost(_ maximum: Int, _ unit: String) -> @Sendable (ParameterValue) -> String? {
        { v in
            guard case .integer(let n) = v, n > maximum else { return nil }
            return "{} must be at most \(maximum)\(unit), got \(n)"
        }
    }
    public static func within(_ range: ClosedRange<Int>, _ what: String) -> @Sendable (ParameterValue) -> String? {
        { v in
            guard case .integer(let n) = v, !range.contains(n) else { return nil }
            return "{} must be \(what.isEmpty ? "" : what + " ")\(range.lowerBound)-\(range.upperBound), got \(n)"
        }
    }
}

/// A deterministic text of any value (dictionaries and sets sorted), so a configuration printed by
/// one process compares equal to the same configuration built in another.
public func canonicalDescription(_ value: Any) -> String {
    let m = Mirror(reflecting: value)
    switch m.displayStyle {
    case .optional:
        return m.children.first.map { canonicalDescription($0.value) } ?? "nil"
    case .collection:
        return "[" + m.children.map { canonicalDescription($0.value) }.joined(separator: ", ") + "]"
    case .set:
        return "[" + m.children.map { canonicalDescription($0.value) }.sorted().joined(separator: ", ") + "]"
    case .dictionary:
        return "[" + m.children.map { pair -> String in
            let kv = Mirror(reflecting: pair.value).children.map { canonicalDescription($0.value) }
            return kv.joined(separator: ": ")
        }.sorted().joined(separator: ", ") + "]"
    case .struct, .class, .tuple:
        if value is Duration || m.children.isEmpty { return String(reflecting: value) }
        let fields = m.children.map { ($0.label.map { $0 + ": " } ?? "") + canonicalDescription($0.value) }
        return (m.displayStyle == .tuple ? "" : "\(type(of: value))") + "(" + fields.joined(separator: ", ") + ")"
    case .enum:
        guard let payload = m.children.first else { return String(reflecting: value) }
        return "\(type(of: value)).\(payload.label ?? "")(\(canonicalDescription(payload.value)))"
    default:
        return String(reflecting: value)
    }
}
