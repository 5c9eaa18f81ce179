import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A unix-domain socket address (`sockaddr_un`) for a path, and `bind()`/`connect()` on it: the one
/// place that copies a path into `sun_path`.
public enum UnixSocketAddress {
    /// The longest path `sun_path` holds with its terminating NUL: 107 bytes on Linux.
    public static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Binds `fd` to `path`: `bind()`'s result (0, or -1 with `errno` set), or nil when `path` is
    /// longer than `maxPathBytes` (then nothing was called).
    public static func bind(_ fd: Int32, path: String) -> Int32? {
        with(path) { Glibc.bind(fd, $0, $1) }
    }

    /// Connects `fd` to `path`: `connect()`'s result (0, or -1 with `errno` set), or nil when
    /// `path` is longer than `maxPathBytes` (then nothing was called).
    public static func connect(_ fd: Int32, path: String) -> Int32? {
        with(path) { Glibc.connect(fd, $0, $1) }
    }

    static func with(_ path: String, _ call: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32? {
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathBytes else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, c) in bytes.enumerated() { p[i] = c } }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
