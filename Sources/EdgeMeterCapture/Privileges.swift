import Foundation
import CPcap // em_gettid, em_drop_thread (shim.h)

/// Drops root privileges the way tcpdump -Z does: supplementary groups, then the group, then the
/// user, so the process cannot regain them. Call right after the capture handle is open.
public enum Privileges {
    public static func drop(to user: String) throws {
        guard let pw = getpwnam(user) else {
            throw CaptureError.usage("--user \(user): no such user on this machine; give an existing account such as nobody")
        }
        let uid = pw.pointee.pw_uid
        let gid = pw.pointee.pw_gid
        if getuid() != 0 && geteuid() != 0 {
            if getuid() == uid { return }
            throw CaptureError.permission("--user \(user) needs root to switch users; run as root or leave out --user")
        }
        // A thread glibc's broadcast skips (Swift's async main parks the exited main thread in
        // sigsuspend) is made to drop its own credentials first, while this thread is still root.
        let pid = getpid()
        if em_gettid() != pid, threadUID(pid) == 0 {
            if em_drop_thread(pid, uid, gid) == 0 {
                for _ in 0..<200 where threadUID(pid) != uid { usleep(5000) }
            }
        }
        guard initgroups(user, gid) == 0 else {
            throw CaptureError.permission("initgroups(\(user)) failed: \(String(cString: strerror(errno)))")
        }
        guard setgid(gid) == 0 else {
            throw CaptureError.permission("setgid(\(gid)) failed: \(String(cString: strerror(errno)))")
        }
        guard setuid(uid) == 0 else {
            throw CaptureError.permission("setuid(\(uid)) failed: \(String(cString: strerror(errno)))")
        }
        if setuid(0) == 0 {
            throw CaptureError.permission("privileges were not dropped: setuid(0) still succeeds after switching to \(user)")
        }
        // Every thread of the process must now run as the user.
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for t in tasks {
            guard let tid = Int32(t), let u = threadUID(tid) else { continue }
            if u != uid {
                throw CaptureError.permission("privileges were not dropped on thread \(tid) (uid \(u)); do not use --user with this build, or report this")
            }
        }
    }

    /// Real uid of thread `tid` of this process, from /proc/self/task/TID/status.
    static func threadUID(_ tid: Int32) -> uid_t? {
        guard let s = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8) else { return nil }
        guard let line = s.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
    }

    /// uid and gid of `user`, nil when there is no such account.
    public static func ids(of user: String) -> (uid: uid_t, gid: gid_t)? {
        guard let pw = getpwnam(user) else { return nil }
        return (pw.pointee.pw_uid, pw.pointee.pw_gid)
    }
}
