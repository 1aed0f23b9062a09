import ArgumentParser
import Foundation
import HostNet
import Lab
import Wire

/// `shoal lab …`: a whole cluster on this host, in network namespaces.
struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Run a multi-node cluster on this host, each node in its own network namespace.",
        subcommands: [Up.self, Down.self, List.self, Demo.self])

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring up a lab of N nodes as a swarm (a daemon in every node) and leave it running.")

        @Option(help: "Number of nodes (1-200).")
        var nodes: Int = 3

        @Option(help: "How many of the nodes are managers (n1…nM); the rest are workers.")
        var managers: Int = 1

        @Option(help: "The swarm's heartbeat period.")
        var dispatcherHeartbeat: String = "1s"

        @Option(help: "Validity of node certificates (`swarm init --cert-expiry`; at least 1m).")
        var certExpiry: String?

        @Option(help: "Where the daemons keep their data (a directory each); default: beside the lab's record, in /run.")
        var dataRoot: String?

        @Option(help: "Every daemon's idle timeout of established TCP connections to VIPs (`shoal daemon --conntrack-tcp-timeout-established`).")
        var conntrackTcpTimeoutEstablished: String?

        @Flag(help: "Only the namespaces and links: no daemons, no swarm.")
        var bare = false

        @Option(help: "Name of the lab (1-16 of a-z, 0-9, '-'); random when omitted.")
        var name: String?

        @Flag(help: "Run the overlay daemon in every node, with one endpoint per node on network 'demo'.")
        var overlay = false

        func validate() throws {
            guard (1...200).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 200, not \(nodes)") }
            guard (1...nodes).contains(managers) else { throw ValidationError("--managers must be between 1 and --nodes, not \(managers)") }
            if let timeout = conntrackTcpTimeoutEstablished, DurationText.seconds(timeout) == nil {
                throw ValidationError("--conntrack-tcp-timeout-established \(timeout): not a duration (e.g. 5s, 24h)")
            }
        }

        func run() async throws {
            try requireRoot()
            let lab = try Lab.up(nodes: nodes, name: name, persistent: true)
            print(LabReport.describe(lab))
            if !bare && !overlay {
                do {
                    try await reportingFailures { try await LabSwarm.form(
                        lab, managers: managers, heartbeat: dispatcherHeartbeat, certificateExpiry: certExpiry, dataRoot: dataRoot,
                        daemonArguments: conntrackTcpTimeoutEstablished.map { ["--conntrack-tcp-timeout-established", $0] } ?? []) }
                } catch {
                    try? lab.down()
                    throw error
                }
                print("swarm formed: \(managers) manager(s), \(nodes - managers) worker(s), every node Ready")
                print("export SHOAL_HOST=unix://\(LabSwarm.socket(lab, lab.nodes[0]))")
            }
            if overlay {
                do {
                    for member in try LabOverlay.start(in: lab) {
                        print("  overlay on \(member.node.name): endpoint \(member.address) in namespace \(member.endpoint.name), control \(member.control)")
                    }
                } catch {
                    try? lab.down()
                    throw error
                }
            }
            print("tear it down with: shoal lab down \(lab.name)")
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tear down a lab (every namespace and link it recorded), or all of them.")

        @Argument(help: "The lab to tear down.")
        var name: String?

        @Flag(help: "Tear down every lab recorded on this host.")
        var all = false

        @Flag(help: "Tear down labs whose owning process died (crashed tests).")
        var stale = false

        func validate() throws {
            let chosen = [name != nil, all, stale].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give exactly one of: a lab name, --all, --stale") }
        }

        func run() throws {
            try requireRoot()
            if let name {
                try Lab.down(named: name)
                print("removed lab \(name)")
            } else if stale {
                let removed = Lab.removeStale()
                print(removed.isEmpty ? "no stale labs" : "removed stale labs: \(removed.joined(separator: ", "))")
            } else {
                let records = LabRecord.all()
                for record in records {
                    try Lab.down(named: record.name)
                    print("removed lab \(record.name)")
                }
                if records.isEmpty { print("no labs") }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the labs on this host.")

        func run() throws {
            let records = LabRecord.all()
            if records.isEmpty {
                print("no labs")
                return
            }
            for record in records {
                let owner = record.persistent ? "persistent" : (record.ownerIsAlive ? "pid \(record.owner.pid)" : "stale")
                let nodes = record.nodes.map { "\($0.name)=\($0.underlayAddress)" }.joined(separator: " ")
                print("\(record.name)\t\(owner)\t\(nodes)")
            }
        }
    }
}

/// Fails with a clear message when not running as root: namespaces and links need it.
func requireRoot() throws {
    guard getuid() == 0 else {
        throw ValidationError("this needs root (network namespaces and links): run it with sudo")
    }
}
