import Foundation
import Yams
import EdgeMeterCore

/// Reachability of a running topology: which probes `reach` sends (pure, from the state and the
/// topology), the matrix it fills, and the comparison with an expected matrix.
///
/// A probe is named by its source, its target node and a probe text that carries the address:
/// `icmp 192.168.2.254`, `tcp 192.168.2.1:50001`. A router's port forward (or floating address) is a
/// probe to the router: `tcp 10.201.0.1:1234`. The host is the source `(host)`. An address dockerd
/// assigned (a container node on docker0) is named by its node instead, `icmp c2`, `tcp c2:8080`,
/// so expected matrices do not depend on what dockerd handed out.
public struct ReachProbe: Hashable, Sendable {
    public enum Kind: String, Sendable { case icmp, tcp }
    public var from: String
    public var to: String
    public var kind: Kind
    public var address: String
    public var port: Int?
    /// What the probe column shows instead of the address (the node's name for a docker-assigned one).
    public var label: String?

    public init(from: String, to: String, kind: Kind, address: String, port: Int? = nil, label: String? = nil) {
        (self.from, self.to, self.kind, self.address, self.port, self.label) = (from, to, kind, address, port, label)
    }

    /// `icmp ADDR` or `tcp ADDR:PORT` (ADDR the label when there is one): the probe column of the matrix.
    public var probe: String { kind == .icmp ? "icmp \(label ?? address)" : "tcp \(label ?? address):\(port ?? 0)" }

    public var key: ReachKey { ReachKey(from: from, to: to, probe: probe) }
}

public struct ReachKey: Hashable, Sendable, Comparable {
    public var from: String
    public var to: String
    public var probe: String

    public static func < (a: ReachKey, b: ReachKey) -> Bool { (a.from, a.to, a.probe) < (b.from, b.to, b.probe) }
}

/// One cell of the matrix.
public struct ReachResult: Sendable, Equatable {
    /// Why a probe failed (or was not sent).
    public enum Reason: String, Sendable, CaseIterable {
        /// The source has no route (`ip route get` fails, ICMP "net unreachable", ENETUNREACH).
        case noRoute = "no route"
        /// A router or the source found no neighbour for the address (ICMP "host unreachable", EHOSTUNREACH).
        case hostUnreachable = "host unreachable"
        /// TCP RST: the address answered, nothing listens on the port.
        case refused
        /// An ICMP "administratively prohibited" / "packet filtered" came back.
        case filtered
        /// No answer within the timeout (dropped silently, e.g. by a filter).
        case timeout
        /// `ip route get` in the source chose an interface that is not the lab's: nothing was sent.
        case leavesLab = "not probed: the route leaves the lab"
        /// The source is a vm node whose guest command channel could not be opened (detail: why).
        case insideVM = "not probed: cannot run probes inside a vm node"
    }

    public var probe: ReachProbe
    public var reachable: Bool
    public var reason: Reason?
    /// Extra text for a failure (the errno or the ping line), for the Markdown only.
    public var detail: String
    /// Median round trip over the answered attempts, in milliseconds, on the monotonic clock for TCP
    /// (from `connect()` to the handshake completing) and as iputils `ping` prints it for ICMP (echo
    /// request sent to reply received; from a vm node, as the guest's busybox ping prints it, and no
    /// TCP figure); nil when nothing answered.
    public var rttP50Milliseconds: Double?

    public init(probe: ReachProbe, reachable: Bool, reason: Reason?, detail: String = "", rttP50Milliseconds: Double? = nil) {
        (self.probe, self.reachable, self.reason, self.detail, self.rttP50Milliseconds) = (probe, reachable, reason, detail, rttP50Milliseconds)
    }

    /// `yes` or the reason: what `--expect` differences and the Markdown show.
    public var outcome: String { reachable ? "reachable" : (reason?.rawValue ?? "unreachable") }
}

public enum ReachPlan {
    /// The name of the host as a source in the matrix (parenthesised: a node may be called `host`).
    public static let hostSource = "(host)"

    /// Every probe for a running topology: from each node and from the host, ICMP to each address of
    /// every other node and TCP to each declared port on each of those addresses; plus TCP to each
    /// router port forward (`listen:port`) from every source but that router, and TCP from the host to
    /// each port a compose deployment publishes on loopback. Sorted by key.
    public static func probes(state: LabState, topology: Topology) -> [ReachProbe] {
        var out: [ReachProbe] = []
        let sources = state.nodes.map(\.name) + [hostSource]
        for from in sources {
            for target in state.nodes where target.name != from {
                for iface in target.interfaces {
                    let label = iface.isDocker ? target.name : nil
                    out.append(ReachProbe(from: from, to: target.name, kind: .icmp, address: iface.address, label: label))
                    for port in target.ports {
                        out.append(ReachProbe(from: from, to: target.name, kind: .tcp, address: iface.address, port: port, label: label))
                    }
                }
            }
            for router in topology.nodes where router.name != from {
                for rule in router.nat {
                    guard case .forward(let proto, let listen, let port, _, _) = rule, proto != .udp, let port else { continue }
                    out.append(ReachProbe(from: from, to: router.name, kind: .tcp, address: listen.description, port: port))
                }
            }
        }
        // A compose deployment's published TCP ports, from the host only (on 127.0.0.1 when published
        // on a wildcard or loopback address).
        for p in state.compose?.published ?? [] where p.proto == "tcp" {
            guard p.hostIP == "0.0.0.0" || p.hostIP.hasPrefix("127.") else { continue }
            out.append(ReachProbe(from: hostSource, to: p.service, kind: .tcp, address: p.hostIP == "0.0.0.0" ? "127.0.0.1" : p.hostIP, port: p.hostPort))
        }
        var seen = Set<ReachKey>()
        return out.filter { seen.insert($0.key).inserted }.sorted { $0.key < $1.key }
    }
}

/// The matrix `reach` writes.
public struct ReachMatrix: Sendable {
    public var topology: String
    public var results: [ReachResult]
    /// Wall time of the whole measurement (route checks and probes), monotonic clock.
    public var wallTime: Duration

    public init(topology: String, results: [ReachResult], wallTime: Duration) {
        self.topology = topology
        self.results = results.sorted { $0.probe.key < $1.probe.key }
        self.wallTime = wallTime
    }

    public static let csvHeader = "from,to,probe,reachable,why_not,rtt_p50_ms"

    /// One row per probe; `why_not` empty when reachable, `rtt_p50_ms` empty when nothing answered.
    public var csv: String {
        var s = ReachMatrix.csvHeader + "\n"
        for r in results {
            let rtt = r.rttP50Milliseconds.map { String(format: "%.3f", $0) } ?? ""
            s += [r.probe.from, r.probe.to, r.probe.probe, r.reachable ? "yes" : "no", r.reason?.rawValue ?? "", rtt]
                .map(ReachMatrix.csvField).joined(separator: ",") + "\n"
        }
        return s
    }

    static func csvField(_ f: String) -> String {
        f.contains(",") || f.contains("\"") ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
    }

    /// A summary grid (rows: sources, columns: targets; a cell counts the probes that got through,
    /// `3/3`) followed by the failures, one line each.
    public var markdown: String {
        let froms = orderedUnique(results.map(\.probe.from))
        let tos = orderedUnique(results.map(\.probe.to))
        var s = "# reach \(topology)\n\n"
        let ok = results.filter(\.reachable).count
        s += "\(results.count) probes, \(ok) reachable, \(results.count - ok) not; wall time \(String(format: "%.2f", wallTime.seconds)) s.\n\n"
        s += "| from \\ to | " + tos.joined(separator: " | ") + " |\n"
        s += "|---|" + tos.map { _ in "---" }.joined(separator: "|") + "|\n"
        for f in froms {
            let cells = tos.map { t -> String in
                let cell = results.filter { $0.probe.from == f && $0.probe.to == t }
                if cell.isEmpty { return "" }
                let n = cell.filter(\.reachable).count
                return n == cell.count ? "\(n)/\(cell.count)" : "**\(n)/\(cell.count)**"
            }
            s += "| \(f) | " + cells.joined(separator: " | ") + " |\n"
        }
        let failed = results.filter { !$0.reachable }
        if !failed.isEmpty {
            s += "\nNot reachable:\n\n"
            for r in failed {
                s += "- \(r.probe.from) → \(r.probe.to) \(r.probe.probe): \(r.outcome)" + (r.detail.isEmpty ? "" : " (\(r.detail))") + "\n"
            }
        }
        return s
    }

    private func orderedUnique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        let u = xs.filter { seen.insert($0).inserted }
        // The host last, nodes in name order.
        return u.filter { $0 != ReachPlan.hostSource }.sorted() + u.filter { $0 == ReachPlan.hostSource }
    }
}

/// An expected matrix: rows of from, to, probe, expected reachable (`yes`/`no`), read from CSV (a
/// header naming at least `from,to,probe,reachable`, e.g. a `reach.csv` written earlier) or YAML
/// (a list of `{from, to, probe, reachable}` maps, reachable a boolean or yes/no).
public struct ReachExpectation: Sendable, Equatable {
    public var rows: [ReachKey: Bool]

    public init(rows: [ReachKey: Bool]) { self.rows = rows }

    public static func parse(_ text: String, file: String) throws -> ReachExpectation {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-") || file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
            return try parseYAML(text, file: file)
        }
        return try parseCSV(text, file: file)
    }

    static func bool(_ s: String) -> Bool? {
        switch s.trimmingCharacters(in: .whitespaces).lowercased() {
        case "yes", "true", "1", "reachable": return true
        case "no", "false", "0", "unreachable": return false
        default: return nil
        }
    }

    static func parseCSV(_ text: String, file: String) throws -> ReachExpectation {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .map { ($0.offset + 1, String($0.element).trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.1.isEmpty && !$0.1.hasPrefix("#") }
        guard !lines.isEmpty else { throw LabError(.refused, "\(file): the expected matrix is empty; write a header `from,to,probe,reachable` and one row per probe (a reach.csv from an earlier run works)") }
        let (headerLine, header) = lines.removeFirst()
        let cols = splitCSV(header).map { $0.lowercased() }
        guard let fi = cols.firstIndex(of: "from"), let ti = cols.firstIndex(of: "to"), let pi = cols.firstIndex(of: "probe"),
              let ri = cols.firstIndex(of: "reachable") else {
            throw LabError(.refused, "\(file):\(headerLine): the header must name the columns from, to, probe, reachable; got \"\(header)\"")
        }
        var rows: [ReachKey: Bool] = [:]
        for (n, line) in lines {
            let f = splitCSV(line)
            guard f.count > max(fi, ti, pi, ri) else {
                throw LabError(.refused, "\(file):\(n): expected \(cols.count) fields (\(cols.joined(separator: ","))), got \(f.count): \"\(line)\"")
            }
            guard let b = bool(f[ri]) else {
                throw LabError(.refused, "\(file):\(n): `reachable` must be yes or no, got \"\(f[ri])\"")
            }
            let key = ReachKey(from: f[fi], to: f[ti], probe: f[pi])
            guard rows[key] == nil else { throw LabError(.refused, "\(file):\(n): \(key.from) → \(key.to) \(key.probe) is listed twice; keep one row") }
            rows[key] = b
        }
        return ReachExpectation(rows: rows)
    }

    /// One CSV line's fields (Core's RFC 4180 reader), trimmed.
    static func splitCSV(_ line: String) -> [String] {
        ((try? CSV.parse(line))?.first ?? [line]).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// YAML (Yams): a list of maps with scalar values
    /// (`- {from: a, to: b, probe: icmp 10.0.0.1, reachable: yes}`); problems name the file and line.
    static func parseYAML(_ text: String, file: String) throws -> ReachExpectation {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch let e as YamlError {
            throw LabError(.refused, "\(file):\(SuiteLoader.yamlErrorLine(e)): not valid YAML: \(SuiteLoader.yamlProblem(e))")
        }
        guard let root, case .sequence(let entries) = root else {
            throw LabError(.refused, "\(file):1: expected a list of entries `- {from: A, to: B, probe: PROBE, reachable: yes}`")
        }
        var rows: [ReachKey: Bool] = [:]
        for entry in entries {
            let line = entry.mark?.line ?? 1
            guard case .mapping(let map) = entry else {
                throw LabError(.refused, "\(file):\(line): each entry must be a map with from, to, probe and reachable")
            }
            var fields: [String: String] = [:]
            for (k, v) in map {
                guard let key = k.string, case .scalar(let value) = v else {
                    throw LabError(.refused, "\(file):\(k.mark?.line ?? line): expected `key: value` with a text value")
                }
                fields[key] = value.string
            }
            guard let f = fields["from"], let t = fields["to"], let p = fields["probe"], let r = fields["reachable"] else {
                throw LabError(.refused, "\(file):\(line): each entry needs from, to, probe and reachable; got \(fields.keys.sorted().joined(separator: ", "))")
            }
            guard let b = bool(r) else { throw LabError(.refused, "\(file):\(line): `reachable` must be yes or no, got \"\(r)\"") }
            let key = ReachKey(from: f, to: t, probe: p)
            guard rows[key] == nil else { throw LabError(.refused, "\(file):\(line): \(f) → \(t) \(p) is listed twice; keep one entry") }
            rows[key] = b
        }
        return ReachExpectation(rows: rows)
    }

    /// Every difference, one sentence each (`from guest to peer icmp 10.201.0.20: expected reachable,
    /// got timeout`): a result that disagrees, an expected row that was not probed, a probe the
    /// expectation does not list. Empty = the matrix matches.
    public func differences(_ matrix: ReachMatrix) -> [String] {
        var out: [String] = []
        var measured: [ReachKey: ReachResult] = [:]
        for r in matrix.results { measured[r.probe.key] = r }
        for key in Set(rows.keys).union(measured.keys).sorted() {
            let head = "from \(key.from) to \(key.to) \(key.probe)"
            switch (rows[key], measured[key]) {
            case let (e?, r?) where e != r.reachable:
                out.append("\(head): expected \(e ? "reachable" : "not reachable"), got \(r.outcome)")
            case let (e?, nil):
                out.append("\(head): expected \(e ? "reachable" : "not reachable"), but reach has no such probe (renamed node or address?)")
            case let (nil, r?):
                out.append("\(head): not in the expected matrix, got \(r.outcome); add a row for it")
            default: break
            }
        }
        return out
    }
}

