import XCTest
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterTestSupport
@testable import EdgeMeterHistory

/// `edgemeter compare`, `runs` and `baseline` through the built binary, on temporary run
/// directories and a temporary history (EDGEMETER_DB), and the history of real, killed ping runs.
final class CompareCommandTests: XCTestCase {
    var tmp: URL!
    var bin: String!

    override func setUpWithError() throws {
        guard let b = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        bin = b
        tmp = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("emcmp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let tmp { try? FileManager.default.removeItem(at: tmp) }
    }

    var db: String { tmp.appendingPathComponent("history.sqlite").path }
    var env: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["EDGEMETER_DB"] = db
        return e
    }

    func em(_ args: [String]) throws -> EdgeMeterTestSupport.CommandResult {
        try runCommand(bin, args, timeout: 120, environment: env)
    }

    /// A run directory whose samples.csv holds `values` (rtt, ms) for each target, in order.
    func makeRun(_ name: String, _ byTarget: [(String, [Double])]) throws -> String {
        let dir = tmp.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var text = SampleCSV.headerLine
        var i = 0
        for (target, values) in byTarget {
            for v in values {
                i += 1
                text += SampleCSV.row(Sample(runID: name, scenario: "ping", probe: "ping", target: target, metric: "rtt", phase: "echo",
                                             value: v, unit: "ms", timestamp: Date(timeIntervalSince1970: 1_764_633_600 + Double(i) / 100),
                                             status: .ok, labels: ["node": target == "10.0.0.1" ? "node_1" : "node_2"]))
            }
        }
        try text.write(to: dir.appendingPathComponent("samples.csv"), atomically: true, encoding: .utf8)
        return dir.path
    }

    func lognormal(_ n: Int, scale: Double = 1, seed: UInt64) -> [Double] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in 0.05 * scale * exp(0.25 * rng.standardNormal()) }
    }

    func testCompareExitStatusFollowsPackageBenchmark() throws {
        let a = try makeRun("a", [("127.0.0.1", lognormal(1000, seed: 1))])
        let same = try makeRun("same", [("127.0.0.1", lognormal(1000, seed: 2))])
        let slower = try makeRun("slower", [("127.0.0.1", lognormal(1000, scale: 1.05, seed: 3))])

        let worse = try em(["compare", a, slower])
        XCTAssertEqual(worse.status, 2, worse.stderr)
        XCTAssertTrue(worse.stdout.contains("| ping | 127.0.0.1 | rtt/echo | ms | 1000 | 1000 |"), worse.stdout)
        XCTAssertTrue(worse.stdout.contains("**worse**"), worse.stdout)
        XCTAssertTrue(worse.stdout.contains("A/A check: A's first and second halves agree"), worse.stdout)
        XCTAssertTrue(worse.stdout.contains("verdict: 1 regression(s) (exit status 2)"), worse.stdout)

        let better = try em(["compare", slower, a])
        XCTAssertEqual(better.status, 4, better.stdout + better.stderr)
        XCTAssertTrue(better.stdout.contains("**better**"), better.stdout)

        let nothing = try em(["compare", a, same])
        XCTAssertEqual(nothing.status, 0, nothing.stdout + nothing.stderr)
        XCTAssertTrue(nothing.stdout.contains("no significant change"), nothing.stdout)

        // A loose tolerance hides the 5%.
        let loose = try em(["compare", a, slower, "--threshold", "*:p50=10%", "--threshold", "rtt:p90=10%"])
        XCTAssertEqual(loose.status, 0, loose.stdout)

        // --out writes both formats; --csv prints CSV.
        let outDir = tmp.appendingPathComponent("cmp").path
        let written = try em(["compare", a, slower, "--out", outDir, "--csv"])
        XCTAssertEqual(written.status, 2)
        let csv = try CSV.parse(written.stdout)
        XCTAssertEqual(csv.first, CompareRender.csvHeader)
        XCTAssertEqual(csv[1][CompareRender.csvHeader.firstIndex(of: "verdict")!], "worse")
        XCTAssertTrue(FileManager.default.fileExists(atPath: outDir + "/compare.md"))
        XCTAssertEqual(try String(contentsOfFile: outDir + "/compare.csv", encoding: .utf8), written.stdout)
    }

    func testCompareUsageErrorsExit64() throws {
        let a = try makeRun("a", [("127.0.0.1", lognormal(50, seed: 1))])
        for (args, message) in [
            (["compare", a], "give two runs"),
            (["compare", a, a, "--threshold", "rtt=5%"], "SCOPE:pNN=VALUE"),
            (["compare", a, tmp.appendingPathComponent("missing").path], "is not a run directory"),
            (["compare", a, a, "--nope"], "--nope"),
            (["compare", a, "--by", "node"], "choose two with --groups"),
        ] as [([String], String)] {
            let r = try em(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // Other commands keep exit status 2 for usage errors.
        XCTAssertEqual(try em(["runs", "list", "--limit", "0"]).status, 2)
    }

    func testCompareByGroupsInsideOneRun() throws {
        let two = try makeRun("two", [("10.0.0.1", lognormal(500, seed: 1)), ("10.0.0.2", lognormal(500, scale: 1.5, seed: 2))])
        let byTarget = try em(["compare", two, "--by", "target"])
        XCTAssertEqual(byTarget.status, 2, byTarget.stdout + byTarget.stderr)
        XCTAssertTrue(byTarget.stdout.contains("# Compare: two target=10.0.0.1 (A) → two target=10.0.0.2 (B)"), byTarget.stdout)
        let byLabel = try em(["compare", two, "--by", "node", "--groups", "node_2,node_1"])
        XCTAssertEqual(byLabel.status, 4, byLabel.stdout + byLabel.stderr)
        XCTAssertTrue(byLabel.stdout.contains("node=node_2 (A)"), byLabel.stdout)
    }

    func testRunsBaselineAndCompareByName() throws {
        let a = try makeRun("20261202T000000Z-ping", [("127.0.0.1", lognormal(400, seed: 1))])
        let b = try makeRun("20261202T000100Z-ping", [("127.0.0.1", lognormal(400, scale: 1.2, seed: 2))])
        XCTAssertEqual(try em(["runs", "list"]).status, 2, "no history yet is a usage error")
        let imported = try em(["runs", "import", a, b])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        XCTAssertTrue(imported.stdout.contains("imported \(a) as run 20261202T000000Z-ping (400 samples)"), imported.stdout)
        let list = try em(["runs", "list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("20261202T000100Z-ping"), list.stdout)
        XCTAssertTrue(list.stdout.contains("400"), list.stdout)

        let set = try em(["baseline", "set", "nightly", "20261202T000000Z"])
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertTrue(set.stdout.contains("baseline nightly → run 20261202T000000Z-ping"), set.stdout)
        XCTAssertTrue(try em(["runs", "list"]).stdout.contains("nightly"))
        // The run directory can go: the history has the samples.
        try FileManager.default.removeItem(atPath: a)
        let cmp = try em(["compare", "nightly", "20261202T000100Z-ping"])
        XCTAssertEqual(cmp.status, 2, cmp.stdout + cmp.stderr)
        XCTAssertTrue(cmp.stdout.contains("# Compare: nightly (20261202T000000Z-ping) (A) → 20261202T000100Z-ping (B)"), cmp.stdout)
        let show = try em(["runs", "show", "nightly"])
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.contains("run:       20261202T000000Z-ping"), show.stdout)
        XCTAssertTrue(show.stdout.contains("(no longer exists)"), show.stdout)
        let rm = try em(["runs", "rm", "20261202T000000Z-ping"])
        XCTAssertEqual(rm.status, 0, rm.stderr)
        XCTAssertTrue(rm.stdout.contains("and baseline(s) nightly"), rm.stdout)
        XCTAssertEqual(try em(["compare", "nightly", "20261202T000100Z-ping"]).status, 64)

        // Bad input names what was wrong; nothing is removed by a refused call.
        let noIDs = try em(["runs", "rm"])
        XCTAssertNotEqual(noIDs.status, 0)
        XCTAssertTrue(noIDs.stderr.contains("Missing expected argument '<runs> ...'"), noIDs.stderr)
        XCTAssertNotEqual(try em(["runs", "import"]).status, 0, "import needs a directory")
        let unknown = try em(["runs", "rm", "no-such-run", "20261202T000100Z-ping"])
        XCTAssertEqual(unknown.status, 2, unknown.stderr)
        XCTAssertTrue(unknown.stdout.contains("removed 20261202T000100Z-ping"), unknown.stdout)
        XCTAssertTrue(unknown.stderr.contains("no run no-such-run in \(db): give exact ids"), unknown.stderr)
        let c = try makeRun("20261202T000200Z-ping", [("127.0.0.1", lognormal(100, seed: 3))])
        XCTAssertEqual(try em(["runs", "import", c]).status, 0)
        XCTAssertEqual(try em(["baseline", "set", "weekly", "latest"]).status, 0)
        XCTAssertTrue(try em(["baseline", "list"]).stdout.contains("weekly"))
        let rmMissing = try em(["baseline", "rm", "monthly"])
        XCTAssertEqual(rmMissing.status, 2)
        XCTAssertTrue(rmMissing.stderr.contains("no baseline \"monthly\" in \(db)"), rmMissing.stderr)
        let rmBase = try em(["baseline", "rm", "weekly"])
        XCTAssertEqual(rmBase.status, 0, rmBase.stderr)
        XCTAssertTrue(rmBase.stdout.contains("removed baseline weekly"), rmBase.stdout)
        XCTAssertTrue(try em(["baseline", "list"]).stderr.contains("no baselines in \(db)"))
        XCTAssertTrue(try em(["runs", "list"]).stdout.contains("20261202T000200Z-ping"), "the baseline's run stays")
    }

    /// Whether unprivileged-or-root ICMP echo on loopback works here (else the ping tests skip).
    func pingWorks() throws -> Bool {
        let r = try em(["ping", "-c", "1", "-q", "--no-history", "--out", tmp.appendingPathComponent("probe").path, "127.0.0.1"])
        return r.status == 0
    }

    func testAKilledPingRunKeepsWhatItMeasuredInTheHistory() throws {
        guard try pingWorks() else {
            throw XCTSkip("ICMP echo on 127.0.0.1 does not work here: run as root or allow datagram ICMP (sysctl net.ipv4.ping_group_range=\"0 2147483647\")")
        }
        let out = tmp.appendingPathComponent("killed").path
        let child = try ChildProcess([bin, "ping", "-q", "-i", "10ms", "--db", db, "--out", out, "127.0.0.1"], environment: env)
        // Wait until at least two batches (1 s apart) reached the history, then SIGKILL: no clean-up runs.
        let store = try waitForStore()
        var recorded = 0
        let end = Date().addingTimeInterval(20)
        while Date() < end {
            recorded = try store.runs(limit: 5).first?.sampleCount ?? 0
            if recorded >= 150 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        child.signal(SIGKILL)
        _ = child.waitBlocking()
        XCTAssertGreaterThanOrEqual(recorded, 150)
        let run = try XCTUnwrap(store.runs(limit: 5).first)
        XCTAssertEqual(run.id, "killed")
        XCTAssertFalse(run.complete)
        XCTAssertNil(run.endedAt, "a SIGKILLed run records no end")
        XCTAssertEqual(run.directory, out)
        let inHistory = try store.samples(runID: run.id)
        XCTAssertEqual(inHistory.count, run.sampleCount)
        // Everything in the history is also in samples.csv, in the same order (samples.csv may hold
        // up to one more second of samples).
        let onDisk = try RunDirectoryReader.samples(directory: URL(fileURLWithPath: out))
        XCTAssertGreaterThanOrEqual(onDisk.count, inHistory.count)
        XCTAssertEqual(Array(onDisk.prefix(inHistory.count)).map(\.labels["seq"]), inHistory.map(\.labels["seq"]))
        let list = try self.em(["runs", "list"])
        XCTAssertTrue(list.stdout.contains("unfinished"), list.stdout)
    }

    func testAnInterruptedRunIsRecordedAsStoppedWithEverySample() throws {
        guard try pingWorks() else {
            throw XCTSkip("ICMP echo on 127.0.0.1 does not work here: run as root or allow datagram ICMP (sysctl net.ipv4.ping_group_range=\"0 2147483647\")")
        }
        let out = tmp.appendingPathComponent("stopped").path
        let child = try ChildProcess([bin, "ping", "-q", "-i", "10ms", "--db", db, "--out", out, "127.0.0.1"], environment: env)
        let store = try waitForStore()
        let end = Date().addingTimeInterval(20)
        while Date() < end, (try store.runs(limit: 1).first?.sampleCount ?? 0) < 50 { Thread.sleep(forTimeInterval: 0.05) }
        child.signal(SIGINT)
        XCTAssertEqual(child.waitBlocking(), 130)
        let run = try XCTUnwrap(store.run(id: "stopped"))
        XCTAssertFalse(run.complete)
        XCTAssertNotNil(run.endedAt)
        XCTAssertNotNil(run.stopReason)
        // A clean stop writes the last batch: the history holds exactly what samples.csv holds.
        XCTAssertEqual(run.sampleCount, try RunDirectoryReader.samples(directory: URL(fileURLWithPath: out)).count)
        XCTAssertTrue(try em(["runs", "list"]).stdout.contains("stopped"))
    }

    func testACorruptHistoryNeverLosesTheRun() throws {
        guard try pingWorks() else {
            throw XCTSkip("ICMP echo on 127.0.0.1 does not work here: run as root or allow datagram ICMP (sysctl net.ipv4.ping_group_range=\"0 2147483647\")")
        }
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: db))
        let out = tmp.appendingPathComponent("kept").path
        let r = try em(["ping", "-c", "5", "-i", "10ms", "-q", "--out", out, "127.0.0.1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("warning: history database \(db) is damaged or not an edgemeter history"), r.stderr)
        XCTAssertTrue(r.stderr.contains("report: \(out)/"), r.stderr)
        XCTAssertEqual(try RunDirectoryReader.samples(directory: URL(fileURLWithPath: out)).filter { $0.phase == "echo" }.count, 5)
        // A healthy history records a finished run whole.
        try FileManager.default.removeItem(atPath: db)
        let out2 = tmp.appendingPathComponent("ok").path
        XCTAssertEqual(try em(["ping", "-c", "5", "-i", "10ms", "-q", "--out", out2, "127.0.0.1"]).status, 0)
        let store = try HistoryStore(path: db)
        let rec = try XCTUnwrap(store.run(id: "ok"))
        XCTAssertTrue(rec.complete)
        XCTAssertEqual(rec.sampleCount, try RunDirectoryReader.samples(directory: URL(fileURLWithPath: out2)).count)
    }

    func testASuiteRunIsRecordedWithItsScenarios() throws {
        guard try pingWorks() else {
            throw XCTSkip("ICMP echo on 127.0.0.1 does not work here: run as root or allow datagram ICMP (sysctl net.ipv4.ping_group_range=\"0 2147483647\")")
        }
        let suite = tmp.appendingPathComponent("s.yaml")
        try """
            name: hist-suite
            scenarios:
              - name: lo-a
                kind: ping
                targets: [127.0.0.1]
                count: 20
                interval: 5ms
              - name: lo-b
                kind: ping
                targets: [127.0.0.1]
                count: 10
                interval: 5ms
            """.write(to: suite, atomically: true, encoding: .utf8)
        let out = tmp.appendingPathComponent("suite-run").path
        let r = try em(["run", suite.path, "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let store = try HistoryStore(path: db)
        let run = try XCTUnwrap(store.run(id: "suite-run"))
        XCTAssertTrue(run.complete)
        XCTAssertEqual(run.suiteFile, suite.path)
        XCTAssertEqual(try store.scenarios(runID: run.id), ["lo-a", "lo-b"])
        XCTAssertEqual(try store.samples(runID: run.id).count, try RunDirectoryReader.samples(directory: URL(fileURLWithPath: out)).count)
        let byScenario = try em(["compare", "suite-run", "--by", "scenario"])
        XCTAssertTrue([0, 2, 4].contains(byScenario.status), byScenario.stderr)
        XCTAssertTrue(byScenario.stdout.contains("scenario=lo-a (A)"), byScenario.stdout)
        XCTAssertTrue(byScenario.stdout.contains("| rtt/echo | ms | 20 | 10 |"), byScenario.stdout)
    }

    func waitForStore() throws -> HistoryStore {
        let end = Date().addingTimeInterval(20)
        while Date() < end {
            if FileManager.default.fileExists(atPath: db), let s = try? HistoryStore(path: db) { return s }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("the history database never appeared at \(db) although the ping run was started with --db")
        throw CancellationError()
    }
}
