import XCTest
import EdgeMeterTestSupport

/// The README and docs/ stay true to the code: every `edgemeter ...` line in their fenced blocks
/// names an existing command and only options that command has (with a value where it takes one),
/// and the code map lists exactly the files in Sources/.
final class DocsTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// One command of argument-parser's dump: its subcommands and option names (hidden ones too),
    /// each with whether it takes a value.
    struct CommandInfo {
        var subcommands: [String: CommandInfo] = [:]
        var options: [String: Bool] = [:]
    }

    func commandTree(_ bin: String) throws -> CommandInfo {
        let r = try runCommand(bin, ["--experimental-dump-help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        func info(_ node: [String: Any]) -> CommandInfo {
            var c = CommandInfo()
            for arg in node["arguments"] as? [[String: Any]] ?? [] {
                let takesValue = (arg["kind"] as? String) == "option"
                for n in arg["names"] as? [[String: Any]] ?? [] {
                    guard let name = n["name"] as? String else { continue }
                    c.options[(n["kind"] as? String) == "long" ? "--" + name : "-" + name] = takesValue
                }
            }
            c.options["-h"] = false
            c.options["--help"] = false
            for sub in node["subcommands"] as? [[String: Any]] ?? [] {
                if let name = sub["commandName"] as? String { c.subcommands[name] = info(sub) }
            }
            return c
        }
        return info(try XCTUnwrap(root["command"] as? [String: Any]))
    }

    /// Splits a shell line into words (single and double quotes; no expansion).
    func words(_ line: String) -> [String] {
        var out: [String] = [], cur = "", quote: Character?, inWord = false
        for ch in line {
            if let q = quote {
                if ch == q { quote = nil } else { cur.append(ch) }
            } else if ch == "'" || ch == "\"" {
                quote = ch; inWord = true
            } else if ch == " " {
                if inWord { out.append(cur); cur = ""; inWord = false }
            } else {
                cur.append(ch); inWord = true
            }
        }
        if inWord { out.append(cur) }
        return out
    }

    /// The `edgemeter ...` lines of fenced blocks, with file and line.
    func commandLines() throws -> [(where: String, line: String)] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        var found: [(String, String)] = []
        for file in ["README.md"] + docs {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            var fenced = false
            for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if raw.hasPrefix("```") { fenced.toggle(); continue }
                guard fenced else { continue }
                var s = String(raw)
                if s.hasPrefix("$ ") { s.removeFirst(2) }
                if s.hasPrefix("edgemeter ") { found.append(("\(file):\(i + 1)", s)) }
            }
        }
        return found
    }

    /// Problems of one command line against the tree, empty when it parses.
    func problems(_ line: String, tree: CommandInfo) -> [String] {
        var toks = Array(words(line).dropFirst())
        if let hash = toks.firstIndex(where: { $0.hasPrefix("#") }) { toks = Array(toks[..<hash]) }
        var node = tree, path: [String] = []
        while let t = toks.first, let sub = node.subcommands[t] {
            node = sub; path.append(t); toks.removeFirst()
        }
        var out: [String] = []
        let name = (["edgemeter"] + path).joined(separator: " ")
        if !node.subcommands.isEmpty && !toks.contains("--help") && !toks.contains("-h") {
            out.append("`\(name)` needs a subcommand (\(node.subcommands.keys.sorted().joined(separator: ", ")))")
        }
        var i = 0
        while i < toks.count {
            let t = toks[i]
            if t == "--" { break }
            if t.hasPrefix("-"), t != "-", !(t.dropFirst().first?.isNumber ?? false) {
                let flag = String(t.split(separator: "=", maxSplits: 1)[0])
                if let takes = node.options[flag] {
                    if takes && !t.contains("=") {
                        i += 1
                        if i >= toks.count { out.append("\(flag) needs a value") }
                    }
                } else {
                    out.append("`\(name)` has no option \(flag)")
                }
            }
            i += 1
        }
        return out
    }

    func testEveryCommandLineInTheDocsParses() throws {
        guard let bin = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        let tree = try commandTree(bin)
        // The checker itself: a line with a made-up option or command is caught.
        XCTAssertFalse(problems("edgemeter ping --bogus 127.0.0.1", tree: tree).isEmpty)
        XCTAssertFalse(problems("edgemeter lab", tree: tree).isEmpty)
        XCTAssertFalse(problems("edgemeter load -c", tree: tree).isEmpty)
        XCTAssertEqual(problems("edgemeter ping -c 3 -i 10ms 127.0.0.1 ::1", tree: tree), [])

        let lines = try commandLines()
        XCTAssertGreaterThan(lines.count, 30, "README.md and docs/*.md show the commands in fenced blocks")
        var bad: [String] = []
        for (place, line) in lines {
            for p in problems(line, tree: tree) { bad.append("\(place): \(p): \(line)") }
        }
        XCTAssertEqual(bad, [], "command lines in the docs that edgemeter would reject")
    }

    func testTheCodeMapListsEverySourceFile() throws {
        let map = try String(contentsOf: root.appendingPathComponent("docs/code-map.md"), encoding: .utf8)
        let sources = root.appendingPathComponent("Sources")
        var files: [String] = []
        let walker = FileManager.default.enumerator(atPath: sources.path)
        while let f = walker?.nextObject() as? String {
            if f.hasSuffix(".swift") || f.hasSuffix(".c") || f.hasSuffix(".h") || f.hasSuffix(".modulemap") {
                files.append((f as NSString).lastPathComponent)
            }
        }
        XCTAssertGreaterThan(files.count, 50)
        let missing = Set(files).filter { !map.contains("`\($0)`") && !map.contains("/\($0)`") }.sorted()
        XCTAssertEqual(missing, [], "files in Sources/ that docs/code-map.md does not list")
        // And nothing listed that is gone.
        let pattern = try Regex("`([A-Za-z0-9_+/]+\\.(swift|c|h|modulemap))`")
        let listed = map.matches(of: pattern).compactMap { $0.output[1].substring.map { ($0 as NSString).lastPathComponent } }
        let stale = Set(listed).subtracting(files).sorted()
        XCTAssertEqual(stale, [], "files docs/code-map.md lists that are not in Sources/")
    }
}
