import EdgeMeterSystem
import Foundation

/// Where the Debian kernel and its e1000 module live (put there once by `scripts/setup-engines.sh`).
public struct KernelCache: Sendable {
    public static let defaultDirectory = ProcessInfo.processInfo.environment["EDGEMETER_KERNEL_CACHE"] ?? "/var/cache/edgemeter/kernel"
    public var directory: String
    public init(directory: String = KernelCache.defaultDirectory) { self.directory = directory }

    /// The newest `boot/vmlinuz-*` in the cache.
    public func kernel() throws -> String {
        let boot = "\(directory)/boot"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? []
        guard let k = names.filter({ $0.hasPrefix("vmlinuz-") }).sorted().last else {
            throw StartupError("no guest kernel in \(boot): run `scripts/setup-engines.sh` (downloads linux-image-6.1.0-*-amd64 once into the cache) or set EDGEMETER_KERNEL_CACHE")
        }
        return "\(boot)/\(k)"
    }

    /// The e1000 NIC driver module for the guest (Debian builds it as a module).
    public func e1000Module() throws -> String {
        let path = "\(directory)/modules/e1000.ko"
        guard FileManager.default.fileExists(atPath: path) else {
            throw StartupError("\(path) is missing: run `scripts/setup-engines.sh` to unpack it from the kernel package")
        }
        return path
    }
}

/// A host file the initramfs carries at `destination` (absolute path in the guest), e.g. the
/// edgemeter binary and every library `ldd` lists for it. `strip`: the copy goes through
/// `strip --strip-unneeded` (debug sections and the static symbol table dropped, the dynamic
/// symbols kept), which makes a debug build's binary several times smaller.
public struct GuestFile: Sendable, Equatable {
    public var source: String
    public var destination: String
    public var strip: Bool
    public init(source: String, destination: String, strip: Bool = false) {
        (self.source, self.destination, self.strip) = (source, destination, strip)
    }

    /// `binary` at /usr/local/bin/edgemeter and every library `ldd` lists at its own path (as
    /// `edgemeter image build` and the LXC rootfs get them), all stripped.
    public static func edgemeter(binary: String) async throws -> [GuestFile] {
        var files = [GuestFile(source: binary, destination: "/usr/local/bin/edgemeter", strip: true)]
        for lib in try await ImageBuilder.sharedLibraries(of: binary) {
            files.append(GuestFile(source: lib, destination: lib, strip: !lib.contains("/ld-linux")))
        }
        return files
    }
}

/// Builds the guest's initramfs with `cpio -o -H newc`: busybox-static as the only program, an
/// `/init` that mounts devtmpfs and proc, loads e1000 and configures the QEMU user-network address
/// (10.0.2.15/24) when networking is on, runs the workload script for the ready check (marker on
/// the serial console, optional TCP/HTTP listener), prints `edgemeter-exit-status=N` (the
/// workload's exit status) on the console and powers off when the workload returns.
public struct Initramfs: Sendable {
    public var busybox: String
    public init(busybox: String = "/bin/busybox") { self.busybox = busybox }

    /// The start of the console line carrying the workload's exit status (`poweroff -f` makes QEMU
    /// exit 0 whatever the workload did).
    public static let exitStatusPrefix = "edgemeter-exit-status="

    /// The workload's exit status from the guest's console text: the last line that starts with
    /// `exitStatusPrefix` followed by digits (console lines may end in `\r`). Nil when there is none.
    public static func workloadExitStatus(console: String) -> Int? {
        for line in console.split(whereSeparator: \.isNewline).reversed() {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix(exitStatusPrefix) else { continue }
            if let n = Int(t.dropFirst(exitStatusPrefix.count)), n >= 0 { return n }
        }
        return nil
    }

    public func initScript(ready: ReadyCheck, network: Bool) -> String {
        var s = """
            #!/bin/busybox sh
            /bin/busybox mount -t devtmpfs devtmpfs /dev
            /bin/busybox mount -t proc proc /proc
            /bin/busybox --install -s /bin
            exec </dev/console >/dev/console 2>&1

            """
        if network {
            s += """
                insmod /lib/e1000.ko
                ip link set lo up
                ip link set eth0 up
                ip addr add 10.0.2.15/24 dev eth0
                ip route add default via 10.0.2.2

                """
        }
        s += "sh /workload\necho \(Self.exitStatusPrefix)$?\npoweroff -f\n"
        return s
    }

    /// Writes `path` (an uncompressed newc cpio archive the kernel unpacks as its root). `workload`
    /// replaces the built-in script for `ready` (`Workload.script(for:)`).
    /// `files` are copied in at their destinations (stripped copies where asked).
    public func build(to path: String, ready: ReadyCheck, network: Bool, e1000: String?, workload: String? = nil,
                      files: [GuestFile] = []) async throws {
        try await archive(to: path, e1000: network ? e1000 : nil, files: files,
                          scripts: [("init", initScript(ready: ready, network: network)),
                                    ("workload", workload ?? Workload.script(for: ready))])
    }

    /// Writes `path`, an uncompressed newc cpio archive (`cpio -o -H newc`, every file owned by
    /// root): /bin/busybox, /lib/e1000.ko when `e1000` is given, `files` at their destinations, and
    /// each of `scripts` (a path relative to the root, its text) with mode 0755. The startup
    /// backend's guest and the lab's vm nodes are both built by it.
    public func archive(to path: String, e1000: String?, files: [GuestFile] = [],
                        scripts: [(path: String, text: String)]) async throws {
        guard FileManager.default.isExecutableFile(atPath: busybox) else {
            throw StartupError("\(busybox) not found: apt-get install -y busybox-static")
        }
        guard let cpio = which("cpio") else { throw StartupError("cpio not found: apt-get install -y cpio") }
        let fm = FileManager.default
        let root = path + ".d"
        try? fm.removeItem(atPath: root)
        defer { try? fm.removeItem(atPath: root) }
        for dir in ["bin", "dev", "proc", "sys", "lib", "tmp"] {
            try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: busybox, toPath: "\(root)/bin/busybox")
        if let e1000 { try fm.copyItem(atPath: e1000, toPath: "\(root)/lib/e1000.ko") }
        let strip = which("strip")
        for f in files {
            guard f.destination.hasPrefix("/"), !f.destination.contains("..") else {
                throw StartupError("guest file destination \(f.destination) must be an absolute path without ..")
            }
            let to = root + f.destination
            do {
                try fm.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
            } catch {
                throw StartupError("cannot create \(to) in the initramfs tree: \(error.localizedDescription)")
            }
            if f.strip, let strip {
                let r = try await runCommand([strip, "--strip-unneeded", "-o", to, f.source])
                guard r.ok else { throw StartupError("strip \(f.source) for the initramfs failed: \(r.combined)") }
            } else {
                // The file, not a link to it (/lib64/ld-linux-x86-64.so.2 is an absolute symlink on the host).
                let real = (f.source as NSString).resolvingSymlinksInPath
                do { try fm.copyItem(atPath: real, toPath: to) } catch {
                    throw StartupError("copying \(f.source) into the initramfs failed: \(error.localizedDescription)")
                }
            }
        }
        for (rel, text) in scripts {
            guard fm.createFile(atPath: "\(root)/\(rel)", contents: Data(text.utf8), attributes: [.posixPermissions: 0o755]) else {
                throw StartupError("cannot write \(root)/\(rel)")
            }
        }
        let list = ["."] + (fm.enumerator(atPath: root)?.compactMap { $0 as? String }.sorted() ?? [])
        let listFile = path + ".list"
        try (list.joined(separator: "\n") + "\n").write(toFile: listFile, atomically: true, encoding: .utf8)
        defer { try? fm.removeItem(atPath: listFile) }
        let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: listFile))
        defer { try? input.close() }
        let r = try await runCommand([cpio, "-o", "-H", "newc", "-R", "0:0", "-D", root, "-F", path], stdin: input)
        guard r.ok else { throw StartupError("cpio failed building \(path): \(r.combined)") }
    }
}
