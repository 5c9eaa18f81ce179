import Foundation
import EdgeMeterCore
import EdgeMeterLab

/// What one reach scenario checks, from a suite scenario or `edgemeter reach` flags alike.
public struct ReachConfig: Sendable, Equatable {
    /// The topology (a built-in name or a file); the suite runner brings it up.
    public var topology: String
    /// The expected matrix (CSV or YAML), relative to the suite's directory.
    public var expect: String?
    /// Routes added before probing, each `NODE PREFIX via ROUTER` (as `edgemeter lab route add`).
    public var routes: [String]

    public init(_ s: ValidatedScenario) {
        topology = s.string("topology") ?? ""
        expect = s.string("expect")
        routes = s.strings("routes") ?? []
    }
}

/// A difference between the measured matrix and the expected one: the scenario fails.
public struct ReachMismatch: Error, CustomStringConvertible {
    public var file: String
    public var differences: [String]
    public var description: String {
        "\(differences.count) difference(s) from \(file) (listed in summary.md): " + differences.prefix(5).joined(separator: "; ")
            + (differences.count > 5 ? "; ..." : "")
    }
}

/// Reachability of a lab topology as a scenario (`edgemeter reach` inside a suite): optional route
/// changes first, then every probe `ReachPlan` lists (ICMP from every node and the host to every
/// other node's addresses, TCP to declared ports and port forwards; each route checked to stay in
/// the lab before anything is sent), written as `reach-<scenario>.csv` and `.md` into the run
/// directory and as a summary.md section. With `expect`, any difference fails the scenario and is
/// listed. It records no samples: the matrix (reachable or not, why not, RTT p50) is its result.
public enum ReachScenario {
    public static let declaration = KindDeclaration(
        kind: "reach",
        measures: { _ in "reachability matrix" },
        parameters: [
            ParameterSpec("topology", cli: "NAME", .string,
                          help: "The topology (built-in name or file); in a suite it is brought up for the scenario, on the command line it must be up.",
                          validate: { v in
                              guard case .string(let t) = v, t.contains(where: \.isWhitespace) else { return nil }
                              return "{} must be a topology name or file without spaces, got \"\(t)\""
                          }),
            ParameterSpec("expect", cli: "--expect", .string,
                          help: "A matrix to compare with (CSV or YAML: from, to, probe, reachable); a difference fails the scenario.",
                          valueName: "FILE",
                          validate: { v in
                              guard case .string(let f) = v, ![".csv", ".yaml", ".yml"].contains(where: { f.hasSuffix($0) }) else { return nil }
                              return "{} must be a .csv or .yaml file (columns from, to, probe, reachable), got \"\(f)\""
                          }),
            ParameterSpec("routes", cli: nil, .routeList,
                          help: "Routes to add before probing, each `{node: NODE, to: PREFIX, via: ROUTER}` or `NODE PREFIX via ROUTER` (as `edgemeter lab route add NAME NODE PREFIX via ROUTER`); they stay for the next scenarios in the same bring-up."),
        ],
        required: ["topology"])

    public static var schema: ScenarioSchema { declaration.schema }

    public static let kind = ScenarioKind(declaration: declaration, configuration: { ReachConfig($0) },
                                          keyFigure: { dir, name in figure(dir.appendingPathComponent("reach-" + FileName.safe(name) + ".csv")) }) { s, ctx in
        try await run(ReachConfig(s), scenario: s.name, ctx: ctx)
    }

    /// "21 probes, 10 reachable" from a reach-NAME.csv (its `reachable` column); nil when unreadable.
    static func figure(_ url: URL) -> String? {
        guard let text = try? String(contentsOf: url, encoding: .utf8), let rows = try? CSV.parse(text), let head = rows.first,
              let i = head.firstIndex(of: "reachable") else { return nil }
        let body = rows.dropFirst().filter { $0.count == head.count }
        return "\(body.count) probes, \(body.filter { $0[i] == "yes" }.count) reachable"
    }

    static func run(_ c: ReachConfig, scenario: String, ctx: ScenarioContext) async throws {
        guard let lab = ctx.lab else {
            throw ScenarioNotRun("reach needs its topology up: run it in a suite (the runner brings \(c.topology) up) or `edgemeter reach` after `lab up`")
        }
        let name = lab.state.topology
        let expectation: (ReachExpectation, String)?
        if let e = c.expect {
            let path = e.hasPrefix("/") ? e : (ctx.suiteDirectory?.appendingPathComponent(e).standardized.path ?? e)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ScenarioNotRun("cannot read the expected matrix \(path): check `expect` (relative to the suite's directory)")
            }
            expectation = (try ReachExpectation.parse(text, file: e), e)
        } else {
            expectation = nil
        }
        let executor = LabExecutor()
        var applied: [String] = []
        for r in c.routes {
            let w = r.split(separator: " ").map(String.init)
            guard w.count == 4, w[2] == "via" else { throw ScenarioNotRun("route \"\(r)\" must read `NODE PREFIX via ROUTER`") }
            do {
                let (gw, _) = try await executor.route(true, topology: name, node: w[0], prefix: w[1], via: w[3])
                applied.append("\(w[0]): \(w[1]) via \(w[3]) (\(gw))")
                ctx.progress("route added on \(w[0]): \(w[1]) via \(gw)")
            } catch let e as LabError where e.output.contains("File exists") {
                // An earlier scenario of the same bring-up added it.
                applied.append("\(w[0]): \(w[1]) via \(w[3]) (already there)")
            }
        }
        let state = try executor.state(name)
        // A compose deployment's probes come from its state alone (services, bridge, published ports).
        let matrix = try state.compose != nil ? ReachRunner().run(composeState: state) : ReachRunner().run(state: state, topology: lab.topology)
        let base = "reach-" + FileName.safe(scenario)
        try matrix.csv.write(to: ctx.directory.appendingPathComponent(base + ".csv"), atomically: true, encoding: .utf8)
        try matrix.markdown.write(to: ctx.directory.appendingPathComponent(base + ".md"), atomically: true, encoding: .utf8)
        let diffs = expectation.map { $0.0.differences(matrix) } ?? []
        ctx.addSection(section(scenario: scenario, matrix: matrix, routes: applied, expectation: expectation, differences: diffs, file: base))
        ctx.progress("\(matrix.results.count) probes, \(matrix.results.filter(\.reachable).count) reachable"
                     + (expectation == nil ? "" : diffs.isEmpty ? "; matches \(c.expect ?? "")" : "; \(diffs.count) difference(s)"))
        if let (_, file) = expectation, !diffs.isEmpty { throw ReachMismatch(file: file, differences: diffs) }
    }

    /// summary.md's section: routes applied, the matrix grid and failures, the comparison.
    static func section(scenario: String, matrix: ReachMatrix, routes: [String], expectation: (ReachExpectation, String)?,
                        differences: [String], file: String) -> String {
        var md = matrix.markdown
        // The matrix's own title becomes a third-level heading under the scenario's.
        if md.hasPrefix("# ") { md = String(md.drop { $0 != "\n" }).trimmingCharacters(in: .newlines) + "\n" }
        var s = "## Reachability: \(scenario) (topology \(matrix.topology))\n\n"
        s += routes.isEmpty ? "No route added before probing.\n\n" : "Routes added before probing: " + routes.joined(separator: "; ") + ".\n\n"
        // The grid stays in view; the list of failures (dozens for two-subnet) folds away.
        if let r = md.range(of: "\nNot reachable:\n\n") {
            let failures = md[r.upperBound...].trimmingCharacters(in: .newlines)
            let n = failures.split(separator: "\n").count
            s += md[..<r.lowerBound] + "\n\n<details><summary>\(n) probe(s) not reachable, and why</summary>\n\n" + failures + "\n\n</details>\n\n"
        } else {
            s += md + "\n"
        }
        if let (e, name) = expectation {
            s += differences.isEmpty
                ? "Matches \(name): \(e.rows.count) probes as expected.\n"
                : "**\(differences.count) difference(s) from \(name):**\n\n" + differences.map { "- \($0)" }.joined(separator: "\n") + "\n"
        }
        s += "\nFiles: \(file).csv, \(file).md.\n"
        return s
    }
}
