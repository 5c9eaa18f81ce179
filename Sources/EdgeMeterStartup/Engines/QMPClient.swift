import Foundation
import EdgeMeterSystem
#if canImport(Glibc)
import Glibc
#endif

/// A QMP client over the VM's unix socket (blocking reads on a background thread, 50 ms slices):
/// greeting, `qmp_capabilities`, then one command at a time; events are kept in `events`.
final class QMPClient: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let lock = NSLock()
    private(set) var events: [String] = []
    private var closed = false

    private init(fd: Int32) { self.fd = fd }

    static func connect(path: String) async throws -> QMPClient {
        try await onBackgroundThread {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw StartupError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
            guard let rc = UnixSocketAddress.connect(fd, path: path) else { Glibc.close(fd); throw StartupError("QMP socket path too long: \(path)") }
            guard rc == 0 else { Glibc.close(fd); throw StartupError("QMP connect: \(String(cString: strerror(errno)))") }
            let c = QMPClient(fd: fd)
            _ = try c.readMessage(until: .now + .seconds(10))        // greeting
            _ = try c.executeSync("qmp_capabilities", nil)
            return c
        }
    }

    func execute(_ command: String, _ arguments: [String: Any]? = nil) async throws -> Any {
        let args = arguments.map { SendableBox($0) }
        return try await onBackgroundThread { SendableBox(try self.executeSync(command, args?.value)) }.value
    }

    func executeSync(_ command: String, _ arguments: [String: Any]?) throws -> Any {
        try lock.withLock {
            var msg: [String: Any] = ["execute": command]
            if let arguments { msg["arguments"] = arguments }
            var data = try JSONSerialization.data(withJSONObject: msg)
            data.append(10)
            let sent = data.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == data.count else { throw StartupError("QMP \(command): send failed (\(String(cString: strerror(errno))))") }
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                let obj = try readMessage(until: deadline)
                if let e = obj["event"] as? String { events.append(e); continue }
                if let err = obj["error"] as? [String: Any] {
                    throw StartupError("QMP \(command) failed: \(err["desc"] as? String ?? "\(err)")")
                }
                if let r = obj["return"] { return r }
            }
        }
    }

    private func readMessage(until deadline: ContinuousClock.Instant) throws -> [String: Any] {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = Array(buffer[..<nl])
                buffer.removeFirst(nl + 1)
                if let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] { return obj }
                continue
            }
            guard ContinuousClock.now < deadline else { throw StartupError("QMP did not answer in time", status: .timeout) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { throw StartupError("QMP connection closed (qemu exited?)") }
            buffer += chunk.prefix(n)
        }
    }

    func close() {
        lock.withLock {
            if !closed { closed = true; _ = Glibc.close(fd) }
        }
    }
}

struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
