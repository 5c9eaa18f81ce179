import XCTest
import EdgeMeterCore
import EdgeMeterStartup
@testable import EdgeMeterRun

/// The footprint kind's two Markdown tables, byte for byte, from made-up figures (no deployment).
final class FootprintTablesTests: XCTestCase {
    static func figures(_ deployment: String, scale: Double, reserved: UInt64? = nil, layer: Bool = true) -> FootprintFigures {
        FootprintFigures(deployment: deployment, idleWorkloadBytes: 10_485_760 * scale, idleLayerBytes: layer ? 2_097_152 : 0,
                         loadedWorkloadBytes: 12_582_912 * scale, loadedLayerBytes: layer ? 3_145_728 : 0,
                         idleWorkloadPSSBytes: 8_388_608 * scale, loadedWorkloadPSSBytes: 9_437_184 * scale, engineBytes: layer ? 52_428_800 : 0,
                         reservedBytes: reserved, workloadCPUPer1000: 0.125 * scale, layerCPUPer1000: layer ? 0.0105 : nil,
                         engineCPUPer1000: layer ? 0.002 : nil, imageBytes: layer ? 143_418_304 : nil, writableBytes: layer ? 4096 : nil,
                         bytesPerRequest: 416.4, packetsPerRequest: 3.25, p50Milliseconds: 0.4125 * scale, p99Milliseconds: nil,
                         answers: 2000, errors: deployment == "qemu" ? 3 : 0)
    }

    func testFootprintTableGolden() throws {
        var c = FootprintConfig(workload: FootprintWorkload(image: "img:latest", command: ["edgemeter", "serve", "http"], binary: "/bin/true",
                                                            port: 50001, path: "/healthz"))
        c.rate = 150
        c.idle = .seconds(2)
        c.duration = .milliseconds(7500)
        let figs = [Self.figures("process", scale: 1, layer: false), Self.figures("docker", scale: 1.5),
                    Self.figures("qemu", scale: 4, reserved: 512 << 20, layer: false)]
        try checkGolden(FootprintScenario.table(figs, config: c, notRun: [("lxc", "lxc-start not found"), ("podman", "no socket")]),
                        "footprint-table.md")
        // Without a process row there is no base for the ratios.
        try checkGolden(FootprintScenario.table([Self.figures("docker", scale: 2)], config: c), "footprint-table-no-process.md")
    }

    func testRestartTableGolden() throws {
        let records = (0..<40).map { k in
            RestartProbeRecord(sentNanoseconds: UInt64(k) * 50_000_000, doneNanoseconds: UInt64(k) * 50_000_000 + 1_000_000,
                               ok: !(10..<18).contains(k))
        }
        let good = RestartDowntime.analyse(records, restartIssuedNanoseconds: 450_000_000)
        var moved = good
        moved.problem = "came back at a new address: 10.88.0.2 → 10.88.0.3"
        let never = RestartDowntime.analyse(Array(records.prefix(12)), restartIssuedNanoseconds: 450_000_000)
        let rows = [(deployment: "docker", method: "docker restart", downtime: good), (deployment: "podman", method: "podman restart", downtime: moved),
                    (deployment: "qemu", method: "system_reset", downtime: never)]
        try checkGolden(FootprintScenario.restartTable(rows, interval: .milliseconds(5)), "restart-table.md")
    }
}
