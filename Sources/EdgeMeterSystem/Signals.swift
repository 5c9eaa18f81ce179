import Dispatch
import EdgeMeterCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM, caught on a Dispatch queue instead of killing the process. The first trap
/// sets both signals to SIG_IGN (so their default action no longer ends the process) and creates
/// one Dispatch signal source per signal, once per process, never cancelled: on Linux, a second
/// source created for the same signal (or one created after another was cancelled) was seen never
/// to fire. Every trap is a handler on those sources, removed by its `cancel()`. Children started
/// through `ChildProcess` get default dispositions back, so a stop still reaches them.
public enum SignalTrap {
    /// The signals every trap catches, with the names used in messages and stop reasons.
    public static let caught: [(signal: Int32, name: String)] = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")]

    /// One installed handler; `cancel()` removes it (the signals stay caught, and ignored when no
    /// handler is left).
    public final class Registration: @unchecked Sendable {
        let id: Int
        init(id: Int) { self.id = id }
        public func cancel() { SignalTrap.remove(id) }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    nonisolated(unsafe) private static var handlers: [(id: Int, handler: @Sendable (String) -> Void)] = []
    nonisolated(unsafe) private static var nextID = 0

    /// Turns SIGINT and SIGTERM into a stop request: the first one asks probes to stop at their
    /// next check (everything measured is kept and summarised); a second one exits at once with
    /// status 130 (samples already streamed to disk stay there). `onFirst` and `onSecond` end the
    /// lines printed on stderr for the first signal ("SIGINT received, …") and for the second one
    /// ("second SIGINT, exiting now; …"). Returns the registration (one element), active until cancelled.
    @discardableResult
    public static func install(_ stop: StopFlag,
                               onFirst: String = "finishing: writing the summary of what was measured (send again to exit at once)",
                               onSecond: String = "samples.csv holds everything measured so far") -> [Registration] {
        [handle { name in
            if stop.isStopped {
                fputs("\nedgemeter: second \(name), exiting now; \(onSecond)\n", stderr)
                _exit(130)
            }
            fputs("\nedgemeter: \(name) received, \(onFirst)\n", stderr)
            stop.stop(reason: name)
        }]
    }

    /// The names of the caught signals as they arrive ("SIGINT", "SIGTERM"), for a server that runs
    /// until told to stop: `for await name in names { ...; break }`, then `registration.cancel()`.
    public static func stream() -> (names: AsyncStream<String>, registration: Registration) {
        let (names, continuation) = AsyncStream<String>.makeStream()
        let registration = handle { continuation.yield($0) }
        return (names, registration)
    }

    /// Adds `handler` (called on a global queue with the signal's name), creating the sources on
    /// first use.
    static func handle(_ handler: @escaping @Sendable (String) -> Void) -> Registration {
        lock.withLock {
            if sources.isEmpty {
                for (sig, name) in caught {
                    signal(sig, SIG_IGN)
                    let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                    src.setEventHandler { deliver(name) }
                    src.resume()
                    sources.append(src)
                }
            }
            nextID += 1
            handlers.append((nextID, handler))
            return Registration(id: nextID)
        }
    }

    static func deliver(_ name: String) {
        let current = lock.withLock { handlers.map(\.handler) }
        for h in current { h(name) }
    }

    static func remove(_ id: Int) {
        lock.withLock { handlers.removeAll { $0.id == id } }
    }
}
