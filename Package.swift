// swift-tools-version: 6.1
// Shoal: a userspace networking engine for clusters of container hosts.
// Targets follow ../shared/DESIGN.md §4; arrows there are the only imports allowed here.
import PackageDescription

let package = Package(
    name: "Shoal",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "shoal", targets: ["shoal"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "HostNet", targets: ["HostNet"]),
        .library(name: "Lab", targets: ["Lab"]),
        .library(name: "Overlay", targets: ["Overlay"]),
        .library(name: "ServiceDNS", targets: ["ServiceDNS"]),
        .library(name: "IngressLB", targets: ["IngressLB"]),
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftHost", targets: ["RaftHost"]),
        .library(name: "ClusterAPI", targets: ["ClusterAPI"]),
        .library(name: "ControlPlane", targets: ["ControlPlane"]),
        .library(name: "PKI", targets: ["PKI"]),
        .library(name: "Gossip", targets: ["Gossip"]),
        .library(name: "Daemon", targets: ["Daemon"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries, linked through module maps and pkg-config.
        .systemLibrary(
            name: "CLibMnl", pkgConfig: "libmnl",
            providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(
            name: "CLibPcap", pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]),
        // C shims only for what Swift cannot call directly (variadic ioctl, libmnl macros, setns/mount).
        .target(name: "CShoal", dependencies: ["CLibMnl"]),

        .target(name: "Wire"),
        .target(
            name: "HostNet",
            dependencies: [
                "CShoal", "CLibMnl", "CLibPcap", "DurableFiles", "Wire",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Overlay",
            dependencies: ["CShoal", "Wire", "HostNet", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "IngressLB",
            dependencies: [
                "Wire", "Overlay", "HostNet", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .target(
            name: "ServiceDNS",
            dependencies: [
                "Wire", "HostNet", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // What the protocol engines share below them: replayable randomness, a virtual-time event
        // queue for simulators, bounded big-endian encoding. No I/O.
        .target(name: "EngineKit"),
        // The one atomic write and the fsync discipline (Raft's WAL, the daemon's state and keys,
        // lab records), with errors that name the call and the path.
        .target(name: "DurableFiles"),
        // The one length-prefixed stream framing (gossip's TCP, Raft's 2377): NIOExtras' codec
        // plus a limit checked on the prefix and drop counters.
        .target(
            name: "Framing",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOExtras", package: "swift-nio-extras")]),
        .target(
            name: "Gossip",
            dependencies: [
                "EngineKit", "Framing", "DurableFiles", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The deterministic simulator that drives Gossip's real engine (tests, `make soak`, bench).
        .target(name: "GossipSimulation", dependencies: ["Gossip", "EngineKit"]),
        .target(name: "Raft", dependencies: ["EngineKit"]),
        // The deterministic simulator that drives Raft's real core through the real host driver
        // (tests, `make soak`).
        .target(name: "RaftSimulation", dependencies: ["Raft", "RaftHost", "EngineKit"]),
        // A Raft member as a process: the core over the write-ahead log and snapshot files
        // (durable files), a transport on 2377 (its own TCP frames, or one the host gives).
        .target(
            name: "RaftHost",
            dependencies: [
                "Raft", "EngineKit", "Framing", "DurableFiles", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ]),
        // The cluster's object model and API: protobuf messages and gRPC services, generated once
        // by scripts/generate-api.sh from Protos/ and committed (builds never run a generator).
        .target(
            name: "ClusterAPI",
            dependencies: [
                "EngineKit",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
            ],
            exclude: ["Protos"]),
        // The cluster's trust: root CA, node certificates (CN node, OU role, O cluster), join tokens.
        .target(
            name: "PKI",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .target(
            name: "ControlPlane",
            dependencies: [
                "ClusterAPI", "PKI", "Raft", "RaftHost", "EngineKit", "Wire", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "X509", package: "swift-certificates"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "HeapModule", package: "swift-collections"),
            ]),
        // The managers' store under the Raft simulator (tests, `make soak`).
        .target(
            name: "StoreSimulation",
            dependencies: [
                "ControlPlane", "ClusterAPI", "Raft", "RaftSimulation", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .target(
            name: "Agent",
            dependencies: [
                // Never ControlPlane: the agent reaches the managers through the API only.
                "ClusterAPI", "PKI", "HostNet", "Overlay", "IngressLB", "ServiceDNS", "Gossip", "Wire",
                .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        // `shoal daemon` composed: the agent always, the control plane on managers, the API on
        // the Unix socket and on 2377 under mutual TLS.
        .target(
            name: "Daemon",
            dependencies: [
                "Agent", "ControlPlane", "ClusterAPI", "PKI", "Raft", "RaftHost", "DurableFiles", "EngineKit", "IngressLB", "Wire",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .target(
            name: "Lab",
            dependencies: [
                "HostNet", "Wire", "DurableFiles",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "shoal",
            dependencies: [
                "Wire", "HostNet", "Lab", "Overlay", "ServiceDNS", "EngineKit", "Gossip", "GossipSimulation", "Raft",
                "RaftSimulation", "RaftHost", "StoreSimulation", "DurableFiles", "Daemon", "ClusterAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),

        .testTarget(name: "WireTests", dependencies: ["Wire", "HostNet", "EngineKit"], exclude: ["Fixtures"]),
        .testTarget(name: "HostNetTests", dependencies: ["HostNet", "Wire", "Lab"]),
        .testTarget(name: "LabTests", dependencies: ["Lab", "HostNet", "Wire"]),
        .testTarget(name: "OverlayTests", dependencies: ["Overlay", "Lab", "HostNet", "Wire"]),
        .testTarget(name: "CLITests", dependencies: ["HostNet", "Lab", "Wire", "Gossip"]),
        .testTarget(
            name: "IngressLBTests",
            dependencies: [
                "IngressLB", "HostNet", "Wire", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "ServiceDNSTests", dependencies: ["ServiceDNS", "HostNet", "Lab", "Wire"], exclude: ["Fixtures"]),
        .testTarget(
            name: "GossipTests",
            dependencies: [
                "Gossip", "GossipSimulation", "EngineKit", .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "RaftHost", "RaftSimulation"]),
        .testTarget(name: "RaftHostTests", dependencies: ["RaftHost", "Raft"]),
        .testTarget(name: "EngineKitTests", dependencies: ["EngineKit"]),
        .testTarget(
            name: "PKITests",
            dependencies: ["PKI", .product(name: "X509", package: "swift-certificates"), .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "FramingTests",
            dependencies: [
                "Framing", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "ClusterAPI", "Raft", "RaftHost", "RaftSimulation", "StoreSimulation", "Wire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "ClusterAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    ]
)
