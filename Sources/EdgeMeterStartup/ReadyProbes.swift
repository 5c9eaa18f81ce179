import EdgeMeterCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Readiness checks over plain POSIX sockets (IPv4 only), each retried until it succeeds, the
/// deadline passes or a stop is requested; every wait is sliced to at most 50 ms.
enum ReadyProbes {
    /// Runs blocking socket code on a background thread.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
        }
    }

    /// Succeeds at the first TCP connection to `host:port`. With `banner`, the connection must
    /// also deliver at least one byte (QEMU's user-mode NAT accepts on the host side before the
    /// guest listens, so a bare connect proves nothing there).
    static func tcp(host: String, port: Int, banner: Bool, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await blocking {
            var lastError = "no attempt"
            while true {
                try checkStop(stop, deadline, "a TCP connection to \(host):\(port) (last: \(lastError))")
                switch connectOnce(host: host, port: port, deadline: deadline, stop: stop) {
                case .failure(let e):
                    lastError = e.message
                    usleep(10_000)
                case .success(let fd):
                    defer { close(fd) }
                    if !banner { return }
                    switch readSome(fd, deadline: min(deadline, .now + .milliseconds(300)), stop: stop) {
                    case .success(let bytes) where !bytes.isEmpty: return
                    case .success: lastError = "connection closed before the guest's banner"
                    case .failure(let e): lastError = e.message
                    }
                    usleep(10_000)
                }
            }
        }
    }

    /// Succeeds when `GET path` on `host:port` answers with status 200 (HTTP/1.0, connection closed after).
    static func http(host: String, port: Int, path: String, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await blocking {
            var lastError = "no attempt"
            while true {
                try checkStop(stop, deadline, "HTTP 200 from http://\(host):\(port)\(path) (last: \(lastError))")
                switch connectOnce(host: host, port: port, deadline: deadline, stop: stop) {
                case .failure(let e):
                    lastError = e.message
                case .success(let fd):
                    defer { close(fd) }
                    let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nUser-Agent: edgemeter\r\n\r\n".utf8)
                    let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    guard sent == request.count else { lastError = "send: \(String(cString: strerror(errno)))"; break }
                    var response: [UInt8] = []
                    while !response.contains(10) {
                        guard case .success(let bytes) = readSome(fd, deadline: min(deadline, .now + .seconds(2)), stop: stop),
                              !bytes.isEmpty else { break }
                        response += bytes
                    }
                    let statusLine = String(decoding: response.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
                    let parts = statusLine.split(separator: " ")
                    if parts.count >= 2, parts[1] == "200" { return }
                    lastError = statusLine.isEmpty ? "no HTTP status line" : "answered \"\(statusLine)\""
                }
                usleep(10_000)
            }
        }
    }

    /// Succeeds at the first ICMP echo reply from `host` (raw socket; needs root or CAP_NET_RAW).
    static func icmp(host: String, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await blocking {
            let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
            guard fd >= 0 else {
                throw StartupError("cannot open a raw ICMP socket (\(String(cString: strerror(errno)))): run as root or `setcap cap_net_raw+ep $(which edgemeter)`")
            }
            defer { close(fd) }
            var addr = try sockaddrIn(host: host, port: 0)
            let ident = UInt16(truncatingIfNeeded: getpid() ^ Int32(truncatingIfNeeded: Int(bitPattern: UInt(arc4random()))))
            var seq: UInt16 = 0
            while true {
                try checkStop(stop, deadline, "an ICMP echo reply from \(host)")
                seq &+= 1
                var packet: [UInt8] = [8, 0, 0, 0, UInt8(ident >> 8), UInt8(ident & 0xff), UInt8(seq >> 8), UInt8(seq & 0xff)]
                packet += Array("edgemeter-startup".utf8)
                let sum = checksum(packet)
                packet[2] = UInt8(sum >> 8); packet[3] = UInt8(sum & 0xff)
                _ = packet.withUnsafeBytes { buf in
                    withUnsafePointer(to: &addr) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
                // Wait up to 20 ms for our reply, then send the next echo.
                let resend = ContinuousClock.now + .milliseconds(20)
                while ContinuousClock.now < resend {
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    guard poll(&pfd, 1, 5) > 0 else { continue }
                    var buf = [UInt8](repeating: 0, count: 1500)
                    var from = sockaddr_in()
                    var fromLen = socklen_t(MemoryLayout<sockaddr_in>.size)
                    let n = buf.withUnsafeMutableBytes { b in
                        withUnsafeMutablePointer(to: &from) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &fromLen) }
                        }
                    }
                    guard n > 20 else { continue }
                    let ihl = Int(buf[0] & 0x0f) * 4
                    guard n >= ihl + 8, from.sin_addr.s_addr == addr.sin_addr.s_addr else { continue }
                    let type = buf[ihl], id = UInt16(buf[ihl + 4]) << 8 | UInt16(buf[ihl + 5])
                    if type == 0 && id == ident { return }
                }
            }
        }
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func checkStop(_ stop: StopFlag, _ deadline: ContinuousClock.Instant, _ what: String) throws {
        if stop.isStopped { throw StartupError("interrupted (\(stop.reason ?? "stop requested")) while waiting for \(what)") }
        if ContinuousClock.now >= deadline { throw StartupError("no \(what) before the timeout", status: .timeout) }
    }

    static func sockaddrIn(host: String, port: Int) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            throw StartupError("\(host) is not an IPv4 address")
        }
        return addr
    }

    /// One non-blocking connect, waited for in 50 ms slices.
    static func connectOnce(host: String, port: Int, deadline: ContinuousClock.Instant, stop: StopFlag) -> Result<Int32, StartupError> {
        guard var addr = try? sockaddrIn(host: host, port: port) else { return .failure(StartupError("\(host) is not an IPv4 address")) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failure(StartupError("socket: \(String(cString: strerror(errno)))")) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return .success(fd) }
        guard errno == EINPROGRESS else {
            let e = String(cString: strerror(errno)); close(fd)
            return .failure(StartupError("connect: \(e)"))
        }
        while !stop.isStopped && ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&pfd, 1, 50) > 0 {
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err == 0 { return .success(fd) }
                close(fd)
                return .failure(StartupError("connect: \(String(cString: strerror(err)))"))
            }
        }
        close(fd)
        return .failure(StartupError("connect did not complete"))
    }

    /// Reads what is available once it arrives: empty array = orderly close.
    static func readSome(_ fd: Int32, deadline: ContinuousClock.Instant, stop: StopFlag) -> Result<[UInt8], StartupError> {
        while !stop.isStopped && ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 50) > 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return .failure(StartupError("recv: \(String(cString: strerror(errno)))"))
                }
                return .success(Array(buf.prefix(n)))
            }
        }
        return .failure(StartupError("no data"))
    }
}
