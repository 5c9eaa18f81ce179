import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// report.html end to end: real runs with `--rounds` write it, and Debian's headless Chromium, run
/// inside a fresh network namespace (no route anywhere), renders it: a non-empty screenshot, every
/// chart in the DOM with its marks, and no request from the page in Chromium's net log. A control
/// page with one remote image proves the net-log check catches a fetch.
final class HTMLReportTests: BinaryTestCase {
    /// The screenshot the browser test leaves for people to look at (outside the removed `out`).
    static let screenshotPath = NSTemporaryDirectory() + "edgemeter-report-screenshot.png"

    func chromiumReason() -> String? {
        if which("chromium") == nil { return "chromium is not installed: `apt-get install chromium` (scripts/setup.sh lists it)" }
        if getuid() != 0 { return "the browser runs in a new network namespace (ip netns add), which needs root: run the tests as root" }
        if which("ip") == nil { return "iproute2 (`ip`) is missing: `apt-get install iproute2`" }
        return nil
    }

    // MARK: rounds on the command line

    func testTCPingRoundsLabelEverySampleAndFeedTheSmokeGraph() throws {
        let r = try runCommand(bin, ["tcping", "--listener", "-c", "4", "-i", "5ms", "--rounds", "3", "--every", "300ms", "127.0.0.1",
                                     "--out", out], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("12 attempts, 12 connected"), "totals add up over the rounds: \(r.stdout)")
        let connects = try samples(out).filter { $0.phase == "connect" }
        XCTAssertEqual(connects.count, 12)
        XCTAssertEqual(Dictionary(grouping: connects, by: { $0.labels["round"] ?? "none" }).mapValues(\.count), ["1": 4, "2": 4, "3": 4])
        // Rounds are paced (due 300 ms apart; exact due times: ScenarioRoundsTests), not back to
        // back: each round's 4 connects take a few ms. The first connect of a round comes after its
        // listener set-up, which varies by some ms, hence the margin.
        let starts = (1...3).map { k in connects.filter { $0.labels["round"] == "\(k)" }.map(\.timestamp).min()! }
        for (a, b) in zip(starts, starts.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b.timeIntervalSince(a), 0.2, "rounds are --every apart")
        }
        XCTAssertGreaterThanOrEqual(starts[2].timeIntervalSince(starts[0]), 0.5)
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("Rounds (smoke graphs)"))
        XCTAssertTrue(html.contains("3 rounds; per round"))
        let plots = try FileManager.default.contentsOfDirectory(atPath: out + "/plots").sorted()
        XCTAssertTrue(plots.contains { $0.hasPrefix("smoke-tcping-") }, "\(plots)")
        XCTAssertTrue(plots.contains("cdf-tcping.svg"), "\(plots)")
        let md = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        for p in plots { XCTAssertTrue(md.contains("(plots/\(p))"), "report.md embeds \(p)") }
    }

    func testRoundsNeedABoundedRoundOnTheCommandLine() throws {
        let r = try runCommand(bin, ["ping", "--rounds", "3", "127.0.0.1", "--out", out])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--rounds needs -c/--count or -w/--deadline: each round must end by itself before the next one"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing measured, no run directory")
    }

    func testSuiteCalcRoundsAgainstTheCalculator() throws {
        let suite = out + "-suite.yaml"
        defer { try? FileManager.default.removeItem(atPath: suite) }
        try """
            name: rounds
            scenarios:
              - name: calc-rounds
                kind: calc
                calculator: true
                expression: "(5+6)*2"
                count: 3
                interval: 10ms
                rounds: 3
                every: 400ms
            """.write(toFile: suite, atomically: true, encoding: .utf8)
        let r = try runCommand(bin, ["run", suite, "--out", out], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let totals = try samples(out).filter { $0.probe == "calc" && $0.phase == "total" }
        XCTAssertEqual(totals.count, 9)
        XCTAssertEqual(Set(totals.compactMap { $0.labels["round"] }), ["1", "2", "3"])
        XCTAssertTrue(totals.allSatisfy { $0.status == .ok }, "\(totals.map(\.reason))")
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("calc total: "), "the calc smoke graph")
    }

    /// samples.csv is read in chunks of whole lines: a file of many chunks (here 4 kB each; 8 MiB
    /// in use) gives every sample to the charts, none lost or doubled at a chunk boundary.
    func testChunkedReadingKeepsEverySample() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var csv = SampleCSV.headerLine + "\n"
        let n = 3_001
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        for k in 0..<n {
            csv += SampleCSV.row(Sample(runID: "r", scenario: "big", probe: "ping", target: "127.0.0.1", metric: "rtt", phase: "echo",
                                        value: 0.05 + Double(k % 1000) * 1e-5, unit: "ms", timestamp: t0.addingTimeInterval(Double(k) * 1e-3),
                                        status: .ok, labels: ["seq": "\(k + 1)", "socket": "raw", "note": "a, \"quoted\" label"])) + "\n"
        }
        XCTAssertGreaterThan(csv.utf8.count, 80 * 4096, "the file spans many chunks")
        try csv.write(toFile: out + "/samples.csv", atomically: true, encoding: .utf8)
        for chunk in [100, 4096, 4097, 1 << 20] {
            let c = try HTMLReport.collect(URL(fileURLWithPath: out + "/samples.csv"), chunkBytes: chunk)
            XCTAssertEqual(c.count, n, "chunks of \(chunk) bytes")
        }
        let w = try HTMLReport.write(dir: URL(fileURLWithPath: out))
        XCTAssertEqual(w.charts, 1)
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("echo (n=\(n))"), "every row reached the CDF")
        XCTAssertTrue(html.contains("<dd>\(n)</dd>"), "sample count")
    }

    // MARK: the browser

    /// Runs Chromium headless inside `ns` on `url`: the DOM (stdout) and the net log's events.
    func chromium(_ ns: String, _ args: [String], profile: String) throws -> CommandResult {
        try runCommand(which("ip")!, ["netns", "exec", ns, which("chromium")!, "--headless", "--no-sandbox", "--disable-gpu",
                                      "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                      "--user-data-dir=\(profile)"] + args, timeout: 120)
    }

    /// URLs the page asked for (not Chromium's own background requests, which have no origin).
    func pageRequests(netLog path: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let log = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let constants = log["constants"] as? [String: Any], let types = constants["logEventTypes"] as? [String: Int],
              let start = types["URL_REQUEST_START_JOB"], let events = log["events"] as? [[String: Any]] else {
            XCTFail("\(path) is not a Chromium net log")
            return []
        }
        var urls: [String] = []
        for e in events where e["type"] as? Int == start {
            guard let p = e["params"] as? [String: Any], let url = p["url"] as? String else { continue }
            let initiator = p["initiator"] as? String ?? ""
            let isolation = p["network_isolation_key"] as? String ?? ""
            if initiator != "not an origin" || isolation.contains("file://") { urls.append(url) }
        }
        return urls
    }

    func testReportRendersInHeadlessChromiumOfflineWithEveryChart() throws {
        if let reason = chromiumReason() { throw XCTSkip(reason) }
        // A real run with rounds (CDF and smoke graph), plus the files other kinds leave in a run
        // directory (a reach matrix, a migration timeline, a compare table) and startup samples,
        // so every chart type is drawn; then `edgemeter report` re-renders it.
        let r = try runCommand(bin, ["tcping", "--listener", "-c", "20", "-i", "2ms", "--rounds", "4", "--every", "200ms", "127.0.0.1",
                                     "--out", out], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        var csv = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8)
        let runID = try samples(out)[0].runID
        for (backend, base) in [("docker", 200.0), ("lxc", 340.0), ("qemu", 7900.0)] {
            for k in 0..<5 {
                for (phase, v) in [("create", base * 0.05), ("start", base * 0.8), ("ready", 0.3), ("total", base)] {
                    csv += SampleCSV.row(Sample(runID: runID, scenario: "startup-fixture", probe: "startup", target: backend, metric: "startup",
                                                phase: phase, value: v * (1 + Double(k) * 0.03), unit: "ms", timestamp: Date(), status: .ok)) + "\n"
                }
            }
        }
        try csv.write(toFile: out + "/samples.csv", atomically: true, encoding: .utf8)
        try "from,to,probe,reachable,why_not,rtt_p50_ms\nhost,a,icmp,yes,,0.05\nhost,b,icmp,no,no route,\na,b,tcp:80,yes,,0.2\nb,a,icmp,yes,,0.1\n"
            .write(toFile: out + "/reach-two-subnet.csv", atomically: true, encoding: .utf8)
        var timeline = ReportFiles.timelineHeaderPrefix + ",failure\n"
        for k in 0..<200 {
            let node = k < 120 ? "node_1" : "node_2"
            let failed = (118...121).contains(k)
            timeline += "\(k),\(Double(k) * 10),\(Double(k) * 10 + 0.1),\(Double(k) * 10 + 3),\(failed ? 500 : 2 + Double(k % 7)),\(failed ? "" : "200"),\(failed ? "" : node),\(failed ? "no answer within 500ms" : "")\n"
        }
        try timeline.write(toFile: out + "/vehicle.csv", atomically: true, encoding: .utf8)
        try "metric,phase,median_a_ms,median_b_ms,ratio,verdict\nlatency,connect,0.110,0.121,1.10,worse\n"
            .write(toFile: out + "/compare-fixture.csv", atomically: true, encoding: .utf8)
        let rep = try runCommand(bin, ["report", out])
        XCTAssertEqual(rep.status, 0, rep.stderr)
        XCTAssertTrue(rep.stderr.contains("report.html and report.md (5 charts in plots/)"), rep.stderr)

        let html = out + "/report.html"
        let ns = "em-html-\(getpid())"
        _ = try runCommand(which("ip")!, ["netns", "add", ns])
        defer { _ = try? runCommand(which("ip")!, ["netns", "delete", ns]) }
        let profile = out + "/chromium-profile"
        let netLog = out + "/netlog.json"
        let dom = try chromium(ns, ["--log-net-log=\(netLog)", "--net-log-capture-mode=Everything", "--dump-dom", "file://\(html)"],
                               profile: profile)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        // Every chart is in the DOM with its marks.
        let figures = dom.stdout.components(separatedBy: "<figure id=\"").dropFirst()
        let ids = figures.map { String($0.prefix { $0 != "\"" }) }
        XCTAssertEqual(Set(ids.map { String($0.prefix { $0 != "-" }) }), ["cdf", "box", "smoke", "reach", "timeline"], "\(ids)")
        for (id, f) in zip(ids, figures) {
            let svg = f.components(separatedBy: "</svg>")[0]
            XCTAssertTrue(svg.contains("<svg"), id)
            if id.hasPrefix("cdf") {
                let curve = svg.components(separatedBy: "<path d=\"M").dropFirst().first ?? ""
                XCTAssertGreaterThan(curve.prefix { $0 != "\"" }.components(separatedBy: " L").count, 20, "\(id) has its curve drawn")
            } else {
                let marks = ["<path d=\"M", "<circle", "<rect"].map { svg.components(separatedBy: $0).count - 1 }.reduce(0, +)
                XCTAssertGreaterThan(marks, 8, "\(id) has its data drawn")
            }
            XCTAssertTrue(svg.contains("(ms)") || id.hasPrefix("reach"), "\(id) names its unit")
        }
        XCTAssertTrue(dom.stdout.contains("Compare: compare-fixture.csv"))
        XCTAssertEqual(try pageRequests(netLog: netLog), [], "report.html fetched something")

        // The screenshot: a PNG of the rendered page, kept for people to look at.
        let shot = out + "/report.png"
        let s = try chromium(ns, ["--screenshot=\(shot)", "--window-size=1280,4200", "--hide-scrollbars", "file://\(html)"], profile: profile)
        XCTAssertEqual(s.status, 0, s.stderr)
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG")
        XCTAssertGreaterThan(png.count, 100_000, "a page of charts, not a blank one (a blank 1280×4200 page is a few kB)")
        try? FileManager.default.removeItem(atPath: Self.screenshotPath)
        try FileManager.default.copyItem(atPath: shot, toPath: Self.screenshotPath)
        print("report.html screenshot: \(Self.screenshotPath) (\(png.count) bytes)")

        // Control: a page with a remote image is caught by the same net-log check.
        let control = out + "/control.html"
        try "<!DOCTYPE html><html><body><img src=\"http://192.0.2.1/x.png\"></body></html>".write(toFile: control, atomically: true, encoding: .utf8)
        let controlLog = out + "/control-netlog.json"
        _ = try chromium(ns, ["--log-net-log=\(controlLog)", "--dump-dom", "file://\(control)"], profile: profile)
        XCTAssertEqual(try pageRequests(netLog: controlLog), ["http://192.0.2.1/x.png"], "the check sees a page's fetch")
    }
}
