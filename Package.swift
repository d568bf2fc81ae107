// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "trellis",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "trellis", targets: ["trellis"]),
        .executable(name: "trellis-agent", targets: ["trellis-agent"]),
        .executable(name: "trellisctl", targets: ["trellisctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The Kubernetes client (TrellisKube): HTTP/1.1 with TLS through swift-nio-ssl.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // The agent's metrics (swift-metrics API, Prometheus exposition), start-up and graceful
        // shutdown (ServiceGroup), the nft subprocess, and errno/file descriptors. Agent only.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // C libraries, through pkg-config for their include paths. The module maps name the
        // libraries themselves so that the release build can point the linker at static archives.
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CLibbpf", pkgConfig: "libbpf",
                       providers: [.apt(["libbpf-dev"])]),

        .target(name: "TrellisNet"),
        .target(name: "TrellisJSON"),
        // What crosses a process or language boundary, defined once: the datapath mode, the
        // endpoint entry, drop reasons and events, the CNI-to-agent handshake. Pure Swift, no
        // Foundation, so that the plugin links it without cost.
        .target(name: "TrellisCore", dependencies: ["TrellisNet", "TrellisJSON"]),
        .target(name: "TrellisCNI", dependencies: ["TrellisCore", "TrellisNet", "TrellisJSON"]),
        .target(name: "TrellisIPAM", dependencies: ["TrellisNet", "TrellisJSON"]),
        // NetworkPolicy: model, parser, reference evaluator, identities and the compiler to
        // datapath map entries. Pure logic, no syscalls.
        .target(name: "TrellisPolicy", dependencies: ["TrellisNet", "TrellisJSON"]),
        // The one reader of Kubernetes manifests (YAML streams, JSON, lists) for the agent and
        // the lab, and the path-aware tree access their readers use.
        .target(name: "TrellisManifests", dependencies: [
            "TrellisCore", "TrellisNet", "TrellisJSON", .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "TrellisNetlink", dependencies: ["CNetlink", "TrellisNet"]),
        .target(name: "TrellisPlugin",
                dependencies: ["TrellisCore", "TrellisCNI", "TrellisIPAM", "TrellisNetlink", "TrellisNet"]),
        // The eBPF datapath: map/struct layouts shared with bpf/ (C), and its Swift loader.
        .target(name: "CTrellisBPF"),
        // The datapath's map keys and values as Swift values, through the C structs of
        // bpf/lib/common.h: no libbpf, so the pure tests check policy against the real layout.
        .target(name: "TrellisDatapathLayout",
                dependencies: ["CTrellisBPF", "TrellisCore", "TrellisNet", "TrellisPolicy"]),
        .target(name: "TrellisDatapath",
                dependencies: ["CLibbpf", "CTrellisBPF", "TrellisDatapathLayout", "TrellisCore", "TrellisNet",
                               "TrellisNetlink", "TrellisPolicy"]),

        .executableTarget(name: "trellis", dependencies: ["TrellisPlugin", "TrellisNetlink"]),
        // The Kubernetes API client: typed objects, credentials, requests, watches and the
        // informer the agent takes its cluster state from. No agent logic; never linked into
        // the plugin (it must stay free of SwiftNIO).
        .target(name: "TrellisKube", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // The node agent's logic (config, cluster state, reconcilers, servers), as a library
        // so that the tests drive it in-process; the executable only wires it up.
        .target(name: "TrellisAgent", dependencies: [
            "TrellisCore", "TrellisNet", "TrellisJSON", "TrellisCNI", "TrellisNetlink", "TrellisPolicy", "TrellisKube",
            "TrellisManifests",
            .product(name: "Logging", package: "swift-log"),
            // The health and metrics endpoint is an NIOHTTP1 server (see HealthServer for why
            // not Hummingbird).
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .executableTarget(name: "trellis-agent", dependencies: [
            "TrellisAgent", "TrellisDatapath", "TrellisPolicy",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            "CLibbpf",
        ]),
        // The local multi-node lab behind `trellisctl lab` (network namespaces, real binaries).
        // It reads manifests and talks to the agents as the agent's own library does.
        .target(name: "TrellisLab", dependencies: [
            "TrellisCore", "TrellisNetlink", "TrellisNet", "TrellisJSON", "CNetlink", "TrellisPolicy", "TrellisAgent",
            "TrellisKube", "TrellisManifests",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "trellisctl", dependencies: [
            "TrellisCore", "TrellisCNI", "TrellisLab", "TrellisAgent", "TrellisPolicy", "TrellisJSON", "TrellisNet",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // The tests, one target per layer, named by what running them needs. Pure: nothing (no C
        // library, no NIO, no root; so they build without libbpf or libnl). Agent: the agent's
        // and the Kubernetes client's stack, loopback sockets and the API server stand-in; their
        // answers and backoffs are timed, so hack/test.sh runs them apart. Root: network
        // namespaces, BPF programs and the real binaries (skipped, with the reason, without root).
        // New tests go to the target of the lowest layer they import.
        .testTarget(name: "TrellisPureTests", dependencies: [
            "TrellisCore", "TrellisNet", "TrellisJSON", "TrellisCNI", "TrellisIPAM", "TrellisPolicy",
            "CTrellisBPF", "TrellisDatapathLayout",
        ]),
        .testTarget(name: "TrellisAgentTests", dependencies: [
            "TrellisTestSupport", "TrellisNet", "TrellisJSON", "TrellisCNI", "TrellisPolicy", "TrellisNetlink",
            "TrellisKube", "TrellisAgent", "TrellisManifests", "TrellisLab",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "InMemoryLogging", package: "swift-log"),
        ]),
        .testTarget(name: "TrellisRootTests", dependencies: [
            "TrellisTestSupport", "TrellisNet", "TrellisNetlink", "TrellisPlugin", "CLibbpf", "CTrellisBPF",
            "TrellisDatapath", "TrellisPolicy", "TrellisKube",
        ]),
        // What the agent and root suites share: the one `.needsRoot` trait, temporary folders,
        // host commands, and the API server stand-in (the Kube suites' server and the lab's in
        // Kubernetes mode). A plain target, so it links NIO: the pure suites do not use it.
        .target(name: "TrellisTestSupport", dependencies: [
            "TrellisKube",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], path: "Tests/TrellisTestSupport"),
    ]
)
