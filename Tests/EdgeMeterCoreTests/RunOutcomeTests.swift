import XCTest
@testable import EdgeMeterCore

/// The rule behind every command's exit status 1: which targets never succeeded, judged on their
/// decisive phase.
final class RunOutcomeTests: XCTestCase {
    func sample(_ scenario: String, _ probe: String, _ target: String, _ metric: String, _ phase: String,
                _ value: Double?, _ status: SampleStatus = .ok, unit: String = "ms") -> Sample {
        Sample(runID: "r", scenario: scenario, probe: probe, target: target, metric: metric, phase: phase, value: value,
               unit: unit, timestamp: Date(), status: value == nil && status == .ok ? .error : status)
    }

    func failures(_ samples: [Sample], notes: [ScenarioNote] = []) -> [String] {
        var s = Summarizer()
        samples.forEach { s.add($0) }
        return RunOutcome.failures(summaries: s.summaries, notes: notes).map(\.description)
    }

    func testEchoConnectAndTotalDecide() {
        XCTAssertEqual(failures([
            sample("p", "ping", "a", "latency", "resolve", 0.1), sample("p", "ping", "a", "rtt", "echo", 0.05),
            sample("p", "ping", "b", "latency", "resolve", 0.1), sample("p", "ping", "b", "rtt", "echo", nil, .timeout),
        ]), ["scenario p: b: no successful attempt: 0 of 1 echoes answered (1 timeout)"])
        XCTAssertEqual(failures([
            sample("t", "tcping", "127.0.0.1:1", "latency", "connect", nil, .refused),
            sample("t", "tcping", "127.0.0.1:1", "latency", "connect", nil, .refused),
        ]), ["scenario t: 127.0.0.1:1: no successful attempt: 0 of 2 connects (2 refused)"])
        // http: the connect worked but every attempt got a 404: `total` decides.
        XCTAssertEqual(failures([
            sample("h", "http", "u", "latency", "connect", 0.1), sample("h", "http", "u", "latency", "total", nil),
        ]), ["scenario h: u: no successful attempt: 0 of 1 attempts (1 error)"])
        XCTAssertEqual(failures([sample("h", "http", "u", "latency", "connect", 0.1), sample("h", "http", "u", "latency", "total", 0.3)]), [])
    }

    func testLoadNeedsOneResponseThatPassedItsChecks() {
        func load(status404: Double, ok: Double) -> [Sample] {
            [sample("l", "load", "u", "responses", "status_404", status404, unit: "count"),
             sample("l", "load", "u", "responses", "status_200", ok, unit: "count"),
             sample("l", "load", "u", "errors", "connect", 0, unit: "count"),
             sample("l", "load", "u", "errors", "status", status404, unit: "count"),
             sample("l", "load", "u", "errors", "body", 0, unit: "count")]
        }
        XCTAssertEqual(failures(load(status404: 3377, ok: 0)),
                       ["scenario l: u: no request succeeded: 3377 responses, 3377 rejected by the status/body checks, 3377 errors"])
        XCTAssertEqual(failures(load(status404: 10, ok: 1)), [])
    }

    func testWireSamplesNeverDecideAndNotesDo() {
        XCTAssertEqual(failures([sample("c", "wire", "lo", "packets", "capture_dropped", nil)]), [])
        XCTAssertEqual(failures([], notes: [ScenarioNote(scenario: "q", status: "not run", reason: "qemu-system-x86_64 is not installed")]),
                       ["scenario q: not run: qemu-system-x86_64 is not installed"])
        XCTAssertEqual(failures([], notes: [ScenarioNote(scenario: "q", status: "interrupted", reason: "SIGINT")]), [])
    }
}
