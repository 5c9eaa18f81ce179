import GRDB

/// The history's schema, one GRDB migration per version, applied in order and recorded in the
/// database (`grdb_migrations`). Never edit a migration that has shipped: add the next one.
/// A database holding a migration this list does not know was written by a newer edgemeter and
/// is refused (`HistoryError.newerSchema`) rather than misread.
public enum HistoryMigrations {
    /// Migration identifiers in order (tests migrate up to one of them).
    public static let v1 = "v1-runs-samples-baselines"
    public static let v2 = "v2-series-index-version"

    public static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration(v1) { db in
            try db.create(table: "runs") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("started_at", .double).notNull()
                t.column("ended_at", .double)
                t.column("host", .text)
                t.column("command_line", .text)
                t.column("suite_file", .text)
                t.column("directory", .text)
                t.column("complete", .integer).notNull().defaults(to: 0)
                t.column("stop_reason", .text)
                t.column("sample_count", .integer).notNull().defaults(to: 0)
            }
            try db.create(table: "samples") { t in
                t.column("run_id", .text).notNull().references("runs", onDelete: .cascade)
                t.column("seq", .integer).notNull()
                t.column("scenario", .text).notNull()
                t.column("probe", .text).notNull()
                t.column("target", .text).notNull()
                t.column("metric", .text).notNull()
                t.column("phase", .text).notNull()
                t.column("value", .double)
                t.column("unit", .text).notNull()
                t.column("timestamp", .double).notNull()
                t.column("status", .text).notNull()
                t.column("reason", .text)
                t.column("labels", .text)
                t.primaryKey(["run_id", "seq"])
            }
            try db.create(table: "baselines") { t in
                t.primaryKey("name", .text)
                t.column("run_id", .text).notNull().references("runs", onDelete: .cascade)
                t.column("set_at", .double).notNull()
            }
        }
        // v2: which edgemeter wrote the run, and an index for compare's per-series reads.
        m.registerMigration(v2) { db in
            try db.alter(table: "runs") { t in t.add(column: "edgemeter_version", .text) }
            try db.create(index: "samples_series", on: "samples", columns: ["run_id", "scenario", "metric", "phase"])
            try db.create(index: "runs_started", on: "runs", columns: ["started_at"])
        }
        return m
    }
}
