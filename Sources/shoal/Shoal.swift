import ArgumentParser
import Foundation

/// The `shoal` command: the daemon and the Docker-shaped CLI of DESIGN.md §5.
@main
struct Shoal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "A userspace networking engine for clusters of container hosts.",
        version: ShoalVersion.current,
        subcommands: [
            Version.self, DaemonCommand.self, SwarmCommand.self, NodeCommand.self, NetworkCommand.self, ServiceCommand.self, ExecCommand.self, SchedulerBench.self, APIBench.self, LabCommand.self, OverlayCommand.self, Capture.self, DNSCommand.self, RaftCommand.self, GossipCommand.self,
        ])

    /// `shoal -H ADDRESS …` as docker takes it, before the subcommand: the same as SHOAL_HOST.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.count >= 2, arguments[0] == "-H" || arguments[0] == "--host" {
            setenv("SHOAL_HOST", arguments[1], 1)
            arguments.removeFirst(2)
        } else if let first = arguments.first, first.hasPrefix("--host=") {
            setenv("SHOAL_HOST", String(first.dropFirst("--host=".count)), 1)
            arguments.removeFirst()
        }
        await main(arguments)
    }
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
