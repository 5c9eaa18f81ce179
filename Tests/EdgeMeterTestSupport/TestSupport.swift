import Foundation

/// Result of a command run by a test.
public struct CommandResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program (argument list, no shell) and waits, with a hard time limit.
@discardableResult
public func runCommand(_ path: String, _ args: [String], timeout: TimeInterval = 120, environment: [String: String]? = nil) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning { p.terminate(); Thread.sleep(forTimeInterval: 0.5); if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    p.waitUntilExit()
    group.wait()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Finds a program on PATH, nil when absent.
public func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
    for dir in dirs {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// The package root (for the built binary and test data).
public func packageRoot(file: String = #filePath) -> URL {
    var u = URL(fileURLWithPath: file)
    while u.path != "/" {
        u.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: u.appendingPathComponent("Package.swift").path) { return u }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}

/// The `edgemeter` binary built alongside the tests (debug unless EDGEMETER_BIN says otherwise).
public func edgemeterBinary() -> String? {
    if let p = ProcessInfo.processInfo.environment["EDGEMETER_BIN"] { return p }
    let root = packageRoot()
    for c in [".build/debug/edgemeter", ".build/x86_64-unknown-linux-gnu/debug/edgemeter"] {
        let p = root.appendingPathComponent(c).path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// Why a root-only test cannot run here, or nil when it can.
public func rootAndIPUnavailableReason() -> String? {
    if getuid() != 0 { return "needs root for network namespaces: run the tests as root (sudo ./scripts/test)" }
    if which("ip") == nil { return "needs iproute2's `ip`: apt-get install iproute2" }
    return nil
}

/// A network namespace with a veth pair to the host, made by and for one test and deleted after.
///
/// Host side `<name>h` gets `10.<a>.<b>.1/30`, namespace side `<name>n` gets `.2` — a /30 that only
/// this test uses, so no traffic leaves the machine.
public final class TestNetns {
    public let name: String
    public let hostAddress: String
    public let nsAddress: String
    private let ip: String

    public init(prefix: String = "emt") throws {
        guard let ip = which("ip") else { throw NSError(domain: "TestNetns", code: 1, userInfo: [NSLocalizedDescriptionKey: "ip not found"]) }
        self.ip = ip
        let n = Int.random(in: 1...60000)
        self.name = "\(prefix)\(n)"
        let a = 200 + n % 50, b = (n / 50) % 64 * 4
        hostAddress = "10.\(a).\(b).1"
        nsAddress = "10.\(a).\(b).2"
        for args in [["netns", "add", name],
                     ["link", "add", "\(name)h", "type", "veth", "peer", "name", "\(name)n"],
                     ["link", "set", "\(name)n", "netns", name],
                     ["addr", "add", "\(hostAddress)/30", "dev", "\(name)h"],
                     ["link", "set", "\(name)h", "up"],
                     ["netns", "exec", name, "ip", "addr", "add", "\(nsAddress)/30", "dev", "\(name)n"],
                     ["netns", "exec", name, "ip", "link", "set", "\(name)n", "up"],
                     ["netns", "exec", name, "ip", "link", "set", "lo", "up"]] {
            let r = try runCommand(ip, args)
            if r.status != 0 {
                remove()
                throw NSError(domain: "TestNetns", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "ip \(args.joined(separator: " ")): \(r.stderr)"])
            }
        }
    }

    /// Runs a command inside the namespace.
    @discardableResult
    public func exec(_ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        try runCommand(ip, ["netns", "exec", name] + args, timeout: timeout)
    }

    public func remove() {
        _ = try? runCommand(ip, ["link", "del", "\(name)h"])
        _ = try? runCommand(ip, ["netns", "del", name])
    }

    deinit { remove() }
}

/// A network namespace with only its loopback up, for commands given a name that does not resolve:
/// the lookup cannot reach the DNS server (no route), so it fails at once and nothing leaves this
/// machine. `nosuch.invalid` in the tests runs in here, never in the host's namespace.
public final class IsolatedNetns {
    public let name: String
    private let ip: String

    /// Nil (with the reason in `unavailableReason`) when namespaces cannot be made here.
    public init() throws {
        guard getuid() == 0, let ip = which("ip") else {
            throw NSError(domain: "IsolatedNetns", code: 1, userInfo: [NSLocalizedDescriptionKey: rootAndIPUnavailableReason() ?? "ip not found"])
        }
        self.ip = ip
        name = "emtdns\(Int.random(in: 1...999_999))"
        for args in [["netns", "add", name], ["netns", "exec", name, "ip", "link", "set", "lo", "up"]] {
            let r = try runCommand(ip, args)
            if r.status != 0 {
                remove()
                throw NSError(domain: "IsolatedNetns", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "ip \(args.joined(separator: " ")): \(r.stderr)"])
            }
        }
    }

    /// Runs a program inside the namespace.
    public func run(_ path: String, _ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        try runCommand(ip, ["netns", "exec", name, path] + args, timeout: timeout)
    }

    public func remove() { _ = try? runCommand(ip, ["netns", "del", name]) }
    deinit { remove() }
}
