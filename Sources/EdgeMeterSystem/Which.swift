import Foundation

/// The search path used when the environment has no `PATH`.
public let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// Finds a program the way a root shell would: each directory of `path` (default: the environment's
/// `PATH`, or `defaultSearchPath` when unset), then `/usr/sbin` and `/sbin`, which a non-login PATH
/// often lacks although iproute2 and the lxc-* tools live there. The first regular file with execute
/// permission wins. A name containing `/` is checked as given. Nil when there is none.
public func which(_ name: String, path: String? = nil) -> String? {
    guard !name.isEmpty else { return nil }
    if name.contains("/") { return isExecutableFile(name) ? name : nil }
    let search = path ?? ProcessInfo.processInfo.environment["PATH"] ?? defaultSearchPath
    let dirs = search.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
    for dir in dirs where !dir.isEmpty {
        let candidate = "\(dir)/\(name)"
        if isExecutableFile(candidate) { return candidate }
    }
    return nil
}

/// `which`, or an error naming what to do: an absolute or relative path must be an executable file,
/// a bare name must be found on PATH.
public func resolveExecutable(_ name: String) throws -> String {
    if name.contains("/") {
        guard isExecutableFile(name) else { throw SystemError("\(name) is not an executable file") }
        return name
    }
    if let found = which(name) { return found }
    throw SystemError("\(name) not found on PATH: install it or give its absolute path")
}

/// A regular file (after following symlinks) this process may execute; directories do not count.
func isExecutableFile(_ path: String) -> Bool {
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
    return access(path, X_OK) == 0
}
