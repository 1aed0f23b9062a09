import Foundation
import HostNet
import Lab
import Overlay
import Wire

/// Starts the overlay daemon (`shoal overlay run`) in every node of a lab, with one endpoint
/// per node on one network, each endpoint in a namespace of its own — the lab's stand-in for a
/// task until the agent schedules real ones.
enum LabOverlay {
    /// The network every lab overlay starts with.
    static let network = OverlayNetwork(
        name: "demo", vni: VNI(4096)!, subnet: IPv4Prefix("10.10.0.0/24")!, gateway: IPv4Address(10, 10, 0, 1))

    /// One node's endpoint and daemon.
    struct Member {
        let node: Lab.Node
        let endpoint: NetworkNamespace
        let address: IPv4Address
        let control: String
    }

    /// The endpoint address of the node at `index` (0-based): 10.10.0.2, 10.10.0.3, …
    static func address(ofNode index: Int) -> IPv4Address {
        IPv4Address(rawValue: network.subnet.network.rawValue + 2 + UInt32(index))
    }

    /// The control socket of `node`'s daemon.
    static func controlPath(_ lab: Lab, _ node: Lab.Node) -> String { "\(lab.record.fileDirectory)/\(node.name).sock" }

    /// Creates the endpoints, writes each node's configuration and starts the daemons; returns
    /// once every daemon answers on its control socket (at most 10 s).
    static func start(in lab: Lab) throws -> [Member] {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var members: [Member] = []
        for (index, node) in lab.nodes.enumerated() {
            let endpoint = try lab.addNamespace(on: node, suffix: "ep")
            members.append(Member(node: node, endpoint: endpoint, address: address(ofNode: index), control: controlPath(lab, node)))
        }
        for member in members {
            let topology = Topology(
                networks: [network],
                localEndpoints: [LocalEndpoint(network: network.name, address: member.address, namespace: member.endpoint.name)],
                remoteEndpoints: members.filter { $0.node != member.node }.map {
                    RemoteEndpoint(network: network.name, address: $0.address, vtep: $0.node.underlayAddress)
                })
            let configuration = OverlayConfiguration(underlay: member.node.underlayAddress, topology: topology)
            let path = try lab.writeFile("\(member.node.name)-overlay.json", contents: try configuration.encoded())
            try lab.startProcess(
                on: member.node, [executable, "overlay", "run", "--config", path, "--control", member.control],
                log: "\(member.node.name)-overlay.log")
        }
        for member in members { try waitForDaemon(member.control) }
        return members
    }

    private static func waitForDaemon(_ control: String) throws {
        // Bounded: 100 attempts, 100 ms apart.
        for _ in 0..<100 {
            if let response = try? ControlChannel.send(.init(command: .statistics), to: control, timeout: 1), response.ok { return }
            usleep(100_000)
        }
        throw ControlError.unreachable(control, "no answer within 10 s; see the daemon's log beside it")
    }
}
