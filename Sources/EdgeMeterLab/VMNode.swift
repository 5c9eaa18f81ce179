import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem
import EdgeMeterStartup
import EdgeMeterCore

// vm nodes: a QEMU guest (TCG: KVM guests hang on this kind of host, see MACHINE-NOTES) booted from
// the cached Debian kernel and a busybox initramfs built for the node. The node's namespace holds
// a bridge `br0` joining its `eth0` (the lab's veth, no address in the namespace) and a TAP device
// `tap0` that QEMU's e1000 NIC uses, so the guest itself owns the node's address on the lab
// network; its routes and workload are baked into the initramfs's /init. The QEMU process runs in
// the node's namespace (removed with it at teardown). A second serial port (the guest's ttyS1, QEMU's
// `-serial unix:<topo>.logs/<node>.cmd,server=on,wait=off`) is a command channel that needs no
// network: a busybox shell loop in the guest runs one line at a time; `reach` sends it only the fixed
// commands it builds itself (`ip route get`, busybox `ping`, busybox `nc`), see VMCommandChannel.

extension LabExecutor {
    /// The unix socket of a vm node's command channel (its guest's ttyS1): `<topo>.logs/<node>.cmd`,
    /// removed with the log directory at `lab down`.
    public static func vmCommandSocket(logDirectory: String, node: String) -> String { "\(logDirectory)/\(node).cmd" }

    /// The guest's command loop (busybox sh, stdin and stdout on ttyS1): each line read is run by `sh -c`.
    public static let vmCommandLoop = "while read -r l; do sh -c \"$l\"; done"

    /// The console line the guest's /init prints once its address, routes and workload are set up.
    public static let vmReadyMarker = "edgemeter-vm-ready"

    /// The guest's /init (busybox sh): mounts, e1000, the address and routes, the workload in the
    /// background (its output on the console); once eth0 has carrier (e1000 negotiates its link
    /// about a second after `up`) and each of `ports` listens (`netstat -ltn`, 20 s at most), the
    /// ready marker. It never returns.
    public static func vmInitScript(address: String, prefixLength: Int, routes: [(to: String, via: String)], workload: [String], ports: [Int] = []) -> String {
        var s = """
            #!/bin/busybox sh
            /bin/busybox mount -t devtmpfs devtmpfs /dev
            /bin/busybox mount -t proc proc /proc
            /bin/busybox mount -t sysfs sysfs /sys
            /bin/busybox --install -s /bin
            exec </dev/console >/dev/console 2>&1
            insmod /lib/e1000.ko
            ip link set lo up
            ip link set eth0 up
            ip addr add \(address)/\(prefixLength) dev eth0

            """
        for r in routes { s += "ip route add \(r.to) via \(r.via)\n" }
        if !workload.isEmpty { s += workload.map(shellQuote).joined(separator: " ") + " &\n" }
        s += "n=0; while [ \"$(cat /sys/class/net/eth0/carrier 2>/dev/null)\" != 1 ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done\n"
        for p in ports { s += "n=0; while ! netstat -ltn | grep -q ':\(p) ' && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done\n" }
        // The command channel: ttyS1 raw (no echo, no CR/LF translation), one line read and run at a time.
        s += "stty -F /dev/ttyS1 raw -echo\n"
        s += "(\(vmCommandLoop)) </dev/ttyS1 >/dev/ttyS1 2>&1 &\n"
        s += "echo \(vmReadyMarker)\nwhile :; do sleep 3600; done\n"
        return s
    }

    /// What a vm node needs on the host: QEMU, the cached kernel and e1000 module, cpio, busybox-static.
    func preflightVM(_ node: Node) throws {
        guard which(QEMUBackend.binary) != nil else {
            throw LabError(.refused, "vm node \(node.name) needs \(QEMUBackend.binary): apt-get install -y qemu-system-x86 (scripts/setup.sh)")
        }
        do {
            _ = try KernelCache().kernel()
            _ = try KernelCache().e1000Module()
        } catch { throw LabError(.refused, "vm node \(node.name): \(error)") }
        guard which("cpio") != nil, FileManager.default.isExecutableFile(atPath: "/bin/busybox") else {
            throw LabError(.refused, "vm node \(node.name) boots a busybox initramfs: apt-get install -y cpio busybox-static")
        }
    }

    /// Builds the node's initramfs in the lab's log directory and starts QEMU inside the node's
    /// namespace (`ip netns exec`), console in `<topo>.logs/<node>.console`; returns QEMU's pid
    /// once the guest printed its ready marker (at most `vmBootTimeout`).
    func startVM(_ node: Node, port: TopologyPlan.Port, namespace: String, topology: String, stop: StopFlag?) async throws -> Int32 {
        let dir = logDirectory(topology)
        let initrd = "\(dir)/\(node.name).initrd"
        let console = "\(dir)/\(node.name).console"
        let routes = node.routes.map { (to: $0.to?.description ?? "default", via: $0.via.description) }
        let script = Self.vmInitScript(address: port.address, prefixLength: port.prefixLength, routes: routes, workload: node.workload,
                                       ports: node.workload.isEmpty ? [] : node.ports)
        do {
            try await Self.buildInitramfs(to: initrd, initScript: script, e1000: try KernelCache().e1000Module())
        } catch let e as LabError { throw e } catch {
            throw LabError(.stepFailed, "vm node \(node.name): building its initramfs failed: \(error)")
        }
        let kernel: String
        do { kernel = try KernelCache().kernel() } catch { throw LabError(.refused, "vm node \(node.name): \(error)") }
        guard let ipPath = which(ip.program), let qemu = which(QEMUBackend.binary) else {
            throw LabError(.refused, "vm node \(node.name) needs `ip` and \(QEMUBackend.binary) on PATH")
        }
        let log = "\(dir)/\(node.name).log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError(.stepFailed, "vm node \(node.name): cannot write \(log): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let args = ["-name", namespace, "-accel", "tcg", "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                    "-serial", "file:\(console)",
                    "-serial", "unix:\(Self.vmCommandSocket(logDirectory: dir, node: node.name)),server=on,wait=off", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1",
                    "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "e1000,netdev=n0,romfile="]
        let child: ChildProcess
        do {
            child = try ChildProcess([ipPath, "netns", "exec", namespace, qemu] + args, outputFD: fd, newProcessGroup: true)
        } catch {
            throw LabError(.stepFailed, "vm node \(node.name): QEMU did not start: \(error)")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + vmBootTimeout
        while clock.now < deadline {
            if let stop, stop.isStopped { throw LabError(.interrupted, "lab up \(topology) interrupted by \(stop.reason ?? "a stop request")") }
            let text = (try? String(contentsOfFile: console, encoding: .utf8)) ?? ""
            if text.contains(Self.vmReadyMarker) { return child.pid }
            if !Self.isAlive(child.pid) {
                throw LabError(.stepFailed, "vm node \(node.name): QEMU exited before the guest was ready; its output: \(logTail(topology, node.name)); console: \(String(text.suffix(300)))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = (try? String(contentsOfFile: console, encoding: .utf8)) ?? ""
        throw LabError(.stepFailed, "vm node \(node.name): the guest printed no `\(Self.vmReadyMarker)` within \(vmBootTimeout) (TCG boots take ≈ 6 s on an idle host); last console lines: \(String(text.suffix(300)))")
    }

    /// How long a vm node's guest may take to boot (TCG, on a host shared with other work).
    var vmBootTimeout: Duration { .seconds(90) }

    /// An uncompressed newc cpio archive: /bin/busybox, /lib/e1000.ko and `initScript` as /init
    /// (built as the startup backend's guest is, by `Initramfs.archive`).
    static func buildInitramfs(to path: String, initScript: String, e1000: String) async throws {
        guard which("cpio") != nil else { throw LabError(.refused, "cpio not found: apt-get install -y cpio") }
        try await Initramfs().archive(to: path, e1000: e1000, scripts: [("init", initScript)])
    }
}

/// A connection to a vm node's command channel (the unix socket QEMU serves for the guest's ttyS1).
/// Each `run` writes one line, `echo @@B<n>; COMMAND 2>&1; echo @@E<n>=$?`, and reads until the end
/// marker: the command's output (stdout and stderr together) and its exit status. Only commands
/// edgemeter builds are sent; the guest runs them one after the other, so one connection serves one
/// caller at a time (QEMU accepts a single client on the socket).
final class VMCommandChannel {
    let path: String
    private var fd: Int32 = -1
    private var buffer = ""
    private var sequence = 0

    /// Connects to `path`; throws a LabError naming the socket when it is missing or refuses.
    init(path: String) throws {
        self.path = path
        // SOCK_STREAM | SOCK_CLOEXEC by value: Glibc's names are not found in this module (see NamespaceConnect).
        let s = socket(AF_UNIX, 1 | 0o2000000, 0)
        guard s >= 0 else { throw LabError(.stepFailed, "socket(AF_UNIX) failed: \(String(cString: strerror(errno)))") }
        guard let rc = UnixSocketAddress.connect(s, path: path) else {
            close(s)
            throw LabError(.refused, "the vm command socket path \(path) is longer than a unix socket allows; use a shorter state directory or topology name")
        }
        guard rc == 0 else {
            let why = String(cString: strerror(errno))
            close(s)
            throw LabError(.stepFailed, "cannot connect to the vm command channel \(path): \(why); is the lab up (`edgemeter lab up`), and was it brought up by this version?")
        }
        fd = s
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Runs `command` in the guest; nil status when no end marker came within `timeout` (monotonic clock).
    func run(_ command: String, timeout: Duration) -> (status: Int32?, output: String) {
        sequence += 1
        let begin = "@@B\(sequence)", end = "@@E\(sequence)="
        let line = "echo \(begin); \(command) 2>&1; echo \(end)$?\n"
        var out = Array(line.utf8)
        while !out.isEmpty {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (nil, "writing to \(path) failed: \(String(cString: strerror(errno)))") }
            out.removeFirst(n)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            // Lines so far (the guest's tty is raw; a stray CR is dropped anyway).
            let lines = buffer.replacingOccurrences(of: "\r", with: "").components(separatedBy: "\n")
            if let b = lines.firstIndex(of: begin),
               let e = lines[(b + 1)...].firstIndex(where: { $0.hasPrefix(end) }), e < lines.count - 1 {
                let status = Int32(lines[e].dropFirst(end.count))
                buffer = lines[(e + 1)...].joined(separator: "\n")
                return (status ?? -1, lines[(b + 1)..<e].joined(separator: "\n"))
            }
            let left = deadline - clock.now
            guard left > .zero else { return (nil, buffer) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(left.seconds * 1000 + 1, 60_000))
            let r = poll(&p, 1, ms)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (nil, buffer + (n == 0 ? "[the channel closed]" : "[read failed: \(String(cString: strerror(errno)))]")) }
            buffer += String(decoding: chunk[0..<n], as: UTF8.self)
        }
    }
}
