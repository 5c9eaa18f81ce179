import Foundation
import EdgeMeterCore

/// A Prometheus configuration for an agent: the `/metrics` job, and a `/probe` job written exactly
/// as for blackbox_exporter (the probed targets in `static_configs`, relabelled into
/// `__param_target` and `instance`, the exporter's address into `__address__`). The README and the
/// Prometheus integration test use this text.
public enum AgentScrapeConfig {
    public static func yaml(agent: String, probeTargets: [String], module: String, interval: String = "15s") -> String {
        func quoted(_ list: [String]) -> String { "[" + list.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        return """
            global:
              scrape_interval: \(interval)
              scrape_timeout: \(interval)
            scrape_configs:
              - job_name: edgemeter-agent
                static_configs:
                  - targets: \(quoted([agent]))
            \(KubernetesManifests.probeJob(module: module, targets: probeTargets, exporter: agent))
            """
    }
}
