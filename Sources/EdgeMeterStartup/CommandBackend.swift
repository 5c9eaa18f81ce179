import EdgeMeterCore
import EdgeMeterSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Any other hypervisor or cloud, by template: each phase is a command given as an argument list
/// (run directly, never through a shell). Placeholders `{name}` (the instance name,
/// `edgemeter-<run>-<n>`), `{index}` and any `variables` (`{image}`, `{flavor}`, ...) are substituted
/// in every argument.
public struct CommandTemplate: Sendable, Equatable {
    /// Optional; timed as `create`.
    public var create: [String]?
    /// Timed as `start`: until it exits 0, or, when `detached`, until it has been spawned (it then
    /// stays the instance's process, e.g. a server in the foreground).
    public var start: [String]
    public var detached: Bool
    /// Optional; repeated until it exits 0, timed as `running`. Without it `running` is the check
    /// that the detached process is still alive (≈ 0 ms).
    public var running: [String]?
    /// Optional; repeated until it exits 0 (and prints `readyOutput` when set): then it is the ready
    /// check (label `ready=command`) instead of the exit/marker/tcp/http/icmp check.
    public var ready: [String]?
    public var readyOutput: String?
    /// Optional; without it a detached process gets SIGTERM (SIGKILL after 5 s).
    public var stop: [String]?
    public var remove: [String]?
    /// Where tcp/http/icmp checks connect.
    public var host: String

    public init(create: [String]? = nil, start: [String], detached: Bool = false, running: [String]? = nil,
                ready: [String]? = nil, readyOutput: String? = nil, stop: [String]? = nil, remove: [String]? = nil,
                host: String = "127.0.0.1") {
        self.create = create
        self.start = start
        self.detached = detached
        self.running = running
        self.ready = ready
        self.readyOutput = readyOutput
        self.stop = stop
        self.remove = remove
        self.host = host
    }

    /// Documented presets. None of them was run on the development machine (no VirtualBox, no
    /// OpenStack cloud, no LXD there); they show how to fill the template.
    /// - `virtualbox`: clones `{base}` (a registered VM with Guest Additions), ready when the guest
    ///   reports an IPv4 address; needs `VBoxManage` and hardware virtualization.
    /// - `openstack`: `server create --wait` (returns when ACTIVE), ready when the console log shows
    ///   `login:`; needs `openstack` configured (OS_CLOUD or OS_* variables), `{image}`, `{flavor}`, `{network}`.
    /// - `lxd`: `lxc init {image}` + `lxc start`, ready when `lxc exec {name} -- true` works; needs LXD.
    public static let presets: [String: CommandTemplate] = [
        "virtualbox": CommandTemplate(
            create: ["VBoxManage", "clonevm", "{base}", "--name", "{name}", "--register"],
            start: ["VBoxManage", "startvm", "{name}", "--type", "headless"],
            ready: ["VBoxManage", "guestproperty", "wait", "{name}", "/VirtualBox/GuestInfo/Net/0/V4/IP", "--timeout", "5000"],
            stop: ["VBoxManage", "controlvm", "{name}", "poweroff"],
            remove: ["VBoxManage", "unregistervm", "{name}", "--delete"]),
        "openstack": CommandTemplate(
            start: ["openstack", "server", "create", "--wait", "--image", "{image}", "--flavor", "{flavor}", "--network", "{network}", "{name}"],
            ready: ["openstack", "console", "log", "show", "{name}"], readyOutput: "login:",
            stop: ["openstack", "server", "stop", "{name}"],
            remove: ["openstack", "server", "delete", "--wait", "{name}"]),
        "lxd": CommandTemplate(
            create: ["lxc", "init", "{image}", "{name}"],
            start: ["lxc", "start", "{name}"],
            ready: ["lxc", "exec", "{name}", "--", "true"],
            stop: ["lxc", "stop", "{name}"],
            remove: ["lxc", "delete", "{name}"]),
    ]

    /// The template with every command expanded for instance `name` (see `expand`).
    func expanded(name: String, index: Int, variables: [String: String]) throws -> CommandTemplate {
        let e = { (argv: [String]?) in try self.expand(argv, name: name, index: index, variables: variables) }
        var t = self
        t.create = try e(create)
        t.start = try e(start) ?? []
        t.running = try e(running)
        t.ready = try e(ready)
        t.stop = try e(stop)
        t.remove = try e(remove)
        return t
    }

    func expand(_ argv: [String]?, name: String, index: Int, variables: [String: String]) throws -> [String]? {
        guard let argv else { return nil }
        var vars = variables
        vars["name"] = name
        vars["index"] = String(index + 1)
        return try argv.map { arg in
            var out = arg
            for (k, v) in vars { out = out.replacingOccurrences(of: "{\(k)}", with: v) }
            if let open = out.range(of: "{"), let close = out.range(of: "}", range: open.upperBound..<out.endIndex) {
                let key = out[open.upperBound..<close.lowerBound]
                if !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                    throw StartupError("command argument \"\(arg)\" uses {\(key)} but no value was given: pass --var \(key)=VALUE")
                }
            }
            return out
        }
    }
}

public final class CommandBackend: StartupBackend, @unchecked Sendable {
    public let template: CommandTemplate
    public let variables: [String: String]
    public let runTag: String
    public let preset: String?
    public var name: String { "cmd" }
    public var labels: [String: String] {
        var l = ["program": (template.start.first as NSString?)?.lastPathComponent ?? ""]
        if let preset { l["preset"] = preset }
        return l
    }
    private let lock = NSLock()
    private var live: [CommandInstance] = []

    public init(template: CommandTemplate, variables: [String: String] = [:], runID: String, preset: String? = nil) {
        self.template = template
        self.variables = variables
        self.runTag = instanceTag(runID)
        self.preset = preset
    }

    public func prepare(stop: StopFlag) async throws {
        for argv in [template.create, template.start, template.running, template.ready, template.stop, template.remove] {
            guard let program = argv?.first else { continue }
            if !program.contains("{") { _ = try resolveExecutable(program) }
        }
        _ = try template.expand(template.start, name: "edgemeter-check", index: 0, variables: variables)
    }

    public func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        let name = "edgemeter-\(runTag)-\(index + 1)"
        let inst = CommandInstance(name: name, commands: try template.expanded(name: name, index: index, variables: variables))
        lock.withLock { live.append(inst) }
        if let create = inst.commands.create {
            let r = try await runCommand(create)
            guard r.ok else { throw StartupError("create command \(create.joined(separator: " ")) exited \(r.status): \(r.combined)") }
        }
        return inst
    }

    public func cleanup() async {
        let insts: [CommandInstance] = lock.withLock { let l = live; live = []; return l }
        for inst in insts { await inst.forceStop() }
    }
}

final class CommandInstance: StartupInstance, @unchecked Sendable {
    let name: String
    /// The template with this instance's name and variables filled in.
    let commands: CommandTemplate
    var template: CommandTemplate { commands }
    var startArgv: [String] { commands.start }
    var runningArgv: [String]? { commands.running }
    var readyArgv: [String]? { commands.ready }
    var stopArgv: [String]? { commands.stop }
    var removeArgv: [String]? { commands.remove }
    private var process: SpawnedProcess?
    private let output = LineBuffer()
    private var removed = false
    var labels: [String: String] { readyArgv != nil ? ["ready": "command"] : [:] }

    /// The template's `ready` command replaces the plan's check: repeated until it exits 0 (and
    /// prints `readyOutput` when set).
    var ownReadyCheck: (@Sendable (Deadline, StopFlag) async throws -> Void)? {
        guard let readyArgv else { return nil }
        let expected = template.readyOutput
        return { deadline, stop in
            try await poll("ready command \(readyArgv.joined(separator: " ")) to succeed", until: deadline, stop: stop, interval: .milliseconds(10)) {
                let r = try await runCommand(readyArgv)
                return r.ok && (expected.map { r.stdout.contains($0) } ?? true)
            }
        }
    }

    init(name: String, commands: CommandTemplate) {
        self.name = name
        self.commands = commands
    }

    func start() async throws {
        if template.detached {
            let pipe = Pipe()
            let buffer = output
            pipe.fileHandleForReading.readabilityHandler = { h in
                let d = h.availableData
                if d.isEmpty { h.readabilityHandler = nil } else { buffer.feedRaw(Array(d)) }
            }
            process = try SpawnedProcess(startArgv, outputFD: pipe.fileHandleForWriting.fileDescriptor)
            try pipe.fileHandleForWriting.close()
        } else {
            let r = try await runCommand(startArgv)
            output.feedRaw(Array((r.stdout + r.stderr).utf8))
            guard r.ok else { throw StartupError("start command \(startArgv.joined(separator: " ")) exited \(r.status): \(r.combined)") }
        }
    }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        if let runningArgv {
            try await poll("running command to succeed", until: deadline, stop: stop, interval: .milliseconds(10)) {
                try await runCommand(runningArgv).ok
            }
        } else if let p = process, !p.isRunning, let code = p.terminationStatus, code != 0 {
            throw StartupError("start command exited \(code) right away: \(startArgv.joined(separator: " "))")
        }
    }

    /// The template's `host` (tcp/http/icmp checks connect there).
    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress {
        InstanceAddress(host: template.host)
    }

    /// A detached start: its process. Otherwise the start command already ran to completion (with
    /// status 0, or `start` would have failed).
    func workloadState() async throws -> WorkloadState {
        guard let p = process else { return .exited(status: 0) }
        guard let code = p.terminationStatus else { return .running }
        return .exited(status: Int(code))
    }

    /// The start command's stdout and stderr so far.
    func log() async throws -> String { output.allText }

    func stop() async throws {
        if let stopArgv {
            let r = try await runCommand(stopArgv)
            guard r.ok else { throw StartupError("stop command \(stopArgv.joined(separator: " ")) exited \(r.status): \(r.combined)") }
        }
        if let p = process, p.isRunning {
            if stopArgv == nil { p.signal(SIGTERM) }
            try await poll("the instance process to exit", until: .after(.seconds(5)), stop: StopFlag(), interval: .milliseconds(1)) { !p.isRunning }
        }
    }

    func remove() async throws {
        removed = true
        if let removeArgv {
            let r = try await runCommand(removeArgv)
            guard r.ok else { throw StartupError("remove command \(removeArgv.joined(separator: " ")) exited \(r.status): \(r.combined)") }
        }
    }

    /// Cleanup after a failure or a stop: kills the detached process, runs stop/remove best-effort.
    func forceStop() async {
        if let p = process, p.isRunning {
            p.signal(SIGTERM)
            let deadline = ContinuousClock.now + .seconds(5)
            while p.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            p.signal(SIGKILL)
            while p.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        }
        if !removed, let removeArgv { removed = true; _ = try? await runCommand(removeArgv) }
    }
}
