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
        .target(name: "TrellisCNI", dependencies: ["TrellisNet", "TrellisJSON"]),
        .target(name: "TrellisIPAM", dependencies: ["TrellisNet", "TrellisJSON"]),
        // NetworkPolicy: model, parser, reference evaluator, identities and the compiler to
        // datapath map entries. Pure logic, no syscalls.
        .target(name: "TrellisPolicy", dependencies: ["TrellisNet", "TrellisJSON"]),
        // The one reader of Kubernetes manifests (YAML streams, JSON, lists) for the agent and
        // the lab, and the path-aware tree access their readers use.
        .target(name: "TrellisManifests", dependencies: [
            "TrellisNet", "TrellisJSON", .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "TrellisNetlink", dependencies: ["CNetlink", "TrellisNet"]),
        .target(name: "TrellisPlugin",
                dependencies: ["TrellisCore", "TrellisCNI", "TrellisIPAM", "TrellisNetlink", "TrellisNet"]),
        // The eBPF datapath: map/struct layouts shared with bpf/ (C), and its Swift loader.
        .target(name: "CTrellisBPF"),
        .target(name: "TrellisDatapath",
                dependencies: ["CLibbpf", "CTrellisBPF", "TrellisCore", "TrellisNet", "TrellisNetlink", "TrellisPolicy"]),

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
        ]),
        .executableTarget(name: "trellis-agent", dependencies: [
            "TrellisAgent", "TrellisDatapath", "TrellisPolicy",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            "CLibbpf",
        ]),
        // The local multi-node lab behind `trellisctl lab` (network namespaces, real binaries).
        // It reads manifests and talks to the agents as the agent's own library does.
        .target(name: "TrellisLab", dependencies: [
            "TrellisCore", "TrellisNetlink", "TrellisNet", "TrellisJSON", "CNetlink", "TrellisPolicy", "TrellisAgent",
            "TrellisManifests", .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "trellisctl", dependencies: [
            "TrellisCore", "TrellisCNI", "TrellisLab", "TrellisAgent", "TrellisPolicy", "TrellisJSON", "TrellisNet",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "TrellisTests", dependencies: [
            "TrellisCore", "TrellisNet", "TrellisJSON", "TrellisCNI", "TrellisIPAM", "TrellisNetlink", "TrellisPlugin",
            "TrellisDatapath", "TrellisPolicy", "TrellisLab", "TrellisKube", "TrellisManifests",
            "TrellisAgent", .product(name: "Logging", package: "swift-log"),
            .product(name: "InMemoryLogging", package: "swift-log"),
            // The Kube suites talk to the stand-in's /_standin/ endpoints directly.
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ]
)
