import Foundation

/// A kernel file edgemeter reads for the footprint figures whose text is not what it expects.
/// Made only by the `ProcFS` parsers; the text names the file and what to check.
public struct ProcFSError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Pure parsers of the kernel files the footprint kind reads (no I/O: the readers in
/// `EdgeMeterSystem` hand them the text). Each figure says which counter it is.
public enum ProcFS {
    /// `/proc/PID/smaps_rollup`: the sums over every mapping of the process, in bytes.
    public struct SmapsRollup: Sendable, Equatable {
        /// `Rss:` resident pages, shared ones counted in full.
        public var rssBytes: UInt64
        /// `Pss:` proportional set size: each resident page divided by the number of processes mapping it.
        public var pssBytes: UInt64
        /// `Pss_Anon:` (kernels ≥ 5.7; 0 when absent).
        public var pssAnonBytes: UInt64
        /// `Swap:` swapped-out anonymous memory.
        public var swapBytes: UInt64
    }

    /// Reads the `Key: N kB` lines of `/proc/PID/smaps_rollup` (or the total of one mapping).
    public static func smapsRollup(_ text: String, file: String = "smaps_rollup") throws -> SmapsRollup {
        let kv = kilobyteLines(text)
        guard let rss = kv["Rss"], let pss = kv["Pss"] else {
            throw ProcFSError("\(file) has no Rss:/Pss: lines (kernel ≥ 4.14 is needed for smaps_rollup); got \(text.prefix(80).debugDescription)")
        }
        return SmapsRollup(rssBytes: rss, pssBytes: pss, pssAnonBytes: kv["Pss_Anon"] ?? 0, swapBytes: kv["Swap"] ?? 0)
    }

    /// The sum of every `Pss:` line of `/proc/PID/smaps` (one per mapping), in bytes: what `smem`
    /// adds up, and what `smaps_rollup`'s `Pss:` should equal over the same instant.
    public static func smapsPssSum(_ text: String) -> UInt64 {
        var sum: UInt64 = 0
        for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let v = UInt64(parts[1]) { sum += v * 1024 }
        }
        return sum
    }

    static func kilobyteLines(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let rest = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
            guard let first = rest.first, let v = UInt64(first) else { continue }
            let unit = rest.count > 1 ? rest[1].lowercased() : ""
            out[key] = unit == "kb" ? v * 1024 : v
        }
        return out
    }

    /// `/proc/PID/stat`: the fields the footprint uses.
    public struct ProcessStat: Sendable, Equatable {
        public var pid: Int
        /// The command name between the parentheses (may hold spaces and parentheses).
        public var comm: String
        public var state: Character
        public var ppid: Int
        /// Field 14: CPU time in user mode, clock ticks (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
        public var utimeTicks: UInt64
        /// Field 15: CPU time in kernel mode, clock ticks.
        public var stimeTicks: UInt64
        /// Field 22: start time after boot, clock ticks.
        public var startTimeTicks: UInt64
        /// Field 24: resident set size, pages.
        public var rssPages: UInt64

        /// utime + stime in seconds for a tick rate of `ticksPerSecond`.
        public func cpuSeconds(ticksPerSecond: Int) -> Double { Double(utimeTicks + stimeTicks) / Double(ticksPerSecond) }
    }

    /// Parses `/proc/PID/stat`. The command name is taken up to the *last* `)`, since a name may
    /// itself contain `) ` (a process can call itself anything).
    public static func processStat(_ text: String, file: String = "stat") throws -> ProcessStat {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else {
            throw ProcFSError("\(file) does not look like /proc/PID/stat (no \"(comm)\"): \(text.prefix(80).debugDescription)")
        }
        guard let pid = Int(text[..<open].trimmingCharacters(in: .whitespaces)) else {
            throw ProcFSError("\(file): no pid before the command name: \(text.prefix(80).debugDescription)")
        }
        let comm = String(text[text.index(after: open)..<close])
        // Fields from 3 (state) on.
        let rest = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard rest.count >= 22, let state = rest[0].first else {
            throw ProcFSError("\(file): \(rest.count + 2) fields, expected at least 24: \(text.prefix(80).debugDescription)")
        }
        func field(_ n: Int) throws -> UInt64 {
            guard let v = UInt64(rest[n - 3]) else { throw ProcFSError("\(file): field \(n) is not a number: \(rest[n - 3])") }
            return v
        }
        return ProcessStat(pid: pid, comm: comm, state: state, ppid: Int(try field(4)), utimeTicks: try field(14),
                           stimeTicks: try field(15), startTimeTicks: try field(22), rssPages: try field(24))
    }

    /// One line of `/proc/PID/cgroup`: `hierarchy-ID:controller-list:path`.
    public struct CgroupEntry: Sendable, Equatable {
        /// 0 for the cgroup v2 (unified) hierarchy.
        public var hierarchy: Int
        /// Empty for v2; `memory`, `cpu,cpuacct`, `name=systemd` for v1.
        public var controllers: [String]
        /// Relative to the hierarchy's mount point, starting with `/`.
        public var path: String
    }

    public static func cgroupEntries(_ text: String, file: String = "cgroup") throws -> [CgroupEntry] {
        var out: [CgroupEntry] = []
        for line in text.split(separator: "\n") where !line.isEmpty {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let id = Int(parts[0]) else {
                throw ProcFSError("\(file): line \(String(line).debugDescription) is not hierarchy:controllers:path")
            }
            out.append(CgroupEntry(hierarchy: id, controllers: parts[1].split(separator: ",").map(String.init), path: String(parts[2])))
        }
        return out
    }

    /// The cgroup path of `controller` (v1), or of the unified hierarchy when `controller` is nil.
    public static func cgroupPath(_ entries: [CgroupEntry], controller: String?) -> String? {
        if let controller { return entries.first { $0.hierarchy != 0 && $0.controllers.contains(controller) }?.path }
        return entries.first { $0.hierarchy == 0 }?.path
    }

    /// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`): unparsable lines are skipped.
    public static func keyValues(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count == 2, let v = UInt64(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }

    /// `/proc/PID/net/dev`: per interface of that process's network namespace, the receive and
    /// transmit byte and packet counters (columns 1, 2, 9, 10 after the `name:`).
    public static func netDev(_ text: String, file: String = "net/dev") throws -> [String: InterfaceCounters] {
        var out: [String: InterfaceCounters] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), !line.contains("|") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let f = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            guard f.count >= 16 else { throw ProcFSError("\(file): interface \(name) has \(f.count) counters, expected 16") }
            out[name] = InterfaceCounters(rxBytes: f[0], txBytes: f[8], rxPackets: f[1], txPackets: f[9])
        }
        return out
    }

    /// The `iptables -D` arguments (chain first) that delete every rule of `iptables -S` output
    /// whose comment starts with `commentPrefix`: each `-A CHAIN SPEC` line becomes
    /// `[CHAIN, SPEC...]`. Rules whose spec holds a quoted word are left alone (the ones edgemeter
    /// adds have none), so a split can never delete a different rule.
    public static func ruleDeletions(_ listing: String, commentPrefix: String) -> [[String]] {
        var out: [[String]] = []
        for line in listing.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 4, words[0] == "-A", !line.contains("\""),
                  let i = words.firstIndex(of: "--comment"), i + 1 < words.count, words[i + 1].hasPrefix(commentPrefix) else { continue }
            out.append(Array(words.dropFirst()))
        }
        return out
    }

    /// Packet and byte counters of the rules whose comment is `comment`, summed, from
    /// `iptables -L CHAIN -v -x -n` (columns pkts, bytes; bytes are IP bytes, no link header).
    public static func ruleCounters(_ text: String, comment: String) -> (packets: UInt64, bytes: UInt64)? {
        var p: UInt64 = 0, b: UInt64 = 0, found = false
        for line in text.split(separator: "\n") where line.contains("/* \(comment) */") {
            let f = line.split(separator: " ")
            guard f.count >= 2, let pk = UInt64(f[0]), let by = UInt64(f[1]) else { continue }
            p += pk; b += by; found = true
        }
        return found ? (p, b) : nil
    }

    /// A file holding one integer (`memory.current`, `memory.usage_in_bytes`, `cpuacct.usage`,
    /// `/sys/class/net/IF/statistics/rx_bytes`).
    public static func integer(_ text: String, file: String) throws -> UInt64 {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = UInt64(t) else { throw ProcFSError("\(file) should hold one integer, got \(t.prefix(40).debugDescription)") }
        return v
    }
}

/// Which cgroup layout the host has: where memory and CPU of a cgroup are read from.
public enum CgroupLayout: String, Sendable, Equatable {
    /// cgroup v2 only (`/sys/fs/cgroup/cgroup.controllers` exists): `memory.current`, `memory.stat`,
    /// `cpu.stat` `usage_usec`.
    case v2
    /// cgroup v1 controllers (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpuacct`):
    /// `memory.usage_in_bytes`, `memory.stat`, `cpuacct.usage` (ns).
    case v1
}

/// One reading of a cgroup's memory and CPU counters, as the kernel keeps them.
public struct CgroupReading: Sendable, Equatable {
    /// v2 `memory.current` / v1 `memory.usage_in_bytes`: every page charged to the group
    /// (anonymous, page cache, kernel memory).
    public var memoryBytes: UInt64
    /// `memory.stat` anon (v2) / total_rss (v1): the anonymous part.
    public var anonBytes: UInt64
    /// `memory.stat` file (v2) / total_cache (v1): the page-cache part.
    public var fileBytes: UInt64
    /// v2 `cpu.stat` usage_usec / v1 `cpuacct.usage` (ns → µs): CPU time of every task in the
    /// group since it was created.
    public var cpuMicroseconds: UInt64

    /// Combines the texts of the files read under one layout.
    public static func parse(layout: CgroupLayout, memory: String, memoryStat: String, cpu: String) throws -> CgroupReading {
        let stat = ProcFS.keyValues(memoryStat)
        switch layout {
        case .v2:
            let mem = try ProcFS.integer(memory, file: "memory.current")
            guard let usage = ProcFS.keyValues(cpu)["usage_usec"] else {
                throw ProcFSError("cpu.stat has no usage_usec line: \(cpu.prefix(80).debugDescription)")
            }
            return CgroupReading(memoryBytes: mem, anonBytes: stat["anon"] ?? 0, fileBytes: stat["file"] ?? 0, cpuMicroseconds: usage)
        case .v1:
            let mem = try ProcFS.integer(memory, file: "memory.usage_in_bytes")
            let ns = try ProcFS.integer(cpu, file: "cpuacct.usage")
            return CgroupReading(memoryBytes: mem, anonBytes: stat["total_rss"] ?? stat["rss"] ?? 0,
                                 fileBytes: stat["total_cache"] ?? stat["cache"] ?? 0, cpuMicroseconds: ns / 1000)
        }
    }
}

/// `/sys/class/net/IF/statistics/{rx,tx}_{bytes,packets}` at one instant.
public struct InterfaceCounters: Sendable, Equatable {
    public var rxBytes: UInt64
    public var txBytes: UInt64
    public var rxPackets: UInt64
    public var txPackets: UInt64

    public init(rxBytes: UInt64, txBytes: UInt64, rxPackets: UInt64, txPackets: UInt64) {
        (self.rxBytes, self.txBytes, self.rxPackets, self.txPackets) = (rxBytes, txBytes, rxPackets, txPackets)
    }

    /// Counter growth from `earlier` to `self` (a counter that went back, e.g. a recreated
    /// interface, counts from 0).
    public func since(_ earlier: InterfaceCounters) -> InterfaceCounters {
        func d(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : a }
        return InterfaceCounters(rxBytes: d(rxBytes, earlier.rxBytes), txBytes: d(txBytes, earlier.txBytes),
                                 rxPackets: d(rxPackets, earlier.rxPackets), txPackets: d(txPackets, earlier.txPackets))
    }
    public var bytes: UInt64 { rxBytes + txBytes }
    public var packets: UInt64 { rxPackets + txPackets }
}
