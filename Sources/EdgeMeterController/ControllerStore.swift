import Foundation
import CSQLite

/// The controller's state file: one SQLite database (the system's libsqlite3) with two tables,
/// written on every change so a restarted controller continues where it stopped.
///
/// - `services(name PRIMARY KEY, config TEXT)`: each service's configuration, active node,
///   requirement and policy memory, as JSON (`ServiceRecord`);
/// - `decisions(id INTEGER PRIMARY KEY AUTOINCREMENT, service, kind, at TEXT, record TEXT)`: the
///   audit trail, one JSON `DecisionRecord` per decision, never rewritten.
///
/// Delay samples are not stored: after a restart the windows refill from the probe loop and
/// `POST /delays`. Writes use `journal_mode=WAL` and `synchronous=FULL`: a decision is on disk
/// before it is answered. All calls are serialised by one lock (the controller's actor calls it).
public final class ControllerStore: @unchecked Sendable {
    public let path: String
    private var db: OpaquePointer?
    private let lock = NSLock()

    public init(path: String) throws {
        self.path = path
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let why = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            if let handle { sqlite3_close(handle) }
            throw ControllerError("cannot open the state file \(path): \(why); give --state a writable path (its directory must exist)", status: 500)
        }
        db = handle
        sqlite3_busy_timeout(handle, 2000)
        do {
            try exec("PRAGMA journal_mode=WAL")
            try exec("PRAGMA synchronous=FULL")
            try exec("CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, config TEXT NOT NULL)")
            try exec("CREATE TABLE IF NOT EXISTS decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, "
                     + "kind TEXT NOT NULL, at TEXT NOT NULL, record TEXT NOT NULL)")
            try exec("CREATE INDEX IF NOT EXISTS decisions_service ON decisions(service, id)")
        } catch {
            sqlite3_close(handle)
            db = nil
            throw ControllerError("the state file \(path) is not a usable edgemeter controller database (\(error)); "
                                  + "give --state a new path or remove the file", status: 500)
        }
    }

    deinit { if let db { sqlite3_close(db) } }

    private func fail(_ what: String) -> ControllerError {
        ControllerError("the state file \(path): \(what) failed: \(String(cString: sqlite3_errmsg(db))); "
                        + "check free space and permissions", status: 500)
    }

    private func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let m = err.map { String(cString: $0) } ?? "?"
            sqlite3_free(err)
            throw ControllerError("\(sql): \(m)", status: 500)
        }
    }

    /// Runs one statement with text/integer bindings; calls `row` for every result row.
    private func run(_ sql: String, _ args: [Any?], row: ((OpaquePointer) -> Void)? = nil) throws {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw fail("preparing \(sql)") }
        defer { sqlite3_finalize(stmt) }
        for (i, a) in args.enumerated() {
            let idx = Int32(i + 1)
            switch a {
            case let s as String: sqlite3_bind_text(stmt, idx, s, -1, em_sqlite_transient())
            case let n as Int: sqlite3_bind_int64(stmt, idx, Int64(n))
            case let n as Int64: sqlite3_bind_int64(stmt, idx, n)
            default: sqlite3_bind_null(stmt, idx)
            }
        }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_ROW { row?(stmt); continue }
            if rc == SQLITE_DONE { return }
            throw fail(sql)
        }
    }

    private static func text(_ stmt: OpaquePointer, _ col: Int32) -> String {
        sqlite3_column_text(stmt, col).map { String(cString: $0) } ?? ""
    }

    /// Inserts or replaces a service.
    public func save(service name: String, json: String) throws {
        lock.lock(); defer { lock.unlock() }
        try run("INSERT INTO services(name, config) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET config = excluded.config", [name, json])
    }

    /// Replaces every service at once (one transaction): `service_init`.
    public func replaceServices(_ services: [(name: String, json: String)]) throws {
        lock.lock(); defer { lock.unlock() }
        try exec("BEGIN IMMEDIATE")
        do {
            try run("DELETE FROM services", [])
            for s in services { try run("INSERT INTO services(name, config) VALUES(?, ?)", [s.name, s.json]) }
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    /// Every service, by name.
    public func services() throws -> [(name: String, json: String)] {
        lock.lock(); defer { lock.unlock() }
        var out: [(String, String)] = []
        try run("SELECT name, config FROM services ORDER BY name", []) { s in out.append((Self.text(s, 0), Self.text(s, 1))) }
        return out
    }

    /// Appends a decision; returns its id (increasing, never reused).
    public func append(decision json: String, service: String, kind: String, at: String) throws -> Int64 {
        lock.lock(); defer { lock.unlock() }
        try run("INSERT INTO decisions(service, kind, at, record) VALUES(?, ?, ?, ?)", [service, kind, at, json])
        return sqlite3_last_insert_rowid(db)
    }

    /// The newest `limit` decisions (of `service`, or all), newest first, as (id, JSON).
    public func decisions(service: String?, limit: Int) throws -> [(id: Int64, json: String)] {
        lock.lock(); defer { lock.unlock() }
        var out: [(Int64, String)] = []
        let collect: (OpaquePointer) -> Void = { s in out.append((sqlite3_column_int64(s, 0), Self.text(s, 1))) }
        if let service {
            try run("SELECT id, record FROM decisions WHERE service = ? ORDER BY id DESC LIMIT ?", [service, limit], row: collect)
        } else {
            try run("SELECT id, record FROM decisions ORDER BY id DESC LIMIT ?", [limit], row: collect)
        }
        return out
    }

    /// Decisions per (service, kind), for /metrics.
    public func decisionCounts() throws -> [(service: String, kind: String, count: Int)] {
        lock.lock(); defer { lock.unlock() }
        var out: [(String, String, Int)] = []
        try run("SELECT service, kind, COUNT(*) FROM decisions GROUP BY service, kind ORDER BY service, kind", []) { s in
            out.append((Self.text(s, 0), Self.text(s, 1), Int(sqlite3_column_int64(s, 2))))
        }
        return out
    }
}
