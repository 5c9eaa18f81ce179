import Foundation
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem
#if canImport(Glibc)
import Glibc
#endif

/// The probe loop's measurement made from inside a named network namespace (`ip netns`, or a lab
/// node's namespace): the same `ProbeLoop.measure` (same spans as on the host), with its name lookup,
/// socket and connection on `HTTPSocketThreads` created on a thread that entered the namespace
/// first (`NamespaceThread`): threads inherit the namespace of the thread that creates them, so
/// every socket of the measurement belongs to the namespace and the path measured is the
/// namespace's. The suites' `from: NODE` for http/calc works the same way.
public enum NamespaceProbe {
    /// Checks that `namespace` exists and can be entered; throws a `ControllerError` naming the
    /// next step otherwise.
    public static func check(_ namespace: String) throws {
        do {
            _ = try NamespaceThread.run(in: namespace) { NamespaceThread.currentNamespaceID() }
        } catch {
            throw ControllerError("cannot probe from network namespace \(namespace): \(error)")
        }
    }

    /// Threads whose sockets live in `namespace` (`shutdown()` them after use).
    public static func threads(in namespace: String) throws -> HTTPSocketThreads {
        try NamespaceThread.run(in: namespace) { HTTPSocketThreads() }
    }

    /// Measures `target` once with `threads`' sockets; nil milliseconds = lost.
    public static func measure(_ target: String, timeout: Duration, threads: HTTPSocketThreads) async -> Double? {
        await HTTPSocketThreads.$current.withValue(threads) { await ProbeLoop.measure(target, timeout: timeout) }
    }

    /// Measures `target` once from `namespace` with threads made for this one measurement.
    public static func measure(_ target: String, timeout: Duration, namespace: String) async -> Double? {
        guard let t = try? threads(in: namespace) else { return nil }
        let ms = await measure(target, timeout: timeout, threads: t)
        await t.shutdown()
        return ms
    }
}
