import Foundation
import EdgeMeterCore

/// One run's output directory:
/// - `samples.csv`: every sample, appended with one `write(2)` per sample as it arrives, so a crash or
///   SIGKILL loses at most the sample being written;
/// - `summary.csv`, `summary.md`: written by `finish` (and re-renderable by `edgemeter report`);
/// - `run.json`: provenance, written at the start with `"complete": false` and rewritten by `finish`.
public final class RunDirectory: SampleSink, @unchecked Sendable {
    public let url: URL
    public let runID: String
    public let name: String
    private let fd: Int32
    private let lock = NSLock()
    private var summarizer = Summarizer()
    private var notes: [ScenarioNote] = []
    private var sections: [String] = []
    private var info: RunInfo
    private var finished = false
    public private(set) var sampleCount = 0

    /// Creates the directory (default `reports/<UTC timestamp>-<name>/`) and the header of samples.csv.
    public init(out: String?, name: String, commandLine: [String] = CommandLine.arguments, suiteFile: String? = nil,
                now: Date = Date()) throws {
        let stamp = RunDirectory.stamp(now)
        let safeName = name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" }
        let fm = FileManager.default
        var dir: URL
        if let out {
            dir = URL(fileURLWithPath: out)
        } else {
            let base = URL(fileURLWithPath: "reports").appendingPathComponent("\(stamp)-\(String(safeName))")
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
        do {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw RunError.setup("cannot create the report directory \(dir.path): \(error.localizedDescription); choose a writable --out directory")
        }
        self.url = dir
        self.name = name
        self.runID = dir.lastPathComponent
        let path = dir.appendingPathComponent("samples.csv").path
        let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0o644)
        guard f >= 0 else {
            throw RunError.setup("cannot create \(path): \(String(cString: strerror(errno))); choose a writable --out directory")
        }
        self.fd = f
        self.info = RunInfo(name: name, runID: dir.lastPathComponent, commandLine: commandLine, suiteFile: suiteFile,
                            startedAt: now)
        writeAll(SampleCSV.headerLine)
        try writeInfo()
    }

    deinit { close(fd) }

    static func stamp(_ d: Date) -> String {
        let ts = Format.timestamp(d) // 2026-11-29T01:40:00.123456Z
        let digits = ts.prefix(19).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
        return digits + "Z"
    }

    private func writeAll(_ text: String) {
        var bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; break }
            off += n
        }
        bytes.removeAll()
    }

    public func record(_ sample: Sample) {
        var s = sample
        s.runID = runID
        lock.lock()
        defer { lock.unlock() }
        writeAll(SampleCSV.row(s))
        summarizer.add(s)
        sampleCount += 1
    }

    /// Records why a scenario produced no (or partial) samples; shown in summary.md and run.json.
    public func addNote(_ note: ScenarioNote) {
        lock.lock(); notes.append(note); lock.unlock()
    }

    /// Adds a Markdown section (comparison tables, histograms) to the end of summary.md. A section
    /// whose first line is `<!-- section: KEY -->` replaces an earlier one with the same first line
    /// (which is removed; the new one goes to the end), so a scenario can keep one up-to-date section.
    public func addSection(_ markdown: String) {
        lock.lock(); defer { lock.unlock() }
        if markdown.hasPrefix("<!-- section: "), let key = markdown.split(separator: "\n", maxSplits: 1).first {
            sections.removeAll { $0.split(separator: "\n", maxSplits: 1).first == key }
        }
        sections.append(markdown)
    }

    /// The notes added so far (scenarios not run, failed or interrupted).
    public var scenarioNotes: [ScenarioNote] {
        lock.lock(); defer { lock.unlock() }
        return notes
    }

    public var summaries: [Summary] {
        lock.lock(); defer { lock.unlock() }
        return summarizer.summaries
    }

    /// Writes summary.csv, summary.md and the final run.json. `complete` is false when the run was
    /// interrupted; `stopReason` says by what.
    @discardableResult
    public func finish(complete: Bool, stopReason: String? = nil, now: Date = Date()) throws -> [Summary] {
        lock.lock()
        let summaries = summarizer.summaries
        let notes = self.notes
        let sections = self.sections
        finished = true
        info.endedAt = now
        info.complete = complete
        info.stopReason = stopReason
        info.samples = sampleCount
        info.scenarioNotes = notes
        lock.unlock()
        try write("summary.csv", SummaryCSV.render(summaries))
        try write("summary.md", SummaryMarkdown.render(title: "edgemeter run \(runID)", summaries: summaries, notes: notes,
                                                      complete: complete, extraSections: sections))
        try writeInfo()
        return summaries
    }

    private func write(_ file: String, _ text: String) throws {
        let p = url.appendingPathComponent(file)
        do { try text.write(to: p, atomically: true, encoding: .utf8) } catch {
            throw RunError.setup("cannot write \(p.path): \(error.localizedDescription)")
        }
    }

    private func writeInfo() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.dateEncodingStrategy = .custom { d, e in
            var c = e.singleValueContainer()
            try c.encode(Format.timestamp(d))
        }
        lock.lock()
        let data = try? enc.encode(info)
        lock.unlock()
        guard let data else { throw RunError.setup("cannot encode run.json") }
        try write("run.json", String(decoding: data, as: UTF8.self) + "\n")
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
    public var scenarioNotes: [ScenarioNote] = []
    public var clocks = "durations: CLOCK_MONOTONIC or paired kernel/user CLOCK_REALTIME stamps (see each sample's labels); timestamps: CLOCK_REALTIME, UTC"

    enum CodingKeys: String, CodingKey {
        case edgemeterVersion = "edgemeter_version", name, runID = "run_id", commandLine = "command_line"
        case workingDirectory = "working_directory", suiteFile = "suite_file", host, startedAt = "started_at"
        case endedAt = "ended_at", complete, stopReason = "stop_reason", samples, scenarioNotes = "scenario_notes", clocks
    }

    init(name: String, runID: String, commandLine: [String], suiteFile: String?, startedAt: Date) {
        self.name = name
        self.runID = runID
        self.commandLine = commandLine
        self.suiteFile = suiteFile
        self.startedAt = startedAt
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
