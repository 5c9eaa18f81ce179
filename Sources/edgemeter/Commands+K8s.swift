import ArgumentParser
import Foundation
import EdgeMeterCore

/// `edgemeter k8s ...`: Kubernetes objects for running the agent on a cluster.
struct K8sCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "k8s",
        abstract: "Kubernetes manifests: the probing agent, and a migration's move (written, never applied).",
        subcommands: [K8sManifestsCommand.self, KubernetesManifestsCommand.self]
    )
}

struct K8sManifestsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifests",
        abstract: "Write the agent's DaemonSet, ConfigMap, Service, ServiceMonitor and a Prometheus scrape configuration.",
        discussion: """
        One agent per node (DaemonSet, host network), with only NET_RAW added after dropping \
        ALL capabilities, a non-root user, a read-only root file system, CPU and memory \
        requests and limits, and a readiness probe on GET /metrics. The ConfigMap holds the \
        agent configuration (--config, or a default that pings the node's loopback). \
        prometheus-scrape.yaml holds a /metrics job (pod discovery) and a blackbox-style \
        /probe job. Nothing is sent to a cluster: apply the files with kubectl. The image is \
        built with `edgemeter image build --agent`; load it on each node or push it to your \
        registry and pass --image.

        Examples:
          edgemeter k8s manifests --out k8s/
          edgemeter k8s manifests --config agent.yaml --image reg/agent:1
          edgemeter k8s manifests --probe-target 10.0.0.5 --probe-module icmp
        """
    )

    @Option(help: ArgumentHelp("Directory to write the files to (default: print them to stdout).", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("Agent configuration file to put in the ConfigMap (default: a loopback ping).", valueName: "FILE"))
    var config: String?

    @Option(help: ArgumentHelp("Kubernetes namespace of every object.", valueName: "NAME"))
    var namespace = "monitoring"

    @Option(help: ArgumentHelp("Name of the objects and their app.kubernetes.io/name label.", valueName: "NAME"))
    var name = "edgemeter-agent"

    @Option(help: ArgumentHelp("The agent image reference.", valueName: "IMAGE"))
    var image = "edgemeter-agent:latest"

    @Option(help: ArgumentHelp("The agent's port on every node (host network).", valueName: "PORT"))
    var port = KubernetesManifests.defaultPort

    @Option(help: ArgumentHelp("Prometheus scrape interval in seconds.", valueName: "SECONDS"))
    var scrapeInterval = 15

    @Option(help: ArgumentHelp("A target of the /probe job (repeat for more).", valueName: "TARGET"))
    var probeTarget: [String] = []

    @Option(help: ArgumentHelp("Module of the /probe job: icmp, tcp_connect or http_2xx.", valueName: "MODULE"))
    var probeModule = "icmp"

    @Option(help: ArgumentHelp("Non-root UID and GID the agent runs as.", valueName: "UID"))
    var runAsUser = 65534

    func manifests() throws -> KubernetesManifests {
        var text: String? = nil
        if let config {
            guard let t = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw ValidationError("--config \(config) cannot be read: give the agent configuration file (YAML)")
            }
            text = t
        }
        let m = KubernetesManifests(namespace: namespace, name: name, image: image, port: port, agentConfig: text,
                                    scrapeIntervalSeconds: scrapeInterval, probeTargets: probeTarget, probeModule: probeModule,
                                    runAsUser: runAsUser)
        do { try m.validate() } catch let e as ManifestError { throw ValidationError(e.message) }
        return m
    }

    func validate() throws { _ = try manifests() }

    func run() async throws {
        let m = try manifests()
        guard let out else {
            for (i, f) in m.files().enumerated() {
                if i > 0 { print("---") }
                print("# \(f.name)")
                print(f.text, terminator: "")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for f in m.files() {
                let path = URL(fileURLWithPath: out).appendingPathComponent(f.name).path
                try f.text.write(toFile: path, atomically: true, encoding: .utf8)
                print("wrote \(path)")
            }
        } catch {
            throw usageError("cannot write into \(out): \(error.localizedDescription); choose another --out")
        }
    }
}
