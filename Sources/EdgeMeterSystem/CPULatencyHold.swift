import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps idle CPUs polling instead of halting while held: writes 0 (µs) to `/dev/cpu_dma_latency`,
/// the kernel's PM QoS CPU-latency request, and keeps the file open; closing it withdraws the
/// request (the kernel drops it when the process dies, too). This is what `cyclictest` holds while
/// it measures.
///
/// Why: on a virtual machine an idle vCPU halts, and waking it (a timer, or a packet for a thread
/// blocked on it) costs a VM exit and entry. Measured on this project's Firecracker guest, idle, a
/// SCHED_FIFO thread blocked in `recvmsg` woke 92–98 µs (p50) after the datagram's kernel stamp and
/// a 10 ms `clock_nanosleep` ended 91–115 µs late; with the request held, 31–33 µs and 57–60 µs
/// (`docs/calibrate.md`, "Idle CPUs"). A delayed link leaves the CPUs idle between frames, so every
/// wake-up on the path pays that cost, and a baseline measured back to back at delay 0 does not
/// contain it. The impairment forwarder, the proxy and `calibrate` hold the request while they work.
///
/// Needs root (the device is mode 0600). Without it, or without the device, `hold()` says why and
/// nothing changes.
public final class CPULatencyHold: @unchecked Sendable {
    public static let device = "/dev/cpu_dma_latency"
    private let lock = NSLock()
    private var fd: Int32 = -1
    /// Why the last `hold()` could not take the request (nil when held, or never asked).
    public private(set) var refused: String?

    public init() {}

    public var isHeld: Bool { lock.lock(); defer { lock.unlock() }; return fd >= 0 }

    /// Takes the request (no-op when held). Returns nil when held, else the reason it is not.
    @discardableResult
    public func hold() -> String? {
        lock.lock(); defer { lock.unlock() }
        if fd >= 0 { return nil }
        let f = open(Self.device, O_WRONLY | O_CLOEXEC)
        guard f >= 0 else {
            refused = "\(Self.device): \(String(cString: strerror(errno))) (needs root and a kernel with PM QoS)"
            return refused
        }
        var zero: Int32 = 0
        guard write(f, &zero, 4) == 4 else {
            refused = "writing \(Self.device): \(String(cString: strerror(errno)))"
            close(f)
            return refused
        }
        fd = f
        refused = nil
        return nil
    }

    /// Withdraws the request (no-op when not held).
    public func release() {
        lock.lock(); defer { lock.unlock() }
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// One line for a run's provenance: what the CPUs did while idle.
    public var provenance: String {
        if isHeld { return "idle CPUs: polling (PM QoS CPU latency 0 µs held through \(Self.device))" }
        return "idle CPUs: the host's own idle states (\(refused ?? "no PM QoS request made"))"
    }
}

/// A `CPULatencyHold` taken while frames flow and withdrawn after `idleNanoseconds` without any, so
/// a lab left up with no traffic does not keep the CPUs polling. The first frame after a quiet spell
/// takes the request as it arrives, before its release time.
public final class ActivityLatencyHold: @unchecked Sendable {
    public let hold = CPULatencyHold()
    public let idleNanoseconds: Int64
    private let lock = NSLock()
    private var last: Int64 = .min
    private var enabled: Bool

    /// `enabled` false: `touch` and `expire` do nothing (a process that is not root, or asked not to).
    public init(enabled: Bool = true, idleNanoseconds: Int64 = 1_000_000_000) {
        self.enabled = enabled
        self.idleNanoseconds = idleNanoseconds
    }

    public var isEnabled: Bool { lock.lock(); defer { lock.unlock() }; return enabled }

    /// Activity at `now` (CLOCK_MONOTONIC ns): takes the request if it is not held.
    public func touch(_ now: Int64) {
        guard enabled else { return }
        lock.lock()
        let wasIdle = last == .min
        last = now
        lock.unlock()
        if wasIdle, hold.hold() != nil {
            // Refused once: do not retry for every frame.
            lock.lock(); enabled = false; lock.unlock()
        }
    }

    /// Withdraws the request when nothing happened for `idleNanoseconds` before `now`.
    public func expire(_ now: Int64) {
        lock.lock()
        let quiet = last != .min && now - last > idleNanoseconds
        if quiet { last = .min }
        lock.unlock()
        if quiet { hold.release() }
    }
}
