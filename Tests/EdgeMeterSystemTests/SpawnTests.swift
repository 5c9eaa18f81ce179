@testable import EdgeMeterSystem
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Real children through posix_spawn: exit status, output capture, timeout kill, and what the child
/// inherits (descriptors, signal mask and dispositions).
final class SpawnTests: XCTestCase {
    func testExitStatusAndOutputAreCaptured() throws {
        let r = try Command.runBlocking(["sh", "-c", "echo out-line; echo err-line >&2; exit 7"])
        XCTAssertEqual(r.status, 7)
        XCTAssertFalse(r.ok)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.stdout, "out-line\n")
        XCTAssertEqual(r.stderr, "err-line\n")
        XCTAssertEqual(r.combined, "err-line\nout-line")
        let ok = try Command.runBlocking(["true"])
        XCTAssertEqual(ok.status, 0)
        XCTAssertTrue(ok.ok)
    }

    func testKilledBySignalReads128PlusSignal() throws {
        let r = try Command.runBlocking(["sh", "-c", "kill -TERM $$"])
        XCTAssertEqual(r.status, 128 + SIGTERM)
    }

    func testLargeOutputOnBothPipesDoesNotDeadlock() async throws {
        // 1 MiB on each pipe: more than a pipe buffer, so both must be drained while the child runs.
        let r = try await Command.run(["sh", "-c", "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2"], timeout: .seconds(30))
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdout.utf8.count, 1_048_576)
        XCTAssertEqual(r.stderr.utf8.count, 1_048_576)
    }

    func testOutputBeyondTheLimitIsDrainedDroppedAndFlagged() throws {
        // 1 MiB into a 64 KiB limit: the child is not blocked (exit 0), the first 64 KiB are kept.
        let r = try Command.runBlocking(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo tail >&2"], timeout: .seconds(30),
                                        maxOutputBytes: 65536)
        XCTAssertEqual(r.status, 0)
        XCTAssertFalse(r.timedOut)
        XCTAssertTrue(r.outputTruncated)
        XCTAssertEqual(r.stdout.utf8.count, 65536)
        XCTAssertTrue(r.stdout.allSatisfy { $0 == "x" })
        XCTAssertEqual(r.stderr, "tail\n", "the other stream keeps its own limit")
        XCTAssertFalse(try Command.runBlocking(["echo", "short"], maxOutputBytes: 6).outputTruncated, "exactly at the limit is not truncated")
        XCTAssertTrue(try Command.runBlocking(["echo", "longer"], maxOutputBytes: 6).outputTruncated)
    }

    func testEnvironmentReplacesTheParentsWhenGiven() throws {
        let r = try Command.runBlocking(["/usr/bin/env"], environment: ["EM_ONLY": "1", "PATH": "/bin"])
        XCTAssertEqual(r.stdout.split(separator: "\n").sorted(), ["EM_ONLY=1", "PATH=/bin"])
        let inherited = try Command.runBlocking(["/usr/bin/env"])
        XCTAssertTrue(inherited.stdout.contains("PATH="), "nil keeps this process's environment")
        XCTAssertFalse(inherited.stdout.contains("EM_ONLY="))
    }

    func testStdinIsNullDeviceUnlessGiven() throws {
        XCTAssertEqual(try Command.runBlocking(["cat"]).stdout, "")
        let path = NSTemporaryDirectory() + "em-spawn-stdin-\(getpid())"
        try "from a file\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(try Command.runBlocking(["cat"], stdinFD: fd).stdout, "from a file\n")
    }

    func testTimeoutKillsTheChildAndWhatItStarted() throws {
        // `sh` starts `sleep`, which holds the output pipe: only a kill of the whole group ends
        // the read before the sleep would (30 s).
        let t0 = ContinuousClock.now
        let r = try Command.runBlocking(["sh", "-c", "sleep 30; echo never"], timeout: .milliseconds(300))
        let took = ContinuousClock.now - t0
        XCTAssertTrue(r.timedOut)
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.status, 128 + SIGKILL)
        XCTAssertEqual(r.stdout, "")
        XCTAssertGreaterThanOrEqual(took, .milliseconds(300))
        XCTAssertLessThan(took, .seconds(10), "the timeout did not end the call")
    }

    func testTimeoutLeavesNoGrandchildRunning() throws {
        // swift-subprocess 1.0.2, cancelled on the same script, returned but left both `sleep`s
        // running as orphans; the group kill here must not.
        let pidFile = NSTemporaryDirectory() + "em-spawn-grandchild-\(getpid())"
        defer { unlink(pidFile) }
        let r = try Command.runBlocking(["sh", "-c", "sleep 30 & echo $! > \(pidFile); sleep 30"], timeout: .milliseconds(300))
        XCTAssertTrue(r.timedOut)
        let text = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let grandchild = try XCTUnwrap(pid_t(text), "no PID in \(pidFile): \(text)")
        // Once killed, the orphan is reaped by init; a zombie still answers kill(pid, 0) until then.
        let deadline = ContinuousClock.now + .seconds(5)
        while kill(grandchild, 0) == 0 && ContinuousClock.now < deadline { usleep(10_000) }
        XCTAssertNotEqual(kill(grandchild, 0), 0, "the background sleep (pid \(grandchild)) survived the timeout")
        if kill(grandchild, 0) == 0 { kill(grandchild, SIGKILL) }
    }

    func testTimeoutNotReachedLeavesResultAlone() throws {
        let r = try Command.runBlocking(["sh", "-c", "echo quick"], timeout: .seconds(20))
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "quick\n")
    }

    /// `readlink /proc/self/fd/N` prints `pipe:[inode]` for an inherited pipe end; the child must not
    /// show the parent's pipe under either of its numbers.
    func testChildDoesNotInheritOpenDescriptors() throws {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)  // plain pipe(): not close-on-exec, the case that leaks
        defer { close(fds[0]); close(fds[1]) }
        let identity = try XCTUnwrap(try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fds[1])"))
        XCTAssertTrue(identity.hasPrefix("pipe:["), identity)
        for fd in fds {
            let r = try Command.runBlocking(["sh", "-c", "readlink /proc/self/fd/\(fd) || echo closed"])
            XCTAssertNotEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), identity, "fd \(fd) leaked into the child")
        }
        // The same check through a long-lived ChildProcess writing to a file.
        let out = NSTemporaryDirectory() + "em-spawn-fds-\(getpid())"
        let log = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { unlink(out) }
        let child = try ChildProcess(["ls", "-l", "/proc/self/fd/"], outputFD: log)
        close(log)
        XCTAssertEqual(child.waitBlocking(), 0)
        let listing = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertFalse(listing.contains(identity), "the pipe leaked into the child: \(listing)")
        XCTAssertTrue(listing.contains(" 1 -> \(out)"), "stdout should be the file given: \(listing)")
    }

    /// Started from a thread that blocks SIGTERM, with SIGUSR2 ignored process-wide, the child still
    /// has an empty mask and no ignored signals (glibc's internal 32 and 33 included, which the test
    /// runner may hand down ignored).
    func testChildStartsWithEmptySignalMaskAndDefaultDispositions() throws {
        var block = sigset_t(), old = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &block, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let previous = Glibc.signal(SIGUSR2, SIG_IGN)
        defer { Glibc.signal(SIGUSR2, previous) }
        let r = try Command.runBlocking(["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let fields = Dictionary(uniqueKeysWithValues: r.stdout.split(separator: "\n").map { line -> (String, String) in
            let kv = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            return (kv[0], kv[1])
        })
        XCTAssertEqual(fields["SigBlk"], "0000000000000000", "blocked signals leaked into the child")
        XCTAssertEqual(fields["SigIgn"], "0000000000000000", "ignored signals leaked into the child")
    }

    func testLongLivedChildCanBeSignalledAndReaped() throws {
        let child = try ChildProcess(["sleep", "30"])
        XCTAssertTrue(child.isRunning)
        XCTAssertNil(child.terminationStatus)
        child.signal(SIGTERM)
        XCTAssertEqual(child.waitBlocking(), 128 + SIGTERM)
        XCTAssertFalse(child.isRunning)
        XCTAssertEqual(child.terminationStatus, 128 + SIGTERM)
        child.signal(SIGKILL)  // reaped: must not signal anything
        XCTAssertEqual(child.waitBlocking(), 128 + SIGTERM)
    }

    func testNewProcessGroup() throws {
        let child = try ChildProcess(["sleep", "30"], newProcessGroup: true)
        XCTAssertEqual(getpgid(child.pid), child.pid)
        child.signalGroup(SIGKILL)
        XCTAssertEqual(child.waitBlocking(), 128 + SIGKILL)
        let same = try ChildProcess(["sleep", "30"])
        XCTAssertEqual(getpgid(same.pid), getpgrp())
        same.signal(SIGKILL)
        same.waitBlocking()
    }

    func testProgramsThatCannotStartSayWhy() {
        XCTAssertThrowsError(try Command.runBlocking([])) {
            XCTAssertEqual(($0 as? SystemError)?.message, "empty command: give the program and its arguments as a list")
        }
        XCTAssertThrowsError(try Command.runBlocking(["em-no-such-program"])) {
            XCTAssertEqual(($0 as? SystemError)?.message, "em-no-such-program not found on PATH: install it or give its absolute path")
        }
        let plain = NSTemporaryDirectory() + "em-spawn-plain-\(getpid())"
        FileManager.default.createFile(atPath: plain, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644])
        defer { unlink(plain) }
        XCTAssertThrowsError(try ChildProcess([plain])) {
            XCTAssertEqual(($0 as? SystemError)?.message, "\(plain) is not an executable file")
        }
        let garbage = NSTemporaryDirectory() + "em-spawn-garbage-\(getpid())"
        FileManager.default.createFile(atPath: garbage, contents: Data([0, 1, 2, 3]), attributes: [.posixPermissions: 0o755])
        defer { unlink(garbage) }
        XCTAssertThrowsError(try ChildProcess([garbage])) {
            XCTAssertEqual(($0 as? SystemError)?.message, "cannot start \(garbage): Exec format error")
        }
    }
}
