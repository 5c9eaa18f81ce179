import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem
import EdgeMeterCore

/// What the state file records about a topology's impaired links.
public struct ImpairmentState: Codable, Sendable, Equatable {
    public var mode: ImpairMode
    /// The forwarder process (runs in the fabric namespace; `lab down` stops it with the rest).
    public var pid: Int32?
    /// Its HTTP API (`ForwarderAPI.swift`).
    public var socket: String?
    /// The links as declared at `lab up` (the live values: `GET /links`).
    public var links: [ImpairedLink]
}

/// What the forwarder process reads at start (`<topo>.logs/forwarder.json`).
public struct ForwarderConfig: Codable, Sendable {
    public var topology: String
    public var links: [ImpairedLink]
    public var seed: UInt64
}

extension LabExecutor {
    /// The forwarder's HTTP API socket.
    public func forwarderSocketPath(_ topology: String) -> String { "\(stateDirectory)/\(topology).sock" }
    public func forwarderConfigPath(_ topology: String) -> String { "\(logDirectory(topology))/forwarder.json" }

    /// The plan `up` builds: with `--impair netem` the impairments are left out of the plan (netem
    /// is added on the plain veths afterwards).
    func impairmentPlan(_ topology: Topology) -> TopologyPlan {
        impairMode == .netem ? TopologyPlan(topology.withoutImpairments) : TopologyPlan(topology)
    }

    /// Before anything is built: the forwarder needs `ethtool`; `--impair netem` needs a kernel
    /// with netem (checked with `tc qdisc add dev lo root netem` in a throw-away namespace).
    func preflightImpairment(_ topology: Topology) async throws {
        let links = TopologyPlan(topology).impairedLinks
        guard !links.isEmpty else { return }
        switch impairMode {
        case .forwarder:
            guard which("ethtool") != nil else {
                throw LabError(.refused, "\(topology.name) has impaired links; the forwarder needs `ethtool` to switch offloads off: run scripts/setup.sh (or apt-get install -y ethtool)")
            }
        case .netem:
            if let why = await netemUnavailable() {
                throw LabError(.refused, "tc netem is not available in this kernel: \(why); use the default userspace forwarder (lab up without --impair netem)")
            }
        }
    }

    /// nil when `tc qdisc add … netem` works here, else what tc said.
    func netemUnavailable() async -> String? {
        guard which("tc") != nil else { return "`tc` is not installed (apt-get install -y iproute2)" }
        let ns = "edgemeter-netem-check-\(getpid())"
        guard let made = try? await ip.result(["netns", "add", ns]), made.ok else { return "could not create the namespace \(ns) to try it" }
        defer { _ = try? runSync(["ip", "netns", "del", ns]) }
        let r = try? await ip.exec(in: ns, [which("tc") ?? "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"], timeout: .seconds(10))
        if let r, r.ok { return nil }
        let out = r?.combined.trimmingCharacters(in: .whitespacesAndNewlines) ?? "tc did not run"
        return "`tc qdisc add dev lo root netem delay 1ms` said \"\(out)\""
    }

    private func runSync(_ argv: [String]) throws -> Int32 {
        let child = try ChildProcess([which(argv[0]) ?? argv[0]] + argv.dropFirst())
        return child.waitBlocking()
    }

    /// After the plan ran: starts the forwarder (or applies netem) for the impaired links, records
    /// it in the state, and waits until its API answers.
    func startImpairment(_ topology: Topology, state: inout LabState, binary: String, progress: (String) -> Void) async throws {
        let links = TopologyPlan(topology).impairedLinks
        guard !links.isEmpty else { return }
        let plan = TopologyPlan(topology)
        state.impairment = ImpairmentState(mode: impairMode, pid: nil, socket: nil, links: links)
        try save(state)
        if impairMode == .netem {
            for link in links {
                for argv in TopologyPlan.netemCommands(for: link, fabric: plan.fabric) {
                    let step = TopologyPlan.Step(summary: "netem on \(link.id)", action: .exec(netns: argv[3], Array(argv.dropFirst(4))))
                    try await run(step)
                }
            }
            progress("netem applied on \(links.count) link(s)")
            return
        }
        let config = ForwarderConfig(topology: topology.name, links: links, seed: 0x5eed)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(config).write(to: URL(fileURLWithPath: forwarderConfigPath(topology.name)))
        let socketPath = forwarderSocketPath(topology.name)
        let log = "\(logDirectory(topology.name))/forwarder.log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError(.stepFailed, "cannot write the forwarder's log \(log): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let ipPath = which(ip.program) else { throw LabError(.refused, "iproute2's `ip` not found on PATH: apt-get install -y iproute2") }
        let argv = [ipPath, "netns", "exec", plan.fabric, binary, "impair-forwarder", "--config", forwarderConfigPath(topology.name), "--socket", socketPath]
        let pid: Int32
        do {
            pid = try ChildProcess(argv, outputFD: fd, newProcessGroup: true).pid
        } catch {
            throw LabError(.stepFailed, "the impairment forwarder did not start (`\(argv.joined(separator: " "))`): \(error)", command: argv)
        }
        state.impairment?.pid = pid
        state.impairment?.socket = socketPath
        try save(state)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while true {
            if let r = try? ForwarderClient.request(socketPath: socketPath, method: "GET", path: "/links", timeoutSeconds: 1), r.status == 200 { break }
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(400)
            if !Self.isAlive(pid) { throw LabError(.stepFailed, "the impairment forwarder exited at start; its output: \(tail.isEmpty ? "(nothing)" : String(tail))") }
            if clock.now > deadline { throw LabError(.stepFailed, "the impairment forwarder's API did not answer on \(socketPath) within 5 s; its output: \(tail)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        progress("impairment forwarder pid \(pid): \(links.map { "\($0.id) \(Self.summary($0))" }.joined(separator: "; "))")
    }

    /// `delay 5ms` or, declared per direction, `egress delay 5ms; ingress none`.
    public static func summary(_ link: ImpairedLink) -> String {
        link.specToNode == nil || link.specToNode == link.spec ? LinkImpairment(link.spec).summary
            : "egress \(LinkImpairment(link.spec).summary); ingress \(LinkImpairment(link.toNodeSpec).summary)"
    }

    /// The live impairment and counters of every impaired link of a topology that is up.
    public func links(_ topology: String) throws -> [ForwarderLinkReport] {
        let s = try state(topology)
        guard let imp = s.impairment, !imp.links.isEmpty else { return [] }
        guard imp.mode == .forwarder, let socket = imp.socket else {
            throw LabError(.refused, "\(topology)'s links are impaired by netem; `tc -s qdisc` inside the namespaces shows them")
        }
        let r = try ForwarderClient.request(socketPath: socket, method: "GET", path: "/links")
        guard r.status == 200 else { throw LabError(.stepFailed, "the forwarder answered \(r.status): \(String(decoding: r.body, as: UTF8.self))") }
        do { return try JSONDecoder().decode([ForwarderLinkReport].self, from: r.body) } catch {
            throw LabError(.stepFailed, "the forwarder's answer to GET /links could not be read: \(error)")
        }
    }

    /// Changes one link's impairment at runtime (both directions, or the one `impairment.direction`
    /// names). `network` may be omitted when the
    /// node has one impaired link.
    public func setLink(_ topology: String, node: String, network: String?, impairment: LinkImpairment) throws -> ForwarderLinkReport {
        let s = try state(topology)
        _ = try impairment.spec()
        _ = try impairment.linkDirection()
        guard let imp = s.impairment, let socket = imp.socket, imp.mode == .forwarder else {
            throw LabError(.refused, "\(topology) has no impairment forwarder (no link declares `impair`, or it was built with --impair netem); declare `impair: {delay: 0ms}` on the link to have it forwarded")
        }
        let candidates = imp.links.filter { $0.node == node && (network == nil || $0.network == network) }
        guard candidates.count == 1, let link = candidates.first else {
            let all = imp.links.map(\.id).joined(separator: ", ")
            if candidates.isEmpty { throw LabError(.refused, "\(topology) has no impaired link \(node)\(network.map { ":\($0)" } ?? ""); impaired links: \(all)") }
            throw LabError(.refused, "\(node) has impaired links on several networks: name one as NODE:NETWORK (\(all))")
        }
        let body = try JSONEncoder().encode(impairment)
        let r = try ForwarderClient.request(socketPath: socket, method: "PUT", path: "/links/\(link.node)/\(link.network)", body: body)
        guard r.status == 200 else { throw LabError(.refused, "the forwarder refused the change (\(r.status)): \(String(decoding: r.body, as: UTF8.self))") }
        return try JSONDecoder().decode(ForwarderLinkReport.self, from: r.body)
    }
}
