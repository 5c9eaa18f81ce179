import ArgumentParser
import EdgeMeterCore

@main
struct EdgeMeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgemeter",
        abstract: "Measure cloud and edge virtualization: round trips, startup, request latency, wire timings.",
        discussion: """
        Every measuring command writes a run directory (default reports/<UTC timestamp>-<name>/) with
        samples.csv, summary.csv, summary.md and run.json. See README.md.
        """,
        version: EdgeMeterVersion.current,
        subcommands: [PingCommand.self, TCPingCommand.self, RunSuiteCommand.self, ReportCommand.self]
    )
}
