import ArgumentParser
import Foundation
import HostNet
import Lab
import Wire

/// `shoal lab demo`: the main demo of the current milestone, run by `make demo`.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring up a 2-node lab with a TAP endpoint in each, show that it works, tear it down.")

    @Option(help: "Number of nodes (2-20).")
    var nodes: Int = 2

    func validate() throws {
        guard (2...20).contains(nodes) else { throw ValidationError("--nodes must be between 2 and 20, not \(nodes)") }
    }

    func run() throws {
        try requireRoot()
        let lab = try Lab.up(nodes: nodes)
        var failed = false
        do {
            print("== lab \(lab.name) is up")
            print(LabReport.describe(lab))
            var endpoints: [LabEndpoint] = []
            for (offset, node) in lab.nodes.enumerated() {
                let address = IPv4Prefix(IPv4Address(10, 10, 0, UInt8(offset + 2)), length: 24)
                endpoints.append(try LabEndpoint(in: node, address: address))
            }
            print("\n== a TAP endpoint in each node (the data plane holds the fd side)")
            for (node, endpoint) in zip(lab.nodes, endpoints) {
                let link = try RouteNetlink(in: node.namespace).links().first { $0.name == endpoint.tap.name }
                print("  \(node.name): \(link.map(\.description) ?? endpoint.tap.name)  inet \(endpoint.address)")
            }

            print("\n== underlay: every node reaches every other over the lab bridge")
            for from in lab.nodes {
                for to in lab.nodes where to != from {
                    let result = try NamespacedProcess.run(
                        ["ping", "-c", "1", "-W", "2", "\(to.underlayAddress)"], in: from.namespace, timeoutSeconds: 5)
                    let ok = result.status == 0
                    failed = failed || !ok
                    print("  \(from.name) → \(to.name) (\(to.underlayAddress)): \(ok ? "ok" : "FAILED\n\(result.output)")")
                }
            }

            print("\n== TAP: a frame written to the fd reaches the kernel, and the kernel's answer comes back")
            for (node, endpoint) in zip(lab.nodes, endpoints) {
                let asker = IPv4Address(rawValue: endpoint.address.network.rawValue | 0xFE)
                let answer = try endpoint.resolve(endpoint.address.address, asking: asker)
                let ok = answer == endpoint.mac
                failed = failed || !ok
                print(
                    "  \(node.name): wrote ARP who-has \(endpoint.address.address) tell \(asker) → "
                        + (answer.map { "kernel replied \(endpoint.address.address) is-at \($0)" } ?? "no reply (FAILED)"))
            }
            endpoints.forEach { $0.tap.close() }
        } catch {
            try? lab.down()
            throw error
        }
        try lab.down()
        let left = NetworkNamespace.all().filter { $0.contains(lab.name) }
        print("\n== lab \(lab.name) torn down; namespaces left: \(left.isEmpty ? "none" : left.joined(separator: ", "))")
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
