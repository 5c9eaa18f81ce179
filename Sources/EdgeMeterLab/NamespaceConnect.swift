import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connect made from inside a named network namespace, without starting a program: a fresh
/// thread enters the namespace (`setns`), opens the socket there (a socket stays in the namespace it
/// was created in) and connects. Only that thread changes namespace; it leaves again before exiting.
enum NamespaceConnect {
    enum Outcome: Equatable {
        case connected
        /// errno text (`Connection refused`, `Network is unreachable`) or `timed out`.
        case failed(String)
    }

    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    private static let setnsFunction: SetNS? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "setns") else { return nil }
        return unsafeBitCast(sym, to: SetNS.self)
    }()
    private static let cloneNewNet: Int32 = 0x4000_0000

    /// Connects to `address`:`port` from inside `/var/run/netns/<netns>`, waiting at most `timeoutMilliseconds`.
    static func connect(netns: String, address: String, port: Int, timeoutMilliseconds: Int32) -> Outcome {
        timedConnect(netns: netns, address: address, port: port, timeoutMilliseconds: timeoutMilliseconds).outcome
    }

    /// As `connect`; `netns` nil connects from the calling process's own namespace. `elapsed` runs on
    /// the monotonic clock from just before `connect()` to the moment the result was known (the
    /// handshake completed, or the error or timeout), so it excludes thread start and `setns`.
    static func timedConnect(netns: String?, address: String, port: Int, timeoutMilliseconds: Int32) -> (outcome: Outcome, elapsed: Duration) {
        let box = OutcomeBox()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.value = attempt(netns: netns, address: address, port: port, timeoutMilliseconds: timeoutMilliseconds, elapsed: &box.elapsed)
            done.signal()
        }
        thread.start()
        done.wait()
        return (box.value, box.elapsed)
    }

    private static func attempt(netns: String?, address: String, port: Int, timeoutMilliseconds: Int32, elapsed: inout Duration) -> Outcome {
        let fd: Int32
        if let netns {
            guard let setns = setnsFunction else { return .failed("setns is not available in this C library") }
            let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            guard original >= 0 else { return .failed("cannot open this thread's namespace: \(String(cString: strerror(errno)))") }
            defer { close(original) }
            let target = open("/var/run/netns/\(netns)", O_RDONLY | O_CLOEXEC)
            guard target >= 0 else { return .failed("namespace \(netns): \(String(cString: strerror(errno)))") }
            defer { close(target) }
            guard setns(target, cloneNewNet) == 0 else { return .failed("setns \(netns): \(String(cString: strerror(errno)))") }
            fd = socket(AF_INET, 1 /* SOCK_STREAM */ | 0o4000 /* SOCK_NONBLOCK */ | 0o2000000 /* SOCK_CLOEXEC */, 0)
            let socketErrno = errno
            _ = setns(original, cloneNewNet)
            guard fd >= 0 else { return .failed("socket: \(String(cString: strerror(socketErrno)))") }
        } else {
            fd = socket(AF_INET, 1 /* SOCK_STREAM */ | 0o4000 /* SOCK_NONBLOCK */ | 0o2000000 /* SOCK_CLOEXEC */, 0)
            guard fd >= 0 else { return .failed("socket: \(String(cString: strerror(errno)))") }
        }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { return .failed("\(address) is not an IPv4 address") }
        let started = ContinuousClock.now
        defer { elapsed = ContinuousClock.now - started }
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return .connected }
        guard errno == EINPROGRESS else { return .failed(String(cString: strerror(errno))) }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let n = poll(&pfd, 1, timeoutMilliseconds)
        if n == 0 { return .failed("timed out") }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0 ? .connected : .failed(String(cString: strerror(err)))
    }
}

private final class OutcomeBox: @unchecked Sendable {
    var value: NamespaceConnect.Outcome = .failed("not run")
    var elapsed: Duration = .zero
}
