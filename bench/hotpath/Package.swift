// swift-tools-version: 6.1
// A driver that pushes frames through the overlay's hot path — the switch alone, or two
// running engines end to end — so that `hotpath-allocations.sh` can count, with callgrind,
// the allocations and reference-counting calls each extra frame costs. A separate package so
// that it is built (release, with debug info) only for the benches.
import PackageDescription

let package = Package(
    name: "ShoalHotPath",
    dependencies: [.package(name: "Shoal", path: "../..")],
    targets: [
        .executableTarget(
            name: "OverlayHotPath",
            dependencies: [
                .product(name: "Overlay", package: "Shoal"), .product(name: "Lab", package: "Shoal"),
                .product(name: "HostNet", package: "Shoal"), .product(name: "Wire", package: "Shoal"),
                .product(name: "ServiceDNS", package: "Shoal"),
                .product(name: "IngressLB", package: "Shoal"),
            ]),
    ]
)
