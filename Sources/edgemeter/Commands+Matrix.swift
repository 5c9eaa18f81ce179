import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterLab
import EdgeMeterController

/// `edgemeter matrix TOPOLOGY`: the node-to-node delay matrix of a lab topology that is up.
struct MatrixCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Measure the node-to-node delay matrix of a lab topology: an agent in every node's namespace.",
        discussion: """
        For a topology brought up with `edgemeter lab up`, starts one `edgemeter agent` per \
        node inside that node's network namespace (each sees the lab as a separate host on \
        that node would), all at the same time; each pings every other node at the address \
        it reaches it by, COUNT rounds, and posts its delay summaries to POST /delays of a \
        collector this command serves on 127.0.0.1 inside that same namespace (bearer token, \
        as to a controller). The posts become the matrix (row = origin, column = destination, \
        ICMP round trip p50/p90 in ms, loss) with its age. Writes into --out: delays.csv (the \
        run directories' format), matrix.md, networktopology.yaml (as `edgemeter feed \
        --format networktopology`) and each node's agent.yaml and agent.log. With \
        --controller the rows are posted to the controller's POST /delays (as `edgemeter feed`).

        With --check-injected the matrix is compared with the round trips the topology's \
        impairments inject (2 x the sum of both nodes' link delays) under the calibration rule \
        |p50 - expected| <= max(0.5 ms, 5 %); exit status 1 when a pair fails. Needs root.

        Examples:
          edgemeter lab up edge-cloud
          edgemeter matrix edge-cloud --check-injected
          edgemeter matrix edge-cloud -c 50 -i 20ms --out reports/m
          edgemeter matrix edge-cloud --controller http://127.0.0.1:9000 \\
            --feed-from vehicle
        """
    )

    @Argument(help: ArgumentHelp("The name of a topology that is up (see `edgemeter lab status`).", valueName: "TOPOLOGY"))
    var topology: String

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp("Echoes per ordered pair of nodes (the agents' rounds).", valueName: "N"))
    var count = 20

    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("Gap between one agent's rounds of echoes (at least 10ms).", valueName: "DURATION"))
    var interval = "100ms"

    @Option(help: ArgumentHelp("Only these nodes (repeat; default: every node).", valueName: "NODE"))
    var node: [String] = []

    @Option(help: ArgumentHelp("Directory to write into (default: reports/<UTC time>-matrix-TOPOLOGY).", valueName: "DIR"))
    var out: String?

    @Flag(help: "Compare with the delays the topology injects; exit 1 when a pair is outside the tolerance.")
    var checkInjected = false

    @OptionGroup var post: ControllerPostOptions
    var controller: String? { post.controller }

    @Option(help: ArgumentHelp("With --controller: post only the rows measured from this node (the controller keeps one window per destination, whatever the origin).", valueName: "NODE"))
    var feedFrom: String?

    var intervalMilliseconds: Int {
        get throws {
            let d = try durationArgument(interval, flag: "--interval")
            let ms = Int((Double(d.nanoseconds) / 1e6).rounded())
            guard ms >= 10 else { throw ValidationError("--interval must be at least 10ms (an agent's shortest interval), got \(interval)") }
            return ms
        }
    }

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be a positive integer, got \(count)") }
        _ = try intervalMilliseconds
        if feedFrom != nil && controller == nil { throw ValidationError("--feed-from goes with --controller URL") }
    }

    func run() async throws {
        guard geteuid() == 0 else { throw usageError("matrix starts agents inside the lab's namespaces and needs root: run it with sudo") }
        let executor = LabExecutor()
        let state: LabState
        let topo: Topology
        let plans: [MatrixRunner.NodePlan]
        do {
            state = try executor.state(topology)
            guard let text = try? String(contentsOfFile: state.file, encoding: .utf8) else {
                throw LabError(.refused, "cannot read \(state.file), the topology file \(topology) was brought up from")
            }
            topo = try TopologyLoader.load(yaml: text, file: state.file)
            plans = try MatrixRunner.plan(state: state, topology: topo, nodes: node)
        } catch let e as LabError {
            throw usageError(e.description)
        } catch let e as SuiteErrors {
            throw usageError("\(e)")
        }
        let stamp = Format.timestamp(Date()).prefix(19).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "") + "Z"
        let dir = out ?? "reports/\(stamp)-matrix-\(FileName.safe(topology))"
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw usageError("cannot create \(dir): \(error.localizedDescription); choose another --out")
        }
        for p in plans where FileManager.default.fileExists(atPath: "\(dir)/\(FileName.safe(p.node))/agent.yaml") {
            throw usageError("\(dir)/\(FileName.safe(p.node)) already holds a matrix run (agent.yaml exists): choose another --out directory or remove it")
        }
        let options = MatrixRunner.Options(binary: runningBinaryPath(), count: count, intervalMilliseconds: try intervalMilliseconds,
                                           directory: dir)
        print("matrix \(topology): \(plans.count) agents, \(plans.count * (plans.count - 1)) pairs, \(count) echoes each, \(interval) apart")
        for p in plans { print("  \(p.node) (netns \(p.namespace)) → " + p.targets.map { "\($0.node) \($0.address)" }.joined(separator: ", ")) }
        let rows: [DelayRow]
        do { rows = try await MatrixRunner.run(plans, options: options) } catch let e as LabError {
            note("edgemeter: \(e.description)\n  command: \(e.command.joined(separator: " "))\n  \(e.output)")
            throw ExitCode(2)
        }
        let names = plans.map(\.node)
        let matrix = DelayMatrix(rows: rows, nodes: names, metric: "ping_rtt")
        let now = Date()
        let expected = checkInjected ? MatrixRunner.expectedRoundTripMilliseconds(topology: topo, nodes: names) : nil
        let md = matrix.markdown(now: now, expected: expected)
        do {
            try DelayTable.csv(matrix.rows).write(toFile: "\(dir)/delays.csv", atomically: true, encoding: .utf8)
            try md.write(toFile: "\(dir)/matrix.md", atomically: true, encoding: .utf8)
            if !matrix.cells.isEmpty {
                let nt = try DelayFeed.networkTopology(matrix.rows, name: FileName.safe(topology).lowercased().replacingOccurrences(of: "_", with: "-"),
                                                       namespace: "default", configmapName: "netperf-metrics",
                                                       topologyKey: "kubernetes.io/hostname", metric: "ping_rtt")
                try nt.write(toFile: "\(dir)/networktopology.yaml", atomically: true, encoding: .utf8)
            }
        } catch {
            throw usageError("cannot write into \(dir): \(error); choose another --out")
        }
        print("")
        print(md)
        print("wrote \(dir)/delays.csv, \(dir)/matrix.md, \(dir)/networktopology.yaml")
        if !matrix.missing.isEmpty {
            note("edgemeter: no answer recorded for " + matrix.missing.map { "\($0.from)→\($0.to)" }.joined(separator: ", "))
        }
        if controller != nil {
            let fed = feedFrom.map { f in matrix.rows.filter { $0.from == f } } ?? matrix.rows
            if let f = feedFrom, fed.isEmpty { throw usageError("--feed-from \(f): the matrix has no row from that node; its nodes: \(names.joined(separator: ", "))") }
            let r = try await post.post(fed, service: nil)
            print("controller: posted \(r.posted.count) rows, skipped \(r.skipped.count): \(r.answer.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        if let expected, matrix.check(expected: expected).contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
