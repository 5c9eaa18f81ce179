import EdgeMeterSystem
import Foundation

/// Result of a command run by a test.
public struct CommandResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program (argument list, no shell) and waits, with a hard time limit after which its
/// process group gets SIGKILL (`Command.runBlocking`: posix_spawn, no inherited descriptors).
/// The run history of a started edgemeter goes to `testHistoryPath` unless the environment names one.
@discardableResult
public func runCommand(_ path: String, _ args: [String], timeout: TimeInterval = 120, environment: [String: String]? = nil) throws -> CommandResult {
    var env = environment ?? ProcessInfo.processInfo.environment
    if env["EDGEMETER_DB"] == nil { env["EDGEMETER_DB"] = testHistoryPath }
    let r = try Command.runBlocking([path] + args, timeout: .milliseconds(Int64(timeout * 1000)), environment: env)
    return CommandResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

/// A per-process temporary history database for the binaries tests start, so tests never write
/// into the user's data directory (~/.local/share/edgemeter/history.sqlite).
public let testHistoryPath = NSTemporaryDirectory() + "edgemeter-test-history-\(getpid()).sqlite"

/// Finds a program on PATH (then /usr/sbin and /sbin), nil when absent: `EdgeMeterSystem.which`.
public func which(_ name: String) -> String? {
    EdgeMeterSystem.which(name)
}

/// Waits for async work from synchronous test code (the work runs in a detached task).
func blockingWait(_ body: @escaping @Sendable () async throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let box = ErrorBox()
    Task.detached {
        do { try await body() } catch { box.error = error }
        done.signal()
    }
    done.wait()
    if let e = box.error { throw e }
}

private final class ErrorBox: @unchecked Sendable {
    var error: Error?
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
/// Also points EDGEMETER_DB at `testHistoryPath` for this test process (unless set), so every
/// edgemeter a test starts, however it starts it, records its run there and not in the user's history.
public func edgemeterBinary() -> String? {
    if getenv("EDGEMETER_DB") == nil { setenv("EDGEMETER_DB", testHistoryPath, 0) }
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
/// this test uses, so no traffic leaves the machine. Built with `IPRoute.addNamespace`, as the
/// startup backends and the lab build theirs.
public final class TestNetns {
    public let name: String
    public let hostAddress: String
    public let nsAddress: String
    private let ip: String

    public init(prefix: String = "emt") throws {
        guard let ip = which("ip") else { throw NSError(domain: "TestNetns", code: 1, userInfo: [NSLocalizedDescriptionKey: "ip not found"]) }
        self.ip = ip
        let n = Int.random(in: 1...60000)
        let name = "\(prefix)\(n)"
        self.name = name
        let a = 200 + n % 50, b = (n / 50) % 64 * 4
        let host = "10.\(a).\(b).1", ns = "10.\(a).\(b).2"
        hostAddress = host
        nsAddress = ns
        try blockingWait {
            try await IPRoute().addNamespace(name, hostEnd: "\(name)h", namespaceEnd: "\(name)n", namespaceAddress: "\(ns)/30",
                                             hostAddress: "\(host)/30")
        }
    }

    /// Runs a command inside the namespace.
    @discardableResult
    public func exec(_ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        try runCommand(ip, ["netns", "exec", name] + args, timeout: timeout)
    }

    public func remove() {
        let name = self.name
        try? blockingWait { try await IPRoute().deleteNamespace(name) }
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
        let name = self.name
        try blockingWait {
            let ip = IPRoute()
            try await ip.addNamespace(name)
            do {
                try await ip.setLink("lo", up: true, netns: name)
            } catch {
                try? await ip.deleteNamespace(name)
                throw error
            }
        }
    }

    /// Runs a program inside the namespace.
    public func run(_ path: String, _ args: [String], timeout: TimeInterval = 120) throws -> CommandResult {
        try runCommand(ip, ["netns", "exec", name, path] + args, timeout: timeout)
    }

    public func remove() {
        let name = self.name
        try? blockingWait { try await IPRoute().deleteNamespace(name) }
    }
    deinit { remove() }
}

/// Starts `BIN lab up NAME` and sends `sig` once the state file `STATEDIR/NAME.json` records
/// `threshold` objects (plus `extraMicroseconds`), or after 30 s; returns the process (exited) and
/// the object count seen. For the tests of interrupted `lab up` runs.
public func interruptLabUp(bin: String, name: String, stateDir: String, atObjects threshold: Int,
                           extraMicroseconds: UInt32 = 0, signal sig: Int32) throws -> (Process, Int) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bin)
    p.arguments = ["lab", "up", name]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(30)
    var seen = 0
    while Date() < deadline && p.isRunning {
        if let data = FileManager.default.contents(atPath: "\(stateDir)/\(name).json"),
           let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let objects = s["objects"] as? [Any] {
            seen = objects.count
        }
        if seen >= threshold { break }
        usleep(1000)
    }
    if extraMicroseconds > 0 { usleep(extraMicroseconds) }
    kill(p.processIdentifier, sig)
    p.waitUntilExit()
    return (p, seen)
}
