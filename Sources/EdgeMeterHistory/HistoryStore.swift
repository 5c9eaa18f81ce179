import Foundation
import GRDB
import EdgeMeterCore

/// The run history: one SQLite database (through GRDB) that records every run, so `compare` can
/// name a run by id or baseline long after its directory is gone.
///
/// Schema (see `HistoryMigrations`):
/// - `runs`: one row per run — `id` (the run directory's name; `-2`, `-3`... when a different
///   directory already used it), `name`, `started_at`/`ended_at` (Unix seconds, UTC), `host`,
///   `command_line`, `suite_file`, `directory` (absolute path of the run directory), `complete`
///   (0 until the run finishes; a killed run stays 0), `stop_reason`, `sample_count`, `edgemeter_version`;
/// - `samples`: every sample as in samples.csv, keyed by (`run_id`, `seq`), `seq` the order of
///   arrival; `timestamp` in Unix seconds, `labels` as samples.csv writes them (`k=v;k=v`);
/// - `baselines`: `name` → `run_id`, `set_at`.
///
/// The database is opened in WAL mode (GRDB's `DatabasePool`), so `runs list` reads while a run
/// writes, and several edgemeter processes can share one file; a writer waits up to `busyTimeout`
/// for a lock before `HistoryError.locked`.
public final class HistoryStore: @unchecked Sendable {
    public let path: String
    let pool: DatabasePool

    /// `$EDGEMETER_DB` when set, else `$XDG_DATA_HOME/edgemeter/history.sqlite`, else
    /// `~/.local/share/edgemeter/history.sqlite` (the XDG base directory default).
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = environment["EDGEMETER_DB"], !p.isEmpty { return p }
        if let x = environment["XDG_DATA_HOME"], x.hasPrefix("/") { return x + "/edgemeter/history.sqlite" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/share/edgemeter/history.sqlite"
    }

    /// Opens (creating it and its directory when absent) and migrates the database at `path`.
    public init(path: String, busyTimeout: TimeInterval = 5) throws {
        self.path = path
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw HistoryError.cannotOpen(path: path, reason: "cannot create \(dir.path): \(error.localizedDescription)")
        }
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        config.label = "edgemeter-history"
        do {
            pool = try DatabasePool(path: path, configuration: config)
            let migrator = HistoryMigrations.migrator
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw HistoryError.newerSchema(path: path)
            }
            try migrator.migrate(pool)
        } catch let e as HistoryError {
            throw e
        } catch {
            throw HistoryError.wrap(error, path: path)
        }
    }

    /// Runs `body` and turns SQLite errors into `HistoryError`s that name the file and the next step.
    func guarded<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as HistoryError { throw e } catch { throw HistoryError.wrap(error, path: path) }
    }

    // MARK: Runs

    /// Inserts a run; when its id is taken by another directory, appends `-2`, `-3`... Returns the id used.
    public func insertRun(_ run: HistoryRun) throws -> String {
        try guarded {
            try pool.write { db in
                var id = run.id
                var i = 2
                while try String.fetchOne(db, sql: "SELECT id FROM runs WHERE id = ?", arguments: [id]) != nil {
                    id = "\(run.id)-\(i)"
                    i += 1
                }
                try db.execute(sql: """
                    INSERT INTO runs (id, name, started_at, ended_at, host, command_line, suite_file, directory, complete,
                                      stop_reason, sample_count, edgemeter_version)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, run.name, run.startedAt.timeIntervalSince1970, run.endedAt?.timeIntervalSince1970,
                                     run.host, run.commandLine, run.suiteFile, run.directory, run.complete ? 1 : 0,
                                     run.stopReason, run.sampleCount, run.edgemeterVersion])
                return id
            }
        }
    }

    /// Appends samples to a run in one transaction, numbering them after the ones already stored.
    public func appendSamples(runID: String, _ samples: [Sample]) throws {
        guard !samples.isEmpty else { return }
        try guarded {
            try pool.write { db in
                var seq = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM samples WHERE run_id = ?", arguments: [runID]) ?? 0
                let stmt = try db.cachedStatement(sql: """
                    INSERT INTO samples (run_id, seq, scenario, probe, target, metric, phase, value, unit, timestamp, status, reason, labels)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for s in samples {
                    seq += 1
                    try stmt.execute(arguments: [runID, seq, s.scenario, s.probe, s.target, s.metric, s.phase, s.value, s.unit,
                                                 s.timestamp.timeIntervalSince1970, s.status.rawValue, s.reason, Format.labels(s.labels)])
                }
                try db.execute(sql: "UPDATE runs SET sample_count = ? WHERE id = ?", arguments: [seq, runID])
            }
        }
    }

    /// Marks a run finished (or stopped): end time, completeness, stop reason.
    public func finishRun(id: String, endedAt: Date, complete: Bool, stopReason: String?) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: "UPDATE runs SET ended_at = ?, complete = ?, stop_reason = ? WHERE id = ?",
                               arguments: [endedAt.timeIntervalSince1970, complete ? 1 : 0, stopReason, id])
            }
        }
    }

    static func run(from row: Row) -> HistoryRun {
        HistoryRun(id: row["id"], name: row["name"], startedAt: Date(timeIntervalSince1970: row["started_at"]),
                   endedAt: (row["ended_at"] as Double?).map { Date(timeIntervalSince1970: $0) },
                   host: row["host"] ?? "", commandLine: row["command_line"] ?? "", suiteFile: row["suite_file"],
                   directory: row["directory"] ?? "", complete: (row["complete"] as Int? ?? 0) != 0, stopReason: row["stop_reason"],
                   sampleCount: row["sample_count"] ?? 0, edgemeterVersion: row["edgemeter_version"] ?? "")
    }

    /// The most recent runs first.
    public func runs(limit: Int = 50) throws -> [HistoryRun] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", arguments: [limit]).map(Self.run)
            }
        }
    }

    public func run(id: String) throws -> HistoryRun? {
        try guarded {
            try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(Self.run) }
        }
    }

    /// The distinct scenarios of a run, in the order they were first measured.
    public func scenarios(runID: String) throws -> [String] {
        try guarded {
            try pool.read { db in
                try String.fetchAll(db, sql: "SELECT scenario FROM samples WHERE run_id = ? GROUP BY scenario ORDER BY MIN(seq)",
                                    arguments: [runID])
            }
        }
    }

    /// A run's samples in the order they arrived.
    public func samples(runID: String) throws -> [Sample] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM samples WHERE run_id = ? ORDER BY seq", arguments: [runID]).map { r in
                    Sample(runID: runID, scenario: r["scenario"], probe: r["probe"], target: r["target"], metric: r["metric"],
                           phase: r["phase"], value: r["value"], unit: r["unit"],
                           timestamp: Date(timeIntervalSince1970: r["timestamp"]),
                           status: SampleStatus(rawValue: r["status"]) ?? .error, reason: r["reason"] ?? "",
                           labels: Format.parseLabels(r["labels"] ?? ""))
                }
            }
        }
    }

    /// Deletes a run with its samples and the baselines that named it (returned). False when absent.
    public func deleteRun(id: String) throws -> (deleted: Bool, baselines: [String]) {
        try guarded {
            try pool.write { db in
                let names = try String.fetchAll(db, sql: "SELECT name FROM baselines WHERE run_id = ? ORDER BY name", arguments: [id])
                try db.execute(sql: "DELETE FROM runs WHERE id = ?", arguments: [id])
                return (db.changesCount > 0, names)
            }
        }
    }

    // MARK: Baselines

    public func setBaseline(name: String, runID: String, now: Date = Date()) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO baselines (name, run_id, set_at) VALUES (?, ?, ?)",
                               arguments: [name, runID, now.timeIntervalSince1970])
            }
        }
    }

    public func baseline(name: String) throws -> String? {
        try guarded { try pool.read { db in try String.fetchOne(db, sql: "SELECT run_id FROM baselines WHERE name = ?", arguments: [name]) } }
    }

    public func baselines() throws -> [(name: String, runID: String, setAt: Date)] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM baselines ORDER BY name").map {
                    (name: $0["name"], runID: $0["run_id"], setAt: Date(timeIntervalSince1970: $0["set_at"]))
                }
            }
        }
    }

    public func removeBaseline(name: String) throws -> Bool {
        try guarded { try pool.write { db in try db.execute(sql: "DELETE FROM baselines WHERE name = ?", arguments: [name]); return db.changesCount > 0 } }
    }

    /// A run named by a baseline name, a run id, or a unique prefix of one (in that order);
    /// `latest` is the most recently started run. nil when nothing matches; an ambiguous prefix throws.
    public func resolve(_ ref: String) throws -> String? {
        if ref == "latest" { return try runs(limit: 1).first?.id }
        if let id = try baseline(name: ref) { return id }
        if try run(id: ref) != nil { return ref }
        let matches = try guarded {
            try pool.read { db in
                try String.fetchAll(db, sql: "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                                    arguments: [ref.utf8.count, ref])
            }
        }
        if matches.count > 1 {
            throw HistoryError.ambiguous(ref: ref, matches: matches)
        }
        return matches.first
    }
}

/// One run as the history keeps it.
public struct HistoryRun: Sendable, Equatable {
    public var id: String
    public var name: String
    public var startedAt: Date
    public var endedAt: Date?
    public var host: String
    /// The command line, arguments joined by spaces.
    public var commandLine: String
    public var suiteFile: String?
    /// The run directory's absolute path (it may since have been removed).
    public var directory: String
    public var complete: Bool
    public var stopReason: String?
    public var sampleCount: Int
    public var edgemeterVersion: String

    public init(id: String, name: String, startedAt: Date, endedAt: Date? = nil, host: String = ProcessInfo.processInfo.hostName,
                commandLine: String, suiteFile: String? = nil, directory: String, complete: Bool = false, stopReason: String? = nil,
                sampleCount: Int = 0, edgemeterVersion: String = EdgeMeterVersion.current) {
        (self.id, self.name, self.startedAt, self.endedAt, self.host) = (id, name, startedAt, endedAt, host)
        (self.commandLine, self.suiteFile, self.directory, self.complete) = (commandLine, suiteFile, directory, complete)
        (self.stopReason, self.sampleCount, self.edgemeterVersion) = (stopReason, sampleCount, edgemeterVersion)
    }
}

/// History errors; each names the database file and what to do.
public enum HistoryError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case locked(path: String)
    case newerSchema(path: String)
    case ambiguous(ref: String, matches: [String])
    case failed(path: String, reason: String)

    static func wrap(_ error: Error, path: String) -> HistoryError {
        if let e = error as? DatabaseError {
            switch e.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT: return .corrupt(path: path, reason: e.message ?? "\(e)")
            case .SQLITE_BUSY, .SQLITE_LOCKED: return .locked(path: path)
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_FULL:
                return .cannotOpen(path: path, reason: e.message ?? "\(e)")
            default: return .failed(path: path, reason: "\(e)")
            }
        }
        return .failed(path: path, reason: "\(error)")
    }

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r):
            return "history database \(p) cannot be opened or written (\(r)): check its permissions and free space, or choose another file with --db PATH (or EDGEMETER_DB)"
        case .corrupt(let p, let r):
            return "history database \(p) is damaged or not an edgemeter history (\(r)): move it aside (mv \(p) \(p).bad) to start a new history, or choose another file with --db PATH"
        case .locked(let p):
            return "history database \(p) is locked by another process (another edgemeter, or a sqlite3 shell with an open transaction): wait for it to finish, or choose another file with --db PATH"
        case .newerSchema(let p):
            return "history database \(p) was written by a newer edgemeter (its schema has migrations this version does not know): use that edgemeter, or choose another file with --db PATH"
        case .ambiguous(let ref, let m):
            return "\"\(ref)\" matches several runs (\(m.joined(separator: ", "))\(m.count > 5 ? ", ..." : "")): give more of the run id"
        case .failed(let p, let r):
            return "history database \(p): \(r)"
        }
    }
}
