import ArgumentParser
import Foundation
import Logging
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterController
import EdgeMeterPolicy
import EdgeMeterLab
import EdgeMeterStartup

/// `edgemeter controller`: the migration controller (docs/migration.md, "The controller").
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run the migration controller: the lab's API, the probe loop, the policy.",
        discussion: """
        Keeps services (nodes with probe targets, active node, delay requirement, \
        hysteresis) in a SQLite file (--state), so they survive a restart. The lab's \
        endpoints: POST /service_init, POST /update_delay, GET /migrate; its own: \
        POST /delays, GET /status, GET /decisions, GET /metrics (Prometheus text). \
        Calls that change state need Authorization: Bearer TOKEN, the token read from \
        --token-file or EDGEMETER_CONTROLLER_TOKEN (never logged). The probe loop \
        measures every node's target each --probe-interval and decides every \
        --decide-every; a migrate decision runs the executor: dry-run (records only), \
        cmd (your programs, one JSON argument list per step; {service}, {from} and {to} \
        replaced), docker (containers behind a switchable proxy) or kubernetes (the \
        API through `kubectl proxy`). --probe-netns or --from-node measures from inside \
        a network namespace (such as the lab's vehicle) instead of this host.

        Examples:
          export EDGEMETER_CONTROLLER_TOKEN=s3cret
          edgemeter controller --port 9000 --state /tmp/ctl.sqlite
          curl -H 'Authorization: Bearer s3cret' 127.0.0.1:9000/migrate
          edgemeter controller --executor cmd --cmd-start '["start.sh","{to}"]' \\
            --cmd-switch '["switch.sh","{to}"]' --cmd-stop '["stop.sh","{from}"]'
          edgemeter controller --executor kubernetes --k8s-image edge-app:1 \\
            --k8s-api http://127.0.0.1:8001 --k8s-service edge-app --k8s-port 8080
          edgemeter controller --executor docker --docker-image edge-app:1 \\
            --docker-command '["edge-app","--port","8080"]' --docker-port 8080
          edgemeter controller --from-node edge-cloud:vehicle
        """
    )

    @Option(help: "Address to listen on (127.0.0.1: this host only).") var host: String = "127.0.0.1"

    @Option(help: "Port (0 picks a free one).") var port: Int = 9000

    @Option(help: ArgumentHelp("The SQLite state file (created when missing).", valueName: "PATH")) var state: String = "edgemeter-controller.sqlite"

    @Option(help: ArgumentHelp("File holding the bearer token (else EDGEMETER_CONTROLLER_TOKEN).", valueName: "FILE")) var tokenFile: String?

    @Option(help: ArgumentHelp("How often each node's target is measured (0: no probe loop).", valueName: "DURATION")) var probeInterval: String = "200ms"

    @Option(help: ArgumentHelp("Longest wait for one probe before it counts as lost.", valueName: "DURATION")) var probeTimeout: String = "1s"

    @Option(help: ArgumentHelp("How often the probe loop decides (a multiple of --probe-interval).", valueName: "DURATION")) var decideEvery: String = "1s"

    @Option(help: ArgumentHelp("Executor for migrate decisions: dry-run, cmd, docker or kubernetes.", valueName: "NAME")) var executor: String = "dry-run"

    @Option(help: ArgumentHelp("No node meets it: move-to-best or alert-only (when service_init does not say).", valueName: "ACTION")) var whenNoneMeets: String = "move-to-best"

    @Option(help: ArgumentHelp("Run the probe loop inside this network namespace (ip netns).", valueName: "NAME")) var probeNetns: String?

    @Option(help: ArgumentHelp("Run the probe loop inside a lab node's namespace (lab up first).", valueName: "TOPO:NODE")) var fromNode: String?

    @OptionGroup(title: "cmd executor (JSON argument lists)") var cmd: CommandExecutorOptions

    @OptionGroup(title: "docker executor") var docker: DockerExecutorOptions

    @OptionGroup(title: "kubernetes executor") var k8s: KubernetesExecutorOptions

    static let executorNames = ["dry-run", "cmd", "docker", "kubernetes"]

    /// The namespace the probe loop runs in, from --probe-netns or --from-node; nil: this host's.
    func probeNamespace() throws -> String? {
        if probeNetns != nil && fromNode != nil {
            throw ValidationError("give --probe-netns or --from-node, not both")
        }
        if let ns = probeNetns {
            guard !ns.isEmpty, !ns.contains("/") else {
                throw ValidationError("--probe-netns \"\(ns)\" is not a namespace name: give a name `ip netns list` shows")
            }
            do { try NamespaceProbe.check(ns) } catch {
                throw ValidationError("--probe-netns \(ns): \(error) (`ip netns list` shows the namespaces)")
            }
            return ns
        }
        guard let spec = fromNode else { return nil }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ValidationError("--from-node must be TOPOLOGY:NODE, such as edge-cloud:vehicle, got \"\(spec)\"")
        }
        let state: LabState
        do { state = try LabExecutor().state(parts[0]) } catch {
            throw ValidationError("--from-node \(spec): \(error)")
        }
        guard let node = state.nodes.first(where: { $0.name == parts[1] }) else {
            throw ValidationError("--from-node \(spec): topology \(parts[0]) has no node \(parts[1]); its nodes: "
                                  + state.nodes.map(\.name).joined(separator: ", "))
        }
        do { try NamespaceProbe.check(node.namespace) } catch {
            throw ValidationError("--from-node \(spec): \(error)")
        }
        return node.namespace
    }

    /// The executor the flags describe (checked, nothing started).
    func executorPlan() throws -> ExecutorPlan {
        switch executor {
        case "dry-run": return .dryRun
        case "cmd": return .cmd(try cmd.executor())
        case "docker": return .docker(try docker.configuration())
        case "kubernetes": return .kubernetes(try k8s.executor())
        default:
            throw ValidationError("--executor \(executor) is not known; give one of: \(Self.executorNames.joined(separator: ", "))")
        }
    }

    func token() throws -> String {
        guard let t = try controllerToken(file: tokenFile) else {
            throw ValidationError("no token: give --token-file FILE or set EDGEMETER_CONTROLLER_TOKEN; calls that change state need it")
        }
        return t
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535, got \(port)") }
        _ = try token()
        let p = try durationArgument(probeInterval, flag: "--probe-interval")
        let t = try durationArgument(probeTimeout, flag: "--probe-timeout")
        guard t > .zero else { throw ValidationError("--probe-timeout must be longer than 0 s, such as 1s") }
        let d = try durationArgument(decideEvery, flag: "--decide-every")
        if p > .zero { guard d >= p else { throw ValidationError("--decide-every must be at least --probe-interval (\(probeInterval))") } }
        let plan = try executorPlan()
        let given = cmd.given.map { ("cmd", $0) } + docker.given.map { ("docker", $0) } + k8s.given.map { ("kubernetes", $0) }
        if let hit = given.first(where: { $0.0 != plan.name }) {
            let (owner, flag) = hit
            throw ValidationError("\(flag) is a \(owner) executor flag, but --executor is \(executor): add --executor \(owner) or drop \(flag)")
        }
        _ = try probeNamespace()
        _ = try noneMeetsArgument(whenNoneMeets)
    }

    func run() async throws {
        let clock = SystemClock()
        let log: @Sendable (String) -> Void = { line in
            print("\(Format.timestamp(Date())) \(line)")
            fflush(nil)
        }
        let store: ControllerStore
        let controller: MigrationController
        do {
            store = try ControllerStore(path: state)
        } catch { throw usageError("\(error)") }
        let chosen: any MigrationExecutor
        var proxy: SwitchableProxy?
        var placing: PlacingDockerExecutor?
        switch try executorPlan() {
        case .dryRun: chosen = DryRunExecutor(clock: clock)
        case .cmd(let e): chosen = e
        case .kubernetes(let e): chosen = e
        case .docker(let configuration):
            let p = SwitchableProxy()
            let listen = try docker.listen()
            do { _ = try await p.start(host: listen.host, port: listen.port) } catch {
                throw usageError("--docker-proxy-listen \(docker.dockerProxyListen): cannot listen (\(error)); pick a free port")
            }
            proxy = p
            let e = PlacingDockerExecutor(DockerExecutor(client: DockerAPIClient(endpoint: .unix(path: DockerEndpoint.defaultSocket)),
                                                         proxy: p, configuration: configuration, clock: clock), log: log)
            placing = e
            chosen = e
        }
        do {
            controller = try MigrationController(store: store, executor: chosen, clock: clock,
                                                 defaultWhenNoneMeets: try noneMeetsArgument(whenNoneMeets), log: log)
        } catch { throw usageError("\(error)") }
        var logger = Logger(label: "edgemeter.controller")
        logger.logLevel = .error
        let server: ControllerServer.Running
        do {
            server = try await ControllerServer.start(controller: controller, token: try token(), host: host, port: port, logger: logger)
        } catch { throw usageError("\(error)") }
        let services = await controller.serviceNames
        log("controller listening on \(server.url) (state \(state): \(services.isEmpty ? "no services yet" : services.joined(separator: ", ")); "
            + "executor \(executor))")
        if let placing {
            log("docker executor: proxy on \(docker.dockerProxyListen); placing services on their active nodes")
            for r in await controller.allServices {
                guard let node = r.activeNode else { continue }
                await placing.place(service: r.name, on: node)
            }
        }
        let namespace = try probeNamespace()
        if let namespace { log("probe loop runs inside network namespace \(namespace)") }
        let interval = try durationArgument(probeInterval, flag: "--probe-interval")
        var loop: ProbeLoop?
        if interval > .zero {
            let every = try durationArgument(decideEvery, flag: "--decide-every")
            let rounds = max(1, Int((every.seconds / interval.seconds).rounded()))
            loop = ProbeLoop(controller: controller, interval: interval, timeout: try durationArgument(probeTimeout, flag: "--probe-timeout"),
                             decideEvery: rounds, namespace: namespace, log: log)
            loop?.start()
        }
        let (signals, trap) = SignalTrap.stream()
        for await name in signals {
            log("\(name) received, stopping the controller")
            break
        }
        trap.cancel()
        await loop?.stop()
        await server.stop()
        await proxy?.stop()
    }
}

/// The executor chosen on the command line, checked but not started.
enum ExecutorPlan {
    case dryRun
    case cmd(CommandExecutor)
    case docker(DockerExecutor.Configuration)
    case kubernetes(KubernetesExecutor)

    var name: String {
        switch self {
        case .dryRun: "dry-run"
        case .cmd: "cmd"
        case .docker: "docker"
        case .kubernetes: "kubernetes"
        }
    }
}

/// One JSON argument list from a flag: `["prog", "arg", ...]`, non-empty strings.
func argvArgument(_ text: String, flag: String) throws -> [String] {
    guard let v = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let a = v as? [Any], let argv = a as? [String] else {
        throw ValidationError("\(flag) must be a JSON list of strings, such as '[\"docker\",\"start\",\"{service}-{to}\"]', got \(text)")
    }
    guard let first = argv.first, !first.isEmpty else {
        throw ValidationError("\(flag) is empty: give a program and its arguments, such as '[\"docker\",\"start\",\"{service}-{to}\"]'")
    }
    return argv
}

struct CommandExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Starts the service on node {to} (required).", valueName: "JSON")) var cmdStart: String?
    @Option(help: ArgumentHelp("Exits 0 once {to} is ready (run again until --cmd-timeout).", valueName: "JSON")) var cmdReady: String?
    @Option(help: ArgumentHelp("Moves the client path to {to} (required).", valueName: "JSON")) var cmdSwitch: String?
    @Option(help: ArgumentHelp("Stops the old instance on {from} (required).", valueName: "JSON")) var cmdStop: String?
    @Option(help: ArgumentHelp("Undoes a failed start/ready/switch (repeat for several, run in order).", valueName: "JSON")) var cmdRollback: [String] = []
    @Option(help: ArgumentHelp("Longest run of one step, and of waiting for ready.", valueName: "DURATION")) var cmdTimeout: String?

    var given: [String] {
        [("--cmd-start", cmdStart), ("--cmd-ready", cmdReady), ("--cmd-switch", cmdSwitch), ("--cmd-stop", cmdStop), ("--cmd-timeout", cmdTimeout)]
            .compactMap { $0.1 == nil ? nil : $0.0 } + (cmdRollback.isEmpty ? [] : ["--cmd-rollback"])
    }

    func executor() throws -> CommandExecutor {
        func required(_ v: String?, _ flag: String, _ what: String) throws -> [String] {
            guard let v else { throw ValidationError("--executor cmd needs \(flag) '[...]': the program that \(what)") }
            return try argvArgument(v, flag: flag)
        }
        let start = try required(cmdStart, "--cmd-start", "starts the service on {to}")
        let sw = try required(cmdSwitch, "--cmd-switch", "moves the client path to {to}")
        let stop = try required(cmdStop, "--cmd-stop", "stops the old instance on {from}")
        let ready = try cmdReady.map { try argvArgument($0, flag: "--cmd-ready") }
        let rollback = try cmdRollback.map { try argvArgument($0, flag: "--cmd-rollback") }
        var e: CommandExecutor
        do { e = try CommandExecutor(start: start, ready: ready, switchPath: sw, stop: stop, rollback: rollback) } catch {
            throw ValidationError("\(error)")
        }
        if let t = cmdTimeout {
            let d = try durationArgument(t, flag: "--cmd-timeout")
            guard d > .zero else { throw ValidationError("--cmd-timeout must be longer than 0 s, such as 60s") }
            e.stepTimeout = d
            e.readyTimeout = d
        }
        return e
    }
}

struct DockerExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Image the service runs from (required).", valueName: "IMAGE")) var dockerImage: String?
    @Option(help: ArgumentHelp("The service's command ({service}, {to} replaced) (required).", valueName: "JSON")) var dockerCommand: String?
    @Option(help: ArgumentHelp("Port the service listens on inside its container (required).", valueName: "PORT")) var dockerPort: Int?
    @Option(help: ArgumentHelp("Container network.", valueName: "NAME")) var dockerNetwork: String = "bridge"
    @Option(help: ArgumentHelp("Path that answers 200 once the service is ready.", valueName: "PATH")) var dockerReadyPath: String = "/healthz"
    @Option(help: ArgumentHelp("Where clients connect: the proxy in front of the nodes.", valueName: "HOST:PORT")) var dockerProxyListen: String = "127.0.0.1:8080"
    @Option(help: ArgumentHelp("Containers are named edgemeter-PREFIX-SERVICE-NODE.", valueName: "PREFIX")) var dockerNamePrefix: String = "ctl"

    var given: [String] {
        var g = [("--docker-image", dockerImage), ("--docker-command", dockerCommand)].compactMap { $0.1 == nil ? nil : $0.0 }
        if dockerPort != nil { g.append("--docker-port") }
        if dockerNetwork != "bridge" { g.append("--docker-network") }
        if dockerReadyPath != "/healthz" { g.append("--docker-ready-path") }
        if dockerProxyListen != "127.0.0.1:8080" { g.append("--docker-proxy-listen") }
        if dockerNamePrefix != "ctl" { g.append("--docker-name-prefix") }
        return g
    }

    func listen() throws -> (host: String, port: Int) {
        guard let hp = ProbeTarget.hostPort(dockerProxyListen), (0...65535).contains(hp.port) else {
            throw ValidationError("--docker-proxy-listen must be HOST:PORT, such as 127.0.0.1:8080, got \(dockerProxyListen)")
        }
        return hp
    }

    func configuration() throws -> DockerExecutor.Configuration {
        guard let image = dockerImage, !image.isEmpty else {
            throw ValidationError("--executor docker needs --docker-image IMAGE: the image the service runs from (`docker images` lists them)")
        }
        guard let c = dockerCommand else {
            throw ValidationError("--executor docker needs --docker-command '[...]': the service's command in its container")
        }
        let command = try argvArgument(c, flag: "--docker-command")
        guard let port = dockerPort else {
            throw ValidationError("--executor docker needs --docker-port PORT: the port the service listens on inside its container")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--docker-port must be 1-65535, got \(port)") }
        guard dockerReadyPath.hasPrefix("/") else { throw ValidationError("--docker-ready-path must start with /, such as /healthz") }
        guard dockerNamePrefix.range(of: "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", options: .regularExpression) != nil else {
            throw ValidationError("--docker-name-prefix must be letters, digits, _ . or -, got \"\(dockerNamePrefix)\"")
        }
        _ = try listen()
        var cfg = DockerExecutor.Configuration(image: image, command: command, servicePort: port, namePrefix: dockerNamePrefix)
        cfg.network = dockerNetwork
        cfg.readyPath = dockerReadyPath
        return cfg
    }
}

struct KubernetesExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("API server, plain http (kubectl proxy).", valueName: "URL")) var k8sApi: String = "http://127.0.0.1:8001"
    @Option(help: ArgumentHelp("File holding a bearer token for the API server.", valueName: "FILE")) var k8sTokenFile: String?
    @Option(help: ArgumentHelp("Namespace of the Deployments and the Service.", valueName: "NS")) var k8sNamespace: String = "default"
    @Option(help: ArgumentHelp("The Service whose selector is switched (required).", valueName: "NAME")) var k8sService: String?
    @Option(help: ArgumentHelp("Image of the Deployment made on each node (required).", valueName: "IMAGE")) var k8sImage: String?
    @Option(help: ArgumentHelp("Container port of that image (required).", valueName: "PORT")) var k8sPort: Int?
    @Option(help: ArgumentHelp("The container's command ({service}, {to} replaced).", valueName: "JSON")) var k8sCommand: String?

    var given: [String] {
        var g = [("--k8s-token-file", k8sTokenFile), ("--k8s-service", k8sService), ("--k8s-image", k8sImage), ("--k8s-command", k8sCommand)]
            .compactMap { $0.1 == nil ? nil : $0.0 }
        if k8sPort != nil { g.append("--k8s-port") }
        if k8sApi != "http://127.0.0.1:8001" { g.append("--k8s-api") }
        if k8sNamespace != "default" { g.append("--k8s-namespace") }
        return g
    }

    func executor() throws -> KubernetesExecutor {
        guard let service = k8sService, !service.isEmpty else {
            throw ValidationError("--executor kubernetes needs --k8s-service NAME: the Service whose selector moves the clients")
        }
        guard let image = k8sImage, !image.isEmpty else {
            throw ValidationError("--executor kubernetes needs --k8s-image IMAGE: the image of the Deployment made on each node")
        }
        guard let port = k8sPort else {
            throw ValidationError("--executor kubernetes needs --k8s-port PORT: the container port of that image")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--k8s-port must be 1-65535, got \(port)") }
        var token: String?
        if let f = k8sTokenFile {
            do { token = try KubernetesEndpoint.token(fromFile: f) } catch { throw ValidationError("--k8s-token-file: \(error)") }
        }
        let endpoint: KubernetesEndpoint
        do { endpoint = try KubernetesEndpoint(server: k8sApi, namespace: k8sNamespace, token: token) } catch {
            throw ValidationError("--k8s-api/--k8s-namespace: \(error)")
        }
        let e = KubernetesExecutor(endpoint: endpoint, serviceObject: service, image: image, containerPort: port)
        if let c = k8sCommand { e.command = try argvArgument(c, flag: "--k8s-command") }
        return e
    }
}

/// The docker executor as the controller uses it: a service the executor has not placed yet (the
/// controller started, or the service was registered, after the containers) is first deployed on
/// the node it is migrated from, then migrated; the report covers the migration only.
final class PlacingDockerExecutor: MigrationExecutor, @unchecked Sendable {
    let name = "docker"
    let inner: DockerExecutor
    let log: @Sendable (String) -> Void

    init(_ inner: DockerExecutor, log: @escaping @Sendable (String) -> Void) { (self.inner, self.log) = (inner, log) }

    /// Deploys `service` on `node` unless it is placed; a failure is logged (the next migrate tries again).
    func place(service: String, on node: String) async {
        guard inner.placement(of: service) == nil else { return }
        do {
            _ = try await inner.deploy(service: service, on: node)
            log("docker executor: \(service) deployed on \(node), proxy → \(inner.placement(of: service).map { "\($0.backend)" } ?? "?")")
        } catch {
            log("docker executor: deploying \(service) on \(node) failed: \(error)")
        }
    }

    func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        await place(service: service, on: from)
        return try await inner.migrate(service: service, from: from, to: to)
    }
}

/// `edgemeter k8s migration`: the kubernetes executor's move as files for `kubectl apply` instead of
/// API calls (docs/migration.md, "kubernetes"). Nothing is sent anywhere.
struct KubernetesManifestsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migration",
        abstract: "Write a move's Deployment and Service manifests for kubectl apply.",
        discussion: """
        The kubernetes executor's make-before-break as files: the Deployment pinned to \
        --to (nodeSelector kubernetes.io/hostname), the Service selecting it, and \
        README.txt with the order (apply, rollout status, apply the Service, delete the \
        old Deployment). The same objects the executor sends to the API server.

        Examples:
          edgemeter k8s migration --from node_2 --to node_1 --out manifests \\
            --k8s-service edge-app --k8s-image edge-app:1 --k8s-port 8000
        """
    )

    @Option(help: ArgumentHelp("The node the service runs on now.", valueName: "NODE")) var from: String

    @Option(help: ArgumentHelp("The node to move it to.", valueName: "NODE")) var to: String

    @Option(help: ArgumentHelp("Service (app label) to move.", valueName: "NAME")) var service: String = "edge-app"

    @Option(help: ArgumentHelp("Directory the manifests are written to (created).", valueName: "DIR")) var out: String

    @OptionGroup(title: "kubernetes objects") var k8s: KubernetesExecutorOptions

    func validate() throws {
        guard from != to else { throw ValidationError("--from and --to are both \(to): give the node to move to") }
        guard !from.isEmpty, !to.isEmpty, !service.isEmpty else { throw ValidationError("--from, --to and --service must not be empty") }
        _ = try k8s.executor()
    }

    func run() throws {
        let e = try k8s.executor()
        let files: [String]
        do { files = try e.writeManifests(service: service, from: from, to: to, directory: out) } catch {
            throw usageError("\(error)")
        }
        for f in files { print(f) }
    }
}
