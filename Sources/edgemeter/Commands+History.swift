import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterHistory

/// `--db PATH` for the history commands.
struct HistoryDBOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The history database (default: $EDGEMETER_DB, else $XDG_DATA_HOME/edgemeter/history.sqlite, else ~/.local/share/edgemeter/history.sqlite).", valueName: "PATH")) var db: String?

    var path: String { HistoryHook.path(db) }

    /// Opens the history and runs `body` on it. A missing file is a usage error unless `create`
    /// (nothing recorded yet); a database error is printed and exits 1; a usage error `body` throws
    /// passes through.
    func withStore<T>(create: Bool = false, _ body: (HistoryStore) throws -> T) throws -> T {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw usageError("no history at \(path): run a measurement first (e.g. `edgemeter ping -c 5 127.0.0.1`), or give --db PATH")
        }
        do { return try body(try HistoryStore(path: path)) } catch let e as ExitCode { throw e } catch {
            note("edgemeter: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `edgemeter runs ...`: the run history (HistoryStore.swift).
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "The run history: every measuring run, recorded in SQLite as it goes.",
        discussion: """
        Every measuring command records its run (id, start, host, command, scenarios, every sample) \
        in the history database, in batches as it goes, so a killed run keeps what it measured. \
        The database is $EDGEMETER_DB, else $XDG_DATA_HOME/edgemeter/history.sqlite, else \
        ~/.local/share/edgemeter/history.sqlite; --db PATH chooses another, --no-history skips it. \
        A history that cannot be opened or written is a warning: the run and its directory go on.

        Examples:
          edgemeter runs list
          edgemeter runs show latest
          edgemeter runs import reports/20261202T010000Z-ping
          edgemeter runs rm 20261202T010000Z-ping
        """,
        subcommands: [RunsListCommand.self, RunsShowCommand.self, RunsRemoveCommand.self, RunsImportCommand.self]
    )
}

struct RunsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List recorded runs, newest first.")

    @OptionGroup var history: HistoryDBOption

    @Option(name: .long, help: "Show at most this many runs.") var limit = 50

    func run() throws {
        guard limit > 0 else { throw usageError("--limit must be a positive number of runs, got \(limit)") }
        let (runs, baselines, scenarios) = try history.withStore { store in
            let runs = try store.runs(limit: limit)
            let scenarios = try runs.map { try store.scenarios(runID: $0.id) }
            return (runs, try store.baselines(), scenarios)
        }
        if runs.isEmpty {
            note("no runs recorded in \(history.path)")
            return
        }
        var rows: [[String]] = [["RUN", "STARTED (UTC)", "SAMPLES", "STATE", "BASELINE", "SCENARIOS"]]
        for (run, sc) in zip(runs, scenarios) {
            let names = baselines.filter { $0.runID == run.id }.map(\.name).joined(separator: ",")
            rows.append([run.id, Self.time(run.startedAt), "\(run.sampleCount)", Self.state(run), names.isEmpty ? "-" : names,
                         sc.joined(separator: ",")])
        }
        print(Self.table(rows), terminator: "")
        note("\(runs.count) run(s) in \(history.path)")
    }

    static func time(_ d: Date) -> String {
        String(Format.timestamp(d).prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    /// complete; stopped (the run ended early, e.g. SIGINT); unfinished (no end recorded: killed, or still running).
    static func state(_ r: HistoryRun) -> String {
        if r.complete { return "complete" }
        if r.endedAt != nil { return "stopped" }
        return "unfinished"
    }

    /// Left-aligned columns separated by two spaces.
    static func table(_ rows: [[String]]) -> String {
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.offset == row.count - 1 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}

struct RunsShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one recorded run and its summary table.")

    @OptionGroup var history: HistoryDBOption

    @Argument(help: "A run id (or a unique prefix of one), a baseline name, or latest.") var runRef: String

    func run() throws {
        let (info, samples) = try history.withStore { store -> (HistoryRun, [Sample]) in
            guard let id = try store.resolve(runRef), let info = try store.run(id: id) else {
                throw usageError("no run \"\(runRef)\" in \(store.path): see `edgemeter runs list`")
            }
            return (info, try store.samples(runID: id))
        }
        print("run:       \(info.id)")
        print("name:      \(info.name)")
        print("started:   \(Format.timestamp(info.startedAt))")
        print("ended:     \(info.endedAt.map(Format.timestamp) ?? "never recorded (killed, or still running)")")
        print("state:     \(RunsListCommand.state(info))\(info.stopReason.map { " (\($0))" } ?? "")")
        print("host:      \(info.host)")
        print("command:   \(info.commandLine)")
        if let s = info.suiteFile { print("suite:     \(s)") }
        print("directory: \(info.directory)\(FileManager.default.fileExists(atPath: info.directory) ? "" : " (no longer exists)")")
        print("samples:   \(info.sampleCount)")
        print("")
        print(SummaryMarkdown.render(title: "Summary of \(info.id) (from the history)", summaries: Summarizer.summaries(of: samples),
                                     complete: info.complete), terminator: "")
    }
}

struct RunsRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove runs (and their samples) from the history; run directories are not touched.")

    @OptionGroup var history: HistoryDBOption

    @Argument(help: "Run ids (exact), one or more.") var runs: [String]

    func run() throws {
        let missing = try history.withStore { store in
            try runs.filter { id in
                let r = try store.deleteRun(id: id)
                if r.deleted { print("removed \(id)" + (r.baselines.isEmpty ? "" : " and baseline(s) \(r.baselines.joined(separator: ", "))")) }
                return !r.deleted
            }
        }
        if !missing.isEmpty {
            throw usageError("no run \(missing.joined(separator: ", ")) in \(history.path): give exact ids from `edgemeter runs list`")
        }
    }
}

struct RunsImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Add run directories to the history (runs recorded with --no-history or while the history was unavailable).")

    @OptionGroup var history: HistoryDBOption

    @Argument(help: "Run directories (holding samples.csv and run.json), one or more.") var directories: [String]

    func run() throws {
        try history.withStore(create: true) { store in
            for d in directories {
                guard RunDirectoryReader.isRunDirectory(d) else {
                    throw usageError("\(d) is not a run directory (no samples.csv)")
                }
                let r = try RunDirectoryReader.importRun(directory: URL(fileURLWithPath: d), into: store)
                print("imported \(d) as run \(r.id) (\(r.samples) samples)")
            }
        }
    }
}

/// `edgemeter baseline ...`: names for runs, for `compare NAME RUN`.
struct BaselineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "Name a recorded run as a baseline, for `edgemeter compare NAME RUN`.",
        discussion: """
        A baseline is a name in the history that points at one run; setting it again moves it.

        Examples:
          edgemeter baseline set nightly latest
          edgemeter compare nightly latest
        """,
        subcommands: [BaselineSetCommand.self, BaselineListCommand.self, BaselineRemoveCommand.self]
    )
}

struct BaselineSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Point baseline NAME at a run.")

    @OptionGroup var history: HistoryDBOption

    @Argument(help: "The baseline's name (letters, digits, - _ .).") var name: String

    @Argument(help: "A run id (or unique prefix), another baseline's name, or latest.") var runRef: String

    func run() throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw usageError("baseline name \"\(name)\": use letters, digits, -, _ and . only")
        }
        let id = try history.withStore { store -> String in
            guard let id = try store.resolve(runRef) else { throw usageError("no run \"\(runRef)\" in \(store.path): see `edgemeter runs list`") }
            if try store.run(id: name) != nil && name != id {
                throw usageError("\"\(name)\" is a run id: choose another baseline name, so `compare \(name)` is not ambiguous")
            }
            try store.setBaseline(name: name, runID: id)
            return id
        }
        print("baseline \(name) → run \(id)")
    }
}

struct BaselineListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List baselines.")

    @OptionGroup var history: HistoryDBOption

    func run() throws {
        let list = try history.withStore { try $0.baselines() }
        if list.isEmpty { note("no baselines in \(history.path): `edgemeter baseline set NAME RUN`"); return }
        var rows = [["BASELINE", "RUN", "SET (UTC)"]]
        for b in list { rows.append([b.name, b.runID, RunsListCommand.time(b.setAt)]) }
        print(RunsListCommand.table(rows), terminator: "")
    }
}

struct BaselineRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a baseline name (the run stays).")

    @OptionGroup var history: HistoryDBOption

    @Argument(help: "The baseline's name.") var name: String

    func run() throws {
        guard try history.withStore({ try $0.removeBaseline(name: name) }) else {
            throw usageError("no baseline \"\(name)\" in \(history.path): see `edgemeter baseline list`")
        }
        print("removed baseline \(name)")
    }
}
