import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterController

/// The samples of the current push window, as the controller's delay feed takes them: ping `echo`,
/// tcping `connect`, http `total` (`DelayTable.metric(of:)`), each labelled `from` = this agent's
/// node and `to` = the target's topology node (else the target as written).
///
/// Bounded: at most `limit` samples per window (1000 targets at 1 Hz over 10 s is 10 000); beyond
/// it samples are counted in `dropped`, not kept, and the next window starts empty.
public final class PushWindow: SampleSink, @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Sample] = []
    private var droppedCount = 0
    let limit: Int
    let origin: String
    /// Target as written → its topology node.
    let nodes: [String: String]

    public init(origin: String, nodes: [String: String], limit: Int = 200_000) {
        (self.origin, self.nodes, self.limit) = (origin, nodes, limit)
    }

    public func record(_ sample: Sample) {
        guard DelayTable.metric(of: sample) != nil else { return }
        var s = sample
        s.labels = ["from": origin, "to": nodes[sample.target] ?? sample.target]
        lock.lock(); defer { lock.unlock() }
        if samples.count < limit { samples.append(s) } else { droppedCount += 1 }
    }

    /// The window's rows (one per target and metric: p50/p90/p99, loss, window times) and how many
    /// samples did not fit; the window starts again empty.
    public func take() -> (rows: [DelayRow], dropped: Int) {
        lock.lock()
        let taken = samples, dropped = droppedCount
        samples = []; samples.reserveCapacity(min(limit, taken.count))
        droppedCount = 0
        lock.unlock()
        return (DelayTable.rows(from: taken), dropped)
    }
}

/// Posts a `PushWindow` to the controller (`POST /delays`, the summary rows `edgemeter feed`
/// posts, with their window times) at the end of every window, until stopped. The bearer token is
/// read once at start from the file (or EDGEMETER_CONTROLLER_TOKEN) and never written to a log.
public final class DelayPusher: @unchecked Sendable {
    let push: AgentConfig.ControllerPush
    let window: PushWindow
    let token: String?
    let log: @Sendable (String) -> Void
    private var task: Task<Void, Never>?
    /// Windows posted and failed, for tests and the agent's own lines.
    public private(set) var posted = 0
    public private(set) var failed = 0

    public init(push: AgentConfig.ControllerPush, window: PushWindow, environment: [String: String] = ProcessInfo.processInfo.environment,
                log: @escaping @Sendable (String) -> Void) throws {
        self.push = push
        self.window = window
        self.log = log
        if let f = push.tokenFile {
            guard let t = try? String(contentsOfFile: f, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else {
                throw AgentError("controller.token_file \(f) cannot be read or is empty: write the controller's token into it (chmod 600)")
            }
            token = t
        } else {
            token = environment["EDGEMETER_CONTROLLER_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    /// Posts the current window now; returns the controller's answer or the reason it failed.
    @discardableResult
    public func pushOnce() async -> Result<String, AgentError> {
        let (rows, dropped) = window.take()
        if dropped > 0 { log("push: \(dropped) samples did not fit the window's \(window.limit) and were not summarised") }
        guard !rows.isEmpty else { return .failure(AgentError("no delay samples in this window")) }
        do {
            let r = try await DelayFeed.post(rows, controller: push.url, token: token, service: push.service, keepTimestamps: true)
            posted += 1
            return .success(r.answer.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            failed += 1
            // ControllerError texts name the URL and the answer, never the token.
            let message = "\(error)"
            log("push to \(push.url) failed: \(message)")
            return .failure(AgentError(message))
        }
    }

    public func start() {
        let period = push.window
        task = Task { [self] in
            let clock = ContinuousClock()
            var next = clock.now.advanced(by: period)
            while !Task.isCancelled {
                do { try await clock.sleep(until: next) } catch { return }
                next = next.advanced(by: period)
                await pushOnce()
            }
        }
    }

    public func stop() { task?.cancel() }
}

/// The agent module's error: what is wrong and what to do.
public struct AgentError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
