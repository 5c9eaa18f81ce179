import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterController

/// `edgemeter feed`: a run's delays.csv to the controller or to a NetworkTopology resource.
struct FeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Send a run's delays.csv to the controller, or write a NetworkTopology.",
        discussion: """
        delays.csv (written into every run directory) has one row per origin, \
        destination and metric: p50/p90/p99 in ms, loss, samples, window. With \
        --controller the rows whose destination is a node of the controller's services \
        (judged on the same metric) are posted to POST /delays; the others are listed as \
        skipped. With --format networktopology a scheduler-plugins NetworkTopology \
        (networkCost = p90 in ms, rounded) is printed, or written to --out.

        Examples:
          edgemeter feed reports/latest --controller http://127.0.0.1:9000
          edgemeter feed reports/latest --format networktopology --out nt.yaml
        """
    )

    @Argument(help: ArgumentHelp("The run directory holding delays.csv.", valueName: "RUN_DIR")) var runDir: String

    @OptionGroup var post: ControllerPostOptions
    var controller: String? { post.controller }

    @Option(help: ArgumentHelp("Feed only this service's nodes.", valueName: "NAME")) var service: String?

    @Flag(help: "Send the run's window times (else the samples count as measured now).") var keepTimestamps = false

    @Option(help: ArgumentHelp("Output: controller (POST /delays) or networktopology (YAML).", valueName: "FORMAT")) var format: String?

    @OptionGroup(title: "networktopology output") var topology: NetworkTopologyOptions

    var resolvedFormat: String { format ?? (controller != nil ? "controller" : "") }

    func validate() throws {
        switch resolvedFormat {
        case "controller":
            guard controller != nil else { throw ValidationError("--format controller needs --controller URL, such as http://127.0.0.1:9000") }
        case "networktopology":
            guard controller == nil else { throw ValidationError("--controller and --format networktopology exclude each other: choose one") }
        case "":
            throw ValidationError("say where the delays go: --controller URL, or --format networktopology")
        default:
            throw ValidationError("--format must be controller or networktopology, got \"\(resolvedFormat)\"")
        }
    }

    func run() async throws {
        let path = URL(fileURLWithPath: runDir).appendingPathComponent("delays.csv").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw usageError("\(path) not found or unreadable: give a run directory written by this version (each run writes delays.csv)")
        }
        let rows: [DelayRow]
        do { rows = try DelayTable.parse(text, file: path) } catch { throw usageError("\(error)") }
        if resolvedFormat == "networktopology" { return try topology.write(rows) }
        let r = try await post.post(rows, service: service, keepTimestamps: keepTimestamps)
        for row in r.posted {
            print("posted \(row.from) → \(row.to) \(row.metric): p90 \(Format.fixed(row.p90Milliseconds, 3)) ms, \(row.received)/\(row.samples) answered")
        }
        for s in r.skipped { print("skipped \(s.row.from) → \(s.row.to) \(s.row.metric): \(s.reason)") }
        print("controller: \(r.answer.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}

/// `edgemeter feed --format networktopology`: the NetworkTopology resource's fields and where it goes.
struct NetworkTopologyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write the YAML here instead of stdout.", valueName: "FILE")) var out: String?
    @Option(help: ArgumentHelp("metadata.name.", valueName: "NAME")) var name: String = "edgemeter"
    @Option(help: ArgumentHelp("metadata.namespace.", valueName: "NAME")) var namespace: String = "default"
    @Option(help: ArgumentHelp("spec.configmapName.", valueName: "NAME")) var configmap: String = "netperf-metrics"
    @Option(help: ArgumentHelp("The topologyKey origins are values of.", valueName: "KEY")) var topologyKey: String = "kubernetes.io/hostname"
    @Option(help: ArgumentHelp("ping_rtt, tcp_connect or http_total (default: the first a pair has).", valueName: "METRIC")) var metric: String?

    func validate() throws {
        if let m = metric, !DelayFeed.networkPreference.contains(m) {
            throw ValidationError("--metric must be one of \(DelayFeed.networkPreference.joined(separator: ", ")), got \"\(m)\"")
        }
    }

    /// Prints the resource made from `rows`, or writes it to --out.
    func write(_ rows: [DelayRow]) throws {
        let yaml: String
        do {
            yaml = try DelayFeed.networkTopology(rows, name: name, namespace: namespace, configmapName: configmap,
                                                 topologyKey: topologyKey, metric: metric)
        } catch { throw usageError("\(error)") }
        guard let out else { return print(yaml, terminator: "") }
        do { try yaml.write(toFile: out, atomically: true, encoding: .utf8) } catch {
            throw usageError("cannot write \(out): \(error.localizedDescription); choose another --out")
        }
        print("wrote \(out)")
    }
}

/// `--controller URL` and `--token-file FILE`, and the post of delays.csv rows to the controller's
/// `POST /delays`: one helper for `edgemeter feed` and `edgemeter matrix --controller`.
struct ControllerPostOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The controller's base URL: post the rows to its POST /delays.", valueName: "URL")) var controller: String?

    @Option(help: ArgumentHelp("File holding the controller's bearer token (else EDGEMETER_CONTROLLER_TOKEN).", valueName: "FILE")) var tokenFile: String?

    func validate() throws {
        if let c = controller {
            do { _ = try HTTPTarget(url: c) } catch { throw ValidationError("--controller: \(error)") }
        }
        if tokenFile != nil && controller == nil { throw ValidationError("--token-file goes with --controller URL") }
    }

    /// The bearer token: --token-file's content, else EDGEMETER_CONTROLLER_TOKEN, else none.
    func token() throws -> String? {
        if let f = tokenFile {
            guard let t = try? String(contentsOfFile: f, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else {
                throw usageError("--token-file \(f) cannot be read or is empty; give the file holding the controller's token")
            }
            return t
        }
        return ProcessInfo.processInfo.environment["EDGEMETER_CONTROLLER_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Posts `rows` to --controller (`DelayFeed.post`); a refusal is a usage error naming the cause.
    func post(_ rows: [DelayRow], service: String?, keepTimestamps: Bool = false) async throws -> DelayFeed.PostResult {
        guard let controller else { throw usageError("give --controller URL, such as http://127.0.0.1:9000") }
        do {
            return try await DelayFeed.post(rows, controller: try HTTPTarget(url: controller), token: try token(), service: service,
                                            keepTimestamps: keepTimestamps)
        } catch let e as ControllerError {
            throw usageError(e.description)
        }
    }
}
