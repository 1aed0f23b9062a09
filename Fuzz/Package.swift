// swift-tools-version: 6.1
// libFuzzer harnesses for Shoal's parsers of network bytes. A separate package because a
// fuzz executable has no `main` of its own (libFuzzer provides it), so it only links when built
// with `-sanitize=fuzzer`; see `make fuzz` in the parent directory.
import PackageDescription

let package = Package(
    name: "ShoalFuzz",
    dependencies: [.package(name: "Shoal", path: "..")],
    targets: [
        .executableTarget(
            name: "WireFuzz",
            dependencies: [.product(name: "Wire", package: "Shoal")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
