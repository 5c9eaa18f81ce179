import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem
import EdgeMeterStartup
import NIOHTTP1

// Container and lxc nodes (the containerlab way): the container starts with no network (or on
// dockerd's default bridge), its network namespace is attached under the node's namespace name
// (`ip netns attach NS PID`, a bind mount of /proc/PID/ns/net in /run/netns), and from then on
// every plan step, `reach` and `lab exec` use that name as for a netns node. The container's
// command waits for the go file (`NodeLaunch.goFile`), written through /proc/PID/root once
// every step ran, then execs the workload.

extension LabExecutor {
    /// The Docker Engine API client (`DOCKER_HOST` or /var/run/docker.sock).
    func dockerClient() throws -> DockerAPIClient {
        do { return try DockerAPIClient() } catch {
            throw LabError(.refused, "container nodes need dockerd: \(error)")
        }
    }

    /// Checks before anything is built, for container and lxc nodes: dockerd answers and has each
    /// image, the LXC tools and busybox template are installed, and no container of the same name
    /// exists (a leftover would otherwise be taken for the lab's, or removed by its undo).
    public func preflightNodes(_ topology: Topology) async throws {
        let plan = TopologyPlan(topology)
        let dockerNodes = topology.nodes.filter { $0.kind == .container }
        if !dockerNodes.isEmpty {
            let client = try dockerClient()
            do { try await client.ping() } catch {
                throw LabError(.refused, "container nodes (\(dockerNodes.map(\.name).joined(separator: ", "))) need dockerd, which does not answer on \(client.endpoint) (\(error)): start it with scripts/setup-engines.sh")
            }
            for image in Set(dockerNodes.map { $0.image ?? TopologyPlan.NodeLaunch.defaultImage }).sorted() {
                let r = try await dockerRequest(client, .GET, "/images/\(queryComponent(image))/json", what: "looking up image \(image)")
                if r.status == 404 {
                    throw LabError(.refused, "image \(image) is not in dockerd (\(client.endpoint)); "
                        + (image == TopologyPlan.NodeLaunch.defaultImage ? "build it with `edgemeter image build` (scripts/setup-engines.sh does)" : "build or import it (no registry is reachable here), or drop `image:` to use \(TopologyPlan.NodeLaunch.defaultImage)"))
                }
            }
            for n in dockerNodes {
                let name = plan.namespace(of: n.name)
                let r = try await dockerRequest(client, .GET, "/containers/\(name)/json", what: "looking up container \(name)")
                if r.status == 200 {
                    throw LabError(.refused, "container \(name) already exists (a leftover of an earlier run?): `edgemeter cleanup`, or `docker rm -f \(name)` if it is not edgemeter's")
                }
            }
        }
        let lxcNodes = topology.nodes.filter { $0.kind == .lxc }
        if !lxcNodes.isEmpty {
            for tool in ["lxc-create", "lxc-start", "lxc-info", "lxc-stop", "lxc-destroy"] where which(tool) == nil {
                throw LabError(.refused, "lxc nodes need \(tool), which is not on PATH: apt-get install -y lxc (scripts/setup.sh installs it)")
            }
            guard FileManager.default.fileExists(atPath: "/usr/share/lxc/templates/lxc-busybox"), which("busybox") != nil else {
                throw LabError(.refused, "lxc nodes use LXC's busybox template: apt-get install -y lxc busybox-static")
            }
            for n in lxcNodes {
                let name = plan.namespace(of: n.name)
                if FileManager.default.fileExists(atPath: "\(LXCBackend.lxcPath)/\(name)") {
                    throw LabError(.refused, "lxc container \(name) already exists (a leftover of an earlier run?): `edgemeter cleanup`, or `lxc-destroy -f -n \(name)` if it is not edgemeter's")
                }
            }
        }
    }

    func dockerRequest(_ client: DockerAPIClient, _ method: HTTPMethod, _ path: String, json: Any? = nil, what: String) async throws -> DockerAPIClient.Response {
        do {
            if let json { return try await client.request(method, path, json: json, timeout: .seconds(60)) }
            return try await client.request(method, path, timeout: .seconds(60))
        } catch {
            throw LabError(.stepFailed, "\(what): dockerd (\(client.endpoint)) did not answer: \(error); is it running? scripts/setup-engines.sh starts it")
        }
    }

    /// Creates and starts the node's container; for lxc also writes its init and configuration.
    /// `binary` is bind-mounted into lxc containers as /usr/local/bin/edgemeter.
    func startNode(_ l: TopologyPlan.NodeLaunch, binary: String?) async throws {
        switch l.engine {
        case .docker:
            let client = try dockerClient()
            let spec = ContainerSpec(name: l.name, image: l.image ?? TopologyPlan.NodeLaunch.defaultImage, command: l.dockerCommand,
                                     network: l.networkMode, labels: l.labels)
            let id: String
            do {
                id = try await client.createContainer(spec)
                try await client.startContainer(id)
            } catch {
                throw LabError(.stepFailed, "node \(l.node): container \(l.name) did not start: \(error)")
            }
        case .lxc:
            try await startLXC(l, binary: binary)
        }
    }

    /// The container's init process on the host (`State.Pid`, `lxc-info -p -H`); throws when it is not running.
    func nodePid(engine: TopologyPlan.NodeLaunch.Engine, container: String) async throws -> Int32 {
        switch engine {
        case .docker:
            let obj = try await inspect(container)
            let st = obj["State"] as? [String: Any] ?? [:]
            guard let pid = st["Pid"] as? Int, pid > 0 else {
                throw LabError(.stepFailed, "container \(container) is not running (status \(st["Status"] as? String ?? "?"), exit code \(st["ExitCode"] as? Int ?? -1)); its log: \(await dockerLog(container))")
            }
            return Int32(pid)
        case .lxc:
            let r = try await tool(["lxc-info", "-n", container, "-p", "-H"])
            guard r.ok, let pid = Int32(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
                throw LabError(.stepFailed, "lxc container \(container) is not running (`lxc-info -p -H` said: \(r.combined.isEmpty ? "nothing" : r.combined)); see `lxc-start -n \(container) -F -l DEBUG`")
            }
            return pid
        }
    }

    func inspect(_ container: String) async throws -> [String: Any] {
        let client = try dockerClient()
        let r = try await dockerRequest(client, .GET, "/containers/\(container)/json", what: "inspecting container \(container)")
        guard r.status == 200, let obj = r.json as? [String: Any] else {
            throw LabError(.stepFailed, "inspecting container \(container): HTTP \(r.status): \(r.errorMessage)")
        }
        return obj
    }

    /// `ip netns attach NETNS PID`.
    func attachNamespace(_ netns: String, engine: TopologyPlan.NodeLaunch.Engine, container: String) async throws {
        let pid = try await nodePid(engine: engine, container: container)
        let step = TopologyPlan.Step(summary: "namespace \(netns) is container \(container)'s", action: .ip(["netns", "attach", netns, String(pid)], netns: nil))
        try await run(step)
    }

    /// Removes the node's container: docker `DELETE ?force=1` (404 = already gone), or `lxc-stop -k`
    /// and `lxc-destroy` (a missing container is already gone).
    @discardableResult
    func removeNode(engine: TopologyPlan.NodeLaunch.Engine, container: String) async throws -> Bool {
        switch engine {
        case .docker:
            let client = try dockerClient()
            let r = try await dockerRequest(client, .DELETE, "/containers/\(container)?force=1&v=1", what: "removing container \(container)")
            guard r.status == 204 || r.status == 404 else {
                throw LabError(.teardown, "removing container \(container): HTTP \(r.status): \(r.errorMessage); try `docker rm -f \(container)`")
            }
            return r.status == 204
        case .lxc:
            guard FileManager.default.fileExists(atPath: "\(LXCBackend.lxcPath)/\(container)") else { return false }
            _ = try? await tool(["lxc-stop", "-n", container, "-k"])
            let r = try await tool(["lxc-destroy", "-n", container])
            guard r.ok else { throw LabError(.teardown, "lxc-destroy \(container) failed: \(r.combined); try `lxc-destroy -f -n \(container)`") }
            return true
        }
    }

    /// Lets the node's command go on to its workload (writes the go file into the container's root,
    /// through /proc/PID/root); returns the container's init pid, which becomes the workload.
    func releaseNode(_ node: LabState.NodeState) async throws -> Int32 {
        guard let c = node.container, let e = node.engine.flatMap(TopologyPlan.NodeLaunch.Engine.init(rawValue:)) else {
            throw LabError(.stepFailed, "node \(node.name) has no container recorded")
        }
        let pid = try await nodePid(engine: e, container: c)
        let path = "/proc/\(pid)/root\(TopologyPlan.NodeLaunch.goFile)"
        guard FileManager.default.createFile(atPath: path, contents: Data()) else {
            throw LabError(.stepFailed, "node \(node.name): cannot write \(path) (\(String(cString: strerror(errno)))); is the container's root file system writable?")
        }
        return pid
    }

    /// Reads the docker-assigned addresses of a node on dockerd's default bridge into the state:
    /// the node's interface (address, prefix) and the network (subnet, host address = gateway, bridge).
    func recordDockerAddresses(_ l: TopologyPlan.NodeLaunch, into state: inout LabState) async throws {
        let obj = try await inspect(l.name)
        let nets = (obj["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: Any] ?? [:]
        guard let b = nets["bridge"] as? [String: Any], let ip = b["IPAddress"] as? String, let a = IPv4Address(ip),
              let len = b["IPPrefixLen"] as? Int, (8...30).contains(len) else {
            throw LabError(.stepFailed, "node \(l.node): dockerd gave container \(l.name) no IPv4 address on its default bridge (NetworkSettings.Networks: \(nets.keys.sorted())); check `docker network inspect bridge`")
        }
        let subnet = IPv4Prefix(network: IPv4Address(a.value & IPv4Prefix(network: a, length: len).mask), length: len)
        var bridge = "docker0"
        if let client = try? dockerClient(), let r = try? await client.request(.GET, "/networks/bridge"),
           let n = r.json as? [String: Any], let name = (n["Options"] as? [String: Any])?["com.docker.network.bridge.name"] as? String {
            bridge = name
        }
        guard let i = state.nodes.firstIndex(where: { $0.name == l.node }) else { return }
        for k in state.nodes[i].interfaces.indices where state.nodes[i].interfaces[k].isDocker {
            state.nodes[i].interfaces[k].address = a.description
            state.nodes[i].interfaces[k].prefixLength = len
            state.nodes[i].interfaces[k].bridgePort = bridge
            for j in state.networks.indices where state.networks[j].name == state.nodes[i].interfaces[k].network {
                state.networks[j].subnet = subnet.description
                state.networks[j].bridge = bridge
                state.networks[j].hostLink = bridge
                if let gw = b["Gateway"] as? String, !gw.isEmpty { state.networks[j].hostAddress = gw }
            }
        }
    }

    /// The node's output so far: the container's log (docker, stdout and stderr demultiplexed) or
    /// /edgemeter.log in the lxc container's root file system.
    func nodeLog(_ engine: TopologyPlan.NodeLaunch.Engine, _ container: String) async -> String {
        switch engine {
        case .docker: return await dockerLog(container)
        case .lxc: return (try? String(contentsOfFile: "\(LXCBackend.lxcPath)/\(container)/rootfs/edgemeter.log", encoding: .utf8)) ?? ""
        }
    }

    func dockerLog(_ container: String) async -> String {
        guard let client = try? dockerClient(),
              let r = try? await client.request(.GET, "/containers/\(container)/logs?stdout=1&stderr=1&tail=50", timeout: .seconds(10)),
              r.status == 200 else { return "(no log)" }
        return Self.demultiplex(r.body)
    }

    /// Docker's log stream without a TTY: frames of [stream, 0, 0, 0, size (4 bytes, big endian)] + payload.
    static func demultiplex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i + 8 <= bytes.count, bytes[i] <= 2, bytes[i + 1] == 0 {
            let size = Int(bytes[i + 4]) << 24 | Int(bytes[i + 5]) << 16 | Int(bytes[i + 6]) << 8 | Int(bytes[i + 7])
            let end = min(bytes.count, i + 8 + size)
            out += bytes[(i + 8)..<end]
            i = end
        }
        if i == 0 { out = bytes }
        return String(decoding: out, as: UTF8.self)
    }

    /// For a container or lxc node (whose container is named as its namespace), writes the
    /// container's output into `<topo>.logs/<node>.log`, where `logTail` reads; nothing otherwise.
    func saveNodeLog(_ node: Node, namespace: String, topology: String) async {
        guard node.kind.isContainer else { return }
        let text = await nodeLog(node.kind == .container ? .docker : .lxc, namespace)
        try? text.write(toFile: "\(logDirectory(topology))/\(node.name).log", atomically: true, encoding: .utf8)
    }

    func tool(_ argv: [String], timeout: Duration = .seconds(60)) async throws -> CommandResult {
        let program = which(argv[0]) ?? argv[0]
        do { return try await Command.run([program] + argv.dropFirst(), timeout: timeout) } catch {
            throw LabError(.stepFailed, "`\(argv.joined(separator: " "))` could not run: \(error)", command: argv)
        }
    }
}

/// An image reference as a path component: dockerd takes `name:tag` and `repo/name` as they are;
/// anything else (spaces, `?`, `#`) is percent-escaped.
func queryComponent(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/@"))) ?? s
}
