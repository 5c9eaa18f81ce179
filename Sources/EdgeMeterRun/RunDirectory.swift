import Foundation
import EdgeMeterCore

/// One run's output directory:
/// - `samples.csv`: every sample, appended with one `write(2)` per sample as it arrives, so a crash or
///   SIGKILL loses at most the sample being written. A failed write (disk full, EIO) stops the run:
///   the sample is not counted, the stop reason goes to run.json and `onWriteFailure` is called;
/// - `sections.json`: the Markdown sections added during the run (load reports, startup tables, wire
///   reports), rewritten on each `addSection`, so `edgemeter report` can re-render summary.md whole;
/// - `summary.csv`, `summary.md`: written by `finish` (and re-renderable by `edgemeter report`);
/// - `delays.csv`: written by `finish` from samples.csv, one row per origin, destination and delay
///   metric (`DelayTable`), the input of `edgemeter feed`;
/// - `run.json`: provenance, written when the directory is created with `"complete": false` and
///   rewritten by `finish`.
///
/// Nothing is created by `init`, which only chooses and checks the path. The directory, samples.csv
/// and run.json appear on `begin()`, which the first `record` or `addSection` calls implicitly
/// (notes stay in memory until `finish`); code that writes artifacts into `url` before its first sample (a pcap file) calls
/// `begin()` itself once its set-up has succeeded. `discard()` removes what `begin()` made when a run
/// ends without measuring anything.
public final class RunDirectory: SampleSink, @unchecked Sendable {
    public let url: URL
    public let runID: String
    public let name: String
    /// True when the directory is under the default `reports/` directory (then `reports/latest`
    /// points at it once the run finishes).
    public let isUnderReportsRoot: Bool
    private let reportsRoot: URL
    private let existedBefore: Bool
    private var fd: Int32 = -1
    private var begun = false
    private var createdDirectory = false
    private var createdFiles: [String] = []
    private var createdParents: [URL] = []
    private let lock = NSLock()
    private var summarizer = Summarizer()
    private var notes: [ScenarioNote] = []
    private var sections: [String] = []
    private var info: RunInfo
    private var finished = false
    private var writeFailureText: String?
    private var samplesNotWritten = 0
    public private(set) var sampleCount = 0
    /// Samples that are more than a record of name resolution (see `record`).
    public private(set) var measuredSampleCount = 0
    /// Per target, the timestamp of the last attempt whose `resolve` phase failed.
    private var failedResolve: [String: Date] = [:]
    /// Called once, with the error message, when a sample cannot be written to samples.csv; the CLI
    /// sets it to stop the run.
    public var onWriteFailure: (@Sendable (String) -> Void)?

    /// Chooses the directory (default `reports/<UTC timestamp>-<name>/`) and checks it can hold a
    /// new run; creates nothing (see `begin()`).
    public init(out: String?, name: String, commandLine: [String] = CommandLine.arguments, suiteFile: String? = nil,
                now: Date = Date(), reportsRoot: String = "reports") throws {
        let stamp = RunDirectory.stamp(now)
        let safeName = FileName.safe(name)
        let fm = FileManager.default
        let root = URL(fileURLWithPath: reportsRoot).standardizedFileURL
        var dir: URL
        if let out {
            dir = URL(fileURLWithPath: out).standardizedFileURL
        } else {
            let base = root.appendingPathComponent("\(stamp)-\(String(safeName))")
            dir = base
            var i = 2
            while fm.fileExists(atPath: dir.path) {
                dir = URL(fileURLWithPath: base.path + "-\(i)")
                i += 1
            }
        }
        if fm.fileExists(atPath: dir.appendingPathComponent("samples.csv").path) {
            throw RunError.setup("\(dir.path) already holds a run (samples.csv exists): choose another --out directory or remove it")
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir.path, isDirectory: &isDir), !isDir.boolValue {
            throw RunError.setup("\(dir.path) exists and is not a directory: choose another --out directory")
        }
        // The nearest existing ancestor must be writable, or begin() would fail after set-up.
        var probe = dir
        while !fm.fileExists(atPath: probe.path) && probe.path != "/" { probe = probe.deletingLastPathComponent() }
        if access(probe.path, W_OK) != 0 {
            throw RunError.setup("cannot create the report directory \(dir.path): \(probe.path) is not writable (\(String(cString: strerror(errno)))); choose a writable --out directory")
        }
        self.url = dir
        self.name = name
        self.runID = dir.lastPathComponent
        self.reportsRoot = root
        self.isUnderReportsRoot = dir.deletingLastPathComponent().path == root.path
        self.existedBefore = fm.fileExists(atPath: dir.path)
        self.info = RunInfo(name: name, runID: dir.lastPathComponent, commandLine: commandLine, suiteFile: suiteFile,
                            startedAt: now)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// `d` as run directories name it: UTC, to the second, `20261129T014000Z`.
    public static func stamp(_ d: Date) -> String {
        let ts = Format.timestamp(d) // 2026-11-29T01:40:00.123456Z
        let digits = ts.prefix(19).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
        return digits + "Z"
    }

    /// Whether `begin()` has created the directory.
    public var hasBegun: Bool { lock.lock(); defer { lock.unlock() }; return begun }

    /// Creates the directory, samples.csv (header) and run.json. Idempotent. Call it once set-up has
    /// succeeded and before writing artifacts into `url`; `record` and `addSection` call it.
    public func begin() throws {
        lock.lock(); defer { lock.unlock() }
        try beginLocked()
    }

    private func beginLocked() throws {
        if begun { return }
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) {
            // Remember the parents this run creates (e.g. reports/) so discard() can remove them too.
            var parent = url.deletingLastPathComponent()
            createdParents = []
            while !fm.fileExists(atPath: parent.path) && parent.path != "/" {
                createdParents.append(parent)
                parent = parent.deletingLastPathComponent()
            }
            do {
                try fm.createDirectory(at: url, withIntermediateDirectories: true)
            } catch {
                throw RunError.setup("cannot create the report directory \(url.path): \(error.localizedDescription); choose a writable --out directory")
            }
            createdDirectory = !existedBefore
        }
        let path = url.appendingPathComponent("samples.csv").path
        let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0o644)
        guard f >= 0 else {
            throw RunError.setup("cannot create \(path): \(String(cString: strerror(errno))); choose a writable --out directory")
        }
        fd = f
        begun = true
        createdFiles.append("samples.csv")
        if let e = writeAll(SampleCSV.headerLine) {
            throw RunError.setup("cannot write samples.csv in \(url.path): \(e); free space or choose another --out")
        }
        createdFiles.append("run.json")
        try writeInfoLocked()
    }

    /// Writes all of `text` at the end of samples.csv. On failure the file is cut back to its length
    /// before the call (no partial row stays) and the error text (strerror) is returned.
    private func writeAll(_ text: String) -> String? {
        let start = lseek(fd, 0, SEEK_END)
        var bytes = Array(text.utf8)
        var off = 0
        var failure: String?
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                break
            }
            if n == 0 { failure = String(cString: strerror(ENOSPC)); break }
            off += n
        }
        bytes.removeAll()
        if failure != nil && start >= 0 { _ = ftruncate(fd, start) }
        return failure
    }

    public func record(_ sample: Sample) {
        var s = sample
        s.runID = runID
        // The summary uses the value as written (6 decimals), so `edgemeter report` reproduces it exactly.
        if let v = s.value, v.isFinite { s.value = Double(Format.fixed(v, 6)) ?? v }
        var failed: String?
        lock.lock()
        if writeFailureText != nil {
            samplesNotWritten += 1
            lock.unlock()
            return
        }
        do {
            try beginLocked()
            if let e = writeAll(SampleCSV.row(s)) {
                failed = "cannot write samples.csv in \(url.path): \(e); free space or choose another --out"
            }
        } catch {
            failed = "\(error)"
        }
        if let failed {
            writeFailureText = failed
            samplesNotWritten += 1
        } else {
            summarizer.add(s)
            sampleCount += 1
            // Name resolution is set-up, not a measurement: a `resolve` sample alone keeps no run
            // directory (e.g. the probe's socket then could not be opened). A failed one, and the
            // other phases of that same attempt (same target and start time) failing after it,
            // record a set-up failure.
            if s.phase == "resolve" {
                if s.status != .ok { failedResolve[s.target] = s.timestamp }
            } else if !(s.status != .ok && failedResolve[s.target] == s.timestamp) {
                measuredSampleCount += 1
            }
        }
        let callback = onWriteFailure
        lock.unlock()
        if let failed { callback?(failed) }
    }

    /// The error that stopped recording (samples.csv could not be written), if any.
    public var writeFailure: String? { lock.lock(); defer { lock.unlock() }; return writeFailureText }

    /// Records why a scenario produced no (or partial) samples; shown in summary.md and run.json.
    public func addNote(_ note: ScenarioNote) {
        lock.lock(); defer { lock.unlock() }
        notes.append(note)
    }

    /// Adds a Markdown section (comparison tables, histograms) to the end of summary.md. A section
    /// whose first line is `<!-- section: KEY -->` replaces an earlier one with the same first line
    /// (which is removed; the new one goes to the end), so a scenario can keep one up-to-date section.
    /// The sections are saved in sections.json at once, for `edgemeter report`.
    public func addSection(_ markdown: String) {
        lock.lock(); defer { lock.unlock() }
        if markdown.hasPrefix("<!-- section: "), let key = markdown.split(separator: "\n", maxSplits: 1).first {
            sections.removeAll { $0.split(separator: "\n", maxSplits: 1).first == key }
        }
        sections.append(markdown)
        do {
            try beginLocked()
            try writeSectionsLocked()
        } catch {
            // summary.md still gets the section at the end; only the re-rendering copy is missing.
            fputs("edgemeter: \(error)\n", stderr)
        }
    }

    /// The notes added so far (scenarios not run, failed or interrupted).
    public var scenarioNotes: [ScenarioNote] {
        lock.lock(); defer { lock.unlock() }
        return notes
    }

    public var hasSections: Bool { lock.lock(); defer { lock.unlock() }; return !sections.isEmpty }

    public var summaries: [Summary] {
        lock.lock(); defer { lock.unlock() }
        return summarizer.summaries
    }

    /// Writes run.json, summary.csv and summary.md, then points `reports/latest` at this run (only
    /// for a run under the default reports/ directory). `complete` is false when the run was
    /// interrupted; `stopReason` says by what. A samples.csv write failure overrides both: the run is
    /// incomplete and that failure is the stop reason. Every file is attempted; the first failure is
    /// thrown after.
    @discardableResult
    public func finish(complete: Bool, stopReason: String? = nil, now: Date = Date()) throws -> [Summary] {
        lock.lock()
        defer { lock.unlock() }
        try beginLocked()
        let summaries = summarizer.summaries
        finished = true
        info.endedAt = now
        info.complete = complete && writeFailureText == nil
        info.stopReason = writeFailureText ?? stopReason
        info.samples = sampleCount
        info.samplesNotWritten = samplesNotWritten > 0 ? samplesNotWritten : nil
        info.sections = sections.count
        info.scenarioNotes = notes
        let failed = RunOutcome.failures(summaries: summaries, notes: notes).map(\.description)
        info.failures = failed.isEmpty ? nil : failed
        var errors: [Error] = []
        do { try writeInfoLocked() } catch { errors.append(error) }
        do { try write("summary.csv", SummaryCSV.render(summaries)) } catch { errors.append(error) }
        let md = RunReport.markdown(runID: runID, summaries: summaries, notes: notes, complete: info.complete, sections: sections)
        do { try write("summary.md", md) } catch { errors.append(error) }
        // The delay feed (ping rtt, tcping connect, http total per origin and destination), read
        // back from samples.csv so it covers exactly what the run recorded; streamed, so a long
        // run's file is never held whole (only the delay values, 8 bytes each).
        // One read for delays.csv and report.html's charts (`SamplePass`).
        var collector: ReportCollector?
        do {
            let pass = try SamplesFile.pass(url.appendingPathComponent("samples.csv"),
                                            SamplePass(summaries: false, charts: true, delays: true)).pass
            collector = pass.collector
            try write("delays.csv", DelayTable.csv(pass.delays!.rows))
        } catch { errors.append(error) }
        for f in ["summary.csv", "summary.md", "delays.csv"] where !createdFiles.contains(f) { createdFiles.append(f) }
        // report.html, report.md and plots/: charts are a view, so a failure there is a warning, not a failed run.
        do { try HTMLReport.write(dir: url, collector: collector) } catch { fputs("edgemeter: warning: report.html not written: \(error)\n", stderr) }
        if let e = errors.first { throw e }
        if isUnderReportsRoot { RunReport.pointLatest(root: reportsRoot, at: url) }
        return summaries
    }

    /// Removes what `begin()` created, for a run that ends without measuring anything (set-up failed:
    /// names did not resolve, engine or image missing, BPF filter invalid): the directory itself when
    /// this run made it, otherwise (an existing --out directory) only the files this run wrote.
    /// Refuses (returns false) once a measured sample is on disk (anything but the record of a failed
    /// name resolution) or a section was added.
    @discardableResult
    public func discard() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard measuredSampleCount == 0, sections.isEmpty, samplesNotWritten == 0 else { return false }
        if !begun { return true }
        close(fd)
        fd = -1
        begun = false
        let fm = FileManager.default
        if createdDirectory {
            try? fm.removeItem(at: url)
            for p in createdParents { if rmdir(p.path) != 0 { break } } // only while empty
        } else {
            for f in createdFiles { try? fm.removeItem(at: url.appendingPathComponent(f)) }
        }
        createdFiles = []
        return true
    }

    private func write(_ file: String, _ text: String) throws {
        let p = url.appendingPathComponent(file)
        do { try text.write(to: p, atomically: true, encoding: .utf8) } catch {
            // A full disk has no room for the temporary copy: rewrite the file in place instead.
            let f = open(p.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if f >= 0 {
                defer { close(f) }
                let bytes = Array(text.utf8)
                var off = 0
                while off < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.write(f, $0.baseAddress! + off, $0.count - off) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    off += n
                }
                if off == bytes.count { return }
            }
            throw RunError.setup("cannot write \(p.path): \(String(cString: strerror(errno))); free space or choose another --out")
        }
    }

    private func writeSectionsLocked() throws {
        let data = try JSONSerialization.data(withJSONObject: ["sections": sections], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        if !createdFiles.contains("sections.json") { createdFiles.append("sections.json") }
        try write("sections.json", String(decoding: data, as: UTF8.self) + "\n")
    }

    private func writeInfoLocked() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.dateEncodingStrategy = .custom { d, e in
            var c = e.singleValueContainer()
            try c.encode(Format.timestamp(d))
        }
        guard let data = try? enc.encode(info) else { throw RunError.setup("cannot encode run.json") }
        try write("run.json", String(decoding: data, as: UTF8.self) + "\n")
    }
}

/// Re-rendering a run directory (`edgemeter report`) and the `reports/latest` link.
public enum RunReport {
    /// summary.md of a run: the per-scenario tables from the summaries, then the sections in order.
    /// `RunDirectory.finish` and `rerender` both call this, so a re-rendered summary.md is identical.
    public static func markdown(runID: String, summaries: [Summary], notes: [ScenarioNote], complete: Bool, sections: [String]) -> String {
        SummaryMarkdown.render(title: "edgemeter run \(runID)", summaries: summaries, notes: notes, complete: complete,
                               extraSections: sections)
    }

    /// The result of re-rendering: the files' texts, the summaries, and one warning line per
    /// section that could not be reproduced (then summary.md must not be overwritten).
    public struct Rendered: Sendable {
        public var summaries: [Summary]
        public var summaryCSV: String
        public var summaryMarkdown: String
        public var complete: Bool
        public var sampleCount: Int
        public var warnings: [String]
        /// report.html's charts, collected in the same read of samples.csv as the summaries (nil
        /// for `wholeFile`, the old reader).
        public var collector: ReportCollector?
    }

    /// Re-renders summary.csv and summary.md from samples.csv, run.json (notes, completeness) and
    /// sections.json (the sections added at run time). Writes nothing.
    ///
    /// samples.csv is streamed (`SamplesFile`): memory stays at the chunk buffer and the summaries'
    /// histograms whatever the file's size. `wholeFile` reads it the way edgemeter did before
    /// (one String, `SampleCSV.parse`, a `Sample` per row), giving the same figures: kept as the
    /// baseline of `benchmarks/peers/report-vs-datamash.sh` and as a cross-check.
    public static func rerender(directory dir: URL, wholeFile: Bool = false) throws -> Rendered {
        let samplesURL = dir.appendingPathComponent("samples.csv")
        let summaries: [Summary]
        let sampleCount: Int
        var collector: ReportCollector?
        if wholeFile {
            guard let text = try? String(contentsOf: samplesURL, encoding: .utf8) else {
                throw RunError.setup("\(samplesURL.path) not found or unreadable: give the run directory that holds samples.csv")
            }
            let samples = try SampleCSV.parse(text, file: samplesURL.path)
            (summaries, sampleCount) = (Summarizer.summaries(of: samples), samples.count)
        } else {
            // One read (two threads on a large file) for the summaries and report.html's charts.
            let r = try SamplesFile.pass(samplesURL, SamplePass(summaries: true, charts: true))
            (summaries, sampleCount, collector) = (r.pass.summarizer!.summaries, r.rows, r.pass.collector)
        }
        var notes: [ScenarioNote] = []
        var complete = true
        var runID = dir.lastPathComponent
        var expectedSections: Int?
        var warnings: [String] = []
        if let data = try? Data(contentsOf: dir.appendingPathComponent("run.json")),
           let info = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            complete = info["complete"] as? Bool ?? true
            runID = info["run_id"] as? String ?? runID
            expectedSections = info["sections"] as? Int
            for n in info["scenario_notes"] as? [[String: Any]] ?? [] {
                notes.append(ScenarioNote(scenario: n["scenario"] as? String ?? "", status: n["status"] as? String ?? "",
                                          reason: n["reason"] as? String ?? ""))
            }
        } else {
            warnings.append("run.json: missing or unreadable in \(dir.path); scenario notes are left out and the run is shown as complete")
        }
        var sections: [String] = []
        var sectionsProblem: String?
        let sectionsURL = dir.appendingPathComponent("sections.json")
        if let data = try? Data(contentsOf: sectionsURL) {
            if let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let list = obj["sections"] as? [String] {
                sections = list
            } else {
                sectionsProblem = "sections.json is damaged (not {\"sections\": [...]})"
            }
        } else {
            sectionsProblem = "the run directory has no sections.json (it was written before edgemeter kept sections, or deleted)"
        }
        // Name every section of the existing summary.md that the new one would lose.
        let md = markdown(runID: runID, summaries: summaries, notes: notes, complete: complete, sections: sections)
        if let old = try? String(contentsOf: dir.appendingPathComponent("summary.md"), encoding: .utf8) {
            let newHeadings = Set(headings(md))
            for h in headings(old) where !newHeadings.contains(h) {
                warnings.append("summary.md: section \"\(h)\" could not be re-rendered: \(sectionsProblem ?? "it is neither in samples.csv nor in sections.json"); the existing summary.md is kept")
            }
        } else if let sectionsProblem, let n = expectedSections, n > 0 {
            warnings.append("summary.md: \(n) section(s) could not be re-rendered: \(sectionsProblem)")
        }
        return Rendered(summaries: summaries, summaryCSV: SummaryCSV.render(summaries), summaryMarkdown: md, complete: complete,
                        sampleCount: sampleCount, warnings: warnings, collector: collector)
    }

    /// Markdown headings (`#`...) outside code blocks.
    static func headings(_ md: String) -> [String] {
        var out: [String] = []
        var inCode = false
        for line in md.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inCode.toggle(); continue }
            if !inCode && line.hasPrefix("#") { out.append(String(line)) }
        }
        return out
    }

    /// Points `root/latest` at `dir` with a relative symlink, replaced atomically (a symlink under a
    /// temporary name, then rename(2)). A `latest` that is not a symlink is left alone (with a warning).
    public static func pointLatest(root: URL, at dir: URL) {
        let link = root.appendingPathComponent("latest").path
        var st = stat()
        if lstat(link, &st) == 0 && (st.st_mode & S_IFMT) != S_IFLNK {
            fputs("edgemeter: \(link) exists and is not a symlink; not updating it (remove it to get reports/latest back)\n", stderr)
            return
        }
        let tmp = root.appendingPathComponent(".latest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        guard symlink(dir.lastPathComponent, tmp) == 0 else {
            fputs("edgemeter: cannot create \(tmp): \(String(cString: strerror(errno))); reports/latest not updated\n", stderr)
            return
        }
        if rename(tmp, link) != 0 {
            fputs("edgemeter: cannot update \(link): \(String(cString: strerror(errno))); reports/latest not updated\n", stderr)
            unlink(tmp)
        }
    }
}

/// run.json: where, when, with what and how completely the figures were produced.
public struct RunInfo: Codable, Sendable {
    public struct Host: Codable, Sendable {
        public var hostname: String
        public var kernel: String
        public var os: String
        public var cpuModel: String
        public var cpuCount: Int
        public var memoryBytes: UInt64
        enum CodingKeys: String, CodingKey {
            case hostname, kernel, os, cpuModel = "cpu_model", cpuCount = "cpu_count", memoryBytes = "memory_bytes"
        }
    }
    public var edgemeterVersion = EdgeMeterVersion.current
    public var name: String
    public var runID: String
    public var commandLine: [String]
    public var workingDirectory = FileManager.default.currentDirectoryPath
    public var suiteFile: String?
    public var host = RunInfo.currentHost()
    public var startedAt: Date
    public var endedAt: Date?
    public var complete = false
    public var stopReason: String?
    public var samples = 0
    /// Samples measured after samples.csv could no longer be written (not counted in `samples`).
    public var samplesNotWritten: Int?
    /// How many Markdown sections summary.md has after its tables (saved in sections.json).
    public var sections = 0
    public var scenarioNotes: [ScenarioNote] = []
    /// Targets that never succeeded and scenarios that failed or did not run (`RunOutcome`): what
    /// exit status 1 stands for. `complete` only says whether the run went to its end. Absent when
    /// every target succeeded.
    public var failures: [String]?
    public var clocks = "durations: CLOCK_MONOTONIC or paired kernel/user CLOCK_REALTIME stamps (see each sample's labels); timestamps: CLOCK_REALTIME, UTC"

    enum CodingKeys: String, CodingKey {
        case edgemeterVersion = "edgemeter_version", name, runID = "run_id", commandLine = "command_line"
        case workingDirectory = "working_directory", suiteFile = "suite_file", host, startedAt = "started_at"
        case endedAt = "ended_at", complete, stopReason = "stop_reason", samples, samplesNotWritten = "samples_not_written"
        case sections, scenarioNotes = "scenario_notes", failures, clocks
    }

    init(name: String, runID: String, commandLine: [String], suiteFile: String?, startedAt: Date) {
        (self.name, self.runID, self.commandLine, self.suiteFile, self.startedAt) = (name, runID, commandLine, suiteFile, startedAt)
    }

    static func currentHost() -> Host {
        var u = utsname()
        uname(&u)
        func field<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let osRelease = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        let os = osRelease.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
            .map { $0.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } ?? "unknown"
        return Host(hostname: ProcessInfo.processInfo.hostName, kernel: "\(field(u.sysname)) \(field(u.release)) \(field(u.machine))",
                    os: os, cpuModel: model, cpuCount: ProcessInfo.processInfo.activeProcessorCount,
                    memoryBytes: ProcessInfo.processInfo.physicalMemory)
    }
}

/// Errors of run set-up and scenario execution. Each message names the next step.
public enum RunError: Error, CustomStringConvertible {
    case setup(String)
    public var description: String {
        switch self {
        case .setup(let m): return m
        }
    }
}
