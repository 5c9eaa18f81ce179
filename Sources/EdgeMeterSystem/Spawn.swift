// Running programs: the one way edgemeter starts a child process.
//
// Why not Foundation `Process`: it passes on the spawning thread's signal mask (Dispatch worker
// threads block SIGTERM) and any SIG_IGN the CLI's signal trap set, so a server started through it
// ignores the SIGTERM that `stop` sends; and it reaps through its own SIGCHLD machinery.
//
// swiftlang/swift-subprocess 1.0.2 (in /opt/swift-packages) weighed against this file, from its
// source and from a probe program built against it on this machine (2026-12-01):
// - fd leaks: a tie. Both spawn with posix_spawn and close every descriptor above stderr in the
//   child (`posix_spawn_file_actions_addclosefrom_np(3)`, glibc >= 2.34), and both make their pipes
//   with pipe2(O_CLOEXEC). Probe: a parent fd opened without O_CLOEXEC did not reach the child.
// - signal masks and dispositions: a tie (empty mask, every signal back to SIG_DFL).
// - timeouts and killing process groups: Subprocess has no timeout; the caller cancels the task,
//   and its teardown signals the child only (its group only with `createSession` or
//   `processGroupID` plus `toProcessGroup:`). Probe: `sh -c 'sleep 30 & sleep 30'` cancelled after
//   0.3 s returned at once (status SIGKILL) but left both `sleep`s running as orphans. Here
//   `timeout:` starts the child in its own process group and SIGKILLs the whole group, so nothing
//   it started outlives the call (SpawnTests.testTimeoutLeavesNoGrandchildRunning), and `timedOut`
//   says why. Safer here.
// - output capture limits: Subprocess requires a limit (`.string(limit:)`) and throws
//   `outputLimitExceeded` when it is passed. Probe: 1 MiB into a 64 KiB limit threw, and the exit
//   status and all of the output were lost. Here each stream keeps its first `maxOutputBytes`
//   (16 MiB by default), drains and drops the rest (the child never blocks on a full pipe) and
//   sets `outputTruncated`: the status and the start of the output survive, which an error message
//   needs. Safer here.
// - reaping: Subprocess watches pidfds from a process-wide monitor thread; here the child is reaped
//   only by its own `ChildProcess`, and signals are sent under the same lock, so a reaped PID is
//   never signalled. The OCI backend reaps re-parented container processes itself (waitpid on their
//   PIDs), which either design leaves alone.
// - shape: Subprocess runs a child inside an async closure (`run { execution in ... }`); the
//   startup backends keep children past the call that started them (QEMU, detached commands) and
//   poll `isRunning` from synchronous code, which would need a task per child.
// - build time: small either way. A clean debug build of Subprocess with swift-system and a
//   one-file program took 15.6 s at -j 1 here (machine shared with other builds); it needs
//   swift-tools-version 6.2 in its own manifest, which the 6.3.1 toolchain reads.
// Verdict: this file stays and the dependency is not added. On descriptors and signals the two are
// equally safe; on timeouts (the whole group killed, no orphans) and output limits (truncate, keep
// the status) this file is the safer one for edgemeter.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`: an empty signal mask, default signal dispositions,
/// and no descriptor of this process besides the stdin/stdout/stderr it is given (everything above
/// 2 is closed in the child, whether or not it is close-on-exec).
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    /// Whether the child leads a process group of its own (its PGID is its PID).
    public let ownsProcessGroup: Bool
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `argv` (argv[0] resolved with `resolveExecutable`); stdout and stderr go to `outputFD`
    /// (or /dev/null), or separately to `stdoutFD`/`stderrFD`; stdin from `stdinFD` (or /dev/null).
    /// With `newProcessGroup` the child leads a new process group (it then no longer gets the
    /// terminal's ^C; `signalGroup` reaches it and everything it started). `environment` replaces
    /// this process's environment for the child (nil: inherited).
    public init(_ argv: [String], outputFD: Int32? = nil, stdinFD: Int32? = nil, stdoutFD: Int32? = nil, stderrFD: Int32? = nil,
                newProcessGroup: Bool = false, environment: [String: String]? = nil) throws {
        guard let first = argv.first else { throw SystemError("empty command: give the program and its arguments as a list") }
        let exe = try resolveExecutable(first)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let fd = stdinFD {
            posix_spawn_file_actions_adddup2(&actions, fd, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        for (target, fd) in [(Int32(1), stdoutFD ?? outputFD), (Int32(2), stderrFD ?? outputFD)] {
            if let fd {
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        // After the dup2s: the sources (pipes, log files) are not needed in the child any more.
        try Self.closeInheritedDescriptors(&actions)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        // glibc's sigfillset leaves out its two internal signals (32 and 33), so a SIG_IGN on them
        // inherited from whoever started us would pass on; posix_spawn resets them when asked.
        all.__val.0 |= (1 << 31) | (1 << 32)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        var cargs: [UnsafeMutablePointer<CChar>?] = ([exe] + argv.dropFirst()).map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = (environment ?? [:]).sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = environment == nil ? posix_spawn(&child, exe, &actions, &attr, &cargs, environ)
                                    : posix_spawn(&child, exe, &actions, &attr, &cargs, &envp)
        guard rc == 0 else { throw SystemError("cannot start \(exe): \(String(cString: strerror(rc)))", command: argv) }
        pid = child
        ownsProcessGroup = newProcessGroup
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    /// glibc >= 2.34 has `posix_spawn_file_actions_addclosefrom_np`; Swift's Glibc module does not
    /// import it (it sits behind _GNU_SOURCE), so it is looked up by name.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: AddCloseFrom.self)
    }()

    /// Adds "close every descriptor from 3 up" to `actions`. Without addclosefrom_np (older glibc),
    /// closes each descriptor /proc/self/fd lists that is not close-on-exec.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) throws {
        if let addCloseFrom {
            let rc = addCloseFrom(&actions, 3)
            guard rc == 0 else { throw SystemError("posix_spawn_file_actions_addclosefrom_np: \(String(cString: strerror(rc)))") }
            return
        }
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in fds where fd > 2 {
            let f = fcntl(fd, F_GETFD)
            if f >= 0 && f & FD_CLOEXEC == 0 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
    }

    /// Exit code from a wait status: the code when it exited, 128 + signal when killed.
    static func decode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Reaps without blocking; the lock must be held.
    private func reapLocked() -> Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { exitStatus = Self.decode(status); return true }
        if r < 0 && errno != EINTR { exitStatus = -1; return true }
        return false
    }

    /// False once the child exited (it is reaped then, without blocking).
    public var isRunning: Bool { lock.withLock { !reapLocked() } }

    /// Exit code (128 + signal when killed, -1 when it could not be read); nil while running.
    public var terminationStatus: Int32? {
        lock.withLock { _ = reapLocked(); return exitStatus }
    }

    /// Blocks until the child exits; returns its exit code (128 + signal when killed). Waits without
    /// holding the lock, so `signal` and `isRunning` keep working from other threads meanwhile.
    @discardableResult
    public func waitBlocking() -> Int32 {
        if let s = lock.withLock({ exitStatus }) { return s }
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        return lock.withLock {
            while !reapLocked() { usleep(100) }  // only when waitid itself failed
            return exitStatus ?? -1
        }
    }

    /// Sends `sig` to the child while it has not been reaped (so a reused PID is never hit).
    public func signal(_ sig: Int32) {
        lock.withLock { if !reapLocked() { _ = kill(pid, sig) } }
    }

    /// Sends `sig` to the child's whole process group (started with `newProcessGroup`), also after
    /// the child itself exited: Linux does not reuse a PID that is still some process's group ID.
    /// Without a group of its own, the same as `signal`.
    public func signalGroup(_ sig: Int32) {
        if ownsProcessGroup { _ = kill(-pid, sig) } else { signal(sig) }
    }
}

/// What a program run to completion left: exit status and output.
public struct CommandResult: Sendable, Equatable {
    /// Exit code; 128 + signal when it was killed (137 after a timeout's SIGKILL).
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// The timeout passed and the child's process group was killed.
    public var timedOut: Bool
    /// stdout or stderr wrote more than the call's `maxOutputBytes`: the text holds the first
    /// `maxOutputBytes` of it, the rest was read and dropped (so the child never blocked on a full
    /// pipe).
    public var outputTruncated: Bool

    public init(status: Int32, stdout: String, stderr: String, timedOut: Bool = false, outputTruncated: Bool = false) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
        self.outputTruncated = outputTruncated
    }

    public var ok: Bool { status == 0 && !timedOut }
    /// stderr then stdout, trimmed: what to show in an error.
    public var combined: String { (stderr + stdout).trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// Running a program to completion (an argument list, never a shell), capturing its output.
public enum Command {
    /// Runs `argv` and returns its status and output; waits on a Dispatch thread so the async caller
    /// is not blocked. See `runBlocking`.
    public static func run(_ argv: [String], stdinFD: Int32? = nil, timeout: Duration? = nil,
                           maxOutputBytes: Int = defaultOutputLimit, environment: [String: String]? = nil) async throws -> CommandResult {
        try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                cont.resume(with: Result {
                    try runBlocking(argv, stdinFD: stdinFD, timeout: timeout, maxOutputBytes: maxOutputBytes, environment: environment)
                })
            }
        }
    }

    /// How much of each of stdout and stderr a call keeps by default (16 MiB): far above what `ip`,
    /// the lxc-* tools or a runtime print, low enough that a runaway program cannot exhaust memory.
    public static let defaultOutputLimit = 16 << 20

    /// Runs `argv` (stdin from `stdinFD` or /dev/null) and blocks until it exited and both output
    /// pipes reached end of file. With `timeout` (from the spawn, on the monotonic clock) the child
    /// leads its own process group, and when the time passes the group gets SIGKILL, so that a
    /// grandchild holding the pipes cannot keep the call waiting; `timedOut` is then set. A program
    /// that cannot be started throws; a nonzero exit does not (check `ok`). Each of stdout and stderr
    /// keeps its first `maxOutputBytes`; the rest is drained and dropped, and `outputTruncated` says so.
    public static func runBlocking(_ argv: [String], stdinFD: Int32? = nil, timeout: Duration? = nil,
                                   maxOutputBytes: Int = defaultOutputLimit, environment: [String: String]? = nil) throws -> CommandResult {
        let out = try CloexecPipe(), err = try CloexecPipe()
        defer { out.closeAll(); err.closeAll() }
        let child = try ChildProcess(argv, stdinFD: stdinFD, stdoutFD: out.write, stderrFD: err.write, newProcessGroup: timeout != nil,
                                     environment: environment)
        out.closeWrite()
        err.closeWrite()
        let fired = LockedFlag()
        var watchdog: DispatchWorkItem?
        if let timeout {
            let item = DispatchWorkItem {
                fired.set()
                child.signalGroup(SIGKILL)
            }
            watchdog = item
            let ns = max(0, timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(ns)), execute: item)
        }
        // Read both pipes before waiting so a chatty program cannot block on a full pipe.
        let group = DispatchGroup()
        let outBox = DataBox()
        group.enter()
        DispatchQueue.global().async { (outBox.data, outBox.truncated) = out.readToEnd(limit: maxOutputBytes); group.leave() }
        let (errData, errTruncated) = err.readToEnd(limit: maxOutputBytes)
        group.wait()
        let status = child.waitBlocking()
        watchdog?.cancel()
        return CommandResult(status: status, stdout: String(decoding: outBox.data, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self), timedOut: fired.isSet,
                             outputTruncated: outBox.truncated || errTruncated)
    }
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
    var truncated = false
}

private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// A pipe whose both ends are close-on-exec from the start (pipe2), so no other spawn, ours or
/// Foundation's, can inherit them in between.
final class CloexecPipe: @unchecked Sendable {
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private static let pipe2: Pipe2? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "pipe2") else { return nil }
        return unsafeBitCast(sym, to: Pipe2.self)
    }()

    private(set) var read: Int32
    private(set) var write: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        let rc: Int32
        if let pipe2 = Self.pipe2 {
            rc = fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress!, O_CLOEXEC) }
        } else {
            rc = pipe(&fds)
            if rc == 0 { for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        }
        guard rc == 0 else { throw SystemError("pipe: \(String(cString: strerror(errno))): too many open files? raise `ulimit -n`") }
        read = fds[0]
        write = fds[1]
    }

    func closeWrite() {
        if write >= 0 { close(write); write = -1 }
    }

    func closeAll() {
        closeWrite()
        if read >= 0 { close(read); read = -1 }
    }

    /// Reads the read end until end of file, keeping the first `limit` bytes; true when more came.
    func readToEnd(limit: Int = Int.max) -> (Data, Bool) {
        var data = Data()
        var truncated = false
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if n > 0 {
                let keep = min(n, max(0, limit - data.count))
                if keep > 0 { data.append(contentsOf: chunk[0..<keep]) }
                if keep < n { truncated = true }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return (data, truncated)
        }
    }
}
