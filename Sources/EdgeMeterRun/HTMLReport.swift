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

    @discardableResult
    public static func write(dir: URL) throws -> Written {
        let fm = FileManager.default
        let samplesURL = dir.appendingPathComponent("samples.csv")
        let collector = try collect(samplesURL)
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

    /// Reads samples.csv in chunks of whole lines (`chunkBytes` at a time, 8 MiB by default), each
    /// parsed and fed to the collector, so a long run's file is never held whole. samples.csv rows
    /// never hold a newline (`SampleCSV.row` writes reasons on one line).
    public static func collect(_ url: URL, chunkBytes: Int = 8 << 20) throws -> ReportCollector {
        guard let h = try? FileHandle(forReadingFrom: url) else {
            throw RunError.setup("\(url.path) not found or unreadable: give the run directory that holds samples.csv")
        }
        defer { try? h.close() }
        var collector = ReportCollector()
        var pending = Data()
        var header: String?
        var lineNumber = 1
        while true {
            let chunk = (try h.read(upToCount: max(1, chunkBytes))) ?? Data()
            pending.append(chunk)
            let atEnd = chunk.isEmpty
            guard let cut = atEnd ? pending.endIndex : pending.lastIndex(of: UInt8(ascii: "\n")).map({ pending.index(after: $0) }) else { continue }
            var text = String(decoding: pending[pending.startIndex..<cut], as: UTF8.self)
            pending = Data(pending[cut...])
            if header == nil {
                // Not at the end, `text` ends with a newline; at the end, a header alone may lack one.
                guard let end = text.firstIndex(of: "\n") else {
                    if text.isEmpty { throw RunError.setup("\(url.path) is empty: it has no header row; re-run the measurement") }
                    return collector
                }
                header = String(text[..<end])
                let expected = SampleCSV.header.joined(separator: ",")
                guard header == expected else {
                    throw RunError.setup("\(url.path):1: header is not an edgemeter samples header; expected: \(expected)")
                }
                text = String(text[text.index(after: end)...])
                lineNumber = 2
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                // A run killed mid-write can leave a partial last line: keep everything before it.
                do { try collector.add(csvLine: line, lineNumber: lineNumber, file: url.path) } catch {
                    if !(atEnd && line.endIndex == text.endIndex) { throw error }
                }
                lineNumber += 1
            }
            lineNumber -= 1 // the empty piece after the chunk's last newline
            if atEnd { return collector }
        }
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
