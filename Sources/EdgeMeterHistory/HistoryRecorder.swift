import Foundation
import EdgeMeterCore

/// Records one run in the history as it goes: a `SampleSink` placed beside the run directory (a tee),
/// buffering samples and writing them in batches — when `batchSize` samples are waiting, and every
/// `flushInterval` from a timer — so a run killed with SIGKILL keeps in the history everything up to
/// its last batch (at most `flushInterval` of samples are lost; samples.csv keeps them all).
///
/// The run's row is inserted with its first batch (a run that measures nothing leaves no row; see
/// `discard`). Any database error (locked past the busy timeout, corrupt, disk full) is reported
/// once through `warn` and the recorder stops recording: the run and its directory go on untouched.
public final class HistoryRecorder: SampleSink, @unchecked Sendable {
    public let store: HistoryStore
    private var run: HistoryRun
    private let batchSize: Int
    private let warn: @Sendable (String) -> Void
    private let lock = NSLock()
    private var buffer: [Sample] = []
    private var inserted = false
    private var failed = false
    private var flushScheduled = false
    /// Serialises database writes off the probes' threads.
    private let queue = DispatchQueue(label: "edgemeter.history")
    private var timer: DispatchSourceTimer?

    /// The id the run has in the history (may differ from the run directory's name, see `insertRun`).
    public var runID: String { lock.lock(); defer { lock.unlock() }; return run.id }
    /// Whether a database error stopped the recording.
    public var hasFailed: Bool { lock.lock(); defer { lock.unlock() }; return failed }

    public init(store: HistoryStore, run: HistoryRun, batchSize: Int = 500, flushInterval: Double = 1,
                warn: @escaping @Sendable (String) -> Void) {
        self.store = store
        self.run = run
        self.batchSize = batchSize
        self.warn = warn
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + flushInterval, repeating: flushInterval)
        t.setEventHandler { [weak self] in self?.flushOnQueue() }
        t.resume()
        timer = t
    }

    deinit { timer?.cancel() }

    public func record(_ sample: Sample) {
        lock.lock()
        if failed { lock.unlock(); return }
        buffer.append(sample)
        let schedule = buffer.count >= batchSize && !flushScheduled
        if schedule { flushScheduled = true }
        lock.unlock()
        if schedule { queue.async { self.flushOnQueue() } }
    }

    /// Writes what is buffered now (blocking until it is written).
    public func flush() {
        queue.sync { flushOnQueue() }
    }

    private func flushOnQueue() {
        lock.lock()
        flushScheduled = false
        if failed || buffer.isEmpty { lock.unlock(); return }
        let batch = buffer
        buffer.removeAll(keepingCapacity: true)
        let needsInsert = !inserted
        var r = run
        lock.unlock()
        do {
            if needsInsert {
                r.id = try store.insertRun(r)
                lock.lock(); run = r; inserted = true; lock.unlock()
            }
            try store.appendSamples(runID: r.id, batch)
        } catch {
            fail(error)
        }
    }

    private func fail(_ error: Error) {
        lock.lock()
        let first = !failed
        failed = true
        buffer.removeAll()
        let id = run.id
        lock.unlock()
        if first {
            warn("\(error); run \(id) is not recorded in the history (its run directory is kept whole: add it later with `edgemeter runs import DIR`)")
        }
    }

    /// Writes the last samples and marks the run finished. Returns the run's history id, nil when
    /// nothing was recorded (no sample, or a database error, already reported).
    @discardableResult
    public func finish(complete: Bool, stopReason: String?, endedAt: Date = Date()) -> String? {
        timer?.cancel()
        flush()
        return queue.sync { () -> String? in
            lock.lock()
            let (ok, id) = (inserted && !failed, run.id)
            lock.unlock()
            guard ok else { return nil }
            do {
                try store.finishRun(id: id, endedAt: endedAt, complete: complete, stopReason: stopReason)
                return id
            } catch {
                fail(error)
                return nil
            }
        }
    }

    /// The run measured nothing and its directory was removed: removes its row too, if any.
    public func discard() {
        timer?.cancel()
        queue.sync {
            lock.lock()
            let (was, id) = (inserted && !failed, run.id)
            failed = true
            buffer.removeAll()
            lock.unlock()
            if was { _ = try? store.deleteRun(id: id) }
        }
    }
}

/// Forwards each sample to several sinks in order (the run directory first, then the history).
public final class TeeSink: SampleSink, @unchecked Sendable {
    private let sinks: [SampleSink]
    public init(_ sinks: [SampleSink]) { self.sinks = sinks }
    public func record(_ sample: Sample) {
        for s in sinks { s.record(sample) }
    }
}
