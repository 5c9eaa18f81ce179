import Foundation
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem
#if canImport(Glibc)
import Glibc
#endif

/// The probe loop's measurement made from inside a named network namespace (`ip netns`, or a lab
/// node's namespace): the whole measurement (name lookup, socket, connect, request, response) runs
/// synchronously on a thread that entered the namespace first (`NamespaceThread`), so its socket
/// belongs to that namespace and the path measured is the namespace's. No event loop is used: NIO's
/// threads were created in the process's own namespace.
///
/// - `tcp://` target: from just before `connect()` until the handshake completed
///   (`TimedTCPConnect`, CLOCK_MONOTONIC), the span `ProbeLoop.measure` reports on the host.
/// - `http://` target: a GET with `Connection: close` on a new connection, from just before
///   `connect()` (after the name lookup) until the response's last byte was read (its
///   `Content-Length`, or the server closing), CLOCK_MONOTONIC; status 2xx/3xx counts, anything
///   else, no answer or the whole exchange taking longer than `timeout` is lost (nil).
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

    /// Measures `target` once from `namespace`; nil milliseconds = lost. Runs on a thread of its
    /// own, so it never blocks the caller's executor.
    public static func measure(_ target: String, timeout: Duration, namespace: String) async -> Double? {
        await withCheckedContinuation { (cont: CheckedContinuation<Double?, Never>) in
            DispatchQueue.global().async {
                let ms = try? NamespaceThread.run(in: namespace) { blockingMeasure(target, timeout: timeout) }
                cont.resume(returning: ms ?? nil)
            }
        }
    }

    /// The measurement itself, on the calling thread (and in its namespace).
    public static func blockingMeasure(_ target: String, timeout: Duration) -> Double? {
        let host: String, port: Int
        var http: HTTPTarget?
        if target.hasPrefix("tcp://") {
            guard let hp = ProbeTarget.hostPort(String(target.dropFirst(6))) else { return nil }
            (host, port) = (hp.host, hp.port)
        } else {
            guard let t = try? HTTPTarget(url: target) else { return nil }
            (host, port, http) = (t.host, t.port, t)
        }
        let address: SocketAddress
        if let literal = try? SocketAddress(ipAddress: host, port: port) {
            address = literal
        } else {
            guard let a = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return nil }
            address = a
        }
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        address.withSockAddr { sa, len in
            withUnsafeMutableBytes(of: &storage) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(len, dst.count))) }
            length = socklen_t(len)
        }
        let budget = timeout.nanoseconds
        let t0 = Int64(monotonicNanos())
        guard case .success(let c) = TimedTCPConnect.open(storage: storage, length: length, timeoutNanoseconds: max(1, budget)) else { return nil }
        defer { close(c.fd) }
        guard let http else { return Double(c.nanoseconds) / 1e6 }
        let deadline = t0 + budget
        var request = HTTPRequestSpec(method: "GET", path: http.path).wireBytes(host: http.hostHeader, keepAlive: false)
        let bytes = request.readBytes(length: request.readableBytes) ?? []
        guard writeAll(c.fd, bytes, deadline: deadline) else { return nil }
        guard let status = readResponse(c.fd, deadline: deadline), (200..<400).contains(status) else { return nil }
        return Double(Int64(monotonicNanos()) - t0) / 1e6
    }

    private static func waitFor(_ fd: Int32, _ events: Int32, deadline: Int64) -> Bool {
        while true {
            let left = deadline - Int64(monotonicNanos())
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let n = poll(&p, 1, Int32(min(50, max(1, left / 1_000_000))))
            if n > 0 { return true }
            if n < 0 && errno != EINTR { return false }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], deadline: Int64) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { off += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard waitFor(fd, Int32(POLLOUT), deadline: deadline) else { return false }
                continue
            }
            return false
        }
        return true
    }

    /// Reads one response to its end (Content-Length, else the server closing); returns its status.
    private static func readResponse(_ fd: Int32, deadline: Int64) -> Int? {
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16 << 10)
        var headerEnd: Int?
        var status: Int?
        var contentLength: Int?
        let separator: [UInt8] = [13, 10, 13, 10]
        while true {
            if let h = headerEnd, let cl = contentLength, data.count - h >= cl { return status }
            guard data.count < 8 << 20 else { return nil }
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return headerEnd == nil ? nil : status }
            if n < 0 {
                guard errno == EAGAIN || errno == EINTR, waitFor(fd, Int32(POLLIN), deadline: deadline) else { return nil }
                continue
            }
            data.append(contentsOf: buf[0..<n])
            if headerEnd == nil, data.count >= 4 {
                for i in 0...(data.count - 4) where Array(data[i..<(i + 4)]) == separator {
                    headerEnd = i + 4
                    break
                }
                if let h = headerEnd {
                    let head = String(decoding: data[0..<h], as: UTF8.self)
                    let lines = head.components(separatedBy: "\r\n")
                    let parts = lines.first?.split(separator: " ") ?? []
                    guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let s = Int(parts[1]) else { return nil }
                    status = s
                    for l in lines.dropFirst() {
                        let kv = l.split(separator: ":", maxSplits: 1)
                        if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "content-length" {
                            contentLength = Int(kv[1].trimmingCharacters(in: .whitespaces))
                        }
                    }
                }
            }
        }
    }
}
