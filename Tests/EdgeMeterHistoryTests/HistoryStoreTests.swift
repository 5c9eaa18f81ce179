import XCTest
import GRDB
import EdgeMeterCore
@testable import EdgeMeterHistory

/// The history database on temporary files (never the user's data directory).
final class HistoryStoreTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("emhist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: tmp)
    }

    var dbPath: String { tmp.appendingPathComponent("sub/dir/history.sqlite").path }

    func sample(_ i: Int, run: String = "r1", value: Double? = nil, target: String = "127.0.0.1") -> Sample {
        Sample(runID: run, scenario: "ping", probe: "ping", target: target, metric: "rtt", phase: "echo",
               value: value ?? Double(i) / 10, unit: "ms", timestamp: Date(timeIntervalSince1970: 1_700_000_000 + Double(i)),
               status: .ok, labels: ["seq": "\(i)", "socket": "dgram"])
    }

    func testDefaultPathFollowsEnvironmentAndXDG() {
        XCTAssertEqual(HistoryStore.defaultPath(environment: ["EDGEMETER_DB": "/x/h.sqlite", "HOME": "/home/u"]), "/x/h.sqlite")
        XCTAssertEqual(HistoryStore.defaultPath(environment: ["XDG_DATA_HOME": "/data", "HOME": "/home/u"]), "/data/edgemeter/history.sqlite")
        XCTAssertEqual(HistoryStore.defaultPath(environment: ["HOME": "/home/u"]), "/home/u/.local/share/edgemeter/history.sqlite")
        // A relative XDG_DATA_HOME is invalid per the spec and ignored.
        XCTAssertEqual(HistoryStore.defaultPath(environment: ["XDG_DATA_HOME": "rel", "HOME": "/home/u"]), "/home/u/.local/share/edgemeter/history.sqlite")
    }

    func testRunsSamplesRoundTripResolveBaselineAndDelete() throws {
        let store = try HistoryStore(path: dbPath)
        let id = try store.insertRun(HistoryRun(id: "20261202T010000Z-ping", name: "ping", startedAt: Date(timeIntervalSince1970: 1_700_000_000),
                                                commandLine: "edgemeter ping 127.0.0.1", directory: "/tmp/a"))
        XCTAssertEqual(id, "20261202T010000Z-ping")
        let samples = (1...10).map { sample($0) } + [Sample(runID: "r1", scenario: "ping", probe: "ping", target: "x", metric: "rtt", phase: "echo",
                                                            value: nil, unit: "ms", timestamp: Date(timeIntervalSince1970: 1_700_000_100),
                                                            status: .timeout, reason: "no reply within 1 s")]
        try store.appendSamples(runID: id, Array(samples[..<4]))
        try store.appendSamples(runID: id, Array(samples[4...]))
        let back = try store.samples(runID: id)
        XCTAssertEqual(back.count, 11)
        XCTAssertEqual(back.map(\.value), samples.map(\.value))
        XCTAssertEqual(back[0].labels, ["seq": "1", "socket": "dgram"])
        XCTAssertEqual(back[10].status, .timeout)
        XCTAssertEqual(back[10].reason, "no reply within 1 s")
        XCTAssertEqual(back[3].timestamp, samples[3].timestamp)
        XCTAssertEqual(try store.run(id: id)?.sampleCount, 11)
        XCTAssertEqual(try store.run(id: id)?.complete, false)
        XCTAssertEqual(try store.scenarios(runID: id), ["ping"])

        // The same directory name from another directory gets a suffix.
        let second = try store.insertRun(HistoryRun(id: "20261202T010000Z-ping", name: "ping", startedAt: Date(timeIntervalSince1970: 1_700_000_500),
                                                    commandLine: "", directory: "/tmp/b"))
        XCTAssertEqual(second, "20261202T010000Z-ping-2")
        try store.finishRun(id: id, endedAt: Date(timeIntervalSince1970: 1_700_000_200), complete: true, stopReason: nil)
        XCTAssertEqual(try store.run(id: id)?.complete, true)

        // Resolution: latest, baseline names, exact ids, unique prefixes; ambiguity is an error.
        XCTAssertEqual(try store.resolve("latest"), second)
        try store.setBaseline(name: "nightly", runID: id)
        XCTAssertEqual(try store.resolve("nightly"), id)
        XCTAssertEqual(try store.resolve(id), id)
        XCTAssertEqual(try store.resolve("20261202T010000Z-ping-"), second)
        XCTAssertThrowsError(try store.resolve("20261202")) { XCTAssertTrue("\($0)".contains("matches several runs"), "\($0)") }
        XCTAssertNil(try store.resolve("nothing"))

        // Deleting a run removes its samples and the baselines naming it.
        let gone = try store.deleteRun(id: id)
        XCTAssertTrue(gone.deleted)
        XCTAssertEqual(gone.baselines, ["nightly"])
        XCTAssertEqual(try store.samples(runID: id).count, 0)
        XCTAssertNil(try store.baseline(name: "nightly"))
        XCTAssertFalse(try store.deleteRun(id: id).deleted)
    }

    func testMigrationsUpgradeAVersionOneDatabaseAndRefuseANewerOne() throws {
        // A database written by the first schema version, with one run in it.
        let path = tmp.appendingPathComponent("v1.sqlite").path
        do {
            let q = try DatabaseQueue(path: path)
            try HistoryMigrations.migrator.migrate(q, upTo: HistoryMigrations.v1)
            try q.write { db in
                try db.execute(sql: "INSERT INTO runs (id, name, started_at, complete, sample_count) VALUES ('old', 'ping', 1, 1, 0)")
                XCTAssertFalse(try db.columns(in: "runs").map(\.name).contains("edgemeter_version"))
            }
        }
        let store = try HistoryStore(path: path)
        XCTAssertEqual(try store.run(id: "old")?.name, "ping")
        try store.pool.read { db in
            XCTAssertTrue(try db.columns(in: "runs").map(\.name).contains("edgemeter_version"))
            XCTAssertTrue(try db.indexes(on: "samples").map(\.name).contains("samples_series"))
            XCTAssertEqual(try HistoryMigrations.migrator.appliedIdentifiers(db), [HistoryMigrations.v1, HistoryMigrations.v2])
        }

        // A database with a migration this edgemeter does not know.
        let newer = tmp.appendingPathComponent("newer.sqlite").path
        do {
            var m = HistoryMigrations.migrator
            m.registerMigration("v99-from-the-future") { db in try db.execute(sql: "CREATE TABLE future (x)") }
            try m.migrate(try DatabaseQueue(path: newer))
        }
        XCTAssertThrowsError(try HistoryStore(path: newer)) { e in
            XCTAssertEqual(e as? HistoryError, .newerSchema(path: newer))
            XCTAssertTrue("\(e)".contains("newer edgemeter"), "\(e)")
        }
    }

    func testACorruptFileIsAClearError() throws {
        let path = tmp.appendingPathComponent("corrupt.sqlite").path
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try HistoryStore(path: path)) { e in
            guard case .corrupt = e as? HistoryError else { return XCTFail("expected .corrupt, got \(e)") }
            XCTAssertTrue("\(e)".contains("is damaged or not an edgemeter history"), "\(e)")
            XCTAssertTrue("\(e)".contains("--db PATH"), "\(e)")
        }
    }

    func testRecorderWritesInBatchesAsTheRunGoes() throws {
        let store = try HistoryStore(path: dbPath)
        let warnings = Warnings()
        let rec = HistoryRecorder(store: store, run: HistoryRun(id: "batched", name: "ping", startedAt: Date(), commandLine: "t", directory: "/tmp/x"),
                                  batchSize: 100, flushInterval: 0.2, warn: { warnings.add($0) })
        // A full batch is written without waiting for the end of the run.
        for i in 1...250 { rec.record(sample(i)) }
        try waitUntil { try store.run(id: "batched")?.sampleCount ?? 0 >= 200 }
        // The timer writes a partial batch too.
        try waitUntil { try store.run(id: "batched")?.sampleCount == 250 }
        XCTAssertNil(try store.run(id: "batched")?.endedAt, "not finished yet")
        rec.record(sample(251))
        XCTAssertEqual(rec.finish(complete: true, stopReason: nil), "batched")
        let run = try XCTUnwrap(store.run(id: "batched"))
        XCTAssertEqual(run.sampleCount, 251)
        XCTAssertTrue(run.complete)
        XCTAssertNotNil(run.endedAt)
        XCTAssertEqual(try store.samples(runID: "batched").map(\.labels["seq"]), (1...251).map { "\($0)" })
        XCTAssertEqual(warnings.all, [])
    }

    func testARunThatMeasuredNothingLeavesNoRow() throws {
        let store = try HistoryStore(path: dbPath)
        let rec = HistoryRecorder(store: store, run: HistoryRun(id: "empty", name: "x", startedAt: Date(), commandLine: "", directory: "/tmp/x"),
                                  warn: { _ in })
        XCTAssertNil(rec.finish(complete: false, stopReason: "set-up failed"))
        XCTAssertNil(try store.run(id: "empty"))
        let rec2 = HistoryRecorder(store: store, run: HistoryRun(id: "discarded", name: "x", startedAt: Date(), commandLine: "", directory: "/tmp/x"),
                                   warn: { _ in })
        rec2.record(sample(1))
        rec2.flush()
        XCTAssertNotNil(try store.run(id: "discarded"))
        rec2.discard()
        XCTAssertNil(try store.run(id: "discarded"))
    }

    func testALockedDatabaseWarnsOnceAndTheRunGoesOn() throws {
        let store = try HistoryStore(path: dbPath, busyTimeout: 0.2)
        // Another connection holds the write lock (as a sqlite3 shell with an open transaction would).
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: dbPath, configuration: config)
        try other.inDatabase { try $0.execute(sql: "BEGIN EXCLUSIVE TRANSACTION") }
        let warnings = Warnings()
        let rec = HistoryRecorder(store: store, run: HistoryRun(id: "locked", name: "ping", startedAt: Date(), commandLine: "", directory: "/tmp/x"),
                                  batchSize: 10, flushInterval: 10, warn: { warnings.add($0) })
        let directory = MemorySink() // stands for the run directory, first in the tee
        let tee = TeeSink([directory, rec])
        for i in 1...30 { tee.record(sample(i)) }
        rec.flush()
        XCTAssertNil(rec.finish(complete: true, stopReason: nil))
        XCTAssertEqual(directory.samples.count, 30, "the run directory got every sample")
        XCTAssertEqual(warnings.all.count, 1, "\(warnings.all)")
        XCTAssertTrue(warnings.all.first?.contains("is locked by another process") ?? false, "\(warnings.all)")
        XCTAssertTrue(warnings.all.first?.contains("edgemeter runs import DIR") ?? false, "\(warnings.all)")
        XCTAssertTrue(rec.hasFailed)
        try other.inDatabase { try $0.execute(sql: "ROLLBACK") }
        XCTAssertNil(try store.run(id: "locked"))
    }

    func testImportAddsARunDirectoryOnce() throws {
        let dir = tmp.appendingPathComponent("20261202T000000Z-ping")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let samples = (1...20).map { sample($0, run: dir.lastPathComponent) }
        try (SampleCSV.headerLine + samples.map(SampleCSV.row).joined()).write(to: dir.appendingPathComponent("samples.csv"), atomically: true, encoding: .utf8)
        let info = """
            {"run_id": "\(dir.lastPathComponent)", "name": "ping", "started_at": "2026-12-02T00:00:00.000000Z",
             "ended_at": "2026-12-02T00:00:21.000000Z", "complete": true, "command_line": ["edgemeter", "ping", "127.0.0.1"],
             "host": {"hostname": "h1"}, "edgemeter_version": "0.9"}
            """
        try info.write(to: dir.appendingPathComponent("run.json"), atomically: true, encoding: .utf8)
        let store = try HistoryStore(path: dbPath)
        let r = try RunDirectoryReader.importRun(directory: dir, into: store)
        XCTAssertEqual(r.id, dir.lastPathComponent)
        XCTAssertEqual(r.samples, 20)
        let run = try XCTUnwrap(store.run(id: r.id))
        XCTAssertEqual(run.commandLine, "edgemeter ping 127.0.0.1")
        XCTAssertEqual(run.host, "h1")
        XCTAssertTrue(run.complete)
        XCTAssertEqual(run.startedAt, Format.parseTimestamp("2026-12-02T00:00:00.000000Z"))
        XCTAssertEqual(try store.samples(runID: r.id).map(\.value), samples.map(\.value))
        XCTAssertThrowsError(try RunDirectoryReader.importRun(directory: dir, into: store)) {
            XCTAssertTrue("\($0)".contains("already in the history"), "\($0)")
        }
    }

    func waitUntil(timeout: TimeInterval = 5, _ cond: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if try cond() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTFail("condition not met within \(timeout) s")
    }
}

final class Warnings: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
