import XCTest
@testable import EdgeMeterCore

/// A suite's `compare:` section: parsing and validation (every problem located), globs, the
/// comparisons computed from samples (polarity-aware verdicts), and the CSV/Markdown outputs.
final class SuiteCompareTests: XCTestCase {
    let schemas = [
        ScenarioSchema(kind: "ping", parameters: ["count": .positiveInteger, "targets": .stringList], required: ["targets"]),
        ScenarioSchema(kind: "startup", parameters: ["backend": .string], required: ["backend"]),
    ]

    func suite(_ compare: String) -> String {
        """
        name: t
        scenarios:
          - {name: startup-docker, kind: startup, backend: docker}
          - {name: startup-lxc, kind: startup, backend: lxc}
          - {name: startup-qemu, kind: startup, backend: qemu}
          - {name: loopback, kind: ping, targets: [127.0.0.1, "::1"], count: 3}
          - {name: bridge, kind: ping, targets: [10.0.0.2], count: 3}
        compare:
        \(compare)
        """
    }

    func testGlobsNamesAndTargetsResolveInOrder() throws {
        let s = try SuiteLoader.load(yaml: suite("""
          - name: startup
            description: containers vs VM
            scenarios: [startup-docker, "startup-*"]
          - name: path
            scenarios: [{scenario: loopback, target: 127.0.0.1}, bridge]
        """), file: "s.yaml", schemas: schemas)
        XCTAssertEqual(s.comparisons.map(\.name), ["startup", "path"])
        XCTAssertEqual(s.comparisons[0].groups.map(\.label), ["startup-docker", "startup-lxc", "startup-qemu"], "the glob adds the rest, no repeat")
        XCTAssertEqual(s.comparisons[0].description, "containers vs VM")
        XCTAssertEqual(s.comparisons[1].groups.map(\.label), ["loopback (127.0.0.1)", "bridge"])
        XCTAssertEqual(s.comparisons[1].fileName, "compare-path.csv")
    }

    func testEveryProblemIsLocated() {
        let yaml = suite("""
          - name: a
            scenarios: [startup-dokcer, startup-lxc]
          - name: b
            scenarios: ["nothing-*", startup-lxc]
          - name: c
            scenarios: [startup-lxc]
          - name: "bad name"
            scenarios: [startup-lxc, startup-qemu]
          - name: e
            scenarioz: [startup-lxc, startup-qemu]
          - name: c
            scenarios: [startup-lxc, startup-qemu]
          - scenarios: [startup-lxc, startup-qemu]
        """)
        XCTAssertThrowsError(try SuiteLoader.load(yaml: yaml, file: "s.yaml", schemas: schemas)) { e in
            guard let all = e as? SuiteErrors else { return XCTFail("\(e)") }
            XCTAssertEqual(all.problems.map(\.description), [
                "s.yaml:10: comparison item \"startup-dokcer\" names no scenario of this suite (did you mean `startup-docker`?)",
                "s.yaml:12: comparison item \"nothing-*\" names no scenario of this suite",
                "s.yaml:13: comparison \"c\" matches 1 scenario(s) (startup-lxc): it needs at least two",
                "s.yaml:15: comparison `name` must be letters, digits, '-', '_' or '.' (it names compare-NAME.csv), got \"bad name\"",
                "s.yaml:18: unknown key `scenarioz` in a comparison (did you mean `scenarios`?); expected one of: name, description, scenarios",
                "s.yaml:19: duplicate comparison name \"c\" (first used on line 13); names must be unique",
                "s.yaml:21: a comparison needs a `name` (it names compare-NAME.csv)",
            ])
        }
    }

    func testCompareMustBeAList() {
        XCTAssertThrowsError(try SuiteLoader.load(yaml: suite("  name: x"), file: "s.yaml", schemas: schemas)) { e in
            XCTAssertTrue("\(e)".contains("`compare` must be a list of comparisons"), "\(e)")
        }
    }

    func testGlob() {
        XCTAssertTrue(SuiteComparison.glob("startup-*", matches: "startup-qemu"))
        XCTAssertTrue(SuiteComparison.glob("*-tcp-*", matches: "loopback-tcp-connect"))
        XCTAssertTrue(SuiteComparison.glob("a*", matches: "a"))
        XCTAssertFalse(SuiteComparison.glob("startup-*", matches: "footprint"))
        XCTAssertFalse(SuiteComparison.glob("b", matches: "bb"))
    }

    /// Deterministic values around `median` (a spread of ±10 %), 200 of them.
    func values(_ median: Double, seed: UInt64) -> [Double] {
        var x = seed
        return (0..<200).map { _ in
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(x >> 11) / Double(1 << 53)
            return median * (0.9 + 0.2 * u)
        }
    }

    func samples(_ scenario: String, target: String, _ vs: [Double], phase: String = "total") -> [Sample] {
        vs.map { Sample(runID: "r", scenario: scenario, probe: "startup", target: target, metric: "startup", phase: phase,
                        value: $0, unit: "ms", timestamp: Date(timeIntervalSince1970: 0), status: .ok) }
    }

    func testVerdictsKnowPolarityAndTheBaselineIsFirst() throws {
        let c = SuiteComparison(name: "startup", groups: [.init(scenario: "startup-docker", target: "docker"), .init(scenario: "startup-lxc"),
                                                          .init(scenario: "startup-qemu"), .init(scenario: "never-ran")])
        var d = SuiteComparisonData(c)
        for s in samples("startup-docker", target: "docker", values(300, seed: 1)) { d.add(s) }
        // The snapshot clone of the same scenario is another target: not in the docker group.
        for s in samples("startup-docker", target: "docker-snapshot", values(3000, seed: 9)) { d.add(s) }
        for s in samples("startup-lxc", target: "lxc", values(30, seed: 2)) { d.add(s) }
        for s in samples("startup-qemu", target: "qemu", values(6000, seed: 3)) { d.add(s) }
        let (pairs, missing) = d.results()
        XCTAssertEqual(missing, ["never-ran"])
        XCTAssertEqual(pairs.map(\.labelB), ["startup-lxc", "startup-qemu"])
        XCTAssertEqual(pairs.map { $0.labelA }, ["startup-docker (docker)", "startup-docker (docker)"])
        XCTAssertEqual(pairs[0].rows.count, 1, "scenario and target are not part of the key: one row per metric/phase")
        XCTAssertEqual(pairs[0].rows[0].verdict, .better, "a 10× shorter start-up is better (lower is better)")
        XCTAssertEqual(pairs[1].rows[0].verdict, .worse)
        XCTAssertEqual(pairs[0].rows[0].nA, 200, "the docker-snapshot samples stay out of the docker group")
        XCTAssertEqual(try XCTUnwrap(pairs[1].rows[0].ratio), 20, accuracy: 2)

        let csv = try CSV.parse(SuiteCompareRender.csv(pairs))
        XCTAssertEqual(csv[0], ["a", "b"] + CompareRender.csvHeader)
        XCTAssertEqual(csv.count, 3)
        XCTAssertEqual(csv[1][0], "startup-docker (docker)")
        XCTAssertEqual(csv[1][1], "startup-lxc")
        XCTAssertEqual(csv[2][csv[0].firstIndex(of: "verdict")!], "worse")

        let md = SuiteCompareRender.markdown([(c, pairs, missing)])
        XCTAssertTrue(md.hasPrefix("## Comparisons\n"), md)
        XCTAssertTrue(md.contains("A (baseline) = startup-docker (docker); file compare-startup.csv."), md)
        XCTAssertTrue(md.contains("Not compared (no samples: not run or failed): never-ran."), md)
        XCTAssertTrue(md.contains("| startup-lxc | startup/total | ms | 200 | 200 |"), md)
        XCTAssertTrue(md.contains("**better**") && md.contains("**worse**"), md)
        XCTAssertTrue(md.contains("- startup-qemu vs startup-docker (docker): 1 worse"), md)
    }

    func testSameDistributionIsNoChangeAndAnAbsentBaselineComparesNothing() {
        let c = SuiteComparison(name: "same", groups: [.init(scenario: "a"), .init(scenario: "b")])
        var d = SuiteComparisonData(c)
        for s in samples("a", target: "x", values(10, seed: 5)) { d.add(s) }
        for s in samples("b", target: "y", values(10, seed: 6)) { d.add(s) }
        let pairs = d.results().pairs
        XCTAssertEqual(pairs.first?.rows.first?.verdict, .noChange)
        XCTAssertEqual(SuiteCompareRender.tally(pairs[0]), "1 no significant change")

        var e = SuiteComparisonData(c)
        for s in samples("b", target: "y", values(10, seed: 6)) { e.add(s) }
        let r = e.results()
        XCTAssertTrue(r.pairs.isEmpty)
        XCTAssertEqual(r.missing, ["a"])
    }
}
