import Foundation
import EdgeMeterCore
import EdgeMeterPolicy

/// `GET /metrics`: the Prometheus text exposition format (version 0.0.4), written by hand: a dozen
/// lines of formatting do not earn swift-prometheus's build time. Every family has `# HELP` and
/// `# TYPE`; label values are escaped (`\\`, `\"`, `\n`).
public enum ControllerMetrics {
    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.6g", v)
    }

    struct Family {
        var name: String, help: String, type: String
        var samples: [(labels: [(String, String)], value: Double)] = []
        func render() -> String {
            var out = "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for s in samples {
                let l = s.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
                out += "\(name)\(l.isEmpty ? "" : "{\(l)}") \(number(s.value))\n"
            }
            return out
        }
    }

    public static func render(_ c: MigrationController) async throws -> String {
        var delay = Family(name: "edgemeter_controller_node_delay_seconds",
                           help: "Client-side delay at a percentile (p50, p90, p99) over the node's window, nearest rank over received samples, in seconds.", type: "gauge")
        var received = Family(name: "edgemeter_controller_node_window_samples",
                              help: "Received samples in the node's delay window.", type: "gauge")
        var loss = Family(name: "edgemeter_controller_node_loss_ratio", help: "Lost samples / samples in the node's delay window.", type: "gauge")
        var active = Family(name: "edgemeter_controller_active_node", help: "1 for the node the service runs on, 0 for the others.", type: "gauge")
        var requirement = Family(name: "edgemeter_controller_requirement_seconds",
                                 help: "The service's delay requirement at its percentile, in seconds.", type: "gauge")
        var decisions = Family(name: "edgemeter_controller_decisions_total", help: "Decisions recorded in the state file, by kind.", type: "counter")
        var migrations = Family(name: "edgemeter_controller_migrations_total",
                                help: "Executor runs since the controller started, by outcome.", type: "counter")
        var lastMove = Family(name: "edgemeter_controller_last_migration_seconds",
                              help: "Duration of the last executor run, first phase start to last step end.", type: "gauge")
        for r in await c.allServices {
            for o in await c.observations(r.name) {
                for p in DelayPercentile.allCases {
                    if let v = o.milliseconds(at: p) {
                        delay.samples.append(([("service", r.name), ("node", o.node), ("percentile", p.rawValue)], v / 1000))
                    }
                }
                received.samples.append(([("service", r.name), ("node", o.node)], Double(o.received)))
                loss.samples.append(([("service", r.name), ("node", o.node)], o.lossPercent / 100))
            }
            for n in r.nodes { active.samples.append(([("service", r.name), ("node", n.name)], n.name == r.activeNode ? 1 : 0)) }
            requirement.samples.append(([("service", r.name), ("percentile", r.requirement.percentile.rawValue)], r.requirement.maxMilliseconds / 1000))
        }
        for d in try c.store.decisionCounts() {
            decisions.samples.append(([("service", d.service), ("kind", d.kind)], Double(d.count)))
        }
        for (s, byOutcome) in await c.migrationOutcomes.sorted(by: { $0.key < $1.key }) {
            for (o, n) in byOutcome.sorted(by: { $0.key < $1.key }) { migrations.samples.append(([("service", s), ("outcome", o)], Double(n))) }
        }
        for (s, ms) in await c.lastMigrationDurations.sorted(by: { $0.key < $1.key }) { lastMove.samples.append(([("service", s)], ms / 1000)) }
        return [delay, received, loss, active, requirement, decisions, migrations, lastMove].map { $0.render() }.joined()
    }
}
