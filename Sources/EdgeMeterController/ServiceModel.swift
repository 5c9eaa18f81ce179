import Foundation
import EdgeMeterCore
import EdgeMeterPolicy

/// A node a service can run on, as the controller knows it.
public struct ServiceNode: Codable, Sendable, Equatable {
    public var name: String
    /// Where the probe loop measures the node through the client's path: `http://HOST:PORT/PATH`
    /// (metric `http_total`: a GET on a new connection, resolve to last byte) or `tcp://HOST:PORT`
    /// (metric `tcp_connect`: connect() until the handshake completed). nil: the node is fed only
    /// by `POST /delays`.
    public var target: String?
    /// The expected interruption of a move there, in ms (the measured startup time of the service
    /// on that node); nil when unknown.
    public var moveCostMilliseconds: Double?

    public init(name: String, target: String? = nil, moveCostMilliseconds: Double? = nil) {
        self.name = name
        self.target = target
        self.moveCostMilliseconds = moveCostMilliseconds
    }
}

/// One service: its nodes, where it runs, what it needs, and the policy's memory. Stored as JSON
/// in the state file and answered by `GET /status`.
public struct ServiceRecord: Codable, Sendable, Equatable {
    public var name: String
    public var nodes: [ServiceNode]
    /// Where the service runs now; nil after a failed rollback (unknown until `service_init`).
    public var activeNode: String?
    public var requirement: DelayRequirement
    public var hysteresis: Hysteresis
    /// The length of each node's delay window, nanoseconds.
    public var windowNanoseconds: Int64
    /// "edgemeter" or "first-response".
    public var policy: String
    public var policyState = PolicyState()
    /// The delay metric the windows take: `http_total`, `tcp_connect` or `ping_rtt`. Posted delays
    /// of another metric are refused (mixing them would compare unlike figures).
    public var metric: String
    /// Why decisions are suspended (a rollback failed), nil normally.
    public var suspended: String?

    public func node(_ name: String) -> ServiceNode? { nodes.first { $0.name == name } }
    public var moveCosts: [String: Double] {
        var out: [String: Double] = [:]
        for n in nodes { if let c = n.moveCostMilliseconds { out[n.name] = c } }
        return out
    }
}

/// The metrics a delay can be, with what each covers.
public enum DelayMetric {
    public static let all = ["http_total", "tcp_connect", "ping_rtt"]
}

/// One entry of the audit trail (`GET /decisions`): the policy's decision with its inputs and
/// reason, and what the executor did about it.
public struct DecisionRecord: Codable, Sendable {
    /// Increasing id in the state file; 0 before it is stored.
    public var id: Int64
    public var service: String
    /// Wall-clock time (CLOCK_REALTIME) when the decision was asked for.
    public var at: Date
    /// What asked: "GET /migrate", "probe loop".
    public var trigger: String
    public var decision: Decision
    /// The active node before and after (after = before unless a migration completed; nil when a
    /// failed rollback left it unknown).
    public var activeBefore: String
    public var activeAfter: String?
    /// The executor's report of a `migrate` decision (also when it failed and rolled back).
    public var migration: MigrationReport?
    /// The executor's error, nil when it succeeded or was not called.
    public var migrationError: String?
    /// From the request to the decision (windows read, policy run), milliseconds on the
    /// controller's monotonic clock.
    public var decideMilliseconds: Double
    /// From the request until the executor returned (0 when none ran), milliseconds.
    public var totalMilliseconds: Double
}
