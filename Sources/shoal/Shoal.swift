import ArgumentParser

/// The `shoal` command: the daemon and the Docker-shaped CLI of DESIGN.md §5. This skeleton
/// holds `version` and the lab; the daemon and cluster commands arrive with their modules.
@main
struct Shoal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "A userspace networking engine for clusters of container hosts.",
        version: ShoalVersion.current,
        subcommands: [
            Version.self, LabCommand.self, OverlayCommand.self, Capture.self, DNSCommand.self, RaftCommand.self, GossipCommand.self,
        ])
}

enum ShoalVersion {
    static let current = "0.1.0-dev"
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version of shoal.")

    func run() {
        print("shoal \(ShoalVersion.current)")
    }
}
