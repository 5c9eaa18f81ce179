/// How the wire analysis finds a probe's exchange among the captured packets. Each probe declares
/// its keys (`WireMatchable`); the capture hook pairs application samples with wire samples by
/// these keys instead of by probe-name strings.
public enum WireMatch: String, Sendable, Hashable, CaseIterable {
    /// Labels `icmp_id` and `seq` ↔ the wire phase `icmp_echo` (request → reply).
    case icmpEcho
    /// Label `local_port` (with the target's port as the server port) ↔ the wire phases
    /// `tcp_syn_synack`, `tcp_synack_ack` and `tcp_handshake` of that connection.
    case tcpHandshake
    /// Labels `local_port` and `request` ↔ the wire phase `http_first_byte`; without a local port,
    /// in order per server when the counts agree.
    case httpFirstByte
}

/// One application phase a probe can match on the wire, and by what.
public struct WireKey: Sendable, Hashable {
    /// The phase of the probe's samples (`echo`, `connect`, `first_byte`).
    public var phase: String
    public var match: WireMatch
    public init(phase: String, match: WireMatch) { (self.phase, self.match) = (phase, match) }
}

/// A probe that says how its samples are found on the wire.
public protocol WireMatchable {
    /// The `probe` column of its samples.
    static var probeName: String { get }
    /// The phases that have a wire counterpart.
    static var wireKeys: [WireKey] { get }
}
