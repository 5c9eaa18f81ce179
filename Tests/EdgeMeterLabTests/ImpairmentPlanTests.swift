import XCTest
import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterLab

/// The impairment parts of the plan (forwarder ports, offloads, netem command lines) and the
/// forwarder API's pure parts (words ⇄ spec, routing), without a namespace.
final class ImpairmentPlanTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    let ms: Int64 = 1_000_000

    func load(_ name: String) throws -> Topology {
        let url = root.appendingPathComponent("benchmarks/topologies/\(name).yaml")
        return try TopologyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.lastPathComponent)
    }

    func commands(_ plan: TopologyPlan) -> [String] { plan.steps.map { $0.commandLine.joined(separator: " ") } }

    func testEdgeCloudLinksGoThroughTheForwarder() throws {
        let plan = TopologyPlan(try load("edge-cloud"))
        let links = plan.impairedLinks
        XCTAssertEqual(links.map(\.id), ["node_1:edge", "node_2:edge", "node_3:edge", "cloud:edge"])
        XCTAssertEqual(links.map(\.spec.delayNanoseconds), [5 * ms, 30 * ms, 80 * ms, 40 * ms])
        let t = plan.tag, f = plan.fabric
        let n1 = links[0]
        XCTAssertEqual([n1.forwarderA, n1.forwarderB, n1.bridgeSide, n1.nodeDevice], ["em-\(t)-1-0", "em-\(t)-1-0f", "em-\(t)-1-0b", "eth0"])
        let c = commands(plan)
        // The vehicle (not impaired) is enslaved directly; node_1's A end is NOT enslaved, its B side is.
        XCTAssert(c.contains("ip -n \(f) link set em-\(t)-0-0 master em-\(t)-n0 up"))
        XCTAssertFalse(c.contains { $0.contains("link set em-\(t)-1-0 master") }, "the forwarder's A end must stay out of the bridge")
        XCTAssert(c.contains("ip -n \(f) link set em-\(t)-1-0 up"))
        XCTAssert(c.contains("ip -n \(f) link add em-\(t)-1-0f type veth peer name em-\(t)-1-0b"))
        XCTAssert(c.contains("ip -n \(f) link set em-\(t)-1-0b master em-\(t)-n0 up"))
        // Offloads off on every node of the network (the vehicle too) and on the forwarder's three veths.
        XCTAssert(c.contains("ip netns exec edgemeter-edge-cloud-vehicle ethtool -K eth0 tx off tso off gso off gro off"))
        for dev in ["em-\(t)-3-0", "em-\(t)-3-0f", "em-\(t)-3-0b"] {
            XCTAssert(c.contains("ip netns exec \(f) ethtool -K \(dev) tx off tso off gso off gro off"), dev)
        }
        // Each offload step comes after the link it names exists.
        let firstEthtool = try XCTUnwrap(c.firstIndex { $0.contains("ethtool") })
        let lastLinkAdd = try XCTUnwrap(c.lastIndex { $0.contains("link add") })
        XCTAssertGreaterThan(firstEthtool, lastLinkAdd)
        for name in plan.interfaceNames { XCTAssertLessThanOrEqual(name.utf8.count, 15, name); XCTAssertNoThrow(try Names.checkInterface(name)) }
        XCTAssertEqual(Set(plan.interfaceNames).count, plan.interfaceNames.count)
    }

    func testATopologyWithoutImpairmentsIsUnchanged() throws {
        let plan = TopologyPlan(try load("two-subnet"))
        XCTAssertEqual(plan.impairedLinks, [])
        XCTAssertFalse(commands(plan).contains { $0.contains("ethtool") })
        let stripped = TopologyPlan(try load("edge-cloud").withoutImpairments)
        XCTAssertEqual(stripped.impairedLinks, [])
        XCTAssertFalse(commands(stripped).contains { $0.contains("ethtool") || $0.contains("0f ") })
    }

    func testWideImpairedTopologyNamesFit() throws {
        var yaml = "name: abcdefghijkl\nnetworks:\n"
        for k in 0..<3 { yaml += "  - {name: n\(k), subnet: 10.\(k + 1).0.0/16}\n" }
        yaml += "nodes:\n"
        for i in 0..<300 {
            yaml += "  - name: node_\(i)\n    interfaces:\n"
            for k in 0..<3 { yaml += "      - {network: n\(k), address: 10.\(k + 1).\(i / 250).\(i % 250 + 1), impair: {delay: 1ms}}\n" }
        }
        let plan = TopologyPlan(try TopologyLoader.load(yaml: yaml, file: "wide.yaml"))
        XCTAssertEqual(plan.impairedLinks.count, 900)
        let names = plan.interfaceNames
        XCTAssertEqual(Set(names).count, names.count)
        for n in names { XCTAssertLessThanOrEqual(n.utf8.count, 15, n) }
    }

    func testNetemCommandLines() throws {
        let plan = TopologyPlan(try load("edge-cloud"))
        var link = plan.impairedLinks[1]
        XCTAssertEqual(TopologyPlan.netemCommands(for: link, fabric: plan.fabric), [
            ["ip", "netns", "exec", "edgemeter-edge-cloud-node_2", "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "30ms", "limit", "660"],
            ["ip", "netns", "exec", plan.fabric, "tc", "qdisc", "replace", "dev", link.forwarderA, "root", "netem", "delay", "30ms", "limit", "660"],
        ])
        link.spec = ImpairmentSpec(delayNanoseconds: 20 * ms, jitterNanoseconds: 2_500_000, distribution: .normal,
                                   loss: .gilbertElliott(p: 1, r: 25, lossBad: 100, lossGood: 0), rateBitsPerSecond: 10_000_000)
        XCTAssertEqual(TopologyPlan.netemArguments(link.spec),
                       ["delay", "20ms", "2500us", "distribution", "normal", "loss", "gemodel", "1%", "25%", "100%", "0%", "rate", "10000000bit", "limit", "660"])
        XCTAssertEqual(TopologyPlan.netemArguments(ImpairmentSpec(loss: .bernoulli(percent: 0.5))), ["delay", "0ms", "loss", "0.5%", "limit", "660"])
    }

    func testLinkImpairmentWordsRoundTrip() throws {
        let words = LinkImpairment(delay: "60ms", jitter: "5ms", distribution: "normal", loss: "gemodel 1% 25% 100% 0%", rate: "10mbit")
        let spec = try words.spec()
        XCTAssertEqual(spec, ImpairmentSpec(delayNanoseconds: 60 * ms, jitterNanoseconds: 5 * ms, distribution: .normal,
                                            loss: .gilbertElliott(p: 1, r: 25, lossBad: 100, lossGood: 0), rateBitsPerSecond: 10_000_000))
        XCTAssertEqual(LinkImpairment(spec), words)
        XCTAssertEqual(words.summary, "delay 60ms, jitter 5ms normal, loss gemodel 1% 25% 100% 0%, rate 10mbit")
        XCTAssertEqual(LinkImpairment(ImpairmentSpec()).summary, "none")
        XCTAssertEqual(try LinkImpairment(delay: "1.5ms").spec().delayNanoseconds, 1_500_000)
        XCTAssertThrowsError(try LinkImpairment(delay: "far").spec()) { XCTAssertEqual(($0 as? LabError)?.message, "`delay` must be a duration up to 10s such as 30ms, got \"far\"") }
        XCTAssertThrowsError(try LinkImpairment(loss: "200%").spec()) { XCTAssert(($0 as? LabError)?.message.hasPrefix("`loss` must be a percentage") ?? false) }
        XCTAssertThrowsError(try LinkImpairment(distribution: "pareto").spec())
        XCTAssertThrowsError(try LinkImpairment(rate: "fast").spec())
    }

    func testAPIRoutes() throws {
        let plan = TopologyPlan(try load("edge-cloud"))
        let control = try ForwarderControl(links: plan.impairedLinks)
        let (s1, b1) = ForwarderHTTP.route(method: "GET", path: "/links", body: Data(), control: control)
        XCTAssertEqual(s1, 200)
        XCTAssertEqual(try JSONDecoder().decode([ForwarderLinkReport].self, from: b1), [])
        let (s2, b2) = ForwarderHTTP.route(method: "PUT", path: "/links/node_9/edge", body: Data("{}".utf8), control: control)
        XCTAssertEqual(s2, 404)
        XCTAssert(String(decoding: b2, as: UTF8.self).contains("no impaired link node_9:edge; links: node_1:edge, node_2:edge, node_3:edge, cloud:edge"))
        let (s3, b3) = ForwarderHTTP.route(method: "PUT", path: "/links/node_1/edge", body: Data("{\"delay\": \"soon\"}".utf8), control: control)
        XCTAssertEqual(s3, 400)
        XCTAssert(String(decoding: b3, as: UTF8.self).contains("`delay` must be a duration"))
        XCTAssertEqual(ForwarderHTTP.route(method: "DELETE", path: "/links", body: Data(), control: control).0, 405)
        XCTAssertEqual(ForwarderHTTP.route(method: "GET", path: "/nothing", body: Data(), control: control).0, 404)
        // A valid PUT is queued for the forwarding thread, which is not running here: it says so (503), and the update waits.
        let (s4, _) = ForwarderHTTP.route(method: "PUT", path: "/links/node_1/edge", body: Data("{\"delay\": \"60ms\"}".utf8), control: control)
        XCTAssertEqual(s4, 503)
        let pending = control.takeUpdates()
        XCTAssertEqual(pending.count, 1)
        XCTAssertEqual(pending.first?.0, 0)
        XCTAssertEqual(pending.first?.1.delayNanoseconds, 60 * ms)
        XCTAssertNil(pending.first?.2)
    }

    /// `impair: {egress: …, ingress: …}`: each direction its own model, in the plan, in netem's
    /// command lines (egress on the node's eth, ingress on the fabric end) and in the API (a PUT
    /// with `direction` changes only that direction).
    func testPerDirectionImpairment() throws {
        let yaml = """
        name: cal-dir
        networks:
          - {name: n, subnet: 10.231.12.0/24}
        nodes:
          - name: a
            interfaces:
              - {network: n, address: 10.231.12.1, impair: {egress: {delay: 20ms, loss: 1%}, ingress: {delay: 5ms}}}
          - name: b
            interfaces:
              - {network: n, address: 10.231.12.2, impair: {egress: {delay: 7ms}}}
          - name: c
            interfaces:
              - {network: n, address: 10.231.12.3, impair: {delay: 3ms}}
        """
        let plan = TopologyPlan(try TopologyLoader.load(yaml: yaml, file: "cal-dir.yaml"))
        let links = plan.impairedLinks
        XCTAssertEqual(links.map(\.spec.delayNanoseconds), [20 * ms, 7 * ms, 3 * ms])
        XCTAssertEqual(links.map(\.toNodeSpec.delayNanoseconds), [5 * ms, 0, 3 * ms], "a direction left out is not impaired; the flat form is both")
        XCTAssertEqual(links[0].spec.loss, .bernoulli(percent: 1))
        XCTAssertEqual(links[0].toNodeSpec.loss, LossModel.none)
        XCTAssertEqual(LabExecutor.summary(links[0]), "egress delay 20ms, loss 1%; ingress delay 5ms")
        XCTAssertEqual(LabExecutor.summary(links[2]), "delay 3ms")
        let netem = TopologyPlan.netemCommands(for: links[0], fabric: plan.fabric).map { $0.joined(separator: " ") }
        XCTAssert(netem[0].hasSuffix("dev eth0 root netem delay 20ms loss 1% limit 660"), netem[0])
        XCTAssert(netem[1].hasSuffix("root netem delay 5ms limit 660"), netem[1])

        let control = try ForwarderControl(links: links)
        let (s1, _) = ForwarderHTTP.route(method: "PUT", path: "/links/a/n", body: Data("{\"delay\": \"60ms\", \"direction\": \"ingress\"}".utf8), control: control)
        XCTAssertEqual(s1, 503, "queued for the (not running) forwarding thread")
        let pending = control.takeUpdates()
        XCTAssertEqual(pending.count, 1)
        XCTAssertEqual(pending.first?.3, .ingress)
        XCTAssertEqual(pending.first?.1.delayNanoseconds, 60 * ms)
        XCTAssertTrue(LinkDirection.ingress.includes(toNode: true))
        XCTAssertFalse(LinkDirection.ingress.includes(toNode: false))
        XCTAssertTrue(LinkDirection.egress.includes(toNode: false))
        XCTAssertTrue(LinkDirection.both.includes(toNode: true) && LinkDirection.both.includes(toNode: false))
        let (s2, b2) = ForwarderHTTP.route(method: "PUT", path: "/links/a/n", body: Data("{\"delay\": \"1ms\", \"direction\": \"up\"}".utf8), control: control)
        XCTAssertEqual(s2, 400)
        XCTAssert(String(decoding: b2, as: UTF8.self).contains("`direction` must be both, egress (node → network) or ingress (network → node), got \\\"up\\\""),
                  String(decoding: b2, as: UTF8.self))
        XCTAssertTrue(control.takeUpdates().isEmpty, "a refused PUT queues nothing")
    }
}
