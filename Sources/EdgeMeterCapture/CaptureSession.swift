import Foundation
import EdgeMeterCore

/// A live capture on its own thread that writes a pcap file and analyses the packets as they
/// arrive. The handle is opened (and privileges dropped, when asked) in `init`, so packets are
/// buffered by the kernel from then on: start the measured work after `start()`.
public final class CaptureSession: @unchecked Sendable {
    public let capture: LiveCapture
    public let writer: PcapWriter?
    private let analyzer: WireAnalyzer
    private let localStop = StopFlag()
    private let parentStop: StopFlag?
    private let lock = NSLock()
    private var outcome: Result<CaptureResult, Error>?
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let done = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - writePath: where to write the pcap (mode 0600), nil for none.
    ///   - user: drop root privileges to this account right after the handle is open (tcpdump -Z);
    ///     the pcap file and the paths in `giveToUser` are created/owned by that user first so it
    ///     can still write them.
    ///   - parentStop: polled as well as the session's own stop (e.g. the run's StopFlag).
    public init(options: CaptureOptions, writePath: String?, user: String? = nil, giveToUser: [String] = [],
                parentStop: StopFlag? = nil) throws {
        capture = try LiveCapture(options)
        if let p = writePath {
            writer = try PcapWriter(path: p, linkType: capture.linkType, snapLength: UInt32(options.snapLength),
                                    nanosecond: capture.precision == "nano")
        } else {
            writer = nil
        }
        if let user {
            guard let ids = Privileges.ids(of: user) else {
                throw CaptureError.usage("--user \(user): no such user on this machine; give an existing account such as nobody")
            }
            if let w = writer { _ = fchown(w.fileDescriptor, ids.uid, ids.gid) }
            for p in giveToUser { _ = chown(p, ids.uid, ids.gid) }
            try Privileges.drop(to: user)
        }
        analyzer = WireAnalyzer(linkType: capture.linkType)
        self.parentStop = parentStop
    }

    /// Starts capturing on a dedicated thread (not the cooperative pool: the loop blocks in poll).
    public func start(until: ContinuousClock.Instant? = nil, maxCount: Int? = nil) {
        let t = Thread { [self] in
            let r = Result { () throws -> CaptureResult in
                var lastFlush = ContinuousClock.now
                return try capture.run(stop: localStop, parent: parentStop, until: until, maxCount: maxCount, idle: { [writer] in
                    if ContinuousClock.now - lastFlush > .milliseconds(200) {
                        try? writer?.flush()
                        lastFlush = ContinuousClock.now
                    }
                }) { rec in
                    try writer?.write(timestampNs: rec.timestampNs, data: rec.data, originalLength: rec.originalLength)
                    analyzer.add(rec)
                }
            }
            lock.lock()
            outcome = r
            let w = waiters
            waiters = []
            lock.unlock()
            w.forEach { $0.resume() }
            done.signal()
        }
        t.name = "edgemeter-capture-\(capture.options.interface)"
        t.start()
    }

    /// Asks the capture to stop at its next check (within 50 ms).
    public func stop(_ reason: String = "measurement finished") { localStop.stop(reason: reason) }

    /// Waits (without blocking a cooperative thread) for the capture to end, then closes the file
    /// and returns the result and the analysis.
    public func finish() async throws -> (CaptureResult, WireAnalysis) {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if outcome != nil { lock.unlock(); c.resume(); return }
            waiters.append(c)
            lock.unlock()
        }
        return try collect()
    }

    /// Blocking variant for command-line use.
    public func wait() throws -> (CaptureResult, WireAnalysis) {
        done.wait()
        done.signal()
        return try collect()
    }

    private func collect() throws -> (CaptureResult, WireAnalysis) {
        lock.lock()
        let o = outcome!
        lock.unlock()
        try writer?.close()
        let result = try o.get()
        capture.close()
        return (result, analyzer.finish())
    }
}
