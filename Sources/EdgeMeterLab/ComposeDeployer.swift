import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem
import EdgeMeterCore
import EdgeMeterStartup
import NIOHTTP1

/// The Engine API objects of a compose deployment, as recorded in its lab state file. Each name is
/// recorded BEFORE the request that creates it, so `lab down` and `edgemeter cleanup` find
/// everything even when `lab up` was killed halfway; names that do not exist are skipped.
public struct ComposeState: Codable, Sendable, Equatable {
    /// A port published on the host: `hostIP:hostPort` → the service's `containerPort`.
    public struct Published: Codable, Sendable, Equatable {
        public var service: String
        public var hostIP: String
        public var hostPort: Int
        public var containerPort: Int
        public var proto: String
    }

    /// The engine network (`edgemeter-<project>-<network>`), once its creation was requested.
    public var network: String?
    /// Its Linux bridge (`com.docker.network.bridge.name`, an `em-` name).
    public var bridge: String
    /// Containers (`edgemeter-<project>-<service>`) in creation order.
    public var containers: [String]
    /// Names under /var/run/netns bound to the containers' network namespaces (`ip netns attach`),
    /// so `reach` and `lab exec` can enter them; deleted at `lab down` (only the name: the
    /// namespace goes with its container).
    public var namespaces: [String]
    public var published: [Published]
}

/// Deploys a `ComposeFile` through dockerd's Engine API and tears it down.
///
/// `up` creates the network (driver bridge, the file's IPAM subnet and bridge name, labels
/// `edgemeter=lab`, `edgemeter.topology=<project>`), then for each service in depends_on order
/// creates its container `edgemeter-<project>-<service>` (fixed IPv4 address through
/// `EndpointsConfig.IPAMConfig`, published ports bound to 127.0.0.1 unless the file names a host
/// address, environment, command, labels), starts it, binds its network namespace to a name
/// (`ip netns attach`) and waits until each of its exposed ports accepts a TCP connect from the host
/// (to the container's address, through the network's bridge) and each published TCP port on
/// 127.0.0.1 does. Any failure removes everything again and throws a `LabError` naming the service,
/// the request and dockerd's answer.
public struct ComposeDeployer: Sendable {
    public var docker: DockerAPIClient
    public var executor: LabExecutor
    /// How long each port of a service may take to accept a TCP connect after the container started.
    public var portTimeout: Duration

    public init(docker: DockerAPIClient, executor: LabExecutor = LabExecutor(), portTimeout: Duration = .seconds(15)) {
        (self.docker, self.executor, self.portTimeout) = (docker, executor, portTimeout)
    }

    /// The client for `DOCKER_HOST` (or /var/run/docker.sock); a bad `DOCKER_HOST` is `.refused`.
    public static func fromEnvironment(executor: LabExecutor = LabExecutor()) throws -> ComposeDeployer {
        do { return ComposeDeployer(docker: try DockerAPIClient(), executor: executor) } catch {
            throw LabError(.refused, "\(error)")
        }
    }

    public static func containerName(project: String, service: String) -> String { "\(Names.prefix)\(project)-\(service)" }
    public static func networkName(project: String, network: String) -> String { "\(Names.prefix)\(project)-\(network)" }

    /// The file's bridge name, or `em-` and 8 hex digits of FNV-1a over `project/network`.
    public static func bridgeName(project: String, network: ComposeFile.Network) -> String {
        if let b = network.bridgeName { return b }
        var h: UInt32 = 2166136261
        for b in "\(project)/\(network.name)".utf8 { h = (h ^ UInt32(b)) &* 16777619 }
        return Names.shortPrefix + String(format: "%08x", h)
    }

    /// The address the host has on the network's bridge: the file's gateway, else the subnet's first address.
    static func gateway(_ n: ComposeFile.Network) -> IPv4Address? {
        n.gateway ?? n.subnet.map { IPv4Address($0.network.value + 1) }
    }

    /// The state file's content before anything is created.
    public static func initialState(_ file: ComposeFile, started: Date = Date()) -> LabState {
        let nets = file.networks.filter { n in file.services.contains { $0.network == n.name } }
        let networks = nets.map { n in
            LabState.NetworkState(name: n.name, subnet: n.subnet?.description ?? "", bridge: bridgeName(project: file.project, network: n),
                                  hostLink: bridgeName(project: file.project, network: n), hostAddress: gateway(n)?.description)
        }
        let nodes = file.services.map { s in
            LabState.NodeState(name: s.name, kind: "container", namespace: containerName(project: file.project, service: s.name),
                               interfaces: [], workload: s.command ?? [], ports: s.listeningPorts, pid: nil)
        }
        let f = ISO8601DateFormatter()
        return LabState(topology: file.project, file: file.path, tag: "", fabric: "", status: "building", started: f.string(from: started),
                        objects: [], networks: networks, nodes: nodes,
                        compose: ComposeState(network: nil, bridge: networks.first?.bridge ?? "", containers: [], namespaces: [], published: []))
    }

    // MARK: checks before anything is created

    /// Throws `.refused` for what cannot be deployed: not root, no `ip`, dockerd not answering,
    /// the image missing, a deployment of the same project up, or names already taken.
    public func preflight(_ file: ComposeFile) async throws {
        guard getuid() == 0 else {
            throw LabError(.refused, "`lab up` of a compose file talks to dockerd and enters the containers' network namespaces, which needs root: sudo edgemeter lab up \(file.path)")
        }
        guard which(executor.ip.program) != nil else { throw LabError(.refused, "iproute2's `ip` not found on PATH: apt-get install -y iproute2") }
        if FileManager.default.fileExists(atPath: executor.statePath(file.project)) {
            throw LabError(.refused, "\(file.project) is already up (\(executor.statePath(file.project))): `edgemeter lab down \(file.project)` first")
        }
        do { try await docker.ping() } catch {
            throw LabError(.refused, "dockerd does not answer at \(docker.endpoint) (\(error)): start it (scripts/setup.sh does) or set DOCKER_HOST")
        }
        for image in Set(file.services.map(\.image)).sorted() {
            let r = try await call(.GET, "/images/\(queryComponent(image))/json", what: "looking up image \(image)")
            if r.status == 404 {
                throw LabError(.refused, "image \(image) is not in \(docker.endpoint): build it (`edgemeter image build` makes edgemeter-base:latest) or change `image:`")
            }
        }
        for n in file.networks where file.services.contains(where: { $0.network == n.name }) {
            let name = Self.networkName(project: file.project, network: n.name)
            if try await call(.GET, "/networks/\(name)", what: "looking up network \(name)").status == 200 {
                throw LabError(.refused, "docker network \(name) already exists (a leftover of an earlier run?): `edgemeter cleanup`, or `docker network rm \(name)`")
            }
            let bridge = Self.bridgeName(project: file.project, network: n)
            if FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)") {
                throw LabError(.refused, "network \(n.name): link \(bridge) already exists (another deployment of this file, e.g. by docker-compose?): take that one down first")
            }
        }
        for s in file.services {
            let name = Self.containerName(project: file.project, service: s.name)
            if try await call(.GET, "/containers/\(name)/json", what: "looking up container \(name)").status == 200 {
                throw LabError(.refused, "container \(name) already exists (a leftover of an earlier run?): `edgemeter cleanup`, or `docker rm -f \(name)`")
            }
        }
    }

    // MARK: up

    /// Deploys the file; returns the state written to the state file (status `up`). A stop request
    /// is honoured between requests and while waiting for ports: everything created is removed and
    /// `.interrupted` thrown.
    public func up(_ file: ComposeFile, stop: StopFlag? = nil, progress: (String) -> Void = { _ in }) async throws -> LabState {
        try await preflight(file)
        var state = Self.initialState(file)
        try FileManager.default.createDirectory(atPath: executor.stateDirectory, withIntermediateDirectories: true)
        try executor.save(state)
        do {
            func checkStop() throws {
                if let stop, stop.isStopped { throw LabError(.interrupted, "lab up \(file.project) interrupted by \(stop.reason ?? "a stop request")") }
            }
            let labels = ["edgemeter": "lab", "edgemeter.topology": file.project]
            for n in file.networks where file.services.contains(where: { $0.network == n.name }) {
                try checkStop()
                let name = Self.networkName(project: file.project, network: n.name)
                state.compose?.network = name
                try executor.save(state)
                var ipamConfig: [String: Any] = [:]
                if let s = n.subnet { ipamConfig["Subnet"] = s.description }
                if let g = n.gateway { ipamConfig["Gateway"] = g.description }
                var options = n.driverOptions
                options[ComposeFile.bridgeNameOption] = Self.bridgeName(project: file.project, network: n)
                let body: [String: Any] = [
                    "Name": name, "Driver": "bridge", "CheckDuplicate": true, "Options": options,
                    "IPAM": ["Driver": "default", "Config": [ipamConfig]],
                    "Labels": n.labels.merging(labels) { _, ours in ours },
                ]
                let r = try await call(.POST, "/networks/create", json: body, what: "creating network \(name)")
                guard r.status == 201 else {
                    throw LabError(.stepFailed, "creating network \(name) (\(n.subnet?.description ?? "no subnet")): dockerd answered HTTP \(r.status): \(r.errorMessage)"
                                   + (r.errorMessage.contains("overlap") ? "; another network uses that subnet: `docker network ls`, take it down or change the subnet" : ""))
                }
                progress("network \(name) \(n.subnet?.description ?? "") on bridge \(options[ComposeFile.bridgeNameOption] ?? "")")
            }
            for s in file.services {
                try checkStop()
                let name = Self.containerName(project: file.project, service: s.name)
                let network = Self.networkName(project: file.project, network: s.network)
                state.compose?.containers.append(name)
                try executor.save(state)
                let r = try await call(.POST, "/containers/create?name=\(name)", json: Self.containerBody(s, file: file, network: network),
                                       what: "creating container \(name)")
                guard r.status == 201 else {
                    throw LabError(.stepFailed, "service \(s.name): creating container \(name) failed: HTTP \(r.status): \(r.errorMessage)")
                }
                let start = try await call(.POST, "/containers/\(name)/start", what: "starting \(name)")
                guard start.status == 204 || start.status == 304 else {
                    throw LabError(.stepFailed, "service \(s.name): starting container \(name) failed: HTTP \(start.status): \(start.errorMessage)"
                                   + (start.errorMessage.contains("allocated") || start.errorMessage.contains("address already in use")
                                      ? "; a published port is taken on the host: stop what listens there or change `ports:`" : ""))
                }
                let info = try await inspect(name, service: s.name)
                let i = state.nodes.firstIndex { $0.name == s.name }!
                state.nodes[i].pid = info.pid
                let net = file.network(s.network)
                state.nodes[i].interfaces = [TopologyPlan.Port(network: s.network, device: "eth0", bridgePort: "", address: info.address,
                                                               prefixLength: net?.subnet?.length ?? 24)]
                for p in s.ports {
                    state.compose?.published.append(ComposeState.Published(service: s.name, hostIP: p.hostIP ?? "127.0.0.1", hostPort: p.hostPort,
                                                                           containerPort: p.containerPort, proto: p.proto))
                }
                state.compose?.namespaces.append(name)
                try executor.save(state)
                let attach = try await executor.ip.result(["netns", "attach", name, "\(info.pid)"])
                guard attach.ok else {
                    throw LabError(.stepFailed, "service \(s.name): `ip netns attach \(name) \(info.pid)` failed: \(attach.combined)", command: ["ip", "netns", "attach", name, "\(info.pid)"], output: attach.combined)
                }
                try executor.save(state)
                try await waitForPorts(s, container: name, address: info.address, stop: stop, project: file.project)
                progress("service \(s.name): container \(name) at \(info.address), pid \(info.pid)"
                         + (s.listeningPorts.isEmpty ? "" : ", ports \(s.listeningPorts.map(String.init).joined(separator: " ")) answer"))
            }
            state.status = "up"
            try executor.save(state)
            return state
        } catch {
            var removed: [String] = []
            let left = await teardown(state, removed: &removed)
            if left.isEmpty {
                try? FileManager.default.removeItem(atPath: executor.statePath(state.topology))
                try? FileManager.default.removeItem(atPath: executor.temporaryStatePath(state.topology))
            }
            var e = error as? LabError ?? LabError(.stepFailed, "lab up \(file.project): \(error)")
            e.message += left.isEmpty ? " (everything created so far was removed again)" : " (undoing left behind: \(left.joined(separator: "; ")))"
            throw e
        }
    }

    /// The `POST /containers/create` body of a service.
    static func containerBody(_ s: ComposeFile.Service, file: ComposeFile, network: String) -> [String: Any] {
        var exposed: [String: Any] = [:]
        for p in s.expose { exposed["\(p)/tcp"] = [String: Any]() }
        var bindings: [String: [[String: String]]] = [:]
        for p in s.ports {
            exposed["\(p.containerPort)/\(p.proto)"] = [String: Any]()
            bindings["\(p.containerPort)/\(p.proto)", default: []].append(["HostIp": p.hostIP ?? "127.0.0.1", "HostPort": "\(p.hostPort)"])
        }
        var endpoint: [String: Any] = ["Aliases": [s.name]]
        if let a = s.ipv4Address { endpoint["IPAMConfig"] = ["IPv4Address": a.description] }
        var labels = s.labels
        labels["edgemeter"] = "lab"
        labels["edgemeter.topology"] = file.project
        labels["edgemeter.service"] = s.name
        var body: [String: Any] = [
            "Image": s.image, "Env": s.environment, "Labels": labels, "ExposedPorts": exposed, "Hostname": s.name,
            "HostConfig": ["NetworkMode": network, "PortBindings": bindings] as [String: Any],
            "NetworkingConfig": ["EndpointsConfig": [network: endpoint]],
        ]
        if let c = s.command { body["Cmd"] = c }
        return body
    }

    struct Inspected { var pid: Int32; var address: String; var status: String }

    func inspect(_ name: String, service: String) async throws -> Inspected {
        let r = try await call(.GET, "/containers/\(name)/json", what: "inspecting \(name)")
        guard r.status == 200, let obj = r.json as? [String: Any], let st = obj["State"] as? [String: Any] else {
            throw LabError(.stepFailed, "service \(service): inspecting container \(name): HTTP \(r.status): \(r.errorMessage)")
        }
        let nets = (obj["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: Any] ?? [:]
        let address = nets.values.compactMap { ($0 as? [String: Any])?["IPAddress"] as? String }.first { !$0.isEmpty } ?? ""
        let pid = Int32(st["Pid"] as? Int ?? 0)
        let status = st["Status"] as? String ?? ""
        guard pid > 0, !address.isEmpty else {
            let output = await logs(name)
            throw LabError(.stepFailed, "service \(service): container \(name) is \(status) (pid \(pid), address \"\(address)\") right after start; its output: \(output)")
        }
        return Inspected(pid: pid, address: address, status: status)
    }

    /// Waits until each exposed port accepts a TCP connect to the container's address from the host
    /// (through the network's bridge, which this run created) and each published TCP port does on
    /// 127.0.0.1 (published on a loopback or wildcard address; others are covered by the container
    /// side), at most `portTimeout` for the whole service. A container that exits fails at once,
    /// with its output.
    func waitForPorts(_ s: ComposeFile.Service, container: String, address: String, stop: StopFlag?, project: String) async throws {
        var targets: [(address: String, port: Int)] = s.listeningPorts.map { (address, $0) }
        for p in s.ports where p.proto == "tcp" {
            let ip = p.hostIP ?? "127.0.0.1"
            if ip == "0.0.0.0" || ip.hasPrefix("127.") { targets.append((ip == "0.0.0.0" ? "127.0.0.1" : ip, p.hostPort)) }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + portTimeout
        for t in targets {
            var last = "not tried"
            while true {
                if let stop, stop.isStopped { throw LabError(.interrupted, "lab up \(project) interrupted by \(stop.reason ?? "a stop request")") }
                let outcome = NamespaceConnect.timedConnect(netns: nil, address: t.address, port: t.port, timeoutMilliseconds: 500).outcome
                if outcome == .connected { break }
                if case .failed(let why) = outcome { last = why }
                let st = try await call(.GET, "/containers/\(container)/json", what: "inspecting \(container)")
                if let obj = st.json as? [String: Any], let state = obj["State"] as? [String: Any], (state["Running"] as? Bool) == false {
                    let output = await logs(container)
                    throw LabError(.stepFailed, "service \(s.name): container \(container) exited (status \(state["ExitCode"] as? Int ?? -1)) before port \(t.port) answered; its output: \(output)")
                }
                guard clock.now < deadline else {
                    let output = await logs(container)
                    throw LabError(.stepFailed, "service \(s.name): port \(t.address):\(t.port) did not accept a TCP connect within \(portTimeout) (last: \(last)); "
                                   + "check the command and `expose`/`ports` in the file; the container's output: \(output)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The last lines the container wrote (stdout and stderr), or a note why they could not be read.
    func logs(_ container: String) async -> String {
        guard let r = try? await docker.request(.GET, "/containers/\(container)/logs?stdout=1&stderr=1&tail=20"), r.status == 200 else {
            return "(could not be read: `docker logs \(container)`)"
        }
        let text = Self.demultiplex(r.body).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "(nothing)" : String(text.suffix(400))
    }

    /// The payload of dockerd's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, size
    /// big-endian); a body without frame headers is returned as it is.
    static func demultiplex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i + 8 <= bytes.count, [0, 1, 2].contains(bytes[i]), bytes[i + 1] == 0, bytes[i + 2] == 0, bytes[i + 3] == 0 {
            let size = Int(bytes[i + 4]) << 24 | Int(bytes[i + 5]) << 16 | Int(bytes[i + 6]) << 8 | Int(bytes[i + 7])
            let end = min(bytes.count, i + 8 + size)
            out += bytes[(i + 8)..<end]
            i = end
        }
        return String(decoding: i == 0 ? bytes : out, as: UTF8.self)
    }

    // MARK: down

    /// Removes what the state records: the namespace names, then the containers (stopped with a
    /// 2 s grace period, removed; last created first), then the network. Only edgemeter names;
    /// what does not exist is skipped. Returns what could not be removed; appends what was to `removed`.
    public func teardown(_ s: LabState, removed: inout [String]) async -> [String] {
        guard let c = s.compose else { return [] }
        var left: [String] = []
        for ns in c.namespaces.reversed() where Names.isEdgemeterName(ns) {
            guard FileManager.default.fileExists(atPath: "/var/run/netns/\(ns)") else { continue }
            if let r = try? await executor.ip.result(["netns", "del", ns]), r.ok { removed.append("namespace name \(ns)") } else {
                left.append("namespace name \(ns) (`ip netns del \(ns)` failed)")
            }
        }
        // The recorded containers, last first, then the other services' containers too (their names are
        // in the state from the start; one that does not exist is skipped), in case one was created by
        // other means than the recorded request, e.g. a retry by hand.
        var names = c.containers.reversed() as [String]
        for n in s.nodes.reversed() where n.kind == "container" && !names.contains(n.namespace) { names.append(n.namespace) }
        for name in names {
            guard Names.isEdgemeterName(name) else { left.append("container \(name) (not an edgemeter name, not touched)"); continue }
            do {
                let r = try await docker.request(.GET, "/containers/\(name)/json")
                if r.status == 404 { continue }
                let stop = try await docker.request(.POST, "/containers/\(name)/stop?t=2", timeout: .seconds(32))
                guard [204, 304, 404].contains(stop.status) else { throw LabError(.teardown, "stop: HTTP \(stop.status): \(stop.errorMessage)") }
                let rm = try await docker.request(.DELETE, "/containers/\(name)?force=1", timeout: .seconds(30))
                guard [204, 404].contains(rm.status) else { throw LabError(.teardown, "remove: HTTP \(rm.status): \(rm.errorMessage)") }
                removed.append("container \(name)")
            } catch {
                left.append("container \(name): \(error)")
            }
        }
        if let net = c.network {
            if Names.isEdgemeterName(net) {
                do {
                    let r = try await docker.request(.DELETE, "/networks/\(net)", timeout: .seconds(30))
                    if r.status == 204 { removed.append("network \(net)") } else if r.status != 404 {
                        left.append("network \(net): HTTP \(r.status): \(r.errorMessage)")
                    }
                } catch {
                    left.append("network \(net): \(error)")
                }
            } else {
                left.append("network \(net) (not an edgemeter name, not touched)")
            }
        }
        return left
    }

    // MARK: Engine API

    func call(_ method: HTTPMethod, _ path: String, json: Any? = nil, what: String) async throws -> DockerAPIClient.Response {
        do {
            if let json { return try await docker.request(method, path, json: json) }
            return try await docker.request(method, path)
        } catch {
            throw LabError(.stepFailed, "\(what): dockerd at \(docker.endpoint) did not answer (\(error)); is it running? (scripts/setup.sh starts it)")
        }
    }

    func queryComponent(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? s
    }
}

extension LabState {
    /// A state for something `TopologyPlan` does not describe (a compose deployment).
    init(topology: String, file: String, tag: String, fabric: String, status: String, started: String,
         objects: [TopologyPlan.Object], networks: [NetworkState], nodes: [NodeState], compose: ComposeState?) {
        self.topology = topology
        self.file = file
        self.tag = tag
        self.fabric = fabric
        self.status = status
        self.started = started
        self.objects = objects
        self.networks = networks
        self.nodes = nodes
        self.compose = compose
    }
}
