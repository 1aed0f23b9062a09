import Foundation
import Glibc
import HostNet
import Lab
import Overlay
import Testing
import Wire

let isRoot = getuid() == 0
let needsRoot: Comment = "needs root: creates network namespaces, links and TAP devices"

/// A lab whose nodes each run an in-process OverlayEngine, with one endpoint namespace per
/// (node, endpoint) pair. Torn down (engines stopped, namespaces removed) also on failure.
final class OverlayLab {
    let lab: Lab
    var engines: [String: OverlayEngine] = [:]

    init(nodes: Int) throws {
        _ = staleRemoved
        lab = try Lab.up(nodes: nodes)
    }

    func shutdown() {
        engines.values.forEach { $0.stop() }
        engines = [:]
        try? lab.down()
    }

    /// Starts an engine on `node` (underlay socket inside the node's namespace).
    func engine(on node: Lab.Node, port: UInt16 = VXLANPacket.port) throws -> OverlayEngine {
        if let engine = engines[node.name] { return engine }
        let engine = try OverlayEngine(
            configuration: .init(underlayAddress: node.underlayAddress, port: port, namespace: node.namespace))
        engine.start()
        engines[node.name] = engine
        return engine
    }

    /// Runs a command in a namespace and returns its result.
    func run(_ arguments: [String], in namespace: NetworkNamespace, timeout: Double = 20) throws -> NamespacedProcess.Result {
        try NamespacedProcess.run(arguments, in: namespace, timeoutSeconds: timeout)
    }
}

private let staleRemoved: Void = { Lab.removeStale() }()

func withOverlayLab<T>(nodes: Int, _ body: (OverlayLab) throws -> T) throws -> T {
    let overlay = try OverlayLab(nodes: nodes)
    defer { overlay.shutdown() }
    return try body(overlay)
}

let blue = OverlayNetwork(name: "blue", vni: VNI(4097)!, subnet: IPv4Prefix("10.20.0.0/24")!, gateway: IPv4Address(10, 20, 0, 1))

@Suite(.enabled(if: isRoot, needsRoot), .serialized)
struct OverlayRootTests {
    /// Two nodes, one endpoint each: ping both ways and a TCP transfer across the overlay.
    @Test func pingAndTCPAcrossTwoNodes() throws {
        try withOverlayLab(nodes: 2) { overlay in
            let (n1, n2) = (overlay.lab.nodes[0], overlay.lab.nodes[1])
            let e1 = try overlay.lab.addNamespace(on: n1, suffix: "web1")
            let e2 = try overlay.lab.addNamespace(on: n2, suffix: "web2")
            let a1 = IPv4Address(10, 20, 0, 2), a2 = IPv4Address(10, 20, 0, 3)
            try overlay.engine(on: n1).apply(Topology(
                networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a1, namespace: e1.name)],
                remoteEndpoints: [RemoteEndpoint(network: "blue", address: a2, vtep: n2.underlayAddress)]))
            try overlay.engine(on: n2).apply(Topology(
                networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a2, namespace: e2.name)],
                remoteEndpoints: [RemoteEndpoint(network: "blue", address: a1, vtep: n1.underlayAddress)]))

            let there = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(a2)"], in: e1)
            #expect(there.status == 0, "\(there.output)")
            let back = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(a1)"], in: e2)
            #expect(back.status == 0, "\(back.output)")

            let server = try NamespacedProcess(["iperf3", "-s", "-1", "-B", "\(a2)"], in: e2)
            Thread.sleep(forTimeInterval: 0.3)
            let client = try overlay.run(["iperf3", "-c", "\(a2)", "-t", "2", "-J"], in: e1, timeout: 30)
            _ = server.wait(timeoutSeconds: 5)
            #expect(client.status == 0, "\(client.output.prefix(2000))")
            let received = try iperfBytesReceived(client.output)
            #expect(received > 1_000_000, "iperf3 moved \(received) bytes")

            let statistics = try #require(overlay.engine(on: n1).statistics().network("blue"))
            #expect(statistics.datagramsSent > 0 && statistics.datagramsReceived > 0)
            #expect(statistics.arpAnswered >= 1)
            #expect(statistics.drops["unknown_destination", default: 0] == 0)
        }
    }
}

/// The receiver's byte count from `iperf3 -J` output.
func iperfBytesReceived(_ json: String) throws -> Int {
    let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
    let end = object?["end"] as? [String: Any]
    let sum = end?["sum_received"] as? [String: Any]
    return (sum?["bytes"] as? NSNumber)?.intValue ?? 0
}
