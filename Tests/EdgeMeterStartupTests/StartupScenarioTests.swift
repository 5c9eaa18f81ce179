import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterRun
@testable import EdgeMeterStartup
import Foundation
import XCTest

/// The `startup` suite kind: validation, the report sections, and a real mini suite (docker + cmd +
/// a backend that is not installed) through the suite runner.
final class StartupScenarioTests: XCTestCase {
    override class func tearDown() {
        DockerBackendTests.tearDown()
    }

    func load(_ yaml: String) throws -> Suite {
        try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: ScenarioKinds.schemas)
    }

    func testValidationRejectsImpossibleCombinations() throws {
        let cases: [(String, String)] = [
            ("backend: qemu\n    ready: icmp", "s.yaml:5: scenario \"a\": ready icmp is not available for qemu"),
            ("backend: lxc\n    snapshot: true", "s.yaml:5: scenario \"a\": snapshot is supported for docker, podman and qemu only, not lxc"),
            ("backend: qemu\n    snapshot: true\n    ready: marker", "s.yaml:5: scenario \"a\": a restored VM does not boot again"),
            ("backend: cmd", "s.yaml:5: scenario \"a\": the cmd backend needs a start command"),
            ("backend: vbox", "s.yaml:5: scenario \"a\": `backend` must be one of docker, lxc, qemu, cmd, podman, runc, crun, got \"vbox\""),
            ("backend: runc\n    snapshot: true", "s.yaml:5: scenario \"a\": snapshot is supported for docker, podman and qemu only, not runc"),
            ("backend: docker\n    ready: later", "s.yaml:6: scenario \"a\": `ready` must be one of exit, marker, tcp, http, icmp, got \"later\""),
        ]
        for (body, expected) in cases {
            let yaml = "name: t\nscenarios:\n  - name: a\n    kind: startup\n    \(body)\n"
            XCTAssertThrowsError(try load(yaml), body) { e in
                XCTAssertTrue("\(e)".hasPrefix(expected), "got: \(e)\nexpected prefix: \(expected)")
            }
        }
        XCTAssertNoThrow(try load("name: t\nscenarios:\n  - name: a\n    kind: startup\n    backend: cmd\n    start: [busybox, true]\n"))
    }

    func testComparisonShowsRatiosFastestFirst() {
        func result(_ backend: String, total: Double, ready: Double) -> StartupScenario.BackendResult {
            StartupScenario.BackendResult(scenario: backend, backend: backend, ready: "tcp",
                                          attempts: [StartupAttempt(index: 0, phases: [.total: total, .ready: ready])], labels: [:])
        }
        let md = StartupScenario.comparison([result("qemu", total: 7000, ready: 6900), result("docker", total: 500, ready: 2)])
        XCTAssertTrue(md.contains("| docker | docker | tcp | 1/1 | 500 | 2.0 | 1.0× |"), md)
        XCTAssertTrue(md.contains("| qemu | qemu | tcp | 1/1 | 7000 | 6900 | 14.0× |"), md)
        XCTAssertTrue(md.contains("- docker ready (create→ready) 14.0× faster than qemu (500 ms vs 7000 ms)"), md)
        XCTAssertLessThan(md.range(of: "| docker |")!.lowerBound, md.range(of: "| qemu |")!.lowerBound)
    }

    /// The cross-scenario comparison is rebuilt from the run's own samples (no process-wide
    /// registry): per scenario and backend, one attempt per `run` label, failures included.
    func testResultsAreRebuiltFromTheRunsSamples() async throws {
        let sink = MemorySink()
        let good = FakeBackend(clock: ManualClock())
        try await StartupRunner.run(backend: good, plan: StartupPlan(scenario: "s1", runs: 2, ready: .marker(ReadyCheck.defaultMarker)),
                                    runID: "r", sink: sink, stop: StopFlag(), clock: good.clock)
        let bad = FakeBackend(clock: ManualClock())
        bad.failing = .running
        try await StartupRunner.run(backend: bad, plan: StartupPlan(scenario: "s2", runs: 1, ready: .exit),
                                    runID: "r", sink: sink, stop: StopFlag(), clock: bad.clock)
        let results = StartupScenario.results(from: sink.samples)
        XCTAssertEqual(results.map(\.scenario), ["s1", "s2"])
        XCTAssertEqual(results[0].attempts.count, 2)
        XCTAssertEqual(results[0].median(.total), 600)
        XCTAssertEqual(results[0].median(.ready), 250)
        XCTAssertEqual(results[0].okRuns, 2)
        XCTAssertEqual(results[0].ready, "marker")
        XCTAssertEqual(results[1].okRuns, 0)
        XCTAssertEqual(results[1].attempts.first?.failure, "running: running refused by the fake engine")
        XCTAssertEqual(results[1].median(.create), 100)
        XCTAssertNil(results[1].median(.total))
    }

    /// Three startup scenarios that run (docker, cmd, runc) and one that cannot (an image dockerd
    /// does not have): one phase table each, ONE comparison covering all three at the end, the
    /// missing one noted "not run".
    func testSuiteRunsDockerAndCmdAndReportsMissingBackendAsNotRun() async throws {
        _ = try requireRuntime("runc")
        _ = try await DockerBackendTests.clientWithImage()
        let yaml = """
            name: startup-mini
            scenarios:
              - name: docker-exit
                kind: startup
                backend: docker
                image: \(DockerBackendTests.image)
                runs: 2
                ready: exit
              - name: cmd-marker
                kind: startup
                backend: cmd
                start: [busybox, echo, EDGEMETER-READY]
                ready: marker
                runs: 2
              - name: docker-missing-image
                kind: startup
                backend: docker
                image: edgemeter-no-such-image:latest
                ready: exit
                runs: 1
              - name: runc-marker
                kind: startup
                backend: runc
                ready: marker
                runs: 2

            """
        let suite = try load(yaml)
        let out = NSTemporaryDirectory() + "edgemeter-suite-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = try RunDirectory(out: out, name: "startup-mini")
        await SuiteRunner().run(suite, in: dir, stop: StopFlag(), progress: { _ in })
        _ = try dir.finish(complete: true)
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("### Startup phases: docker-exit"), md)
        XCTAssertTrue(md.contains("### Startup phases: runc-marker"), md)
        XCTAssertEqual(md.components(separatedBy: "### Startup comparison").count - 1, 1, "one comparison section: \(md)")
        XCTAssertEqual(md.components(separatedBy: StartupScenario.comparisonSectionKey).count - 1, 1, md)
        let comparison = String(md[md.range(of: "### Startup comparison")!.lowerBound...])
        for scenario in ["docker-exit", "cmd-marker", "runc-marker"] {
            XCTAssertTrue(comparison.contains("| \(scenario) |"), "\(scenario) missing from the comparison: \(comparison)")
        }
        XCTAssertNil(comparison.range(of: "### Startup phases"), "the comparison comes after every phase table")
        XCTAssertTrue(md.contains("image edgemeter-no-such-image:latest not found in dockerd"), md)
        let csv = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8)
        let rows = csv.split(separator: "\n").filter { $0.contains(",startup,") }
        XCTAssertEqual(rows.count, 2 * 7 + 2 * 7 + 2 * 7, "every phase of every attempt")
        XCTAssertTrue(rows.allSatisfy { $0.contains(",ok,") }, rows.joined(separator: "\n"))
    }
}
