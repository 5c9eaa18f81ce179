import Foundation
import EdgeMeterCore

/// Writes a run directory's `report.html` (self-contained: inline SVG and CSS, nothing fetched),
/// `report.md` and the charts as `plots/<id>.svg`, from the files the run left: samples.csv,
/// summary.csv, run.json, `reach-*.csv`, `compare*.csv` and any migration timeline (a CSV with the
/// vehicle's header). Called when a run finishes and by `edgemeter report`.
public enum HTMLReport {
    /// The files written, relative to `dir`.
    public struct Written: Sendable {
        public var files: [String]
        public var charts: Int
    }

    /// `collector`: what a read of samples.csv already collected (`edgemeter report` and a run's
    /// finish read the file once for the summaries, delays.csv and the charts, `SamplePass`); nil to
    /// read samples.csv here.
    @discardableResult
    public static func write(dir: URL, collector given: ReportCollector? = nil) throws -> Written {
        let fm = FileManager.default
        let samplesURL = dir.appendingPathComponent("samples.csv")
        let collector = try given ?? SamplesFile.pass(samplesURL, SamplePass(summaries: false, charts: true)).pass.collector!
        var files = ReportFiles()
        files.summaryCSV = try? String(contentsOf: dir.appendingPathComponent("summary.csv"), encoding: .utf8)
        let names = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".csv") }.sorted()
        for name in names where !["samples.csv", "summary.csv", "delays.csv"].contains(name) {
            let url = dir.appendingPathComponent(name)
            if name.hasPrefix("reach-") {
                if let t = try? String(contentsOf: url, encoding: .utf8) { files.reach.append((name, t)) }
            } else if name.hasPrefix("compare") {
                if let t = try? String(contentsOf: url, encoding: .utf8) { files.compare.append((name, t)) }
            } else if firstLine(url).hasPrefix(ReportFiles.timelineHeaderPrefix) {
                if let t = try? String(contentsOf: url, encoding: .utf8) { files.timelines.append((name, t)) }
            }
        }
        let sections = collector.sections(files: files)
        let (title, meta) = metadata(dir: dir, sampleCount: collector.count)

        let plots = dir.appendingPathComponent("plots")
        try? fm.createDirectory(at: plots, withIntermediateDirectories: true)
        var written: [String] = []
        let charts = sections.flatMap(\.charts)
        let keep = Set(charts.map { "\($0.id).svg" })
        // Charts of an earlier rendering that this one no longer has.
        for old in (try? fm.contentsOfDirectory(atPath: plots.path)) ?? [] where old.hasSuffix(".svg") && !keep.contains(old) {
            try? fm.removeItem(at: plots.appendingPathComponent(old))
        }
        for c in charts {
            try save("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + c.svg, dir, "plots/\(c.id).svg")
            written.append("plots/\(c.id).svg")
        }
        try save(ReportHTML.html(title: title, meta: meta, sections: sections), dir, "report.html")
        try save(ReportHTML.markdown(title: title, meta: meta, sections: sections), dir, "report.md")
        written += ["report.html", "report.md"]
        return Written(files: written, charts: charts.count)
    }

    /// Reads samples.csv once, as a stream (`SampleStream`, `chunkBytes` at a time), each row
    /// handed to the collector, so a long run's file is never held whole.
    public static func collect(_ url: URL, chunkBytes: Int = SampleStream.defaultChunkBytes) throws -> ReportCollector {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw RunError.setup("\(url.path) not found or unreadable: give the run directory that holds samples.csv")
        }
        defer { close(fd) }
        var collector = ReportCollector()
        try SampleStream.read(file: url.path, chunkBytes: chunkBytes, from: { buf in
            while true {
                let n = Glibc.read(fd, buf.baseAddress, buf.count)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                throw RunError.setup("cannot read \(url.path): \(String(cString: strerror(errno))); check the disk and the file's permissions")
            }
        }, onRow: { collector.add(row: $0) })
        return collector
    }

    static func save(_ text: String, _ dir: URL, _ file: String) throws {
        let url = dir.appendingPathComponent(file)
        do { try text.write(to: url, atomically: true, encoding: .utf8) } catch {
            throw RunError.setup("cannot write \(url.path): \(error.localizedDescription); check free space and permissions, then `edgemeter report \(dir.path)`")
        }
    }

    static func firstLine(_ url: URL) -> String {
        guard let h = try? FileHandle(forReadingFrom: url) else { return "" }
        defer { try? h.close() }
        let data = (try? h.read(upToCount: 256)) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
    }

    /// The title and the lines under it, from run.json when it is there.
    static func metadata(dir: URL, sampleCount: Int) -> (String, [(String, String)]) {
        var meta: [(String, String)] = []
        var runID = dir.lastPathComponent
        if let data = try? Data(contentsOf: dir.appendingPathComponent("run.json")),
           let info = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            runID = info["run_id"] as? String ?? runID
            if let cmd = info["command_line"] as? [String] { meta.append(("command", cmd.joined(separator: " "))) }
            if let a = info["started_at"] as? String { meta.append(("started", a + ((info["ended_at"] as? String).map { " → \($0)" } ?? ""))) }
            if let host = info["host"] as? [String: Any] {
                meta.append(("host", "\(host["hostname"] as? String ?? "?"), \(host["kernel"] as? String ?? "?"), \(host["cpu_count"] as? Int ?? 0) CPUs (\(host["cpu_model"] as? String ?? "?"))"))
            }
            if let v = info["edgemeter_version"] as? String { meta.append(("edgemeter", v)) }
            meta.append(("complete", (info["complete"] as? Bool ?? true) ? "yes" : "no: \(info["stop_reason"] as? String ?? "stopped early")"))
        }
        meta.append(("samples", "\(sampleCount)"))
        return ("edgemeter run \(runID)", meta)
    }
}
