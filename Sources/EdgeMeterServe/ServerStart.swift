import Hummingbird
import Logging
import ServiceLifecycle

/// Starts a Hummingbird application on `host:port` and returns once it listens, with the port it
/// bound (`port` 0 picks a free one). The calculator services, the edge app, the cloud database and
/// the migration controller all start this way; each turns a `ServerStartFailure` into its own error
/// naming the flag to change.
public enum ServerStart {
    /// A running server: the bound port, the task running its service group (it ends when the group
    /// stops), and the group, whose graceful shutdown stops the server.
    public struct Started: Sendable {
        public let port: Int
        public let task: Task<Void, any Error>
        public let group: ServiceGroup
    }

    public static func start(router: Router<BasicRequestContext>, host: String, port: Int, serverName: String,
                             logger: Logger) async throws -> Started {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? port)
                continuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var bound: Int?
        for await p in ports { bound = p; break }
        guard let bound else {
            do { try await task.value } catch { throw ServerStartFailure(underlying: error) }
            throw ServerStartFailure(underlying: nil)
        }
        return Started(port: bound, task: task, group: group)
    }
}

/// The server stopped before it listened: `underlying` is why (the bind error, usually), nil when it
/// ended without one.
public struct ServerStartFailure: Error, CustomStringConvertible {
    public let underlying: (any Error)?
    public var description: String { underlying.map { "\($0)" } ?? "it stopped before listening" }
}

extension ServerStart.Started {
    /// Graceful shutdown: the server stops accepting connections, lets requests in progress finish
    /// and closes idle connections. Returns once it is down, or after `deadline`, when its task is
    /// cancelled.
    public func stop(deadline: Duration = .seconds(5)) async {
        await group.triggerGracefulShutdown()
        let task = self.task
        let guardTask = Task {
            try await Task.sleep(for: deadline)
            task.cancel()
        }
        _ = try? await task.value
        guardTask.cancel()
    }
}

/// A server `ServerStart.start` started, named by `id` (the calculator's role, the edge server's
/// name), with what to release once it is down (`onStop`: connection pools, background tasks).
public final class RunningServer<ID: Sendable>: @unchecked Sendable {
    public let id: ID
    public let host: String
    /// The bound port (the real one when started on port 0).
    public let port: Int
    private let started: ServerStart.Started
    private let onStop: @Sendable () -> Void

    public init(id: ID, host: String, started: ServerStart.Started, onStop: @escaping @Sendable () -> Void = {}) {
        (self.id, self.host, self.port, self.started, self.onStop) = (id, host, started.port, started, onStop)
    }

    /// Graceful shutdown (`ServerStart.Started.stop`: at most 5 s, then cancelled), then `onStop`.
    public func stop() async {
        await started.stop()
        onStop()
    }

    /// Waits until the server ends (it ends only when stopped or on a fatal server error).
    public func wait() async throws { try await started.task.value }
}
