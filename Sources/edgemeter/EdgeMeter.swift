import ArgumentParser
import Foundation
import EdgeMeterCore

@main
struct EdgeMeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgemeter",
        abstract: "Measure cloud and edge virtualization: round trips, startup, request latency, wire timings.",
        discussion: """
        Every measuring command writes a run directory (default reports/<UTC timestamp>-<name>/) \
        with samples.csv, summary.csv, summary.md and run.json. See README.md.
        """,
        version: EdgeMeterVersion.current,
        subcommands: [PingCommand.self, TCPingCommand.self, RunSuiteCommand.self, ReportCommand.self,
                      CaptureCommand.self, AnalyzeCommand.self, PcapGenerateCommand.self,
                      ServeCommand.self, HTTPCommand.self, LoadCommand.self, CalcCommand.self,
                      StartupCommand.self, FootprintCommand.self, ImageCommand.self, LabCommand.self, ReachCommand.self, CleanupCommand.self,
                      ImpairForwarderCommand.self, CalibrateCommand.self, CalibrateProbeCommand.self, ProxyCommand.self,
                      PolicyCommand.self, VehicleCommand.self,
                      ControllerCommand.self, FeedCommand.self, MigrateDemoCommand.self,
                      CompareCommand.self, RunsCommand.self, BaselineCommand.self,
                      AgentCommand.self, MatrixCommand.self, K8sCommand.self,
                      GenerateSamplesCommand.self]
    )

    /// Usage errors exit with status 2 (as ping and most network tools do), not argument-parser's 64;
    /// except `compare`, whose 2 means "regression": its usage errors exit 64 (Commands+Compare.swift).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                fputs(fullMessage(for: error) + "\n", stderr)
                Foundation.exit(CompareCommand.isInvoked ? 64 : 2)
            }
            exit(withError: error)
        }
    }
}

/// `edgemeter serve ...`: the reference workloads edgemeter ships (Commands+HTTP.swift).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.group("serve", "Run a reference workload (the calculator microservices, the edge app and its cloud database).",
                                                           [ServeCalculatorCommand.self, ServeEdgeAppCommand.self, ServeCloudDBCommand.self])
}

/// `edgemeter image ...`: local container images (Commands+Startup.swift).
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.group("image", "Local container images (no registry is reachable).", [ImageBuildCommand.self])
}

extension CommandConfiguration {
    /// A command that only groups subcommands (`edgemeter serve`, `lab link`, `policy`).
    static func group(_ name: String, _ abstract: String, _ subcommands: [ParsableCommand.Type]) -> CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract, subcommands: subcommands)
    }

    /// A command hidden from help: one other commands run (not for direct use), or a generator of
    /// benchmark input (`pcap-generate`, `generate-samples`).
    static func `internal`(_ name: String, _ abstract: String, discussion: String = "") -> CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract, discussion: discussion, shouldDisplay: false)
    }
}
