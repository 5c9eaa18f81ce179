import XCTest
@testable import EdgeMeterCore

/// The declaration machinery on a made-up kind: the suite schema and the command-line validation
/// built from one declaration give the same scenario and word problems the same way.
final class KindDeclarationCoreTests: XCTestCase {
    let demo = KindDeclaration(
        kind: "demo",
        parameters: [
            ParameterSpec("targets", cli: "HOST", .stringList, help: "Hosts."),
            ParameterSpec("count", cli: "-c/--count", .positiveInteger, cliDefault: .integer(5), differBecause: "a suite says how many",
                          help: "Attempts.", validate: ValueCheck.within(1...100, "")),
            ParameterSpec("every", cli: "-i/--interval", .duration, default: .duration(.milliseconds(100)), help: "Interval.",
                          validate: ValueCheck.atLeast(.milliseconds(1))),
            ParameterSpec("argv", cli: "--argv", .stringList, help: "A command.", jsonArray: true),
            ParameterSpec("listener", cli: "--listener", .bool, default: .bool(false), help: "Start a listener."),
            ParameterSpec("only_here", cli: nil, .string, help: "Suite only."),
        ],
        required: ["targets", "count"],
        checks: [{ s in
            s.bool("listener") != true && (s.strings("targets") ?? []).contains("x")
                ? ("targets", "\"x\" needs {listener: true} or a {count} below 3") : nil
        }])

    func suite(_ body: String) throws -> ValidatedScenario {
        let yaml = "name: t\nscenarios:\n  - name: s\n    kind: demo\n" + body.split(separator: "\n").map { "    \($0)\n" }.joined()
        return try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: [demo.schema]).scenarios[0]
    }

    func suiteProblem(_ body: String) -> String {
        do { _ = try suite(body); return "no problem" } catch { return "\(error)" }
    }

    func cliProblem(_ raw: [String: [String]]) -> String {
        do { _ = try demo.validate(commandLine: raw, name: "demo"); return "no problem" } catch { return "\(error)" }
    }

    func testBothPathsGiveTheSameParameters() throws {
        let s = try suite("targets: [a, b]\ncount: 3\nevery: 2s\nargv: [sh, -c, true]\nlistener: true")
        let c = try demo.validate(commandLine: ["targets": ["a", "b"], "count": ["3"], "every": ["2s"], "argv": ["[\"sh\",\"-c\",\"true\"]"],
                                                "listener": ["true"]], name: "demo")
        XCTAssertEqual(s.parameters.filter { $0.key != "only_here" }, c.parameters)
        XCTAssertEqual(s.origin, .suite)
        XCTAssertEqual(c.origin, .commandLine)
    }

    func testDefaultsPerPath() throws {
        let c = try demo.validate(commandLine: ["targets": ["a"]], name: "demo")
        XCTAssertEqual(c.int("count"), 5, "the command line's default")
        XCTAssertEqual(c.duration("every"), .milliseconds(100))
        XCTAssertEqual(suiteProblem("targets: [a]"), "s.yaml:3: scenario \"s\": missing `count` (a positive integer)", "required in a suite")
        XCTAssertEqual(try suite("targets: [a]\ncount: 1").bool("listener"), false)
    }

    func testSameMessagesWithTheLabelOfEachPath() {
        XCTAssertEqual(suiteProblem("targets: [a]\ncount: 0"), "s.yaml:6: scenario \"s\": `count` must be a positive integer, got \"0\"")
        XCTAssertEqual(cliProblem(["targets": ["a"], "count": ["0"]]), "-c/--count must be a positive integer, got \"0\"")
        XCTAssertEqual(suiteProblem("targets: [a]\ncount: 200"), "s.yaml:6: scenario \"s\": `count` must be 1-100, got 200")
        XCTAssertEqual(cliProblem(["targets": ["a"], "count": ["200"]]), "-c/--count must be 1-100, got 200")
        XCTAssertEqual(suiteProblem("targets: [a]\ncount: 1\nevery: 10us"), "s.yaml:7: scenario \"s\": `every` must be at least 1ms")
        XCTAssertEqual(cliProblem(["targets": ["a"], "every": ["10us"]]), "-i/--interval must be at least 1ms")
        XCTAssertEqual(suiteProblem("targets: [x]\ncount: 1"),
                       "s.yaml:5: scenario \"s\": \"x\" needs `listener: true` or a `count` below 3")
        XCTAssertEqual(cliProblem(["targets": ["x"]]), "\"x\" needs --listener or a -c/--count below 3")
        XCTAssertEqual(cliProblem(["targets": ["a"], "every": ["-1"]]),
                       "-i/--interval must be a positive duration, got \"-1\": a negative time has no meaning here; give e.g. 0.2, 200ms or 1s")
        XCTAssertEqual(cliProblem(["targets": ["a"], "argv": ["sh -c true"]]),
                       "--argv must be a JSON array of strings such as '[\"busybox\",\"httpd\",\"-f\"]', got sh -c true")
        XCTAssertEqual(cliProblem(["targets": ["a"], "only_here": ["v"]]), "`only_here` is not a parameter of `edgemeter demo`")
    }

    func testRenderLeavesOtherBracesAlone() {
        XCTAssertEqual(demo.render("{count} of {\"json\": 1} and {unknown}", .commandLine), "-c/--count of {\"json\": 1} and {unknown}")
        XCTAssertEqual(demo.render("{listener: true}", .suite), "`listener: true`")
        XCTAssertEqual(demo.render("{every: 5ms}", .commandLine), "-i/--interval 5ms")
    }

    func testHelpCarriesTheCommandLineDefault() {
        XCTAssertEqual(demo.cliHelp("count"), "Attempts (default: 5).")
        XCTAssertEqual(demo.cliHelp("every"), "Interval (default: 100ms).")
        XCTAssertEqual(demo.cliHelp("targets"), "Hosts.")
        XCTAssertEqual(CLISpelling("-c/--count").short, "c")
        XCTAssertEqual(CLISpelling("-c/--count").long, "count")
        XCTAssertEqual(CLISpelling("--expect-status").long, "expect-status")
        XCTAssertNil(CLISpelling("--expect-status").short)
        XCTAssertTrue(CLISpelling("HOST:PORT").isPositional)
    }

    func testCanonicalDescriptionSortsDictionaries() {
        struct Config { var vars: [String: String]; var d: Duration; var o: Int? }
        let a = canonicalDescription(Config(vars: ["b": "2", "a": "1", "c": "3"], d: .seconds(1), o: nil))
        XCTAssertEqual(a, canonicalDescription(Config(vars: ["c": "3", "a": "1", "b": "2"], d: .seconds(1), o: nil)))
        XCTAssertTrue(a.contains("vars: [\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"]"), a)
        XCTAssertNotEqual(a, canonicalDescription(Config(vars: ["a": "1"], d: .seconds(1), o: nil)))
    }
}
