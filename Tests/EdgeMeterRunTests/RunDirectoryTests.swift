import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport
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
        try RunDirectory(out: out, name: "t").begin()
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
        try d.begin()
        let d2 = try RunDirectory(out: nil, name: "lab", now: Date(timeIntervalSince1970: 1_795_000_000))
        XCTAssertTrue(d2.url.path.hasSuffix("reports/20261118T110640Z-lab-2"), d2.url.path)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    func testNothingIsCreatedBeforeTheFirstSample() throws {
        let base = tempDir()
        let out = base + "/nested/run"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = try RunDirectory(out: out, name: "t")
        XCTAssertFalse(exists(out), "init must only plan the directory")
        XCTAssertFalse(dir.hasBegun)
        dir.addNote(ScenarioNote(scenario: "s", status: "not run", reason: "no engine"))
        XCTAssertFalse(exists(out), "a note alone does not create the directory")
        dir.record(sample(2))
        XCTAssertTrue(exists(out + "/samples.csv"))
        XCTAssertTrue(exists(out + "/run.json"))

        // Parents made for a run that is then discarded go too (as reports/ would).
        let other = try RunDirectory(out: base + "/made/for/run", name: "t")
        try other.begin()
        XCTAssertTrue(other.discard())
        XCTAssertFalse(exists(base + "/made"))
        XCTAssertTrue(exists(base + "/nested/run/samples.csv"))
    }

    func testDiscardRemovesADirectoryTheRunMadeButNeverSamples() throws {
        let out = tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = try RunDirectory(out: out, name: "t")
        try dir.begin() // as a capture does before opening its pcap file
        try "pcap".write(toFile: out + "/capture-lo.pcap", atomically: true, encoding: .utf8)
        XCTAssertTrue(dir.discard())
        XCTAssertFalse(exists(out), "a set-up failure leaves nothing behind")

        // Records of failed name resolution (the resolve phase, and the rest of that attempt) are
        // set-up failures, not measurements.
        let unresolved = try RunDirectory(out: out, name: "t")
        let t0 = Date()
        for phase in ["resolve", "connect", "total"] {
            unresolved.record(Sample(runID: "", scenario: "http", probe: "http", target: "http://nosuch.invalid/", metric: "latency",
                                     phase: phase, value: nil, unit: "ms", timestamp: t0, status: .error, reason: "cannot resolve"))
        }
        XCTAssertEqual(unresolved.sampleCount, 3)
        XCTAssertEqual(unresolved.measuredSampleCount, 0)
        XCTAssertTrue(unresolved.discard())
        XCTAssertFalse(exists(out))

        let kept = try RunDirectory(out: out, name: "t")
        kept.record(sample(1))
        XCTAssertFalse(kept.discard(), "a directory holding samples is never removed")
        XCTAssertTrue(exists(out + "/samples.csv"))
        let sectioned = try RunDirectory(out: tempDir(), name: "t")
        defer { try? FileManager.default.removeItem(at: sectioned.url) }
        sectioned.addSection("## Analysis\n")
        XCTAssertFalse(sectioned.discard(), "a directory holding a section is kept")
    }

    func testDiscardKeepsAnOutDirectoryThatExistedBefore() throws {
        let out = tempDir()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        try "mine".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
        let dir = try RunDirectory(out: out, name: "t")
        try dir.begin()
        XCTAssertTrue(exists(out + "/samples.csv"))
        XCTAssertTrue(dir.discard())
        XCTAssertTrue(exists(out), "the user's --out directory stays")
        XCTAssertTrue(exists(out + "/notes.txt"), "files the run did not write stay")
        XCTAssertFalse(exists(out + "/samples.csv"))
        XCTAssertFalse(exists(out + "/run.json"))
    }

    func testLatestPointsAtTheNewestFinishedRunUnderReports() throws {
        let root = tempDir() + "/reports"
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        let first = try RunDirectory(out: nil, name: "a", now: Date(timeIntervalSince1970: 1_795_000_000), reportsRoot: root)
        first.record(sample(1))
        try first.finish(complete: true)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/latest"), "20261118T110640Z-a",
                       "a relative link to the run directory")
        let second = try RunDirectory(out: nil, name: "b", now: Date(timeIntervalSince1970: 1_795_000_060), reportsRoot: root)
        second.record(sample(2))
        try second.finish(complete: false, stopReason: "SIGINT")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/latest"), "20261118T110740Z-b")
        XCTAssertTrue(exists(root + "/latest/samples.csv"))
        // No temporary links are left next to it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix(".latest") }, [])
        // A run with --out elsewhere does not move it.
        let elsewhere = tempDir()
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        let other = try RunDirectory(out: elsewhere, name: "c", reportsRoot: root)
        other.record(sample(3))
        try other.finish(complete: true)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/latest"), "20261118T110740Z-b")
    }

    /// A tmpfs of 64 KiB that fills up for real (ENOSPC). Needs root (mount); unmounted after.
    func withTinyFilesystem(_ body: (String) throws -> Void) throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tiny tmpfs needs root: run the tests as root") }
        let mnt = tempDir()
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mnt) }
        let r = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt])
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))): needs CAP_SYS_ADMIN") }
        defer { _ = try? runCommand("/bin/umount", [mnt]) }
        try body(mnt)
    }

    func testFullDiskStopsTheRunAndKeepsEveryCountedSample() throws {
        try withTinyFilesystem { mnt in
            let out = mnt + "/run"
            let dir = try RunDirectory(out: out, name: "full")
            let stop = StopFlag()
            dir.onWriteFailure = { stop.stop(reason: $0) }
            var offered = 0
            while !stop.isStopped && offered < 100_000 {
                dir.record(sample(Double(offered % 97) / 10))
                offered += 1
            }
            let reason = try XCTUnwrap(stop.reason, "64 KiB must fill up within 100000 samples")
            XCTAssertEqual(reason, "cannot write samples.csv in \(out): No space left on device; free space or choose another --out")
            dir.record(sample(1)) // after the failure: dropped, not counted
            // Every counted sample is on disk, complete, and nothing else is.
            let rows = try SampleCSV.parse(String(contentsOfFile: out + "/samples.csv", encoding: .utf8))
            XCTAssertEqual(rows.count, dir.sampleCount)
            XCTAssertEqual(dir.sampleCount, offered - 1, "the sample whose write failed is not counted")
            XCTAssertTrue(try String(contentsOfFile: out + "/samples.csv", encoding: .utf8).hasSuffix("\n"), "no partial row is left")
            XCTAssertEqual(dir.summaries.first?.sent, dir.sampleCount, "the summary holds only written samples")
            // finish marks run.json incomplete with the reason, even with the disk full.
            XCTAssertThrowsError(try dir.finish(complete: true)) { e in
                XCTAssertTrue("\(e)".contains("No space left on device"), "\(e)")
            }
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))) as! [String: Any]
            XCTAssertEqual(info["complete"] as? Bool, false)
            XCTAssertEqual(info["stop_reason"] as? String, reason)
            XCTAssertEqual(info["samples"] as? Int, dir.sampleCount)
            XCTAssertEqual(info["samples_not_written"] as? Int, 2)
        }
    }

    func testSectionsAreKeptForReRendering() throws {
        let out = tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dir = try RunDirectory(out: out, name: "t")
        dir.record(sample(1.5))
        dir.addSection("## Load: x\n\n```\nrequests 10\n```\n")
        dir.addSection("<!-- section: cmp -->\n## Startup comparison (old)\n")
        dir.addSection("<!-- section: cmp -->\n## Startup comparison\n| a | b |\n")
        try dir.finish(complete: true)
        let written = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertFalse(written.contains("(old)"), "a keyed section replaces the earlier one")
        let r = try RunReport.rerender(directory: URL(fileURLWithPath: out))
        XCTAssertEqual(r.warnings, [])
        XCTAssertEqual(r.summaryMarkdown, written, "re-rendering reproduces summary.md byte for byte")
        XCTAssertEqual(r.summaryCSV, try String(contentsOfFile: out + "/summary.csv", encoding: .utf8))

        // Without sections.json, every lost section is named and summary.md must be kept.
        try FileManager.default.removeItem(atPath: out + "/sections.json")
        let lost = try RunReport.rerender(directory: URL(fileURLWithPath: out))
        XCTAssertEqual(lost.warnings.count, 2, "\(lost.warnings)")
        XCTAssertTrue(lost.warnings[0].hasPrefix("summary.md: section \"## Load: x\" could not be re-rendered: the run directory has no sections.json"), lost.warnings[0])
        XCTAssertTrue(lost.warnings[1].hasPrefix("summary.md: section \"## Startup comparison\" could not be re-rendered"), lost.warnings[1])
    }

    func testGoldenRunDirectoryReRendersByteIdentical() throws {
        // A real run (suite benchmarks with a load scenario and docker start-ups; see testdata/golden-run/README.md).
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata/golden-run", withExtension: nil), "testdata/golden-run missing")
        let r = try RunReport.rerender(directory: dir)
        XCTAssertEqual(r.warnings, [])
        let md = try String(contentsOf: dir.appendingPathComponent("summary.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("## Load: "), "the golden run has a load section")
        XCTAssertTrue(md.contains("Startup phases"), "the golden run has a startup section")
        XCTAssertEqual(r.summaryMarkdown, md)
        XCTAssertEqual(r.summaryCSV, try String(contentsOf: dir.appendingPathComponent("summary.csv"), encoding: .utf8))
    }
}
