import ArgumentParser
import Foundation
import HostNet
import Lab
import Overlay
import Wire

/// `shoal lab demo`: the main demo of the current milestone, run by `make demo`: the swarm
/// tutorial on a lab of three nodes (SwarmDemo). With `--overlay`, wave 1's demo: endpoints
/// pinging across the overlay.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The swarm tutorial in a lab: network, service, exec nslookup, scale, drain, a node killed, teardown.")

    @Option(help: "Number of nodes (3-20): one manager, the others workers.")
    var nodes: Int = 3

    @Flag(help: "Wave 1's demo instead: overlay daemons and endpoints pinging across them.")
    var overlay = false

    func validate() throws {
        guard (3...20).contains(nodes) || overlay else { throw ValidationError("--nodes must be between 3 and 20, not \(nodes)") }
    }

    func run() async throws {
        try requireRoot()
        if overlay { return try runOverlay() }
        try await reportingFailures { try await SwarmDemo.run(nodes: nodes) }
    }

    func runOverlay() throws {
        let lab = try Lab.up(nodes: nodes)
        var failed = false
        do {
            print("== lab \(lab.name) is up")
            print(LabReport.describe(lab))
            let members = try LabOverlay.start(in: lab)
            print("\n== overlay network '\(LabOverlay.network.name)' (VNI \(LabOverlay.network.vni), \(LabOverlay.network.subnet)): one endpoint per node, a shoal overlay daemon in each node")
            for member in members {
                print("  \(member.node.name): endpoint \(member.address) in \(member.endpoint.name), VTEP \(member.node.underlayAddress):4789")
            }

            print("\n== endpoints ping each other across the overlay (ARP answered by the daemons, frames in VXLAN)")
            for from in members {
                for to in members where to.node != from.node {
                    let result = try NamespacedProcess.run(
                        ["ping", "-c", "2", "-i", "0.2", "-W", "2", "\(to.address)"], in: from.endpoint, timeoutSeconds: 10)
                    let ok = result.status == 0
                    failed = failed || !ok
                    let rtt = result.output.split(separator: "\n").last { $0.contains("rtt") }.map { " (\($0))" } ?? ""
                    print("  \(from.address) → \(to.address): \(ok ? "ok" : "FAILED\n\(result.output)")\(rtt)")
                }
            }

            print("\n== counters of the daemon on \(members[0].node.name) ('shoal overlay stats')")
            let response = try ControlChannel.send(.init(command: .statistics), to: members[0].control, timeout: 5)
            let statistics = try JSONDecoder().decode(OverlayStatistics.self, from: Data((response.json ?? "").utf8))
            print(OverlayDaemon.table(statistics))
        } catch {
            try? lab.down()
            throw error
        }
        try lab.down()
        let left = NetworkNamespace.all().filter { $0.contains(lab.name) }
        print("\n== lab \(lab.name) torn down (daemons stopped); namespaces left: \(left.isEmpty ? "none" : left.joined(separator: ", "))")
        if failed || !left.isEmpty { throw ExitCode.failure }
    }
}

/// Human-readable summaries of a lab.
enum LabReport {
    static func describe(_ lab: Lab) -> String {
        var lines = ["  hub namespace \(lab.hub.name): bridge br0 \(lab.record.underlay)"]
        for node in lab.nodes {
            lines.append("  node \(node.name): namespace \(node.namespace.name), \(node.underlayInterface) \(node.underlayAddress)/\(lab.record.underlay.length)")
        }
        return lines.joined(separator: "\n")
    }
}
