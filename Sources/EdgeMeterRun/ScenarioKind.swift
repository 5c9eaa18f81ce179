import Foundation
import EdgeMeterCore

/// What a scenario runner gets: where samples go, when to stop, where to put artifacts.
public struct ScenarioContext: Sendable {
    public let runID: String
    public let sink: SampleSink
    public let stop: StopFlag
    /// The run directory, for artifacts such as pcap files.
    public let directory: URL
    /// The directory of the suite file, to resolve relative paths in parameters.
    public let suiteDirectory: URL?
    /// A line of progress for the terminal (stderr).
    public let progress: @Sendable (String) -> Void
    /// Appends a Markdown section to summary.md (comparison tables and the like).
    public let addSection: @Sendable (String) -> Void

    public init(runID: String, sink: SampleSink, stop: StopFlag, directory: URL, suiteDirectory: URL?,
                progress: @escaping @Sendable (String) -> Void, addSection: @escaping @Sendable (String) -> Void) {
        (self.runID, self.sink, self.stop, self.directory) = (runID, sink, stop, directory)
        (self.suiteDirectory, self.progress, self.addSection) = (suiteDirectory, progress, addSection)
    }

    /// The lab topology the scenario runs in (`topology:` in the suite), nil outside a topology.
    /// The suite runner sets it for the scenario's task (a task-local, so contexts that wrap this
    /// one, such as a capture's, see it too).
    public var lab: ScenarioLab? { ScenarioLab.current }
}

/// Thrown by a scenario runner when it cannot run here (engine missing, capability absent): the
/// suite reports the scenario as "not run" with this reason and goes on with the next one.
public struct ScenarioNotRun: Error, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// One scenario kind: its declaration (parameters, checks; the suite schema and the CLI flags are
/// built from it) and the code that runs it.
public struct ScenarioKind: Sendable {
    public let declaration: KindDeclaration
    /// The kind's configuration (`PingConfig(scenario)`, ...): what a scenario resolves to, whichever
    /// path (suite or flags) it came from.
    public let configuration: @Sendable (ValidatedScenario) throws -> any Sendable
    public let run: @Sendable (ValidatedScenario, ScenarioContext) async throws -> Void
    /// The kind opens its own capture (`capture`): the suite runner never wraps it in a second one
    /// (`edgemeter run --capture` or the scenario's `capture` key).
    public let capturesItself: Bool
    /// The kind can run inside a lab node (`from: NODE`): its sockets are all made on the calling
    /// thread, which `ScenarioLab.inSource` moves into the node's network namespace (ping, tcping),
    /// or on threads created inside it (`ScenarioLab.withHTTPSource`: http, calc).
    public let runsInNode: Bool
    /// The scenario's key figure for the verdict table, read from what it wrote in the run
    /// directory (`reach`: its matrix file, which has no samples); nil: the median of its samples.
    public let keyFigure: (@Sendable (_ directory: URL, _ scenario: String) -> String?)?

    public init(declaration: KindDeclaration, configuration: @escaping @Sendable (ValidatedScenario) throws -> any Sendable,
                capturesItself: Bool = false, runsInNode: Bool = false,
                keyFigure: (@Sendable (_ directory: URL, _ scenario: String) -> String?)? = nil,
                run: @escaping @Sendable (ValidatedScenario, ScenarioContext) async throws -> Void) {
        (self.declaration, self.configuration, self.capturesItself, self.run) = (declaration, configuration, capturesItself, run)
        (self.runsInNode, self.keyFigure) = (runsInNode, keyFigure)
    }

    public var schema: ScenarioSchema { declaration.schema }
}

/// The table of scenario kinds (blackbox_exporter's prober table). A new kind adds one file
/// `Scenario+<Kind>.swift` in this module (its `KindDeclaration` with what it `measures`, its
/// configuration, run and, if it has no samples, `keyFigure`) and one entry here; `edgemeter KIND`
/// can then be built from the same declaration (`KindCommand`), and `edgemeter run`'s verdict table
/// reads the kind from here (no list of kind names elsewhere).
public enum ScenarioKinds {
    public static var all: [ScenarioKind] {
        [PingScenario.kind, TCPingScenario.kind, HTTPScenario.kind, LoadScenario.kind, CalcScenario.kind, StartupScenario.kind, CaptureScenario.kind,
         ReachScenario.kind, FootprintScenario.kind, MigrationScenario.kind]
    }
    public static var schemas: [ScenarioSchema] { all.map(\.schema) }
    public static var declarations: [KindDeclaration] { all.map(\.declaration) }
    /// The kind named `name`, nil when no kind has that name.
    public static func named(_ name: String) -> ScenarioKind? { all.first { $0.declaration.kind == name } }
}
