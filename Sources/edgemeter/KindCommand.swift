import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun

/// `edgemeter KIND` built from the kind's declaration: the options' names and help come from it
/// (`declaration.names("count")`, `declaration.help("count")`), the options hold the text as typed,
/// and `scenario()` validates them with the declaration into the `ValidatedScenario` a suite with
/// the same values gives; the kind's configuration (`PingConfig(scenario)`) follows from that.
protocol KindCommand {
    associatedtype Config
    static var declaration: KindDeclaration { get }
    /// The kind's one function from a scenario to its configuration (the suite path uses it too).
    static func resolve(_ scenario: ValidatedScenario) throws -> Config
    /// The flags given, by the suite's keys, as typed (unset ones left out).
    var parameters: RawParameters { get }
}

extension KindCommand where Self: ParsableArguments {
    /// Every usage error the declaration finds, before anything runs (exit status 2).
    func validate() throws { _ = try config() }
}

extension KindCommand {
    /// The configuration the flags resolve to.
    func config() throws -> Config { try Self.resolve(try scenario(name: Self.declaration.kind)) }

    /// The configuration to measure with, or nil once it is printed for `--print-config` (`printOnly`).
    func configToRun(printOnly: Bool) throws -> Config? {
        let c = try config()
        if printOnly { printConfigs([c]); return nil }
        return c
    }

    /// Validates the flags (or `raw`, for a command that measures several scenarios); a problem
    /// becomes a usage error (exit 2) worded as the suite words it, with the flag's name.
    func scenario(name: String, _ raw: RawParameters? = nil) throws -> ValidatedScenario {
        do {
            return try Self.declaration.validate(commandLine: (raw ?? parameters).values, name: name)
        } catch let e as ParameterError {
            throw ValidationError(e.message)
        }
    }
}

extension CommandConfiguration {
    /// The configuration of `edgemeter KIND`: the command is named after the kind it declares.
    static func kind(_ declaration: KindDeclaration, abstract: String, discussion: String) -> CommandConfiguration {
        CommandConfiguration(commandName: declaration.kind, abstract: abstract, discussion: discussion)
    }
}

/// The raw flag texts of one command, by the suite's keys.
struct RawParameters {
    var values: [String: [String]] = [:]

    subscript(key: String) -> String? {
        get { values[key]?.last }
        set { values[key] = newValue.map { [$0] } }
    }
    /// Sets each key to its text (a nil text leaves the key out).
    mutating func set(_ texts: KeyValuePairs<String, String?>) {
        for (key, text) in texts { self[key] = text }
    }
    /// A copy with each key set to its text (a nil text leaves the key out).
    func setting(_ texts: KeyValuePairs<String, String?>) -> RawParameters {
        var r = self
        r.set(texts)
        return r
    }
    mutating func list(_ key: String, _ items: [String]) {
        values[key] = items.isEmpty ? nil : items
    }
    mutating func flag(_ key: String, _ isSet: Bool) {
        values[key] = isSet ? ["true"] : nil
    }
}

extension KindDeclaration {
    /// The argument-parser names of a parameter's flag: `-c/--count` → `-c` and `--count`.
    func names(_ key: String) -> NameSpecification {
        guard let cli = spec(key)?.cli else { preconditionFailure("edgemeter \(kind): `\(key)` has no command-line spelling") }
        var names: [NameSpecification.Element] = []
        if let s = cli.short { names.append(.customShort(s)) }
        if let l = cli.long { names.append(.customLong(l)) }
        return NameSpecification(names)
    }

    /// The flag's help: the declared text and its command-line default.
    func help(_ key: String) -> ArgumentHelp {
        ArgumentHelp(cliHelp(key), valueName: spec(key)?.valueName)
    }
}

/// `-c/--count`, `-i/--interval` and `-W/--timeout`, declared once for ping, tcping (`Kind` is
/// `PingCommand`), http and calc (`HTTPCommand`): names and help come from `Kind`'s declaration,
/// since the defaults differ (ping runs until Ctrl-C, http makes 5 attempts).
struct TimingOptions<Kind: KindCommand>: ParsableArguments {
    // `.unconditional`: `-c -3` reaches validation ("must be a positive integer, got "-3"") instead
    // of being read as a flag named -3.
    @Option(Kind.declaration, "count", parsing: .unconditional) var count: String?
    @Option(Kind.declaration, "interval", parsing: .unconditional) var interval: String?
    @Option(Kind.declaration, "timeout", parsing: .unconditional) var timeout: String?
    @Option(Kind.declaration, "rounds", parsing: .unconditional) var rounds: String?
    @Option(Kind.declaration, "every", parsing: .unconditional) var every: String?

    func add(to r: RawParameters) -> RawParameters {
        r.setting(["count": count, "interval": interval, "timeout": timeout, "rounds": rounds, "every": every])
    }
}

/// `--image` and `--command`, declared once for startup and footprint (`Kind`): the image a
/// container workload runs from and its command, a JSON array. Names and help come from `Kind`'s
/// declaration (the defaults differ: footprint runs the calculator, startup a busybox workload).
struct WorkloadImageOptions<Kind: KindCommand>: ParsableArguments {
    @Option(Kind.declaration, "image") var image: String?
    @Option(Kind.declaration, "command") var command: String?

    func add(to r: RawParameters) -> RawParameters { r.setting(["image": image, "command": command]) }
}

/// `--port` and `--path`, declared once for startup and footprint (`Kind`): where the workload
/// answers inside its container (startup's tcp/http ready check, footprint's load). Names and
/// help come from `Kind`'s declaration.
struct WorkloadEndpointOptions<Kind: KindCommand>: ParsableArguments {
    @Option(Kind.declaration, "port", parsing: .unconditional) var port: String?
    @Option(Kind.declaration, "path") var path: String?

    func add(to r: RawParameters) -> RawParameters { r.setting(["port": port, "path": path]) }
}

/// `--print-config` (hidden): prints the configuration the flags resolve to, one line per scenario,
/// and measures nothing. The kind-declaration tests compare it with the suite's configuration.
func printConfigs(_ configs: [Any]) {
    for c in configs { print(canonicalDescription(c)) }
}

// The option of one declared parameter, written `@Option(load, "rate", parsing: .unconditional) var rate: String?`:
// the names and the help come from the kind's declaration, the value is the text as typed.
extension Option {
    init(_ kind: KindDeclaration, _ key: String, parsing: SingleValueParsingStrategy = .next) where Value == String? {
        self.init(name: kind.names(key), parsing: parsing, help: kind.help(key))
    }

    init(wrappedValue: [String], _ kind: KindDeclaration, _ key: String) where Value == [String] {
        self.init(wrappedValue: wrappedValue, name: kind.names(key), help: kind.help(key))
    }
}

extension Flag where Value == Bool {
    init(wrappedValue: Bool, _ kind: KindDeclaration, _ key: String) {
        self.init(wrappedValue: wrappedValue, name: kind.names(key), help: kind.help(key))
    }
}
