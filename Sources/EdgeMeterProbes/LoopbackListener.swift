import Foundation
import CEdgeMeter
import EdgeMeterCore

/// A TCP listener the run starts itself (port 0 = the kernel picks a free port), so tcping has a
/// target on this machine. Accepts every connection; with `echo` it sends back what it reads, then
/// closes when the peer does. Served on its own thread until `close()`.
public final class LoopbackListener: @unchecked Sendable {
    public let address: SocketAddr
    private let fd: Int32
    private let echo: Bool
    private let thread: Thread
    private let stopFlag = StopFlag()

    public init(host: String, port: UInt16 = 0, echo: Bool = false) throws {
        let t = try Resolver.resolve(host, port: port)
        let fd = socket(t.address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ResolveError(target: host, message: "cannot open a listening socket: \(errnoText(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = t.address
        let rc = withUnsafePointer(to: &addr.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, addr.length) } }
        guard rc == 0, listen(fd, 1024) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ResolveError(target: host, message: "cannot listen on \(t.address.hostPort): \(errnoText(e)); choose another address or port")
        }
        var bound = sockaddr_storage()
        var blen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &blen) } }
        self.address = SocketAddr(storage: bound, length: blen)
        self.fd = fd
        self.echo = echo
        let stop = stopFlag
        let isEcho = echo
        self.thread = Thread {
            var buf = [UInt8](repeating: 0, count: 4096)
            while !stop.isStopped {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 50) <= 0 { continue }
                let c = accept(fd, nil, nil)
                if c < 0 { continue }
                if isEcho {
                    // Echo until EOF or 1 s of silence.
                    while true {
                        var q = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
                        if poll(&q, 1, 1000) <= 0 { break }
                        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        _ = buf.withUnsafeBytes { send(c, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                    }
                }
                Glibc.close(c)
            }
        }
        thread.start()
    }

    public func close() {
        if !stopFlag.isStopped {
            stopFlag.stop(reason: "closed")
            Thread.sleep(forTimeInterval: 0.06)
            Glibc.close(fd)
        }
    }

    deinit { close() }
}
