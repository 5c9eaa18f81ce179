// swift-tools-version: 6.0
import PackageDescription

// Layers (see README "Code map"): EdgeMeterCore has no I/O; probes, startup backends, capture and
// the lab each live in their own module; the `edgemeter` executable is a thin CLI over them.
let package = Package(
    name: "edgemeter",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "edgemeter", targets: ["edgemeter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C helpers the Swift importer cannot express (CMSG_* macros, struct timespec control data).
        .target(name: "CEdgeMeter"),
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),

        // Processes (posix_spawn), PATH lookup, iproute2 (namespaces, veth, bridges, routes): the
        // one place that runs programs and changes the host's network.
        .target(name: "EdgeMeterSystem", dependencies: ["EdgeMeterCore"]),

        // HTTP/1.1: message framing as a pure state machine over bytes (`HTTP1Parser`, no I/O) and
        // the keep-alive client on swift-nio that reads responses with it (probes, calculator).
        .target(
            name: "EdgeMeterHTTP",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "EdgeMeterCore",
            dependencies: [
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "EdgeMeterProbes",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterHTTP", "EdgeMeterSystem", "CEdgeMeter",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "EdgeMeterStartup",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "EdgeMeterCapture",
            dependencies: ["EdgeMeterCore", "EdgeMeterHTTP", "CPcap", "CEdgeMeter"]
        ),
        // Starting a Hummingbird server and waiting until it listens (calculator, edge app, controller).
        .target(
            name: "EdgeMeterServe",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Calculator",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterHTTP", "EdgeMeterServe",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Lab topologies: the pure model and its validation (networks, nodes, routes, NAT, filters,
        // impairments), the plan (steps and their reverse) and the executor that builds it through
        // the system module (and the Engine API client, for container nodes and compose files).
        .target(
            name: "EdgeMeterLab",
            dependencies: ["EdgeMeterCore", "EdgeMeterSystem", "EdgeMeterStartup", "CEdgeMeter", .product(name: "Yams", package: "Yams")]
        ),
        // Run directories (streamed samples, summaries, run.json) and the suite runner's table of
        // scenario kinds. File I/O lives here, not in Core.
        .target(
            name: "EdgeMeterRun",
            dependencies: ["EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterStartup", "EdgeMeterCapture", "Calculator", "EdgeMeterSystem", "EdgeMeterLab"]
        ),
        // Service migration policy: delay windows, edgemeter's flap-proof policy and the lab's
        // first-response one behind one interface, trace replays on a manual clock. Pure, no I/O.
        .target(name: "EdgeMeterPolicy", dependencies: ["EdgeMeterCore"]),
        // The edge workload of the migration experiments: the edge app (driving advice) and the
        // cloud database (road status) on Hummingbird 2.
        .target(
            name: "EdgeApp",
            dependencies: [
                "EdgeMeterHTTP", "EdgeMeterServe",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The system's libsqlite3 (Debian libsqlite3-dev): the controller's state file.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The migration controller: service state persisted in SQLite, the lab's API and its own on
        // Hummingbird 2, the probe loop feeding the policy, the executor protocol and its executors,
        // the delay feed (delays.csv, NetworkTopology).
        .target(
            name: "EdgeMeterController",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterPolicy", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterSystem", "EdgeMeterStartup", "CSQLite", "EdgeMeterServe",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Run history: every run's scenarios and samples in SQLite through GRDB (versioned
        // migrations, batched writes as the run goes), baselines by name for `compare`.
        .target(
            name: "EdgeMeterHistory",
            dependencies: ["EdgeMeterCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The probing agent: a probe schedule run continuously, Prometheus exposition (/metrics), the
        // blackbox_exporter-compatible one-shot /probe, windowed delay pushes to a controller.
        .target(
            name: "EdgeMeterAgent",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterSystem", "EdgeMeterServe", "EdgeApp",
                "EdgeMeterRun", "EdgeMeterLab", "EdgeMeterController",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                // NIOSingletons' Swift Concurrency take-over (the agent's server without thread hops).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "edgemeter",
            dependencies: [
                "EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterStartup", "EdgeMeterCapture", "Calculator", "EdgeMeterRun",
                "EdgeMeterSystem", "EdgeMeterLab", "EdgeMeterPolicy", "EdgeApp", "EdgeMeterController",
                "EdgeMeterHistory", "EdgeMeterAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Helpers shared by test targets: running commands, temporary network namespaces, the built binary.
        .target(name: "EdgeMeterTestSupport", dependencies: ["EdgeMeterSystem"], path: "Tests/EdgeMeterTestSupport"),

        .testTarget(name: "EdgeMeterSystemTests", dependencies: ["EdgeMeterSystem", "EdgeMeterCore"]),
        .testTarget(name: "EdgeMeterHTTPTests", dependencies: [
            "EdgeMeterHTTP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "EdgeMeterLabTests", dependencies: ["EdgeMeterLab", "EdgeMeterCore", "EdgeMeterSystem", "EdgeMeterTestSupport"], resources: [.copy("testdata")]),
        .testTarget(name: "EdgeMeterPolicyTests", dependencies: ["EdgeMeterPolicy", "EdgeMeterCore"]),
        .testTarget(name: "EdgeMeterControllerTests", dependencies: [
            "EdgeMeterController", "EdgeMeterPolicy", "EdgeMeterCore", "EdgeMeterHTTP", "EdgeMeterSystem", "EdgeMeterRun", "EdgeMeterTestSupport",
            "EdgeApp", "EdgeMeterStartup",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], resources: [.copy("testdata")]),
        .testTarget(name: "EdgeAppTests", dependencies: ["EdgeApp", "EdgeMeterHTTP", "EdgeMeterProbes"]),
        .testTarget(name: "EdgeMeterCoreTests", dependencies: ["EdgeMeterCore", .product(name: "Yams", package: "Yams")], resources: [.copy("golden")]),
        .testTarget(name: "EdgeMeterProbesTests", dependencies: ["EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterSystem", "EdgeMeterCore", "EdgeMeterTestSupport"]),
        .testTarget(name: "EdgeMeterRunTests", dependencies: ["EdgeMeterRun", "EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterTestSupport"], resources: [.copy("testdata")]),
        .testTarget(name: "EdgeMeterHistoryTests", dependencies: [
            "EdgeMeterHistory", "EdgeMeterCore", "EdgeMeterSystem", "EdgeMeterTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "CalculatorTests", dependencies: ["Calculator", "EdgeMeterHTTP", "EdgeMeterProbes", "EdgeMeterCore"]),
        .testTarget(name: "EdgeMeterStartupTests", dependencies: ["EdgeMeterStartup", "EdgeMeterCore", "EdgeMeterRun", "EdgeMeterProbes", "EdgeMeterSystem"]),
        .testTarget(name: "EdgeMeterAgentTests", dependencies: [
            "EdgeMeterAgent", "EdgeMeterCore", "EdgeMeterProbes", "EdgeMeterHTTP", "EdgeMeterSystem", "EdgeMeterTestSupport", "EdgeMeterController", "EdgeApp", "Calculator",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EdgeMeterCaptureTests", dependencies: ["EdgeMeterCapture", "EdgeMeterCore", "EdgeMeterRun", "EdgeMeterProbes", "EdgeMeterHTTP"]),
    ],
    swiftLanguageModes: [.v5]
)
