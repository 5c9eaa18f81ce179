import Foundation
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem

/// Where the Kubernetes API server is and how to authenticate. Only `http://` is spoken: edgemeter
/// has no TLS stack, so a real cluster is reached through `kubectl proxy --port 8001` on
/// localhost (which does the TLS, the CA check and the credentials) and `http://127.0.0.1:8001`.
/// A bearer token, when given, goes in `Authorization: Bearer ...` of every request and is never
/// printed.
public struct KubernetesEndpoint: Sendable {
    public var host: String
    public var port: Int
    public var namespace: String
    var token: String?
    public var hasToken: Bool { token != nil }

    /// `server` like `http://127.0.0.1:8001`; `token` is the bearer token itself (read it from a
    /// file with `tokenFile`).
    public init(server: String, namespace: String = "default", token: String? = nil) throws {
        if server.lowercased().hasPrefix("https://") {
            throw ControllerError("\(server): https is not supported (edgemeter has no TLS stack, so the CA file cannot be checked); "
                                + "run `kubectl proxy --port 8001` on this host and give --api-server http://127.0.0.1:8001")
        }
        guard server.lowercased().hasPrefix("http://") else {
            throw ControllerError("--api-server \(server) must start with http://, such as http://127.0.0.1:8001 (kubectl proxy)")
        }
        let t = try HTTPTarget(url: server)
        guard namespace.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) != nil, namespace.count <= 63 else {
            throw ControllerError("namespace \"\(namespace)\" is not a Kubernetes name (lowercase letters, digits and -, at most 63)")
        }
        (self.host, self.port, self.namespace, self.token) = (t.host, t.port, namespace, token)
    }

    /// Reads the bearer token from `path` (surrounding whitespace dropped).
    public static func token(fromFile path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ControllerError("cannot read the token file \(path): check the path and its permissions")
        }
        let t = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw ControllerError("the token file \(path) is empty: write the service account's bearer token into it") }
        return t
    }
}

/// One request to the API server and its answer.
public struct KubernetesResponse: Sendable {
    public var status: Int
    public var body: String
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }
    /// The API server's `Status.message`, or the body.
    public var message: String { (json?["message"] as? String) ?? body.trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// Migrates a service between Kubernetes nodes as the lab did, but make-before-break:
///
/// 1. `create`: `POST /apis/apps/v1/namespaces/NS/deployments`, a Deployment `<service>-<to>`
///    pinned to the node (`nodeSelector: {kubernetes.io/hostname: <to>}`), pods labelled
///    `app: <service>`, `edgemeter.io/node: <to>`;
/// 2. `available`: `GET .../deployments/<service>-<to>` until `status.availableReplicas` ≥
///    `replicas` (every `pollInterval`, at most `availableTimeout`);
/// 3. `switch`: `GET /api/v1/namespaces/NS/services/<k8s service>` (the selector before), then
///    `PATCH` it (`application/merge-patch+json`) to select `edgemeter.io/node: <to>`;
/// 4. `delete`: `DELETE .../deployments/<service>-<from>`.
///
/// The phases are `start_target` (1), `wait_ready` (2), `switch` (3) and `stop_old` (4).
/// Rollback: a failure in 1-3 patches the Service's selector back to what it was (when it had been
/// switched) and deletes the Deployment this call created. A 409 on create: a leftover of this
/// executor (label `app.kubernetes.io/managed-by: edgemeter`, same service and node) is deleted and
/// created again; any other Deployment of that name is left alone and the phase fails, touching
/// nothing. A failure in 4 is not rolled back (the new pods serve): `completed_with_leftover`.
/// Nothing here was ever run against a real cluster; the requests are tested against a local
/// server that answers as the API server does (`KubernetesExecutorTests`).
public final class KubernetesExecutor: MigrationExecutor, @unchecked Sendable {
    public let name = "kubernetes"
    public var clock: any MeasurementClock = SystemClock()
    public let endpoint: KubernetesEndpoint
    /// The Kubernetes Service whose selector is switched (the client path).
    public var serviceObject: String
    public var image: String
    public var containerPort: Int
    public var replicas: Int = 1
    /// The container's command (`{service}`, `{to}` replaced); nil keeps the image's.
    public var command: [String]?
    public var availableTimeout: Duration = .seconds(120)
    public var pollInterval: Duration = .seconds(1)
    public var requestTimeout: Duration = .seconds(10)
    /// The pod label that names the node a Deployment is pinned to.
    public static let nodeLabel = "edgemeter.io/node"
    /// The label that marks a Deployment as this executor's (on the Deployment, not its pods).
    public static let managedByLabel = "app.kubernetes.io/managed-by"

    public init(endpoint: KubernetesEndpoint, serviceObject: String, image: String, containerPort: Int) {
        (self.endpoint, self.serviceObject, self.image, self.containerPort) = (endpoint, serviceObject, image, containerPort)
    }

    /// `<service>-<node>` as a DNS-1123 name (lowercase; `_` and other characters become `-`).
    public static func deploymentName(service: String, node: String) -> String {
        let raw = "\(service)-\(node)".lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        return String(String(raw).trimmingCharacters(in: CharacterSet(charactersIn: "-")).prefix(63))
    }

    var deploymentsPath: String { "/apis/apps/v1/namespaces/\(endpoint.namespace)/deployments" }
    var servicePath: String { "/api/v1/namespaces/\(endpoint.namespace)/services/\(serviceObject)" }

    /// The Deployment pinned to `node` (the body of the create request; also what `manifests` writes).
    public func deployment(service: String, node: String) -> [String: Any] {
        let name = Self.deploymentName(service: service, node: node)
        let labels = ["app": service, Self.nodeLabel: node]
        var container: [String: Any] = ["name": service.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined(),
                                        "image": image, "ports": [["containerPort": containerPort]]]
        if let command { container["command"] = command.map { substitutePlaceholders($0, service: service, from: "", to: node) } }
        return [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": ["name": name, "namespace": endpoint.namespace, "labels": labels.merging([Self.managedByLabel: "edgemeter"]) { a, _ in a }] as [String: Any],
            "spec": [
                "replicas": replicas,
                "selector": ["matchLabels": labels],
                "template": [
                    "metadata": ["labels": labels],
                    "spec": ["nodeSelector": ["kubernetes.io/hostname": node], "containers": [container]] as [String: Any],
                ] as [String: Any],
            ] as [String: Any],
        ]
    }

    /// The merge patch that points the Service at `node`'s pods.
    public func selectorPatch(service: String, node: String) -> [String: Any] {
        ["spec": ["selector": ["app": service, Self.nodeLabel: node]]]
    }

    /// The manifests for `kubectl apply -f DIR` instead of the API (JSON is YAML): the Deployment on
    /// `to` and the Service selecting it; the old Deployment is deleted by hand afterwards
    /// (`kubectl delete deployment <service>-<from>`, written to `README.txt`). Returns the files written.
    public func writeManifests(service: String, from: String, to: String, directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let svc: [String: Any] = ["apiVersion": "v1", "kind": "Service",
                                  "metadata": ["name": serviceObject, "namespace": endpoint.namespace],
                                  "spec": ["selector": ["app": service, Self.nodeLabel: to], "ports": [["port": containerPort, "targetPort": containerPort]]] as [String: Any]]
        let files: [(String, Data)] = [
            ("10-deployment-\(Self.deploymentName(service: service, node: to)).json",
             try JSONSerialization.data(withJSONObject: deployment(service: service, node: to), options: [.sortedKeys, .prettyPrinted])),
            ("20-service-\(serviceObject).json", try JSONSerialization.data(withJSONObject: svc, options: [.sortedKeys, .prettyPrinted])),
            ("README.txt", Data("""
            Make-before-break, in this order:
              kubectl apply -f 10-deployment-\(Self.deploymentName(service: service, node: to)).json
              kubectl -n \(endpoint.namespace) rollout status deployment/\(Self.deploymentName(service: service, node: to)) --timeout=120s
              kubectl apply -f 20-service-\(serviceObject).json
              kubectl -n \(endpoint.namespace) delete deployment \(Self.deploymentName(service: service, node: from))

            """.utf8)),
        ]
        var written: [String] = []
        for (name, data) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            guard FileManager.default.createFile(atPath: path, contents: data) else {
                throw ControllerError("cannot write \(path): check that the directory is writable")
            }
            written.append(path)
        }
        return written
    }

    public func migrate(service: String, from: String, to: String) async throws -> MigrationReport {
        guard from != to else { throw ControllerError("service \(service) already runs on \(to): nothing to migrate", status: 409) }
        var r = MigrationPhaseRecorder(executor: name, service: service, from: from, to: to, clock: clock)
        let newName = Self.deploymentName(service: service, node: to)
        let oldName = Self.deploymentName(service: service, node: from)
        var created = false
        var oldSelector: [String: Any]?
        var switched = false
        do {
            try await r.run(.startTarget, detail: "POST \(deploymentsPath) \(newName) (nodeSelector kubernetes.io/hostname=\(to))") {
                try await create(newName, service: service, node: to)
                created = true
            }
            try await r.run(.waitReady, detail: "GET \(deploymentsPath)/\(newName) until availableReplicas ≥ \(replicas)") {
                try await waitAvailable(newName)
            }
            try await r.run(.switchPath, detail: "PATCH \(servicePath) selector \(Self.nodeLabel)=\(to)") {
                let g = try await request("GET", servicePath)
                guard g.status == 200, let spec = g.json?["spec"] as? [String: Any] else { throw apiError("reading Service \(serviceObject)", g) }
                oldSelector = spec["selector"] as? [String: Any] ?? [:]
                // A 4xx answer means the patch was refused; no answer or a 5xx leaves it unknown,
                // so the rollback restores the selector then too.
                let p: KubernetesResponse
                do {
                    p = try await request("PATCH", servicePath, json: selectorPatch(service: service, node: to), contentType: "application/merge-patch+json")
                } catch {
                    switched = true
                    throw error
                }
                guard p.status == 200 else {
                    if p.status >= 500 { switched = true }
                    throw apiError("switching Service \(serviceObject)'s selector", p)
                }
                switched = true
            }
        } catch {
            if switched, let sel = oldSelector {
                await r.undo("switch_back", detail: "PATCH \(servicePath) selector back") {
                    // A merge patch sets the old keys and removes (null) the keys the old selector did not have.
                    var restore: [String: Any] = sel
                    for k in ["app", Self.nodeLabel] where sel[k] == nil { restore[k] = NSNull() }
                    let p = try await request("PATCH", servicePath, json: ["spec": ["selector": restore]], contentType: "application/merge-patch+json")
                    guard p.status == 200 else { throw apiError("restoring Service \(serviceObject)'s selector", p) }
                }
            }
            if created {
                await r.undo("delete_deployment", detail: "DELETE \(deploymentsPath)/\(newName)") {
                    let d = try await request("DELETE", "\(deploymentsPath)/\(newName)")
                    guard [200, 202, 404].contains(d.status) else { throw apiError("deleting the new Deployment \(newName)", d) }
                }
            }
            throw r.failure(error)
        }
        await r.finishing(detail: "DELETE \(deploymentsPath)/\(oldName)") {
            let d = try await request("DELETE", "\(deploymentsPath)/\(oldName)")
            guard d.status == 200 || d.status == 202 else { throw apiError("deleting the old Deployment \(oldName) (left running)", d) }
        }
        return r.report
    }

    /// POST the Deployment. On 409, a Deployment of that name exists: when it is this executor's
    /// (label `app.kubernetes.io/managed-by: edgemeter` and the same service and node), a leftover of
    /// an earlier failed attempt, it is deleted and created again; anything else is left alone and
    /// the phase fails.
    private func create(_ name: String, service: String, node: String) async throws {
        let body = deployment(service: service, node: node)
        var c = try await request("POST", deploymentsPath, json: body)
        if c.status == 409 {
            let g = try await request("GET", "\(deploymentsPath)/\(name)")
            let labels = ((g.json?["metadata"] as? [String: Any])?["labels"] as? [String: String]) ?? [:]
            guard g.status == 200, labels[Self.managedByLabel] == "edgemeter", labels["app"] == service, labels[Self.nodeLabel] == node else {
                throw ControllerError("HTTP 409: a Deployment \(name) already exists (\(c.message)) and is not a leftover of this executor "
                                      + "(no \(Self.managedByLabel)=edgemeter label for \(service) on \(node)), so it is left alone: delete it or migrate elsewhere", status: 500)
            }
            let d = try await request("DELETE", "\(deploymentsPath)/\(name)")
            guard [200, 202, 404].contains(d.status) else { throw apiError("replacing the leftover Deployment \(name)", d) }
            c = try await request("POST", deploymentsPath, json: body)
        }
        guard c.status == 201 || c.status == 200 || c.status == 202 else { throw apiError("creating Deployment \(name)", c) }
    }

    private func waitAvailable(_ name: String) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + availableTimeout
        var last = "no status yet"
        while true {
            let r = try await request("GET", "\(deploymentsPath)/\(name)")
            guard r.status == 200 else { throw apiError("reading Deployment \(name)", r) }
            let available = (r.json?["status"] as? [String: Any])?["availableReplicas"] as? Int ?? 0
            if available >= replicas { return }
            last = "availableReplicas \(available) of \(replicas)"
            if clock.now >= deadline {
                throw ControllerError("Deployment \(name) was not available within \(availableTimeout) (\(last)): check `kubectl describe deployment \(name)` (image, node name, resources)", status: 500)
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    private func apiError(_ what: String, _ r: KubernetesResponse) -> ControllerError {
        let hint: String
        switch r.status {
        case 401: hint = "the bearer token was refused: check the token file"
        case 403: hint = "the token's service account lacks the permission: grant it with a Role/RoleBinding"
        case 404: hint = "not found: check the namespace and the names"
        case 409: hint = "conflict: the object changed or exists; try again"
        default: hint = "see the API server's message"
        }
        return ControllerError("\(what): HTTP \(r.status): \(r.message) (\(hint))", status: 500)
    }

    /// Sends one request (a new connection each, `Connection: close`).
    public func request(_ method: String, _ path: String, json: [String: Any]? = nil,
                        contentType: String = "application/json") async throws -> KubernetesResponse {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token = endpoint.token { headers.append(("Authorization", "Bearer \(token)")) }
        var body: [UInt8] = []
        if let json {
            body = Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes]))
            headers.append(("Content-Type", contentType))
        }
        let target = HTTPTarget(host: endpoint.host, port: endpoint.port, path: path)
        let timeout = TimeAmount.nanoseconds(requestTimeout.components.seconds * 1_000_000_000 + requestTimeout.components.attoseconds / 1_000_000_000)
        do {
            let addr = try await HTTPConnection.resolve(host: endpoint.host, port: endpoint.port)
            let conn = try await HTTPConnection.connect(to: addr, targetName: target.description, timeout: timeout)
            defer { conn.close() }
            let x = try await conn.send(HTTPRequestSpec(method: method, path: path, headers: headers, body: body),
                                        host: target.hostHeader, keepAlive: false, timeout: timeout)
            return KubernetesResponse(status: x.response.status, body: x.response.bodyText)
        } catch {
            throw ControllerError("\(method) \(path) to the API server http://\(target.hostHeader) failed: \(describe(error)); is `kubectl proxy` running?", status: 500)
        }
    }
}
