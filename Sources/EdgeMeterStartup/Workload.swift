import Foundation

/// The busybox shell script every backend's default workload runs, chosen by the ready check: it
/// prints the marker line, starts the listener the check needs, and exits 0 on SIGTERM so `stop`
/// measures a clean shutdown rather than the engine's kill timeout.
public enum Workload {
    /// The banner a TCP listener sends on accept (see `ReadyCheck.tcp`).
    public static let banner = "SSH-2.0-edgemeter"

    public static func script(for check: ReadyCheck, marker: String = ReadyCheck.defaultMarker) -> String {
        let prologue = "trap 'exit 0' TERM USR1 INT\n"
        switch check {
        case .exit:
            return "echo \(marker)\nexit 0\n"
        case .marker(let m):
            return prologue + "echo \(m)\nsleep 3600 &\nwait\n"
        case .tcp(let port):
            return prologue + """
                printf '#!/bin/sh\\necho \(banner)\\n' > /tmp/edgemeter-banner
                chmod +x /tmp/edgemeter-banner
                nc -ll -p \(port) -e /tmp/edgemeter-banner &
                echo \(marker)
                wait

                """
        case .http(let port, _):
            return prologue + """
                mkdir -p /tmp/www
                echo edgemeter > /tmp/www/index.html
                httpd -f -p \(port) -h /tmp/www &
                echo \(marker)
                wait

                """
        case .icmp:
            return prologue + "echo \(marker)\nsleep 3600 &\nwait\n"
        }
    }
}
