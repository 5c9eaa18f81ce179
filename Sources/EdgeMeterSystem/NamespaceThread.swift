import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs synchronous work inside a named network namespace (`/var/run/netns/<name>`, as `ip netns`
/// makes them) without starting a program: a fresh thread enters the namespace with `setns`, runs
/// the body there to its end, and leaves again before exiting. Every socket the body creates is
/// created in that namespace (a socket stays in the namespace it was created in, whichever thread
/// uses it later). Only that thread changes namespace; the caller waits for it.
///
/// The body must be synchronous and keep to its thread: sockets made by other threads (an event
/// loop, a thread pool) would be made in the process's own namespace. ping and tcping are written
/// that way (`poll()` on the calling thread).
public enum NamespaceThread {
    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    private static let setnsFunction: SetNS? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "setns") else { return nil }
        return unsafeBitCast(sym, to: SetNS.self)
    }()
    private static let cloneNewNet: Int32 = 0x4000_0000

    /// Runs `body` on a new thread inside namespace `name` and returns what it returns (or throws
    /// what it throws). Throws `SystemError` when the namespace cannot be entered.
    public static func run<T>(in name: String, _ body: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            guard let setns = setnsFunction else {
                box.result = .failure(SystemError("setns is not available in this C library; run the scenario from the host"))
                return
            }
            let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            guard original >= 0 else {
                box.result = .failure(SystemError("cannot open this thread's network namespace: \(String(cString: strerror(errno)))"))
                return
            }
            defer { close(original) }
            let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
            guard target >= 0 else {
                box.result = .failure(SystemError("network namespace \(name): \(String(cString: strerror(errno))); is the topology up (`edgemeter lab status`)?"))
                return
            }
            defer { close(target) }
            guard setns(target, cloneNewNet) == 0 else {
                box.result = .failure(SystemError("entering network namespace \(name) failed: \(String(cString: strerror(errno))); it needs root (CAP_SYS_ADMIN)"))
                return
            }
            defer { _ = setns(original, cloneNewNet) }
            box.result = Result { try body() }
        }
        thread.stackSize = 4 << 20
        thread.start()
        done.wait()
        return try box.result!.get()
    }

    /// The network namespace the calling thread is in (`net:[4026531840]`), to check where a body ran.
    public static func currentNamespaceID() -> String {
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self/ns/net", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}
