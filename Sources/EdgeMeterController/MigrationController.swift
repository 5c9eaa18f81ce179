import Foundation
import EdgeMeterCore
import EdgeMeterPolicy

/// The controller's state machine: services, their delay windows and policies, the audit trail.
/// Every change is written to the `ControllerStore` before it is answered; delay windows live in
/// memory only. Time comes from the injected clock (`SystemClock` in production, `ManualClock` in
/// tests): window timestamps and the policy's `now` are its monotonic nanoseconds.
public actor MigrationController {
    public nonisolated let clock: any MeasurementClock
    public nonisolated let store: ControllerStore
    public nonisolated let executor: any MigrationExecutor
    private let log: @Sendable (String) -> Void
    private var services: [String: ServiceRecord] = [:]
    private var windows: [String: [String: DelayWindow]] = [:]
    /// Services with a migration under way (a second decision for them answers 409).
    private var moving: Set<String> = []
    /// Executor outcomes since start, per service and outcome (for /metrics).
    private var outcomes: [String: [String: Int]] = [:]
    private var lastMigrationMilliseconds: [String: Double] = [:]
    /// What the policy does when no node meets the requirement, for services whose `service_init`
    /// does not say (`when_none_meets`).
    public nonisolated let defaultWhenNoneMeets: NoneMeetsAction

    /// Loads the services of the state file (their windows start empty).
    public init(store: ControllerStore, executor: any MigrationExecutor, clock: any MeasurementClock,
                defaultWhenNoneMeets: NoneMeetsAction = .moveToBest,
                log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.defaultWhenNoneMeets = defaultWhenNoneMeets
        self.store = store
        self.executor = executor
        self.clock = clock
        self.log = log
        let dec = JSONDecoder()
        for (name, json) in try store.services() {
            guard let r = try? dec.decode(ServiceRecord.self, from: Data(json.utf8)) else {
                throw ControllerError("the state file \(store.path) holds service \(name) in a form this version cannot read; "
                                      + "POST /service_init again after moving the file away", status: 500)
            }
            var loaded = r
            // The policy's times are monotonic nanoseconds: valid across a restart, not across a
            // reboot (the clock starts again). Times from the future are from before a reboot.
            let now = clock.monotonicNanoseconds()
            if let t = loaded.policyState.lastMoveNanoseconds, t > now { loaded.policyState.lastMoveNanoseconds = nil }
            if let t = loaded.policyState.atRiskSinceNanoseconds, t > now { loaded.policyState.atRiskSinceNanoseconds = nil }
            services[name] = loaded
            windows[name] = try Self.makeWindows(loaded, clock: clock)
        }
    }

    private static func makeWindows(_ r: ServiceRecord, clock: any MeasurementClock) throws -> [String: DelayWindow] {
        var w: [String: DelayWindow] = [:]
        for n in r.nodes { w[n.name] = try DelayWindow(node: n.name, length: .nanoseconds(r.windowNanoseconds), clock: clock) }
        return w
    }

    private func encode<T: Encodable>(_ v: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .custom { d, enc in
            var c = enc.singleValueContainer()
            try c.encode(Format.timestamp(d))
        }
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try e.encode(v), as: UTF8.self)
    }

    // MARK: - Services

    public var serviceNames: [String] { services.keys.sorted() }
    public func service(_ name: String) -> ServiceRecord? { services[name] }
    public var allServices: [ServiceRecord] { services.keys.sorted().map { services[$0]! } }

    /// Resolves the service a request names; with none named, the only service there is.
    public func resolve(service name: String?, field: String = "service") throws -> ServiceRecord {
        if let name {
            guard let r = services[name] else {
                throw ControllerError("unknown service \"\(name)\"; known: \(serviceNames.joined(separator: ", ")). "
                                      + "POST /service_init declares services", status: 404, field: field)
            }
            return r
        }
        guard services.count == 1, let only = services.values.first else {
            throw ControllerError(services.isEmpty
                                  ? "no service is declared yet: POST /service_init first"
                                  : "more than one service is declared (\(serviceNames.joined(separator: ", "))): name one with \"\(field)\"",
                                  status: services.isEmpty ? 409 : 400, field: field)
        }
        return only
    }

    /// `service_init`: replaces every service with `records` (validated by the caller), windows
    /// emptied, decisions resumed. The audit trail is kept.
    public func initServices(_ records: [ServiceRecord]) throws {
        var w: [String: [String: DelayWindow]] = [:]
        for r in records { w[r.name] = try Self.makeWindows(r, clock: clock) }
        try store.replaceServices(try records.map { ($0.name, try encode($0)) })
        services = Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) })
        windows = w
        log("service_init: \(records.map { "\($0.name) on \($0.activeNode ?? "?") (\($0.requirement))" }.joined(separator: ", "))")
    }

    /// `update_delay`: a new requirement for one service.
    public func updateRequirement(service name: String?, _ requirement: DelayRequirement) throws -> ServiceRecord {
        var r = try resolve(service: name)
        r.requirement = requirement
        try store.save(service: r.name, json: try encode(r))
        services[r.name] = r
        log("update_delay: \(r.name) requires \(requirement)")
        return r
    }

    // MARK: - Delays

    /// One delay sample for a window: milliseconds (nil = lost) at a monotonic time of the clock.
    public struct TimedDelay: Sendable {
        public var milliseconds: Double?
        public var atNanoseconds: Int64
        public init(milliseconds: Double?, atNanoseconds: Int64) { (self.milliseconds, self.atNanoseconds) = (milliseconds, atNanoseconds) }
    }

    /// Adds samples to `node`'s window of every service named (or, with none named, of every
    /// service that has the node). Returns the services fed. Throws 404 when no service has it.
    @discardableResult
    public func add(_ samples: [TimedDelay], node: String, metric: String, service: String?, field: String) throws -> [String] {
        let names = try check(node: node, metric: metric, service: service, field: field)
        for n in names {
            for s in samples { try windows[n]![node]!.add(milliseconds: s.milliseconds, atNanoseconds: s.atNanoseconds) }
        }
        return names
    }

    /// Adds every posted row, or none: all rows are checked (service, node, metric) first.
    public func addRows(_ rows: [PostedDelays], service: String?) throws -> [String] {
        var fed = Set<String>()
        for r in rows { try check(node: r.node, metric: r.metric, service: service, field: r.field) }
        for r in rows { fed.formUnion(try add(r.samples, node: r.node, metric: r.metric, service: service, field: r.field)) }
        return fed.sorted()
    }

    /// The services a row for `node` feeds; throws 404/400 naming the field when none can take it.
    @discardableResult
    func check(node: String, metric: String, service: String?, field: String) throws -> [String] {
        let names: [String]
        if let service {
            let r = try resolve(service: service)
            guard r.node(node) != nil else {
                throw ControllerError("service \(r.name) has no node \"\(node)\"; its nodes: \(r.nodes.map(\.name).joined(separator: ", "))",
                                      status: 404, field: field + ".node")
            }
            names = [r.name]
        } else {
            names = serviceNames.filter { services[$0]!.node(node) != nil }
            guard !names.isEmpty else {
                let known = Set(services.values.flatMap { $0.nodes.map(\.name) }).sorted()
                throw ControllerError("no service has a node \"\(node)\"; declared nodes: \(known.isEmpty ? "none (POST /service_init first)" : known.joined(separator: ", "))",
                                      status: 404, field: field + ".node")
            }
        }
        for n in names where services[n]!.metric != metric {
            throw ControllerError("service \(n) judges \(services[n]!.metric) delays, this row is \(metric); post \(services[n]!.metric) "
                                  + "rows (or declare the service with \"metric\": \"\(metric)\")", status: 400, field: field + ".metric")
        }
        return names
    }

    /// Each node's observation now.
    public func observations(_ name: String) -> [NodeObservation] {
        guard let r = services[name] else { return [] }
        let now = clock.monotonicNanoseconds()
        return r.nodes.map { n in windows[name]![n.name]!.observe(nowNanoseconds: now) }
    }

    // MARK: - Decisions

    /// Runs the policy for a service now and, on a decision that moves (`migrate`, or an `alert` naming
    /// the least-bad node), the executor; records the decision.
    public func decide(service name: String?, trigger: String) async throws -> DecisionRecord {
        let t0 = clock.monotonicNanoseconds()
        let wall = clock.wallNow()
        var r = try resolve(service: name)
        if let why = r.suspended {
            throw ControllerError("decisions for \(r.name) are suspended: \(why); POST /service_init to declare where it runs", status: 409)
        }
        guard let active = r.activeNode else {
            throw ControllerError("where \(r.name) runs is unknown; POST /service_init to declare it", status: 409)
        }
        guard !moving.contains(r.name) else {
            throw ControllerError("a move of \(r.name) is under way; ask again when it has ended (GET /status shows it)", status: 409)
        }
        let input = PolicyInput(nowNanoseconds: t0, requirement: r.requirement, activeNode: active, nodes: observations(r.name),
                                moveCostMilliseconds: r.moveCosts, hysteresis: r.hysteresis)
        let decision: Decision
        let stateAfter: PolicyState
        if r.policy == "first-response" {
            var p = FirstResponsePolicy(state: r.policyState)
            decision = p.decide(input)
            stateAfter = p.state
        } else {
            var p = EdgeMeterPolicy(state: r.policyState)
            decision = p.decide(input)
            stateAfter = p.state
        }
        let t1 = clock.monotonicNanoseconds()
        var record = DecisionRecord(id: 0, service: r.name, at: wall, trigger: trigger, decision: decision, activeBefore: active,
                                    activeAfter: active, decideMilliseconds: Double(t1 - t0) / 1e6, totalMilliseconds: Double(t1 - t0) / 1e6)
        var save = true
        r.policyState = stateAfter
        if decision.movesService, let target = decision.target {
            moving.insert(r.name)
            log("\(r.name): \(decision.reason)")
            do {
                let report = try await executor.migrate(service: r.name, from: active, to: target)
                record.migration = report
                record.activeAfter = report.activeNodeAfter
                if report.outcome == .completedWithLeftover { record.migrationError = report.error }
            } catch let e as ControllerError {
                record.migration = e.migration
                record.migrationError = e.description
                record.activeAfter = e.migration.map { $0.activeNodeAfter } ?? active
            } catch {
                record.migrationError = "\(error)"
                record.activeAfter = nil
            }
            moving.remove(r.name)
            // The service may have been re-declared while the executor ran: the new declaration wins.
            if let current = services[r.name], current.activeNode == active, current.nodes == r.nodes {
                let kept = r.policyState
                r = current
                // A move that did not happen must not start the cooldown.
                r.policyState = record.migration?.outcome == .rolledBack || record.activeAfter == active ? decision.stateBefore : kept
                r.activeNode = record.activeAfter
                if record.activeAfter == nil {
                    r.suspended = "the move \(active) → \(target) failed and so did its rollback: \(record.migrationError ?? "?")"
                }
            } else {
                save = false
            }
            let outcome = record.migration?.outcome.rawValue ?? "error"
            outcomes[r.name, default: [:]][outcome, default: 0] += 1
            if let m = record.migration { lastMigrationMilliseconds[r.name] = m.totalMilliseconds }
            log("\(r.name): migration \(active) → \(target) \(outcome)\(record.migrationError.map { ": \($0)" } ?? "")")
        } else if decision.kind == .stayBestIsActive || decision.kind == .alert {
            log("\(r.name): \(decision.reason)")
        }
        record.totalMilliseconds = Double(clock.monotonicNanoseconds() - t0) / 1e6
        if save, services[r.name] != nil {
            services[r.name] = r
            try store.save(service: r.name, json: try encode(r))
        }
        record.id = try store.append(decision: try encode(record), service: r.name, kind: decision.kind.rawValue,
                                     at: Format.timestamp(wall))
        return record
    }

    /// The newest decisions, newest first.
    public func decisions(service: String?, limit: Int) throws -> [DecisionRecord] {
        if let service { _ = try resolve(service: service) }
        let dec = JSONDecoder()
        dec.dateDecodingStrategy = .custom { d in
            let c = try d.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = Format.parseTimestamp(text) ?? ISO8601DateFormatter().date(from: text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "\(text) is not an ISO 8601 UTC timestamp")
            }
            return date
        }
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try store.decisions(service: service, limit: limit).map { row in
            do {
                var d = try dec.decode(DecisionRecord.self, from: Data(row.json.utf8))
                d.id = row.id
                return d
            } catch {
                throw ControllerError("decision \(row.id) in \(store.path) cannot be read (\(error)); the file is damaged", status: 500)
            }
        }
    }

    public var isMoving: Set<String> { moving }
    public var migrationOutcomes: [String: [String: Int]] { outcomes }
    public var lastMigrationDurations: [String: Double] { lastMigrationMilliseconds }
}
