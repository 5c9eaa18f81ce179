import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

/// The `migration` kind's outputs from migrate-demo's files (the experiment itself runs in
/// MigrationEndToEndTests and in `./scripts/lab`): samples per request and per move, the section.
final class MigrationScenarioTests: XCTestCase {
    let vehicle = """
    sequence,due_ms,sent_ms,end_ms,delay_ms,status,node,failure
    0,0.000,0.100,61.000,61.000,200,node_2,
    1,10.000,10.100,70.500,60.500,200,node_2,
    2,20.000,,1020.000,1000.000,,,"timeout, no answer"
    3,30.000,30.100,41.000,11.000,200,node_1,

    """
    let moves = """
    move,from,to,outcome,cause,onset_ms,decision_ms,target_ready_ms,switch_ms,old_stopped_ms,last_old_answer_ms,first_new_answer_ms,interruption_ms,longest_silence_ms,failed_requests,decision_kind
    1,node_2,node_1,completed,,0.0,1500.0,2100.0,2101.0,2300.0,2100.0,2110.0,10.000,12.500,0,migrate
    2,node_1,node_2,rolled_back,"node_1 60 ms",0.0,900.0,,,,,,,,0,alert

    """

    func testSamplesFromTheVehicleAndTheMoves() throws {
        let start = Date(timeIntervalSince1970: 1000)
        let s = try MigrationScenario.samplesFrom(vehicleCSV: vehicle, movesCSV: moves, runID: "r", scenario: "migration", start: start)
        let requests = s.filter { $0.metric == "latency" }
        XCTAssertEqual(requests.map(\.value), [61, 60.5, nil, 11])
        XCTAssertEqual(requests.map(\.status), [.ok, .ok, .error, .ok])
        XCTAssertEqual(requests[2].reason, "timeout, no answer")
        XCTAssertEqual(requests[3].labels["node"], "node_1")
        XCTAssertEqual(requests[1].timestamp, start.addingTimeInterval(0.010), "start + due time")
        XCTAssertTrue(requests.allSatisfy { $0.probe == "migration" && $0.target == "vehicle" && $0.phase == "request" && $0.unit == "ms" })

        let interruptions = s.filter { $0.metric == "interruption" }
        XCTAssertEqual(interruptions.map(\.target), ["node_2→node_1", "node_1→node_2"])
        XCTAssertEqual(interruptions.map(\.value), [10, nil])
        XCTAssertEqual(interruptions[1].reason, "move rolled_back")
        XCTAssertEqual(interruptions[0].labels["decision"], "migrate")
        XCTAssertEqual(s.filter { $0.metric == "longest_silence" }.map(\.value), [12.5, nil])

        // The verdict table's key figure for the kind: the request delay's median.
        let row = VerdictTable.rows(scenarios: [.init(name: "migration", kind: "migration", measures: MigrationScenario.declaration.measures)],
                                    summaries: Summarizer.summaries(of: s), notes: [])[0]
        XCTAssertEqual(row.measured, "migration: client delay, interruption")
        XCTAssertTrue(row.figure.hasPrefix("request p50 60."), row.figure)
        XCTAssertEqual(row.verdict, "failed: node_1→node_2: no successful sample", "a move that did not complete fails the scenario")
    }

    func testAFileWithoutItsHeaderIsAnError() {
        XCTAssertThrowsError(try MigrationScenario.samplesFrom(vehicleCSV: "a,b\n1,2\n", movesCSV: moves, runID: "r", scenario: "m", start: Date())) { e in
            XCTAssertTrue("\(e)".contains("vehicle.csv has no header"), "\(e)")
        }
    }

    func testTheReportBecomesASection() {
        let md = MigrationScenario.section("# migrate-demo: the end-to-end scenario\n\nClient: 10 requests\n", scenario: "migration",
                                           directory: MigrationScenario.directoryName("migration"))
        XCTAssertTrue(md.hasPrefix("## Migration: migration\n\nClient: 10 requests\n"), md)
        XCTAssertTrue(md.contains("Files: migration-migration/"), md)
        XCTAssertTrue(md.contains("timeline-migration.csv"), md)
        XCTAssertTrue(ReportFiles.timelineHeaderPrefix.hasPrefix("sequence,due_ms"), "the copied CSV is what report.html draws")
    }

    func testArgumentsAreMigrateDemosFlags() {
        let s = ValidatedScenario(name: "m", kind: "migration", line: 1, parameters: ["lab_name": .string("lb-mig"), "rate": .number(50),
                                                                                    "step_timeout": .duration(.seconds(30))])
        XCTAssertEqual(MigrationConfig(s).arguments(out: "/tmp/x"), [
            "migrate-demo", "--out", "/tmp/x", "--name", "lb-mig", "--subnet", "10.231.15", "--rate", "50", "--moves", "0",
            "--when-none-meets", "move-to-best", "--step-timeout", "30s", "--image", "edgemeter-migdemo:latest",
        ])
    }
}
