import Foundation
import EdgeMeterCore
#if canImport(Glibc)
import Glibc
#endif

/// Thin readers of the kernel files behind the footprint figures: they read the text and hand it
/// to the pure parsers in `EdgeMeterCore.ProcFS`. A file that cannot be read throws a
/// `SystemError` naming it (the process exited, the cgroup was removed, the interface is gone).
public enum ProcReader {
    /// The whole file, read with read(2) until end of file: /proc files report size 0 and are
    /// generated as they are read, and reading them by their stated size (as
    /// `FileManager.contents(atPath:)` may) loses the end of a long one such as smaps.
    static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SystemError("cannot read \(path) (\(String(cString: strerror(errno)))): the process, cgroup or interface is gone, or this needs root")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("reading \(path) failed (\(String(cString: strerror(errno)))): the process may have exited")
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func wrap<T>(_ path: String, _ body: (String) throws -> T) throws -> T {
        let text = try read(path)
        do { return try body(text) } catch let e as ProcFSError { throw SystemError(e.message) }
    }

    /// `sysconf(_SC_CLK_TCK)`: the unit of utime/stime in /proc/PID/stat.
    public static let ticksPerSecond: Int = Int(sysconf(Int32(_SC_CLK_TCK)))

    public static func smapsRollup(pid: Int32) throws -> ProcFS.SmapsRollup {
        let p = "/proc/\(pid)/smaps_rollup"
        return try wrap(p) { try ProcFS.smapsRollup($0, file: p) }
    }

    /// The sum of `Pss:` over `/proc/PID/smaps` (every mapping), bytes.
    public static func smapsPssSum(pid: Int32) throws -> UInt64 { ProcFS.smapsPssSum(try read("/proc/\(pid)/smaps")) }

    public static func stat(pid: Int32) throws -> ProcFS.ProcessStat {
        let p = "/proc/\(pid)/stat"
        return try wrap(p) { try ProcFS.processStat($0, file: p) }
    }

    /// utime + stime of the process, seconds.
    public static func cpuSeconds(pid: Int32) throws -> Double { try stat(pid: pid).cpuSeconds(ticksPerSecond: ticksPerSecond) }

    /// The direct children of `pid` (`/proc/PID/task/*/children`).
    public static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var out: [Int32] = []
        for t in tasks {
            guard let text = try? read("/proc/\(pid)/task/\(t)/children") else { continue }
            out += text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return out
    }

    /// `pid` and every process below it.
    public static func tree(_ pid: Int32) -> [Int32] {
        var out = [pid]
        var i = 0
        while i < out.count {
            out += children(of: out[i])
            i += 1
        }
        return out
    }

    /// Every pid whose `/proc/PID/comm` is one of `names` (dockerd, containerd-shim-runc-v2, conmon, ...).
    public static func pids(named names: Set<String>) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return all.compactMap { Int32($0) }.filter { pid in
            guard let c = try? read("/proc/\(pid)/comm") else { return false }
            return names.contains(c.trimmingCharacters(in: .whitespacesAndNewlines))
        }.sorted()
    }

    /// The host's cgroup layout: v2 when `/sys/fs/cgroup/cgroup.controllers` exists, else v1.
    public static func cgroupLayout(root: String = "/sys/fs/cgroup") -> CgroupLayout {
        FileManager.default.fileExists(atPath: root + "/cgroup.controllers") ? .v2 : .v1
    }

    /// Where the memory and CPU counters of the cgroup `pid` belongs to live.
    public struct CgroupFiles: Sendable, Equatable {
        public var layout: CgroupLayout
        public var memory: String
        public var memoryStat: String
        public var cpu: String
    }

    /// The counter files of the cgroup of `pid`, from `/proc/PID/cgroup`.
    public static func cgroupFiles(pid: Int32, root: String = "/sys/fs/cgroup") throws -> CgroupFiles {
        let p = "/proc/\(pid)/cgroup"
        let entries = try wrap(p) { try ProcFS.cgroupEntries($0, file: p) }
        switch cgroupLayout(root: root) {
        case .v2:
            guard let path = ProcFS.cgroupPath(entries, controller: nil) else {
                throw SystemError("\(p) has no unified (0::) line although \(root) is cgroup v2")
            }
            let dir = root + path
            return CgroupFiles(layout: .v2, memory: dir + "/memory.current", memoryStat: dir + "/memory.stat", cpu: dir + "/cpu.stat")
        case .v1:
            guard let mem = ProcFS.cgroupPath(entries, controller: "memory"), let cpu = ProcFS.cgroupPath(entries, controller: "cpuacct") else {
                throw SystemError("\(p) names no memory or cpuacct cgroup (v1): mount those controllers under \(root)")
            }
            return CgroupFiles(layout: .v1, memory: root + "/memory" + mem + "/memory.usage_in_bytes",
                               memoryStat: root + "/memory" + mem + "/memory.stat", cpu: root + "/cpuacct" + cpu + "/cpuacct.usage")
        }
    }

    public static func cgroup(_ files: CgroupFiles) throws -> CgroupReading {
        let m = try read(files.memory), s = try read(files.memoryStat), c = try read(files.cpu)
        do { return try CgroupReading.parse(layout: files.layout, memory: m, memoryStat: s, cpu: c) } catch let e as ProcFSError {
            throw SystemError("\(files.memory): \(e.message)")
        }
    }

    /// `/sys/class/net/IF/statistics/{rx,tx}_{bytes,packets}`.
    public static func interface(_ name: String) throws -> InterfaceCounters {
        let dir = "/sys/class/net/\(name)/statistics/"
        func n(_ f: String) throws -> UInt64 { try wrap(dir + f) { try ProcFS.integer($0, file: dir + f) } }
        return InterfaceCounters(rxBytes: try n("rx_bytes"), txBytes: try n("tx_bytes"), rxPackets: try n("rx_packets"), txPackets: try n("tx_packets"))
    }

    /// The counters of `interface` as seen from the network namespace of `pid`
    /// (`/proc/PID/net/dev`): a container's eth0 from the inside, whatever its host-side name.
    public static func interface(_ interface: String, inNamespaceOf pid: Int32) throws -> InterfaceCounters {
        let p = "/proc/\(pid)/net/dev"
        let table = try wrap(p) { try ProcFS.netDev($0, file: p) }
        guard let c = table[interface] else {
            throw SystemError("\(p) has no interface \(interface) (it has \(table.keys.sorted().joined(separator: ", ")))")
        }
        return c
    }
}
