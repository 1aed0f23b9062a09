// swift-tools-version: 6.1
// libFuzzer harnesses for Shoal's parsers of network bytes. A separate package because a
// fuzz executable has no `main` of its own (libFuzzer's driver takes over), so it only links
// when built with `-sanitize=fuzzer`; see `make fuzz` in the parent directory.
import PackageDescription

let package = Package(
    name: "ShoalFuzz",
    dependencies: [
        .package(name: "Shoal", path: ".."),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "WireFuzz",
            dependencies: ["FuzzDriver", .product(name: "Wire", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "OverlayFuzz",
            dependencies: ["FuzzDriver", .product(name: "Overlay", package: "Shoal"), .product(name: "Wire", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "RaftFuzz",
            dependencies: ["FuzzDriver", .product(name: "Raft", package: "Shoal"), .product(name: "RaftHost", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "GossipFuzz",
            dependencies: ["FuzzDriver", .product(name: "Gossip", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "APIFuzz",
            dependencies: [
                "FuzzDriver", .product(name: "ClusterAPI", package: "Shoal"), .product(name: "ControlPlane", package: "Shoal"),
                .product(name: "Raft", package: "Shoal"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "IngressLBFuzz",
            dependencies: [
                "FuzzDriver", .product(name: "IngressLB", package: "Shoal"), .product(name: "Overlay", package: "Shoal"),
                .product(name: "Wire", package: "Shoal"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .executableTarget(
            name: "DNSFuzz",
            dependencies: ["FuzzDriver", .product(name: "ServiceDNS", package: "Shoal"), .product(name: "Wire", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
