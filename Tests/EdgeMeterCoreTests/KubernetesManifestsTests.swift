import XCTest
import Yams
@testable import EdgeMeterCore

/// The manifests `edgemeter k8s manifests` writes, parsed back with Yams and checked field by field
/// (no cluster runs here: this is the structural check the README promises).
final class KubernetesManifestsTests: XCTestCase {
    func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let any = try Yams.load(yaml: text)
        return try XCTUnwrap(any as? [String: Any], "not a mapping:\n\(text)", file: file, line: line)
    }

    func path(_ obj: Any?, _ keys: String...) -> Any? {
        var cur = obj
        for k in keys {
            if let i = Int(k), let a = cur as? [Any] { cur = i < a.count ? a[i] : nil; continue }
            cur = (cur as? [String: Any])?[k]
        }
        return cur
    }

    let m = KubernetesManifests(namespace: "edge", name: "em-agent", image: "edgemeter-agent:1", port: 9470,
                                probeTargets: ["10.0.0.5", "10.0.0.6"], probeModule: "tcp_connect")

    func testFilesAreTheFiveObjects() throws {
        XCTAssertEqual(m.files().map(\.name), ["configmap.yaml", "daemonset.yaml", "service.yaml", "servicemonitor.yaml", "prometheus-scrape.yaml"])
        let kinds = try m.files().dropLast().map { try parse($0.text)["kind"] as? String }
        XCTAssertEqual(kinds, ["ConfigMap", "DaemonSet", "Service", "ServiceMonitor"])
    }

    func testDaemonSetRunsOneHostNetworkAgentPerNodeWithOnlyNetRaw() throws {
        let ds = try parse(m.daemonSet())
        XCTAssertEqual(ds["apiVersion"] as? String, "apps/v1")
        XCTAssertEqual(path(ds, "metadata", "namespace") as? String, "edge")
        let spec = path(ds, "spec", "template", "spec")
        XCTAssertEqual(path(spec, "hostNetwork") as? Bool, true)
        XCTAssertEqual(path(spec, "dnsPolicy") as? String, "ClusterFirstWithHostNet")
        XCTAssertEqual(path(spec, "tolerations", "0", "operator") as? String, "Exists", "an agent on every node, tainted ones too")
        // selector matches the pod template's labels
        XCTAssertEqual(path(ds, "spec", "selector", "matchLabels", "app.kubernetes.io/name") as? String, "em-agent")
        XCTAssertEqual(path(ds, "spec", "template", "metadata", "labels", "app.kubernetes.io/name") as? String, "em-agent")
        // pod security: non-root
        XCTAssertEqual(path(spec, "securityContext", "runAsNonRoot") as? Bool, true)
        let uid = try XCTUnwrap(path(spec, "securityContext", "runAsUser") as? Int)
        XCTAssertGreaterThan(uid, 0)
        let containers = try XCTUnwrap(path(spec, "containers") as? [Any])
        XCTAssertEqual(containers.count, 1)
        let c = containers[0]
        XCTAssertEqual(path(c, "image") as? String, "edgemeter-agent:1")
        XCTAssertEqual(path(c, "args") as? [String], ["agent", "--config", "/etc/edgemeter/agent.yaml"])
        XCTAssertEqual(path(c, "securityContext", "capabilities", "drop") as? [String], ["ALL"])
        XCTAssertEqual(path(c, "securityContext", "capabilities", "add") as? [String], ["NET_RAW"])
        XCTAssertEqual(path(c, "securityContext", "allowPrivilegeEscalation") as? Bool, false)
        XCTAssertEqual(path(c, "securityContext", "runAsNonRoot") as? Bool, true)
        XCTAssertEqual(path(c, "securityContext", "readOnlyRootFilesystem") as? Bool, true)
        XCTAssertNil(path(c, "securityContext", "privileged"))
        // resources
        for kind in ["requests", "limits"] {
            XCTAssertNotNil(path(c, "resources", kind, "cpu") as? String, kind)
            XCTAssertNotNil(path(c, "resources", kind, "memory") as? String, kind)
        }
        XCTAssertEqual(path(c, "resources", "limits", "memory") as? String, "128Mi")
        XCTAssertEqual(path(c, "resources", "requests", "cpu") as? String, "50m")
        // port and readiness on /metrics at that port
        XCTAssertEqual(path(c, "ports", "0", "name") as? String, "metrics")
        XCTAssertEqual(path(c, "ports", "0", "containerPort") as? Int, 9470)
        XCTAssertEqual(path(c, "ports", "0", "hostPort") as? Int, 9470)
        XCTAssertEqual(path(c, "readinessProbe", "httpGet", "path") as? String, "/metrics")
        XCTAssertEqual(path(c, "readinessProbe", "httpGet", "port") as? String, "metrics")
        XCTAssertEqual(path(c, "livenessProbe", "httpGet", "path") as? String, "/metrics")
        // the ConfigMap is mounted where args point
        XCTAssertEqual(path(c, "volumeMounts", "0", "mountPath") as? String, "/etc/edgemeter")
        XCTAssertEqual(path(c, "volumeMounts", "0", "readOnly") as? Bool, true)
        XCTAssertEqual(path(spec, "volumes", "0", "configMap", "name") as? String, "em-agent-config")
    }

    func testConfigMapCarriesTheAgentConfigVerbatim() throws {
        let config = "listen: 0.0.0.0:9470\nprobes:\n  - kind: ping\n    targets: [\"10.0.0.5\"]\n"
        let m2 = KubernetesManifests(agentConfig: config)
        let cm = try parse(m2.configMap())
        XCTAssertEqual(path(cm, "metadata", "name") as? String, "edgemeter-agent-config")
        let text = try XCTUnwrap(path(cm, "data", "agent.yaml") as? String)
        XCTAssertEqual(text.trimmingCharacters(in: .newlines), config.trimmingCharacters(in: .newlines))
        // the default listens beyond loopback (Prometheus scrapes from elsewhere) and limits /probe
        let d = try parse(try XCTUnwrap(path(try parse(m.configMap()), "data", "agent.yaml") as? String))
        XCTAssertEqual(d["listen"] as? String, "0.0.0.0:9470")
        XCTAssertFalse((d["probe_cidrs"] as? [String] ?? []).isEmpty)
    }

    func testServiceAndServiceMonitorSelectTheDaemonSetsPods() throws {
        let svc = try parse(m.service())
        XCTAssertEqual(path(svc, "spec", "clusterIP") as? String, "None")
        XCTAssertEqual(path(svc, "spec", "selector", "app.kubernetes.io/name") as? String, "em-agent")
        XCTAssertEqual(path(svc, "spec", "ports", "0", "name") as? String, "metrics")
        XCTAssertEqual(path(svc, "spec", "ports", "0", "port") as? Int, 9470)
        let sm = try parse(m.serviceMonitor())
        XCTAssertEqual(sm["apiVersion"] as? String, "monitoring.coreos.com/v1")
        XCTAssertEqual(path(sm, "spec", "selector", "matchLabels", "app.kubernetes.io/name") as? String, "em-agent")
        XCTAssertEqual(path(sm, "metadata", "labels", "app.kubernetes.io/name") as? String, "em-agent",
                       "the Service carries the label the ServiceMonitor selects")
        XCTAssertEqual(path(svc, "metadata", "labels", "app.kubernetes.io/name") as? String, "em-agent")
        XCTAssertEqual(path(sm, "spec", "endpoints", "0", "port") as? String, "metrics")
        XCTAssertEqual(path(sm, "spec", "endpoints", "0", "path") as? String, "/metrics")
        XCTAssertEqual(path(sm, "spec", "namespaceSelector", "matchNames") as? [String], ["edge"])
    }

    func testScrapeConfigHasAMetricsJobAndABlackboxStyleProbeJob() throws {
        let sc = try parse(m.prometheusScrapeConfig())
        let jobs = try XCTUnwrap(sc["scrape_configs"] as? [Any])
        XCTAssertEqual(jobs.compactMap { path($0, "job_name") as? String }, ["edgemeter-agent", "edgemeter-probe"])
        XCTAssertEqual(path(jobs[0], "metrics_path") as? String, "/metrics")
        XCTAssertEqual(path(jobs[0], "kubernetes_sd_configs", "0", "role") as? String, "pod")
        XCTAssertEqual(path(jobs[0], "relabel_configs", "0", "regex") as? String, "em-agent")
        XCTAssertEqual(path(jobs[0], "relabel_configs", "0", "action") as? String, "keep")
        XCTAssertEqual(path(jobs[1], "metrics_path") as? String, "/probe")
        XCTAssertEqual(path(jobs[1], "params", "module") as? [String], ["tcp_connect"])
        XCTAssertEqual(path(jobs[1], "static_configs", "0", "targets") as? [String], ["10.0.0.5", "10.0.0.6"])
        // blackbox_exporter's relabelling: target → ?target=, instance keeps it, scrape goes to the agent
        XCTAssertEqual(path(jobs[1], "relabel_configs", "0", "source_labels") as? [String], ["__address__"])
        XCTAssertEqual(path(jobs[1], "relabel_configs", "0", "target_label") as? String, "__param_target")
        XCTAssertEqual(path(jobs[1], "relabel_configs", "1", "target_label") as? String, "instance")
        XCTAssertEqual(path(jobs[1], "relabel_configs", "2", "target_label") as? String, "__address__")
        XCTAssertEqual(path(jobs[1], "relabel_configs", "2", "replacement") as? String, "em-agent.edge.svc:9470")
    }

    func testValuesThatWouldMakeBrokenObjectsAreRefusedNamingTheFlag() {
        let cases: [(KubernetesManifests, String)] = [
            (KubernetesManifests(namespace: "Edge_NS"), "--namespace \"Edge_NS\" is not a Kubernetes name"),
            (KubernetesManifests(name: "-x"), "--name \"-x\" is not a Kubernetes name"),
            (KubernetesManifests(port: 70000), "--port 70000 is not a TCP port"),
            (KubernetesManifests(probeModule: "dns"), "--probe-module \"dns\" is not one the agent's /probe serves"),
            (KubernetesManifests(runAsUser: 0), "--run-as-user must be a non-root UID"),
            (KubernetesManifests(image: "a b"), "--image \"a b\" is not an image reference"),
        ]
        for (m, prefix) in cases {
            XCTAssertThrowsError(try m.validate()) { e in
                XCTAssertTrue("\(e)".hasPrefix(prefix), "\(e)")
            }
        }
        XCTAssertNoThrow(try m.validate())
    }

    func testQuotingKeepsAwkwardValuesIntact() throws {
        let m2 = KubernetesManifests(image: "reg:5000/a/b:\"x\"")
        let ds = try parse(m2.daemonSet())
        XCTAssertEqual(path(ds, "spec", "template", "spec", "containers", "0", "image") as? String, "reg:5000/a/b:\"x\"")
    }
}
