import Foundation

/// `edgemeter k8s manifests`: the Kubernetes objects that run one `edgemeter agent` per node and
/// let Prometheus scrape it. Pure text generation (no cluster is contacted); each file is one YAML
/// document except `prometheus-scrape.yaml`, a `scrape_configs` fragment for a plain Prometheus.
///
/// What the objects promise:
/// - `DaemonSet`: one pod per node (tolerates every taint), `hostNetwork: true` so the agent probes
///   from the node's own network namespace as a process on that host would; the container drops
///   ALL capabilities and adds only `NET_RAW` (raw ICMP sockets), runs as a non-root user with a
///   read-only root file system, has CPU/memory requests and limits, and is ready only once
///   `GET /metrics` answers on the agent's port.
/// - `ConfigMap`: the agent's configuration file, mounted read-only at `/etc/edgemeter/agent.yaml`.
/// - `Service`: headless (`clusterIP: None`), port `metrics`, so each agent pod is an endpoint.
/// - `ServiceMonitor` (prometheus-operator, monitoring.coreos.com/v1): scrapes `/metrics` of every
///   endpoint of the Service.
/// - `prometheus-scrape.yaml`: a `/metrics` job (Kubernetes pod discovery, keeping the DaemonSet's
///   pods) and a blackbox-style `/probe` job whose targets go through the relabelling a
///   blackbox_exporter configuration uses (`__param_target`, `instance`, `__address__`).
public struct KubernetesManifests: Sendable {
    public var namespace: String
    /// The application name: object names and the `app.kubernetes.io/name` label.
    public var name: String
    /// The agent image; built locally by `edgemeter image build --agent` (load it on each node or
    /// push it to your registry and give its reference here).
    public var image: String
    /// The agent's port (host network: it is opened on every node).
    public var port: Int
    /// The agent configuration file's text, put in the ConfigMap as it is.
    public var agentConfig: String
    /// Prometheus scrape interval in seconds.
    public var scrapeIntervalSeconds: Int
    /// Targets of the blackbox-style `/probe` job and the module it asks for.
    public var probeTargets: [String]
    public var probeModule: String
    /// Non-root user and group the agent runs as (65534 = nobody).
    public var runAsUser: Int
    public var cpuRequestMillicores: Int
    public var cpuLimitMillicores: Int
    public var memoryRequestMiB: Int
    public var memoryLimitMiB: Int

    public static let defaultPort = 9427
    public static let configMountPath = "/etc/edgemeter"
    public static let modules = ["icmp", "tcp_connect", "http_2xx"]

    public init(namespace: String = "monitoring", name: String = "edgemeter-agent", image: String = "edgemeter-agent:latest",
                port: Int = KubernetesManifests.defaultPort, agentConfig: String? = nil, scrapeIntervalSeconds: Int = 15,
                probeTargets: [String] = [], probeModule: String = "icmp", runAsUser: Int = 65534,
                cpuRequestMillicores: Int = 50, cpuLimitMillicores: Int = 500, memoryRequestMiB: Int = 32, memoryLimitMiB: Int = 128) {
        self.namespace = namespace
        self.name = name
        self.image = image
        self.port = port
        self.agentConfig = agentConfig ?? Self.defaultAgentConfig(port: port)
        self.scrapeIntervalSeconds = scrapeIntervalSeconds
        self.probeTargets = probeTargets
        self.probeModule = probeModule
        self.runAsUser = runAsUser
        self.cpuRequestMillicores = cpuRequestMillicores
        self.cpuLimitMillicores = cpuLimitMillicores
        self.memoryRequestMiB = memoryRequestMiB
        self.memoryLimitMiB = memoryLimitMiB
    }

    /// The agent configuration used when none is given: listen on every address of the node (the
    /// agent binds 127.0.0.1 unless told, which Prometheus on another host could not reach), ping
    /// the node's own loopback every second, and allow `/probe` only for the cluster's private ranges.
    public static func defaultAgentConfig(port: Int) -> String {
        """
        # edgemeter agent configuration (docs/agent.md). Replace the probes with your nodes.
        listen: 0.0.0.0:\(port)
        interval: 1s
        probe_cidrs: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8]
        probes:
          - {name: loopback, kind: ping, targets: [127.0.0.1]}

        """
    }

    /// Checks the values before anything is written; each error names the flag to change.
    public func validate() throws {
        func bad(_ s: String) -> ManifestError { ManifestError(message: s) }
        let dns = #"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"#
        for (flag, v) in [("--namespace", namespace), ("--name", name)] {
            guard v.count <= 63, v.range(of: dns, options: .regularExpression) != nil else {
                throw bad("\(flag) \"\(v)\" is not a Kubernetes name: lower-case letters, digits and '-', at most 63, starting and ending alphanumeric")
            }
        }
        guard (1...65535).contains(port) else { throw bad("--port \(port) is not a TCP port: give 1-65535") }
        guard !image.isEmpty, !image.contains(where: \.isWhitespace) else { throw bad("--image \"\(image)\" is not an image reference") }
        guard Self.modules.contains(probeModule) else {
            throw bad("--probe-module \"\(probeModule)\" is not one the agent's /probe serves: \(Self.modules.joined(separator: ", "))")
        }
        guard scrapeIntervalSeconds > 0 else { throw bad("--scrape-interval must be a positive number of seconds") }
        guard runAsUser > 0 else { throw bad("--run-as-user must be a non-root UID (> 0)") }
    }

    /// File name → text, in the order a reader applies them.
    public func files() -> [(name: String, text: String)] {
        [("configmap.yaml", configMap()), ("daemonset.yaml", daemonSet()), ("service.yaml", service()),
         ("servicemonitor.yaml", serviceMonitor()), ("prometheus-scrape.yaml", prometheusScrapeConfig())]
    }

    /// A YAML double-quoted scalar.
    /// The `/probe` scrape job, written exactly as a blackbox_exporter job: each static target
    /// relabelled into `__param_target` and `instance`, the scrape sent to `exporter` (an agent).
    /// Items of `scrape_configs:` (two-space indent), ending with a newline. The agent's own scrape
    /// configuration (`AgentScrapeConfig`) and the manifests' `prometheus-scrape.yaml` both use it.
    public static func probeJob(module: String, targets: [String], exporter: String, interval: String? = nil) -> String {
        let list = "[" + targets.map(q).joined(separator: ", ") + "]"
        return "  - job_name: edgemeter-probe\n"
            + (interval.map { "    scrape_interval: \($0)\n" } ?? "")
            + """
                metrics_path: /probe
                params:
                  module: [\(q(module))]
                static_configs:
                  - targets: \(list)
                relabel_configs:
                  - source_labels: [__address__]
                    target_label: __param_target
                  - source_labels: [__param_target]
                    target_label: instance
                  - target_label: __address__
                    replacement: \(q(exporter))

            """
    }

    /// A YAML double-quoted scalar (written as a JSON string, which YAML reads as it is).
    static func q(_ s: String) -> String { TextEscaping.jsonString(s) }

    var labels: String {
        """
            app.kubernetes.io/name: \(Self.q(name))
            app.kubernetes.io/component: probe-agent
            app.kubernetes.io/part-of: edgemeter
        """
    }

    /// The file header, then an object's `apiVersion`, `kind` and `metadata` (its name, the
    /// namespace, the agent's labels): how every manifest starts.
    func start(_ apiVersion: String, _ kind: String, name: String? = nil) -> String {
        header + """
        apiVersion: \(apiVersion)
        kind: \(kind)
        metadata:
          name: \(Self.q(name ?? self.name))
          namespace: \(Self.q(namespace))
          labels:
        \(labels)

        """
    }

    /// `spec.selector.matchLabels`: the agent's pods, by their name label (DaemonSet, ServiceMonitor).
    var specSelectingTheAgents: String {
        """
        spec:
          selector:
            matchLabels:
              app.kubernetes.io/name: \(Self.q(name))

        """
    }

    var header: String { "# Written by `edgemeter k8s manifests`; checked structurally only (no cluster ran these here).\n" }

    public func configMap() -> String {
        let body = agentConfig.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        return start("v1", "ConfigMap", name: name + "-config") + """
        data:
          agent.yaml: |
        \(body)

        """
    }

    public func daemonSet() -> String {
        start("apps/v1", "DaemonSet") + specSelectingTheAgents + """
          updateStrategy:
            type: RollingUpdate
            rollingUpdate:
              maxUnavailable: 1
          template:
            metadata:
              labels:
                app.kubernetes.io/name: \(Self.q(name))
                app.kubernetes.io/component: probe-agent
                app.kubernetes.io/part-of: edgemeter
            spec:
              # One agent per node, probing from the node's own network namespace.
              hostNetwork: true
              dnsPolicy: ClusterFirstWithHostNet
              automountServiceAccountToken: false
              tolerations:
                - operator: Exists
              securityContext:
                runAsNonRoot: true
                runAsUser: \(runAsUser)
                runAsGroup: \(runAsUser)
                seccompProfile:
                  type: RuntimeDefault
              containers:
                - name: agent
                  image: \(Self.q(image))
                  imagePullPolicy: IfNotPresent
                  args: ["agent", "--config", "\(Self.configMountPath)/agent.yaml"]
                  ports:
                    - name: metrics
                      containerPort: \(port)
                      hostPort: \(port)
                      protocol: TCP
                  securityContext:
                    allowPrivilegeEscalation: false
                    readOnlyRootFilesystem: true
                    runAsNonRoot: true
                    capabilities:
                      drop: ["ALL"]
                      add: ["NET_RAW"]
                  resources:
                    requests:
                      cpu: \(cpuRequestMillicores)m
                      memory: \(memoryRequestMiB)Mi
                    limits:
                      cpu: \(cpuLimitMillicores)m
                      memory: \(memoryLimitMiB)Mi
                  readinessProbe:
                    httpGet:
                      path: /metrics
                      port: metrics
                    initialDelaySeconds: 2
                    periodSeconds: 10
                    timeoutSeconds: 5
                    failureThreshold: 3
                  livenessProbe:
                    httpGet:
                      path: /metrics
                      port: metrics
                    initialDelaySeconds: 10
                    periodSeconds: 30
                    timeoutSeconds: 5
                    failureThreshold: 5
                  volumeMounts:
                    - name: config
                      mountPath: \(Self.q(Self.configMountPath))
                      readOnly: true
              volumes:
                - name: config
                  configMap:
                    name: \(Self.q(name + "-config"))

        """
    }

    public func service() -> String {
        start("v1", "Service") + """
        spec:
          clusterIP: None
          selector:
            app.kubernetes.io/name: \(Self.q(name))
          ports:
            - name: metrics
              port: \(port)
              targetPort: metrics
              protocol: TCP

        """
    }

    public func serviceMonitor() -> String {
        start("monitoring.coreos.com/v1", "ServiceMonitor") + specSelectingTheAgents + """
          namespaceSelector:
            matchNames: [\(Self.q(namespace))]
          endpoints:
            - port: metrics
              path: /metrics
              interval: \(scrapeIntervalSeconds)s
              relabelings:
                - sourceLabels: [__meta_kubernetes_pod_node_name]
                  targetLabel: node

        """
    }

    /// `scrape_configs` for a Prometheus that is not run by the operator: the agents' `/metrics`
    /// found through Kubernetes pod discovery, and `/probe` used exactly as a blackbox_exporter
    /// job (the target becomes `?target=`, the instance label keeps it, the scrape goes to the agent).
    public func prometheusScrapeConfig() -> String {
        header + """
        scrape_configs:
          - job_name: edgemeter-agent
            scrape_interval: \(scrapeIntervalSeconds)s
            metrics_path: /metrics
            kubernetes_sd_configs:
              - role: pod
                namespaces:
                  names: [\(Self.q(namespace))]
            relabel_configs:
              - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
                regex: \(Self.q(name))
                action: keep
              - source_labels: [__meta_kubernetes_pod_container_port_name]
                regex: metrics
                action: keep
              - source_labels: [__meta_kubernetes_pod_node_name]
                target_label: node
        \(Self.probeJob(module: probeModule, targets: probeTargets, exporter: "\(name).\(namespace).svc:\(port)",
                         interval: "\(scrapeIntervalSeconds)s"))
        """
    }
}

/// A value `edgemeter k8s manifests` cannot write; the message names the flag to change.
public struct ManifestError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
