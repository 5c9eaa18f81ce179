import EdgeMeterCore
import EdgeMeterSystem
import Foundation

/// LXC system containers from the busybox template (created offline), driven with the lxc-* tools
/// (argument lists, no shell). Phases, timed on the client with a monotonic clock:
/// - create: `lxc-create -t busybox` plus writing the workload and config (address, init command);
/// - start: `lxc-start -d` returns; running: polling `lxc-info -s` until RUNNING (or STOPPED for a
///   workload that already finished); each poll forks lxc-info (≈ 2-5 ms resolution);
/// - ready: the runner's check on what the instance exposes: the workload's state (STOPPED, then
///   the exit status the container's init writes to `/edgemeter-exit-status` in the rootfs, read
///   from the host; none recorded fails `ready`), its log (`/edgemeter.log` in the rootfs, read from
///   the host) and the container's address on the bridge;
/// - stop: `lxc-stop -t 2` (the workload exits on SIGTERM); remove: `lxc-destroy`.
/// Containers join `bridge`, which the run creates (and later deletes) when it is missing.
public final class LXCBackend: StartupBackend, @unchecked Sendable {
    public let runTag: String
    public let bridge: String
    /// The bridge's address; containers get .10, .11, ... of its /24.
    public let bridgeAddress: String
    public var name: String { "lxc" }
    public var labels: [String: String] { ["template": "busybox", "bridge": bridge] }
    private var createdBridge = false
    private let lock = NSLock()
    private var created: [String] = []

    /// Workload script (busybox sh) replacing the built-in one for the ready check. The container's
    /// init (`/edgemeter-workload`) sources it, so its traps apply to PID 1 as before, and records
    /// its exit status from an EXIT trap. A script that `exec`s another program or sets its own
    /// EXIT trap leaves no status, and ready=exit then fails saying so.
    public let script: String?

    /// The init the container runs (`lxc.init.cmd`): output to `/edgemeter.log`, the workload
    /// (`/edgemeter-workload.sh`) sourced into PID 1, its exit status written to
    /// `/edgemeter-exit-status` when that shell exits (also on the SIGTERM of `lxc-stop`).
    static let initScript = """
        #!/bin/sh
        exec >/edgemeter.log 2>&1
        trap 'echo $? >/edgemeter-exit-status' EXIT
        . /edgemeter-workload.sh

        """

    public init(runID: String, bridge: String = "edgemeter-br0", bridgeAddress: String = "10.213.77.1", script: String? = nil) {
        self.runTag = instanceTag(runID)
        self.script = script
        self.bridge = bridge
        self.bridgeAddress = bridgeAddress
    }

    public static let lxcPath = "/var/lib/lxc"

    public func prepare(stop: StopFlag) async throws {
        for tool in ["lxc-create", "lxc-start", "lxc-info", "lxc-stop", "lxc-destroy"] where which(tool) == nil {
            throw StartupError("\(tool) not found: install LXC (apt-get install -y lxc)")
        }
        guard FileManager.default.fileExists(atPath: "/usr/share/lxc/templates/lxc-busybox") else {
            throw StartupError("the LXC busybox template is missing (/usr/share/lxc/templates/lxc-busybox): apt-get install -y lxc busybox-static")
        }
        guard geteuid() == 0 else { throw StartupError("LXC containers need root here: run edgemeter as root") }
        do {
            if try await IPRoute().ensureBridge(bridge, address: "\(bridgeAddress)/24") { createdBridge = true }
        } catch let e as SystemError {
            throw StartupError(bridgeFailure: bridge, e)
        }
    }

    public func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        let name = "edgemeter-\(runTag)-\(index + 1)"
        lock.withLock { created.append(name) }
        let r = try await runCommand(["lxc-create", "-n", name, "-t", "busybox"])
        guard r.ok else { throw StartupError("lxc-create \(name) failed: \(r.combined)") }
        let root = "\(Self.lxcPath)/\(name)"
        let octets = bridgeAddress.split(separator: ".")
        let address = octets.dropLast().joined(separator: ".") + ".\(10 + index % 240)"
        for (file, text) in [("edgemeter-workload", Self.initScript), ("edgemeter-workload.sh", self.script ?? Workload.script(for: ready))] {
            let path = "\(root)/rootfs/\(file)"
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o755]) else {
                throw StartupError("cannot write \(path): check that \(Self.lxcPath) is writable (run as root)")
            }
        }
        var config = try String(contentsOfFile: "\(root)/config", encoding: .utf8)
        config = config.replacingOccurrences(of: "lxc.net.0.link = lxcbr0", with: "lxc.net.0.link = \(bridge)")
        config += """

            # edgemeter startup workload
            lxc.init.cmd = /edgemeter-workload
            lxc.signal.halt = SIGTERM
            lxc.net.0.ipv4.address = \(address)/24

            """
        try config.write(toFile: "\(root)/config", atomically: true, encoding: .utf8)
        return LXCInstance(name: name, address: address, root: root)
    }

    public func cleanup() async {
        let names: [String] = lock.withLock { let n = created; created = []; return n }
        for name in names { await LXCInstance.destroy(name) }
        _ = await Self.removeLeftovers(prefix: "edgemeter-\(runTag)-")
        if createdBridge {
            try? await IPRoute().deleteLink(bridge)
            createdBridge = false
        }
    }

    /// Stops and destroys every container whose name starts with `prefix`; returns their names.
    public static func removeLeftovers(prefix: String = "edgemeter-") async -> [String] {
        guard which("lxc-ls") != nil, let r = try? await runCommand(["lxc-ls", "-1"]) else { return [] }
        return await removeEach(r.stdout, prefix: prefix) { name in
            await LXCInstance.destroy(name)
            return "lxc container \(name)"
        }
    }
}

final class LXCInstance: StartupInstance, @unchecked Sendable {
    let name: String
    let address: String
    let root: String
    var labels: [String: String] { ["address": address] }

    init(name: String, address: String, root: String) {
        self.name = name
        self.address = address
        self.root = root
    }

    func state() async throws -> String {
        let r = try await runCommand(["lxc-info", "-n", name, "-s"])
        guard r.ok else { throw StartupError("lxc-info \(name): \(r.combined)") }
        return r.stdout.replacingOccurrences(of: "State:", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func start() async throws {
        let r = try await runCommand(["lxc-start", "-n", name, "-d"])
        guard r.ok else { throw StartupError("lxc-start \(name) failed: \(r.combined) (is the bridge up? see `lxc-start -n \(name) -F -l DEBUG`)") }
    }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        try await poll("\(name) RUNNING", until: deadline, stop: stop, interval: .milliseconds(1)) {
            let s = try await self.state()
            return s == "RUNNING" || s == "STOPPED"
        }
    }

    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress {
        let host: String = self.address
        return InstanceAddress(host: host)
    }

    /// STOPPED says nothing about how the workload ended: its init recorded the status in the rootfs.
    func workloadState() async throws -> WorkloadState {
        guard try await state() == "STOPPED" else { return .running }
        let file = "\(root)/rootfs/edgemeter-exit-status"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
              let status = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            let log = ((try? await self.log()) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return .unknown("\(name) stopped but its workload's exit status was not recorded (\(file) missing or unreadable): "
                + "the workload was killed by a signal, or it `exec`s another program or sets its own EXIT trap; "
                + "its log ends: \(log.isEmpty ? "(empty)" : String(log.suffix(200)))")
        }
        return .exited(status: status)
    }

    /// The workload's output (`/edgemeter.log` in the rootfs, read from the host).
    func log() async throws -> String {
        (try? String(contentsOfFile: "\(root)/rootfs/edgemeter.log", encoding: .utf8)) ?? ""
    }

    func stop() async throws {
        if try await state() == "STOPPED" { return }
        let r = try await runCommand(["lxc-stop", "-n", name, "-t", "2"])
        guard r.ok || r.combined.contains("not running") else { throw StartupError("lxc-stop \(name) failed: \(r.combined)") }
    }

    func remove() async throws {
        let r = try await runCommand(["lxc-destroy", "-n", name])
        guard r.ok else { throw StartupError("lxc-destroy \(name) failed: \(r.combined)") }
    }

    static func destroy(_ name: String) async {
        guard FileManager.default.fileExists(atPath: "\(LXCBackend.lxcPath)/\(name)") else { return }
        _ = try? await runCommand(["lxc-stop", "-n", name, "-k"])
        _ = try? await runCommand(["lxc-destroy", "-n", name])
    }
}
