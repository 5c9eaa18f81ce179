import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CEdgeMeter
import EdgeMeterHTTP
import EdgeMeterSystem

/// TCP exchanges timed by the client's kernel rather than by the client thread's clock, for the
/// calibration certificate (`CalibrationSeries`): what they time ends when the answer reached the
/// client's network stack, so the time the client thread takes to wake up and read it (on a
/// virtual CPU that went idle between exchanges: 0.5-1.5 ms here, growing with the idle time) is
/// not in the figure. They measure the link, as the ICMP probe's kernel receive stamp does.
///
/// - `connect`: the kernel's own round-trip sample of the handshake (`TCP_INFO.tcpi_rtt`, µs, the
///   first sample: SYN handed to IP → SYN-ACK processed by the client's TCP). When the SYN was
///   retransmitted (loss) the kernel takes no clean sample from it, so the figure is then the
///   thread's `connect()` → connected time, which contains the retransmission stall.
/// - `KeepAliveConnection.exchange`: CLOCK_REALTIME read just before `send()` of the request →
///   the SO_TIMESTAMPNS receive stamp (CLOCK_REALTIME) of the segment that completed the response.
public enum KernelStampedTCP {
    public struct Connected: Sendable {
        public var fd: Int32
        /// The thread's `connect()` → connected, CLOCK_MONOTONIC.
        public var userNanoseconds: Int64
        /// The kernel's handshake RTT (`tcpi_rtt`), nil when it took none.
        public var kernelRTTNanoseconds: Int64?
        /// True when the kernel retransmitted the SYN (`tcpi_total_retrans` > 0).
        public var retransmitted: Bool

        /// The calibration figure: the kernel's sample, or the thread's time when the SYN was
        /// retransmitted or the kernel gave no sample.
        public var figureNanoseconds: Int64 {
            if !retransmitted, let k = kernelRTTNanoseconds, k > 0 { return k }
            return userNanoseconds
        }
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ d: String) { description = d }
    }

    /// Connects to a numeric IPv4/IPv6 `host`; the caller closes `fd`.
    public static func connect(host: String, port: Int, timeoutNanoseconds: Int64) throws -> Connected {
        guard let a = TimedTCPConnect.numericAddress(host: host, port: port) else {
            throw Failure("\(host) is not a numeric IP address; the calibration probes take one")
        }
        switch TimedTCPConnect.open(storage: a.storage, length: a.length, timeoutNanoseconds: timeoutNanoseconds) {
        case .failure(let f): throw Failure("connect to \(host):\(port): \(f.description)")
        case .success(let c):
            var info = tcp_info()
            var len = socklen_t(MemoryLayout<tcp_info>.size)
            guard getsockopt(c.fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &len) == 0 else {
                return Connected(fd: c.fd, userNanoseconds: c.nanoseconds, kernelRTTNanoseconds: nil, retransmitted: false)
            }
            return Connected(fd: c.fd, userNanoseconds: c.nanoseconds,
                             kernelRTTNanoseconds: info.tcpi_rtt > 0 ? Int64(info.tcpi_rtt) * 1000 : nil,
                             retransmitted: info.tcpi_total_retrans > 0 || info.tcpi_retransmits > 0)
        }
    }

    /// One keep-alive HTTP/1.1 connection on a plain socket whose responses carry kernel receive
    /// stamps (SO_TIMESTAMPNS).
    public final class KeepAliveConnection {
        public let fd: Int32
        private var parser = HTTP1Parser(kind: .response, keepHeaders: false)
        private var buffer = [UInt8](repeating: 0, count: 65536)

        public init(host: String, port: Int, timeoutNanoseconds: Int64) throws {
            let c = try KernelStampedTCP.connect(host: host, port: port, timeoutNanoseconds: timeoutNanoseconds)
            fd = c.fd
            guard em_enable_rx_metadata(fd, Int32(host.contains(":") ? AF_INET6 : AF_INET)) == 1 else {
                close(fd)
                throw Failure("SO_TIMESTAMPNS refused on the TCP socket (\(String(cString: strerror(errno)))); kernel receive stamps are needed")
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        }

        deinit { close(fd) }

        /// Writes `request` (one whole HTTP/1.1 request) and reads the whole response. Returns its
        /// status and request written → response's last segment received by the kernel, ns.
        public func exchange(_ request: [UInt8], timeoutNanoseconds: Int64) throws -> (status: Int, nanoseconds: Int64) {
            parser.expectResponse(toHEAD: false)
            let start = em_clock_realtime_ns()
            let deadline = em_clock_monotonic_ns() + timeoutNanoseconds
            var off = 0
            while off < request.count {
                let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + off, request.count - off, Int32(MSG_NOSIGNAL)) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { try wait(Int16(POLLOUT), deadline); continue }
                    throw Failure("send: \(String(cString: strerror(errno)))")
                }
                off += n
            }
            var status = 0
            while true {
                var info = em_rxinfo()
                let n = buffer.withUnsafeMutableBytes { em_recvmsg(fd, $0.baseAddress, $0.count, nil, nil, &info, Int32(MSG_DONTWAIT)) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { try wait(Int16(POLLIN), deadline); continue }
                    throw Failure("recv: \(String(cString: strerror(errno)))")
                }
                if n == 0 { throw Failure("the server closed the connection before the whole response") }
                var ended = false
                try buffer.withUnsafeBytes { p in
                    try parser.feed(UnsafeRawBufferPointer(rebasing: p[0..<n])) { e in
                        switch e {
                        case .head(let h): status = h.status
                        case .end: ended = true
                        default: break
                        }
                    }
                }
                if ended {
                    guard info.has_kernel_timestamp != 0 else { throw Failure("the response's segment carried no kernel receive stamp") }
                    let stamp = info.kernel_ts_sec * 1_000_000_000 + info.kernel_ts_nsec
                    return (status, stamp - start)
                }
            }
        }

        /// Pushes out a pending ACK now (TCP_QUICKACK) rather than by the delayed-ACK timer.
        public func quickAck() {
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, 4)
        }

        private func wait(_ events: Int16, _ deadline: Int64) throws {
            let left = deadline - em_clock_monotonic_ns()
            guard left > 0 else { throw Failure("no whole response within the timeout") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            _ = em_poll_ns(&p, 1, left)
        }
    }
}
