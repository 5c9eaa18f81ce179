import EdgeMeterSystem
import Foundation

// The startup backends run programs through EdgeMeterSystem; these adapters keep this module's
// one error type (`StartupError`, same text) at its boundary.

extension StartupError {
    /// The system error's sentence, as a startup error (status `.error`).
    init(_ e: SystemError) { self.init(e.message) }

    /// Creating a backend's bridge failed: the `ip` command and its output when one ran, else the
    /// system error's own sentence (a name the kernel refuses, `ip` missing).
    init(bridgeFailure bridge: String, _ e: SystemError) {
        if e.command.isEmpty || e.status == nil {
            self.init("creating bridge \(bridge) failed: \(e.message)")
        } else {
            self.init("creating bridge \(bridge) failed (\(e.commandLine): \(e.output)): check iproute2 and root")
        }
    }
}

typealias CommandResult = EdgeMeterSystem.CommandResult

/// `Command.run` (argument list, no shell; output captured) with a startup error when the program
/// cannot be started. A nonzero exit does not throw: check `ok`.
func runCommand(_ argv: [String], stdin: FileHandle? = nil) async throws -> CommandResult {
    do {
        return try await Command.run(argv, stdinFD: stdin?.fileDescriptor)
    } catch let e as SystemError {
        throw StartupError(e)
    }
}

/// `EdgeMeterSystem.resolveExecutable`, failing with a startup error.
func resolveExecutable(_ name: String) throws -> String {
    do {
        return try EdgeMeterSystem.resolveExecutable(name)
    } catch let e as SystemError {
        throw StartupError(e)
    }
}

/// Calls `remove` for each whitespace-separated name of `listing` (an engine's list of instances)
/// that starts with `prefix`; returns what the calls reported (nil: not removed).
func removeEach(_ listing: String, prefix: String, _ remove: (String) async -> String?) async -> [String] {
    var removed: [String] = []
    for name in listing.split(whereSeparator: \.isWhitespace).map(String.init) where name.hasPrefix(prefix) {
        if let what = await remove(name) { removed.append(what) }
    }
    return removed
}

/// Runs blocking code (sockets, waitpid) on a Dispatch thread, so no task of the cooperative pool waits.
func onBackgroundThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { cont in
        DispatchQueue.global().async { cont.resume(with: Result { try body() }) }
    }
}

/// A `ChildProcess` (posix_spawn, empty signal mask, default dispositions, no inherited
/// descriptors) whose start fails with a startup error.
final class SpawnedProcess: @unchecked Sendable {
    private let child: ChildProcess
    var pid: pid_t { child.pid }

    init(_ argv: [String], outputFD: Int32? = nil, stdinFD: Int32? = nil, stdoutFD: Int32? = nil, stderrFD: Int32? = nil) throws {
        do {
            child = try ChildProcess(argv, outputFD: outputFD, stdinFD: stdinFD, stdoutFD: stdoutFD, stderrFD: stderrFD)
        } catch let e as SystemError {
            throw StartupError(e)
        }
    }

    /// False once the child exited (reaped without blocking).
    var isRunning: Bool { child.isRunning }
    /// Exit code (128 + signal when killed); nil while running.
    var terminationStatus: Int32? { child.terminationStatus }
    /// Blocks until the child exits; its exit code (128 + signal when killed).
    @discardableResult
    func waitBlocking() -> Int32 { child.waitBlocking() }
    func signal(_ sig: Int32) { child.signal(sig) }
}
