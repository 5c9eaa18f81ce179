import Foundation
import EdgeMeterCore
import GRDB

/// Reading a run directory from disk: its samples (for `compare` on directories) and the whole run
/// (for `runs import`, which adds a run the history missed — a locked database, `--no-history`, a
/// run from another machine).
public enum RunDirectoryReader {
    /// Every sample of samples.csv in `dir`.
    public static func samples(directory dir: URL) throws -> [Sample] {
        let url = dir.appendingPathComponent("samples.csv")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw HistoryImportError("\(url.path) not found or unreadable: give a run directory that holds samples.csv")
        }
        return try SampleCSV.parse(text, file: url.path)
    }

    /// Whether `path` is a run directory (holds samples.csv).
    public static func isRunDirectory(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("samples.csv").path)
    }

    /// The run described by run.json in `dir` (name, id, times, command, host); what run.json lacks
    /// is taken from the directory (its name) and samples.csv (first and last timestamps).
    public static func run(directory dir: URL, samples: [Sample]) -> HistoryRun {
        var info: [String: Any] = [:]
        if let data = try? Data(contentsOf: dir.appendingPathComponent("run.json")),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] { info = obj }
        let started = (info["started_at"] as? String).flatMap(Format.parseTimestamp) ?? samples.map(\.timestamp).min() ?? Date()
        let ended = (info["ended_at"] as? String).flatMap(Format.parseTimestamp)
        let host = (info["host"] as? [String: Any])?["hostname"] as? String ?? ""
        return HistoryRun(id: info["run_id"] as? String ?? dir.lastPathComponent, name: info["name"] as? String ?? dir.lastPathComponent,
                          startedAt: started, endedAt: ended, host: host,
                          commandLine: (info["command_line"] as? [String])?.joined(separator: " ") ?? "",
                          suiteFile: info["suite_file"] as? String, directory: dir.standardizedFileURL.path,
                          complete: info["complete"] as? Bool ?? false, stopReason: info["stop_reason"] as? String,
                          edgemeterVersion: info["edgemeter_version"] as? String ?? "")
    }

    /// Adds the run in `dir` to the history. Refuses a directory the history already holds.
    public static func importRun(directory dir: URL, into store: HistoryStore) throws -> (id: String, samples: Int) {
        let path = dir.standardizedFileURL.path
        if let existing = try store.runID(directory: path) {
            throw HistoryImportError("\(path) is already in the history as run \(existing): `edgemeter runs rm \(existing)` first to import it again")
        }
        let samples = try samples(directory: dir)
        let run = run(directory: dir, samples: samples)
        let id = try store.insertRun(run)
        var i = 0
        while i < samples.count {
            try store.appendSamples(runID: id, Array(samples[i..<min(samples.count, i + 5000)]))
            i += 5000
        }
        try store.finishRun(id: id, endedAt: run.endedAt ?? samples.map(\.timestamp).max() ?? run.startedAt,
                            complete: run.complete, stopReason: run.stopReason)
        return (id, samples.count)
    }
}

public struct HistoryImportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

extension HistoryStore {
    /// The run recorded from the run directory at `path`, if any.
    public func runID(directory path: String) throws -> String? {
        try guarded {
            try pool.read { db in try String.fetchOne(db, sql: "SELECT id FROM runs WHERE directory = ? LIMIT 1", arguments: [path]) }
        }
    }
}
