import XCTest
import EdgeMeterTestSupport

/// Every help page, rendered as a user sees it at 80 columns: paragraphs wrap once (no line of the
/// source's own wrapping left in them) and examples stay on one line, so they paste.
final class HelpPagesTests: XCTestCase {
    /// Every command path, from argument-parser's own dump of the command tree.
    func commandPaths(_ bin: String) throws -> [[String]] {
        let r = try runCommand(bin, ["--experimental-dump-help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        var paths: [[String]] = []
        func walk(_ node: [String: Any], _ path: [String]) {
            if node["shouldDisplay"] as? Bool == false { return }
            paths.append(path)
            for sub in node["subcommands"] as? [[String: Any]] ?? [] {
                guard let name = sub["commandName"] as? String, name != "help" else { continue }
                walk(sub, path + [name])
            }
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), [])
        return paths
    }

    func help(_ bin: String, _ path: [String], columns: Int) throws -> String {
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "\(columns)"
        let r = try runCommand(bin, path + ["--help"], environment: env)
        XCTAssertEqual(r.status, 0, "\(path): \(r.stderr)")
        return r.stdout
    }

    /// The discussion: from the first blank line after OVERVIEW to USAGE.
    func discussion(_ page: String) -> [Substring] {
        let lines = page.split(separator: "\n", omittingEmptySubsequences: false)
        guard let usage = lines.firstIndex(where: { $0.hasPrefix("USAGE:") }),
              let firstBlank = lines.firstIndex(where: { $0.isEmpty }), firstBlank < usage else { return [] }
        return Array(lines[(firstBlank + 1)..<usage])
    }

    func testHelpPagesWrapOnceAndExamplesFitOnALine() throws {
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        let paths = try commandPaths(bin)
        XCTAssertGreaterThanOrEqual(paths.count, 12, "\(paths)")
        var problems: [String] = []
        for path in paths {
            let name = (["edgemeter"] + path).joined(separator: " ")
            // Wide: a paragraph is one line, so a line that stops mid-sentence (no closing punctuation)
            // before another line of prose is the source's own hard wrap.
            let wide = discussion(try help(bin, path, columns: 10_000))
            for (i, line) in wide.enumerated() where i + 1 < wide.count {
                let next = wide[i + 1]
                let prose = !line.isEmpty && !line.hasPrefix(" ") && !next.isEmpty && !next.hasPrefix(" ")
                if prose, let last = line.last, !".:!?)`\"".contains(last) {
                    problems.append("\(name): paragraph hard-wrapped after \"\(line.suffix(30))\"")
                }
            }
            // 80 columns: every example line (indented) fits, so nothing spills onto a line of its own.
            let narrow = discussion(try help(bin, path, columns: 80))
            var inExamples = false
            for line in narrow {
                if line.hasPrefix("Example") { inExamples = true; continue }
                if line.isEmpty { inExamples = false; continue }
                if inExamples && !line.hasPrefix("  ") {
                    problems.append("\(name): an example broke across lines at 80 columns: \"\(line)\"")
                }
            }
        }
        XCTAssertEqual(problems, [], problems.joined(separator: "\n"))
    }
}
