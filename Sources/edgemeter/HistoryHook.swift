import Foundation
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterHistory

/// Where measuring commands meet the run history: `runMeasured` tees every sample to a
/// `HistoryRecorder` beside the run directory. The history never stops a run: a database that
/// cannot be opened (corrupt, locked, unwritable, newer schema) or written is a warning on stderr,
/// the run goes on and its directory is complete (`edgemeter runs import DIR` adds it later).
enum HistoryHook {
    /// The database a command uses: `--db PATH`, else the default (`HistoryStore.defaultPath`).
    static func path(_ option: String?) -> String {
        option ?? HistoryStore.defaultPath()
    }

    static func warn(_ text: String) {
        note("edgemeter: warning: " + text)
    }

    static func start(options: RunOptions, directory dir: RunDirectory, name: String, suiteFile: String?) -> HistoryRecorder? {
        if options.noHistory || options.printConfig { return nil }
        let path = path(options.db)
        let store: HistoryStore
        do {
            store = try HistoryStore(path: path)
        } catch {
            warn("\(error); this run is not recorded in the history (its run directory is written as usual: add it later with `edgemeter runs import DIR`)")
            return nil
        }
        let run = HistoryRun(id: dir.runID, name: name, startedAt: Date(),
                             commandLine: CommandLine.arguments.joined(separator: " "), suiteFile: suiteFile,
                             directory: dir.url.path)
        return HistoryRecorder(store: store, run: run, warn: { warn($0) })
    }

    /// Writes the last batch and marks the run finished. Silent when the history id is the run
    /// directory's name (the usual case); says so when another directory had that id already.
    static func finish(_ recorder: HistoryRecorder?, directory dir: RunDirectory, complete: Bool, stopReason: String?) {
        guard let recorder else { return }
        if let id = recorder.finish(complete: complete, stopReason: stopReason), id != dir.runID {
            note("edgemeter: recorded in the history as run \(id) (\(recorder.store.path))")
        }
    }
}
