import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

final class RunDirectoryTests: XCTestCase {
    func tempDir() -> String {
        NSTemporaryDirectory() + "edgemeter-test-\(UUID().uuidString)"
    }

    func sample(_ v: Double?) -> Sample {
        Sample(runID: "", scenario: "s", probe: "ping", target: "t", metric: "rtt", phase: "echo", value: v, unit: "ms",
               timestamp: Date(), status: v == nil ? .timeout : .ok, reason: v == nil ? "no reply" : "")
    }

    func testSamplesAreOnDiskBeforeFinish() throws {
        let out = tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = try RunDirectory(out: out, name: "t")
        dir.record(sample(1.5))
        dir.record(sample(nil))
        // Nothing buffered: a crash now would keep both rows.
        let text = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 3)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["complete"] as? Bool, false, "run.json says incomplete until finish")
        XCTAssertNotNil((info["host"] as? [String: Any])?["kernel"])
        try dir.finish(complete: true)
        let done = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
        XCTAssertEqual(done["complete"] as? Bool, true)
        XCTAssertEqual(done["samples"] as? Int, 2)
        XCTAssertNotNil(done["ended_at"] as? String)
        let summary = try String(contentsOfFile: out + "/summary.csv", encoding: .utf8)
        XCTAssertTrue(summary.contains("s,ping,t,rtt,echo,ms,2,1,50.000,1.500000"), summary)
    }

    func testRefusesToOverwriteARun() throws {
        let out = tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        _ = try RunDirectory(out: out, name: "t")
        XCTAssertThrowsError(try RunDirectory(out: out, name: "t")) { e in
            XCTAssertTrue("\(e)".contains("already holds a run"), "\(e)")
        }
    }

    func testDefaultDirectoryIsTimestampAndName() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let tmp = tempDir()
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        FileManager.default.changeCurrentDirectoryPath(tmp)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd); try? FileManager.default.removeItem(atPath: tmp) }
        let d = try RunDirectory(out: nil, name: "lab", now: Date(timeIntervalSince1970: 1_795_000_000))
        XCTAssertEqual(d.url.path.hasSuffix("reports/20261118T110640Z-lab"), true, d.url.path)
        let d2 = try RunDirectory(out: nil, name: "lab", now: Date(timeIntervalSince1970: 1_795_000_000))
        XCTAssertTrue(d2.url.path.hasSuffix("reports/20261118T110640Z-lab-2"), d2.url.path)
    }
}
