import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with an empty signal mask and default signal
/// dispositions. Foundation's `Process` passes on the spawning thread's mask (Dispatch worker threads
/// block SIGTERM) and any SIG_IGN the CLI's signal trap set, so a server started through it would
/// ignore the SIGTERM that `stop` sends.
final class SpawnedProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `argv` (argv[0] resolved on PATH); stdout and stderr go to `outputFD` (or /dev/null),
    /// or separately to `stdoutFD`/`stderrFD`; stdin from `stdinFD` (or /dev/null).
    init(_ argv: [String], outputFD: Int32? = nil, stdinFD: Int32? = nil, stdoutFD: Int32? = nil, stderrFD: Int32? = nil) throws {
        let exe = try resolveExecutable(argv[0])
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
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cargs: [UnsafeMutablePointer<CChar>?] = ([exe] + argv.dropFirst()).map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw StartupError("cannot start \(exe): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// Reaps the child if it exited (non-blocking).
    var isRunning: Bool {
        lock.withLock {
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                // WIFEXITED: low 7 bits zero; exit code in bits 8-15; else 128 + signal.
                exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                return false
            }
            if r < 0 { exitStatus = -1; return false }
            return true
        }
    }

    /// Exit code (128 + signal when killed); nil while running.
    var terminationStatus: Int32? {
        _ = isRunning
        return lock.withLock { exitStatus }
    }

    /// Blocks until the child exits; returns its exit code (128 + signal when killed).
    func waitBlocking() -> Int32 {
        lock.withLock {
            if let s = exitStatus { return s }
            var status: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
            exitStatus = r == pid ? ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)) : -1
            return exitStatus ?? -1
        }
    }

    func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }
}
