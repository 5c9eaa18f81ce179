import ArgumentParser
import Foundation
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterLab
import EdgeMeterSystem

struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Build lab topologies on this host (namespaces, bridges, routers with NAT and filters), use them, tear them down.",
        discussion: """
        A topology is a YAML file of networks and nodes (see benchmarks/topologies/). `lab up` builds \
        it from network namespaces (kinds netns and router), docker containers (container) and LXC \
        containers (lxc) whose namespaces it wires the same way, and QEMU guests (vm), \
        starts each node's workload and waits for its ports. Everything it creates carries an \
        edgemeter prefix and is recorded in /run/edgemeter/lab/<name>.json, which `lab down` and \
        `edgemeter cleanup` use. Needs root.

        A docker-compose file (top-level `services:`) is deployed through dockerd's Engine API \
        instead: one container per service on the file's bridge network (see docs/lab.md, \
        "Compose deployments").

        Built-ins: nat, bridged, two-subnet, edge-cloud, docker0, calculator-compose (a compose file).

        Examples:
          edgemeter lab up two-subnet
          edgemeter lab up calculator-compose
          edgemeter lab exec two-subnet front -- ip route
          edgemeter lab route add two-subnet front 192.168.2.0/24 via rt2
          edgemeter lab status
          edgemeter lab down two-subnet
        """,
        subcommands: [LabUpCommand.self, LabDownCommand.self, LabStatusCommand.self, LabExecCommand.self, LabRouteCommand.self, LabLinkCommand.self, LabInventoryCommand.self]
    )
}

/// The path of the running binary (what `edgemeter` in a workload becomes).
func runningBinaryPath() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    return CommandLine.arguments[0]
}

/// A topology file, or the name of a built-in under benchmarks/topologies/ (looked up from the
/// current directory, then from the binary's directory upwards, which finds the repository of a
/// binary in .build/).
func topologyFile(_ arg: String) throws -> String {
    let fm = FileManager.default
    if arg.contains("/") || arg.hasSuffix(".yaml") || arg.hasSuffix(".yml") {
        guard fm.fileExists(atPath: arg) else { throw ValidationError("topology file \(arg) does not exist; give a file or a built-in name (nat, bridged, two-subnet, edge-cloud, docker0, calculator-compose)") }
        return arg
    }
    var dirs = [fm.currentDirectoryPath]
    var d = URL(fileURLWithPath: runningBinaryPath()).deletingLastPathComponent()
    while d.path != "/" {
        dirs.append(d.path)
        d.deleteLastPathComponent()
    }
    for dir in dirs {
        for ext in ["yaml", "yml"] {
            let p = "\(dir)/benchmarks/topologies/\(arg).\(ext)"
            if fm.fileExists(atPath: p) { return p }
        }
    }
    if fm.fileExists(atPath: arg) { return arg }
    let builtIns = dirs.lazy.compactMap { try? fm.contentsOfDirectory(atPath: "\($0)/benchmarks/topologies") }.first?
        .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.map { ComposeFile.projectName(path: $0) }.sorted() ?? []
    throw ValidationError("no topology file or built-in named \(arg)"
        + (builtIns.isEmpty ? "; run from the repository, or give the path of a topology file" : "; built-ins: \(builtIns.joined(separator: ", "))"))
}

func formatMilliseconds(_ d: Duration) -> String {
    String(format: "%.0f ms", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
}

struct LabUpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build a topology and start its workloads.",
        discussion: """
        Records every object in the state file before creating it, then runs the plan: the fabric \
        namespace with one bridge per network, one namespace per node with its veth interfaces \
        (eth0, eth1, ...), addresses, routes, and for routers forwarding, NAT and filter rules \
        (iptables inside the router's namespace; the host's rules are not touched). A network with \
        `host:` gets a link from the host carrying that address. On any failure everything built \
        is removed again and the error names the step, the command and its output (exit 2); \
        Ctrl-C or SIGTERM stops the build and removes it too (exit 130).

        Each workload runs inside its node's namespace (`edgemeter` in it means this binary), its \
        output in /run/edgemeter/lab/<name>.logs/; each declared port must accept a TCP connect \
        from inside the node within 10 s. The time printed runs from the start of the command to \
        the last port answering.

        A compose file (a top-level `services:` key, e.g. the built-in calculator-compose) is \
        deployed through dockerd's Engine API: its network, then one container per service in \
        depends_on order, each waited for until its exposed and published ports accept a TCP \
        connect (15 s per service); ports without a host address are published on 127.0.0.1. The \
        name to use with `lab down`, `lab status` and `reach` is the file's name without .yml.

        With --expect FILE, `reach` runs as the last step (as `edgemeter reach NAME --expect FILE \
        --out DIR` would) and the exit status is 1 when the matrix differs; the topology stays up \
        either way, to be looked at or taken down with `lab down`. The file is read and checked \
        before anything is built.

        Examples:
          edgemeter lab up nat
          edgemeter lab up ./my-topology.yaml
          edgemeter lab up nat --expect benchmarks/topologies/expected/nat.csv
          edgemeter lab up calculator-compose
          edgemeter lab up ./my-compose.yml
        """
    )

    @Argument(help: ArgumentHelp("A topology or compose file, or a built-in name (nat, bridged, two-subnet, edge-cloud, docker0, calculator-compose).", valueName: "FILE|NAME")) var topology: String

    @Option(help: ArgumentHelp("After building, run reach and compare with this matrix (CSV or YAML: from, to, probe, reachable); exit 1 on a difference, the topology stays up.", valueName: "FILE"))
    var expect: String?

    @Option(help: ArgumentHelp("With --expect: directory for reach.csv and reach.md (default reports/reach-NAME-<UTC time>).", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("How links with `impair` are impaired: forwarder (userspace, the default) or netem (tc, where the kernel has it).", valueName: "forwarder|netem"))
    var impair: ImpairMode = .forwarder

    func validate() throws {
        if out != nil && expect == nil { throw ValidationError("--out is where reach writes its matrix and needs --expect FILE; without it, run `edgemeter reach NAME --out DIR` after `lab up`") }
    }

    func run() async throws {
        let start = ContinuousClock.now
        let path = try topologyFile(topology)
        let expectation = try expect.map(ReachCheck.loadExpectation)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw usageError("cannot read \(path): check its permissions") }
        if ComposeFile.isCompose(yaml: text) {
            try await upCompose(text: text, path: path, start: start, expectation: expectation)
            return
        }
        let topo: Topology
        do {
            topo = try TopologyLoader.load(yaml: text, file: path)
        } catch let e as SuiteErrors {
            throw usageError("\(e)")
        }
        var executor = LabExecutor()
        executor.impairMode = impair
        let state = try await interruptibleLabWork(onFirst: "undoing what was built", onSecond: "`edgemeter lab down` removes what was built") { [executor] stop in
            try await executor.up(topo, binary: runningBinaryPath(), stop: stop)
        }
        let elapsed = ContinuousClock.now - start
        print("\(topo.name) up in \(formatMilliseconds(elapsed)) (\(state.objects.count) namespaces, host links and containers); state: \(executor.statePath(topo.name))")
        printState(state)
        printImpairment(state, executor: executor)
        if let expectation, let expect {
            print("")
            try await ReachCheck.run(topo.name, expectation: (expectation, expect), out: out)
        }
    }

    /// `lab up` of a compose file: parsed (every problem located, exit 2), deployed through the
    /// Engine API, then `reach --expect` when asked.
    func upCompose(text: String, path: String, start: ContinuousClock.Instant, expectation: ReachExpectation?) async throws {
        let file: ComposeFile
        do { file = try ComposeFile.load(yaml: text, file: path) } catch let e as SuiteErrors { throw usageError("\(e)") }
        let state = try await interruptibleLabWork(onFirst: "removing what was created",
                                                   onSecond: "`edgemeter lab down \(file.project)` removes what was created") { stop in
            try await ComposeDeployer.fromEnvironment().up(file, stop: stop) { print("  \($0)") }
        }
        let c = state.compose
        print("\(file.project) up in \(formatMilliseconds(ContinuousClock.now - start)) (network \(c?.network ?? "-"), \(c?.containers.count ?? 0) containers); state: \(LabExecutor().statePath(file.project))")
        printState(state)
        for p in c?.published ?? [] { print("  published \(p.hostIP):\(p.hostPort) → \(p.service):\(p.containerPort)/\(p.proto)") }
        if let expectation, let expect {
            print("")
            try await ReachCheck.run(file.project, expectation: (expectation, expect), out: out)
        }
    }
}

/// Lab work that SIGINT/SIGTERM stop at its next step (which undoes what it made): the first
/// signal says `onFirst`, the second `onSecond`. A `LabError` is printed and exits 2, or 130 when
/// the work was interrupted (`lab up`, compose deployments, `calibrate`).
func interruptibleLabWork<T>(onFirst: String, onSecond: String, _ body: (StopFlag) async throws -> T) async throws -> T {
    let stop = StopFlag()
    let traps = SignalTrap.install(stop, onFirst: onFirst, onSecond: onSecond)
    defer { traps.forEach { $0.cancel() } }
    do {
        return try await body(stop)
    } catch let e as LabError {
        note("edgemeter: \(e)")
        throw ExitCode(e.kind == .interrupted ? 130 : 2)
    }
}

func printState(_ s: LabState) {
    for n in s.networks {
        var line = "  network \(n.name) \(n.subnet)"
        if let h = n.hostLink, let a = n.hostAddress { line += ", host \(a) on \(h)" }
        print(line)
    }
    let width = max(6, s.nodes.map(\.name.count).max() ?? 0)
    let kindWidth = max(6, s.nodes.map(\.kind.count).max() ?? 0) + 1
    for n in s.nodes {
        var line = "  " + n.name.padding(toLength: width + 1, withPad: " ", startingAt: 0) + n.kind.padding(toLength: kindWidth, withPad: " ", startingAt: 0)
        line += n.interfaces.map { "\($0.address) (\($0.network), \($0.device))" }.joined(separator: ", ")
        if let pid = n.pid {
            line += "; pid \(pid) " + (LabExecutor.isAlive(pid) ? "alive" : "NOT running")
            if !n.ports.isEmpty { line += ", ports \(n.ports.map(String.init).joined(separator: " "))" }
        }
        print(line)
    }
}

struct LabDownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop a topology's processes and delete everything it created.",
        discussion: """
        Stops every process in the topology's namespaces (SIGTERM, then SIGKILL after 2 s) and \
        deletes the namespaces and host links its state file records, last created first; only \
        names with the edgemeter prefixes are touched. The time printed covers the whole command.

        Example:
          edgemeter lab down two-subnet
        """
    )

    @Argument(help: ArgumentHelp("The topology's name (as `lab status` shows it).", valueName: "NAME")) var name: String

    func run() async throws {
        let start = ContinuousClock.now
        do {
            let removed = try await LabExecutor().down(name)
            print("\(name) down in \(formatMilliseconds(ContinuousClock.now - start)): removed \(removed.joined(separator: ", "))")
        } catch let e as LabError {
            note("edgemeter: \(e)")
            throw ExitCode(e.kind == .refused ? 2 : 1)
        }
    }
}

struct LabStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List the topologies that are up: nodes, addresses, workload processes alive or not."
    )

    func run() async throws {
        let states = LabExecutor().states()
        if states.isEmpty { print("no topology is up"); return }
        for s in states {
            print("\(s.topology): \(s.status) since \(s.started), from \(s.file)")
            printState(s)
            printImpairment(s, executor: LabExecutor())
        }
    }
}

struct LabInventoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Print what edgemeter could leave on this host, one object per line, to diff before and after a run.",
        discussion: """
        Lists network namespaces, links and bridges of the host's namespace, the host's iptables \
        and nft rules (counters removed), docker containers labelled edgemeter or named \
        edgemeter-*, LXC containers edgemeter-*, QEMU processes naming an edgemeter- object, \
        processes running this edgemeter binary (workloads; PIDs left out), and the files under \
        /run/edgemeter/lab. Only reads the host. What could not be looked at (a tool missing, \
        dockerd not answering) is listed as `# not checked:` lines. Needs root for iptables.

        Examples:
          edgemeter lab inventory > before.txt
          edgemeter lab up two-subnet && edgemeter lab down two-subnet
          edgemeter lab inventory | diff before.txt -
          edgemeter lab inventory --json
        """
    )

    @Flag(help: "Print JSON ({\"entries\": [...], \"notes\": [...]}) instead of lines.") var json = false

    func run() async throws {
        let inv = await HostInventory.collect(binary: runningBinaryPath())
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(inv), as: UTF8.self))
        } else {
            print(inv.text, terminator: "")
        }
    }
}

struct LabExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a node's namespace (as `ip netns exec`), exiting with its status.",
        discussion: """
        Example:
          edgemeter lab exec nat guest -- ping -c 3 10.201.0.20
        """
    )

    @Argument(help: ArgumentHelp("The topology's name.", valueName: "NAME")) var name: String
    @Argument(help: ArgumentHelp("The node to run in.", valueName: "NODE")) var node: String
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after `--`.", valueName: "CMD"))
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after `--`, e.g. edgemeter lab exec \(name) \(node) -- ip addr") }
    }

    func run() async throws {
        let s: LabState
        do { s = try LabExecutor().state(name) } catch let e as LabError { throw usageError("\(e)") }
        guard let n = s.node(node) else {
            throw usageError("topology \(name) has no node \(node); its nodes: \(s.nodes.map(\.name).joined(separator: ", "))")
        }
        guard let ip = which("ip") else { throw usageError("iproute2's `ip` not found on PATH: apt-get install -y iproute2") }
        let child: ChildProcess
        do {
            child = try ChildProcess([ip, "netns", "exec", n.namespace] + command, stdinFD: 0, stdoutFD: 1, stderrFD: 2)
        } catch {
            throw usageError("\(error)")
        }
        let status = child.waitBlocking()
        if status != 0 { throw ExitCode(status) }
    }
}

struct LabRouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Add or delete a route on a node of a running topology.",
        discussion: """
        ROUTER is a node's name (the gateway is its address on a network it shares with NODE) or \
        an address on one of NODE's networks. The route lives in the node's namespace and goes \
        with it at `lab down`. `del` also closes the node's TCP connections into PREFIX (`ss -K`), \
        so keep-alive connections opened through the old route do not hang: the next request \
        meets the missing route at once.

        Examples:
          edgemeter lab route add two-subnet front 192.168.2.0/24 via rt2
          edgemeter lab route del two-subnet front 192.168.2.0/24 via rt2
        """
    )

    @Argument(help: ArgumentHelp("add or del.", valueName: "add|del")) var action: String
    @Argument(help: ArgumentHelp("The topology's name.", valueName: "NAME")) var name: String
    @Argument(help: ArgumentHelp("The node whose routing table changes.", valueName: "NODE")) var node: String
    @Argument(help: ArgumentHelp("The destination, an IPv4 prefix such as 192.168.2.0/24.", valueName: "PREFIX")) var prefix: String
    @Argument(help: ArgumentHelp("The word `via`.", valueName: "via")) var via: String
    @Argument(help: ArgumentHelp("A router node's name, or a gateway address.", valueName: "ROUTER")) var router: String

    func validate() throws {
        guard action == "add" || action == "del" else { throw ValidationError("the first argument must be add or del, got \"\(action)\"") }
        guard via == "via" else { throw ValidationError("expected `via` before the router, got \"\(via)\": edgemeter lab route \(action) \(name) \(node) \(prefix) via ROUTER") }
    }

    func run() async throws {
        let (gw, closed) = try await failingWithUsageError(on: LabError.self) {
            try await LabExecutor().route(action == "add", topology: name, node: node, prefix: prefix, via: router)
        }
        print("\(name) \(node): route \(action == "add" ? "added" : "deleted"): \(prefix) via \(gw)"
            + (action == "del" ? "; \(closed) TCP connection(s) into \(prefix) closed" : ""))
    }
}

struct ReachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reach",
        abstract: "Probe a running topology from every node to every other (ICMP and TCP) and print the reachability matrix.",
        discussion: """
        Sources are every node of the topology (the probes run inside its namespace; for a compose \
        deployment, each service's container, through the namespace name `lab up` attached) and the host, \
        shown as `(host)`. Targets: ICMP (3 echoes, 200 ms apart, 1 s deadline) to each address of \
        every other node, a TCP connect (up to 3, 1 s timeout each) to each of its declared `ports` \
        on each address, and a TCP connect to each router port forward or floating address \
        (`listen:port`), and from the host to each port a compose deployment publishes on \
        127.0.0.1. Before anything is sent, `ip route get ADDR` runs in the source: a route \
        that does not lead into one of the lab's interfaces (a node's eth<k>, the host's lab links) \
        is "not probed: the route leaves the lab", and nothing is sent. Sources and addresses are \
        probed in parallel.

        Writes reach.csv (from,to,probe,reachable,why_not,rtt_p50_ms) and reach.md into --out \
        (default reports/reach-NAME-<UTC time>) and prints the Markdown. With --expect FILE (CSV \
        with columns from,to,probe,reachable, e.g. an earlier reach.csv, or YAML entries \
        {from, to, probe, reachable}) every difference is listed and the exit status is 1. \
        Expected matrices for the built-ins: benchmarks/topologies/expected/.

        Exit: 0 ok (and matches --expect), 1 differences from --expect, 2 usage or set-up error \
        (topology not up, bad expectation file).

        Examples:
          edgemeter reach nat --expect benchmarks/topologies/expected/nat.csv
          edgemeter reach two-subnet --out /tmp/reach
        """
    )

    @Argument(help: ArgumentHelp("The running topology's name (as `lab status` shows it).", valueName: "NAME")) var name: String

    @Option(help: ArgumentHelp("A matrix to compare with (CSV or YAML: from, to, probe, reachable).", valueName: "FILE"))
    var expect: String?

    @Option(help: ArgumentHelp("Directory for reach.csv and reach.md (created if missing).", valueName: "DIR"))
    var out: String?

    @Flag(name: .customLong("print-config"), help: .hidden)
    var printConfig = false

    /// The same declaration as a suite's `kind: reach` (`ReachScenario`): the same checks and messages.
    func validate() throws {
        do {
            var raw: [String: [String]] = ["topology": [name]]
            if let expect { raw["expect"] = [expect] }
            _ = try ReachScenario.declaration.validate(commandLine: raw, name: "reach")
        } catch let e as ParameterError {
            throw ValidationError(e.message)
        }
    }

    func run() async throws {
        if printConfig {
            var raw: [String: [String]] = ["topology": [name]]
            if let expect { raw["expect"] = [expect] }
            return printConfigs([ReachConfig(try ReachScenario.declaration.validate(commandLine: raw, name: "reach"))])
        }
        guard geteuid() == 0 else {
            throw usageError("reach enters the lab's network namespaces and runs ping there: run it as root (sudo edgemeter reach \(name))")
        }
        let expectation = try expect.map(ReachCheck.loadExpectation)
        try await ReachCheck.run(name, expectation: expectation.map { ($0, expect ?? "") }, out: out)
    }
}

/// The one path of `reach`: used by `edgemeter reach` and by `lab up --expect` as its last step.
enum ReachCheck {
    /// Reads and parses an expected matrix; a missing, unreadable or malformed file is a usage
    /// error (exit 2) naming the file and line.
    static func loadExpectation(_ path: String) throws -> ReachExpectation {
        do {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw usageError("cannot read the expected matrix \(path): check the path (built-ins are in benchmarks/topologies/expected/)")
            }
            return try ReachExpectation.parse(text, file: path)
        } catch let e as LabError { throw usageError("\(e)") }
    }

    /// Probes the running topology `name`, writes reach.csv and reach.md into `out` (default
    /// reports/reach-NAME-<UTC time>), prints the Markdown, and compares with `expectation` (and the
    /// file it came from): every difference is printed and the exit status is 1.
    static func run(_ name: String, expectation: (ReachExpectation, String)?, out: String?) async throws {
        let executor = LabExecutor()
        let state: LabState
        do { state = try executor.state(name) } catch let e as LabError { throw usageError("\(e)") }
        guard state.status == "up" else {
            throw usageError("topology \(name) is \(state.status), not up: run `edgemeter lab down \(name)` then `edgemeter lab up \(name)`")
        }
        let matrix: ReachMatrix
        if state.compose != nil {
            // A compose deployment: nodes are its containers (namespaces attached at `lab up`).
            do { matrix = try ReachRunner().run(composeState: state) } catch let e as LabError { throw usageError("\(e)") }
        } else {
            let topo: Topology
            do {
                topo = try TopologyLoader.load(yaml: String(contentsOfFile: state.file, encoding: .utf8), file: state.file)
            } catch {
                throw usageError("cannot reread the topology file \(state.file) that \(name) was built from (\(error)); restore it or `lab down` and `lab up` again")
            }
            do { matrix = try ReachRunner().run(state: state, topology: topo) } catch let e as LabError { throw usageError("\(e)") }
        }

        let dir: String
        if let out { dir = out } else {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            f.timeZone = TimeZone(identifier: "UTC")
            dir = "reports/reach-\(name)-\(f.string(from: Date()))"
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try matrix.csv.write(toFile: "\(dir)/reach.csv", atomically: true, encoding: .utf8)
            try matrix.markdown.write(toFile: "\(dir)/reach.md", atomically: true, encoding: .utf8)
        } catch {
            print(matrix.markdown)
            throw usageError("cannot write reach.csv/reach.md into \(dir) (\(error)); give a writable --out DIR")
        }
        print(matrix.markdown)
        print("written: \(dir)/reach.csv, \(dir)/reach.md")
        if case let (expectation, file)? = expectation {
            let diffs = expectation.differences(matrix)
            if diffs.isEmpty {
                print("matches \(file): \(expectation.rows.count) probes as expected")
            } else {
                print("\(diffs.count) difference(s) from \(file):")
                diffs.forEach { print("  \($0)") }
                throw ExitCode(1)
            }
        }
    }
}

extension ImpairMode: ExpressibleByArgument {}

/// The impaired links of a topology: live values and counters from the forwarder's API, or what
/// the state file declared when the forwarder does not answer.
func printImpairment(_ s: LabState, executor: LabExecutor) {
    guard let imp = s.impairment, !imp.links.isEmpty else { return }
    let pid = imp.pid.map { "pid \($0) " + (LabExecutor.isAlive($0) ? "alive" : "NOT running") } ?? "no process"
    print("  impairment (\(imp.mode.rawValue)\(imp.mode == .forwarder ? ", \(pid), API \(imp.socket ?? "-")" : "")), each direction:")
    let live = imp.mode == .forwarder ? (try? executor.links(s.topology)) : nil
    for link in imp.links {
        if let r = live?.first(where: { $0.id == link.id }) {
            func d(_ x: ForwarderDirectionStats) -> String {
                "\(x.forwarded) fwd, \(x.droppedLoss) lost, \(x.droppedQueueFull + x.droppedOversize + x.sendErrors) other drops, late p50 \(x.lateP50Microseconds.map { "\($0) us" } ?? "-")"
            }
            print("    \(link.id): \(r.impairmentSummary); to network \(d(r.toNetwork)); to node \(d(r.toNode))")
        } else {
            print("    \(link.id): \(LabExecutor.summary(link)) (declared; the forwarder did not answer)")
        }
    }
}

struct LabLinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration.group("link", "Change a link's impairment while the topology runs.", [LabLinkSetCommand.self])
}

struct LabLinkSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set the delay, jitter, loss and rate of an impaired link (each direction or one).",
        discussion: """
        The link's impairment becomes exactly what the options say (an option left out means none \
        of it). Frames already queued keep their release time and nothing overtakes them, so no \
        frame and no connection is dropped by the change. Only links declared with `impair` in the \
        topology go through the forwarder; the change goes through its HTTP API on \
        /run/edgemeter/lab/NAME.sock (PUT /links/NODE/NETWORK, see docs/lab.md).

        Examples:
          edgemeter lab link set edge-cloud node_1 --delay 60ms
          edgemeter lab link set edge-cloud node_2:edge --delay 30ms --jitter 5ms
          edgemeter lab link set edge-cloud cloud --delay 40ms --loss 1% --rate 10mbit
          edgemeter lab link set edge-cloud node_1 --delay 10ms --direction egress
        """
    )

    @Argument(help: ArgumentHelp("The topology's name.", valueName: "NAME")) var name: String
    @Argument(help: ArgumentHelp("The node, or NODE:NETWORK when it has impaired links on several networks.", valueName: "NODE[:NETWORK]")) var link: String
    @Option(help: ArgumentHelp("Delay added in each direction, such as 60ms.", valueName: "DURATION")) var delay: String?
    @Option(help: ArgumentHelp("Jitter around the delay, such as 5ms.", valueName: "DURATION")) var jitter: String?
    @Option(help: ArgumentHelp("Jitter distribution: uniform (on delay ± jitter) or normal (σ = jitter, cut at 3σ).", valueName: "uniform|normal")) var distribution: String?
    @Option(help: ArgumentHelp("Loss: 1% (Bernoulli) or \"gemodel P R 1-H 1-K\" (Gilbert-Elliott, percent).", valueName: "LOSS")) var loss: String?
    @Option(help: ArgumentHelp("Rate limit such as 10mbit, 500kbit, 1gbit.", valueName: "RATE")) var rate: String?
    @Option(help: ArgumentHelp("Restart the link's loss and jitter draws from this seed (reproducible runs).", valueName: "N")) var seed: UInt64?
    @Option(help: ArgumentHelp("Which direction to change: both, egress (node → network) or ingress (network → node).", valueName: "both|egress|ingress")) var direction: String = "both"

    func validate() throws {
        do { _ = try impairment.spec(); _ = try impairment.linkDirection() } catch let e as LabError { throw ValidationError(e.message) }
    }

    var impairment: LinkImpairment {
        LinkImpairment(delay: delay, jitter: jitter, distribution: distribution, loss: loss, rate: rate, seed: seed, direction: direction == "both" ? nil : direction)
    }

    func run() async throws {
        let parts = link.split(separator: ":", maxSplits: 1).map(String.init)
        do {
            let r = try LabExecutor().setLink(name, node: parts[0], network: parts.count > 1 ? parts[1] : nil, impairment: impairment)
            print("\(name) \(r.id): \(r.impairmentSummary) (frames already queued: \(r.toNetwork.queued + r.toNode.queued), they keep their release times)")
        } catch let e as LabError {
            throw usageError("\(e)")
        }
    }
}

/// `edgemeter impair-forwarder`: the forwarder process `lab up` starts in a topology's fabric
/// namespace (not for direct use; hidden from help).
struct ImpairForwarderCommand: ParsableCommand {
    static let configuration = CommandConfiguration.internal("impair-forwarder", "The link-impairment forwarder lab up starts (internal).")

    @Option(help: "The forwarder.json lab up wrote.") var config: String
    @Option(help: "The unix socket to serve the HTTP API on.") var socket: String
    @Option(help: "Spin this many microseconds before each release instead of sleeping.") var spinMicroseconds: Int = 250
    @Option(help: "SCHED_FIFO priority of the forwarding thread; 0 = normal scheduling.") var realtimePriority: Int32 = 10

    func run() throws {
        guard let data = FileManager.default.contents(atPath: config) else { throw usageError("impair-forwarder: cannot read \(config)") }
        let cfg = try JSONDecoder().decode(ForwarderConfig.self, from: data)
        let fwd: Forwarder
        do {
            fwd = try Forwarder(links: cfg.links, seed: cfg.seed, spinNanoseconds: Int64(spinMicroseconds) * 1000, realtimePriority: realtimePriority)
            try fwd.startAPI(socketPath: socket)
        } catch let e as LabError {
            fputs("impair-forwarder: \(e)\n", stderr)
            throw ExitCode(2)
        }
        print("impair-forwarder: \(cfg.links.count) link(s) of \(cfg.topology), API on \(socket)")
        fflush(nil)
        fwd.run()
    }
}
