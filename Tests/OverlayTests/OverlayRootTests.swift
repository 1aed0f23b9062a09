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

    /// Starts an engine on `node` (underlay socket inside the node's namespace), or returns the
    /// one started before.
    func engine(
        on node: Lab.Node, port: UInt16 = VXLANPacket.port, sendOffload: Bool = true,
        threads: Int = OverlayEngine.Configuration.defaultThreads
    ) throws -> OverlayEngine {
        if let engine = engines[node.name] { return engine }
        let engine = try OverlayEngine(
            configuration: .init(
                underlayAddress: node.underlayAddress, port: port, namespace: node.namespace, sendOffload: sendOffload,
                threads: threads))
        engine.start()
        engines[node.name] = engine
        return engine
    }

    /// A one-shot iperf3 TCP transfer from `client` to the server at `address` in `server`, for
    /// `seconds`; records a failed run and returns the bytes the server received.
    func iperf(from client: NetworkNamespace, to server: NetworkNamespace, at address: IPv4Address, seconds: Int) throws -> Int {
        let listener = try NamespacedProcess(["iperf3", "-s", "-1", "-B", "\(address)"], in: server)
        Thread.sleep(forTimeInterval: 0.3)
        let result = try run(["iperf3", "-c", "\(address)", "-t", "\(seconds)", "-J"], in: client, timeout: 30)
        _ = listener.wait(timeoutSeconds: 5)
        #expect(result.status == 0, "\(result.output.prefix(1500))")
        return try iperfBytesReceived(result.output)
    }

    /// Two endpoints on network `blue`, 10.20.0.2 in a namespace on node 0 and 10.20.0.3 in one
    /// on node 1, each engine told where the other lives.
    func endpointPair(suffix: String) throws -> (e1: NetworkNamespace, e2: NetworkNamespace, a1: IPv4Address, a2: IPv4Address) {
        let (n1, n2) = (lab.nodes[0], lab.nodes[1])
        let e1 = try lab.addNamespace(on: n1, suffix: "\(suffix)1")
        let e2 = try lab.addNamespace(on: n2, suffix: "\(suffix)2")
        let a1 = IPv4Address(10, 20, 0, 2), a2 = IPv4Address(10, 20, 0, 3)
        try engine(on: n1).apply(Topology(
            networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a1, namespace: e1.name)],
            remoteEndpoints: [RemoteEndpoint(network: "blue", address: a2, vtep: n2.underlayAddress)]))
        try engine(on: n2).apply(Topology(
            networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a2, namespace: e2.name)],
            remoteEndpoints: [RemoteEndpoint(network: "blue", address: a1, vtep: n1.underlayAddress)]))
        return (e1, e2, a1, a2)
    }

    /// Gives `node` the Linux kernel's own vxlan device `vx0` on network `blue` with `address`,
    /// and static FDB and neighbour entries for `peers` (overlay address, VTEP): the
    /// interoperability peer, which sends plain MTU-sized datagrams, never UDP GSO.
    func addKernelVXLAN(on node: Lab.Node, address: IPv4Address, peers: [(address: IPv4Address, vtep: IPv4Address)]) throws {
        let links = try RouteNetlink(in: node.namespace)
        try links.createVXLAN(named: "vx0", vni: blue.vni, local: node.underlayAddress)
        let vx0 = try links.linkIndex(named: "vx0")
        try links.setMAC(vx0, .derived(from: address))
        try links.setMTU(vx0, 1450)
        try links.addAddress(IPv4Prefix(address, length: 24), to: vx0)
        try links.setLinkUp(vx0)
        for peer in peers {
            try links.addForwardingEntry(mac: .derived(from: peer.address), remote: peer.vtep, device: vx0)
            try links.addNeighbour(peer.address, mac: .derived(from: peer.address), device: vx0)
        }
        // Over veth the kernel leaves inner checksums partial for the NIC to fill in; no NIC
        // is there to do it, so make the kernel peer finish them as real hardware would.
        let offload = try run(["ethtool", "-K", "vx0", "tx", "off"], in: node.namespace)
        try #require(offload.status == 0, "\(offload.output)")
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
            let n1 = overlay.lab.nodes[0]
            let (e1, e2, a1, a2) = try overlay.endpointPair(suffix: "web")

            let there = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(a2)"], in: e1)
            #expect(there.status == 0, "\(there.output)")
            let back = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(a1)"], in: e2)
            #expect(back.status == 0, "\(back.output)")

            let received = try overlay.iperf(from: e1, to: e2, at: a2, seconds: 2)
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

extension OverlayRootTests {
    /// A third node runs the Linux kernel's own vxlan device with static FDB and neighbour
    /// entries; ping and TCP work both ways between it and a Shoal endpoint, and tcpdump decodes
    /// Shoal's datagrams on the underlay as VXLAN with the right VNI.
    @Test func interoperatesWithTheKernelVXLANDevice() throws {
        try withOverlayLab(nodes: 2) { overlay in
            let (shoalNode, kernelNode) = (overlay.lab.nodes[0], overlay.lab.nodes[1])
            let endpoint = try overlay.lab.addNamespace(on: shoalNode, suffix: "ep")
            let shoalAddress = IPv4Address(10, 20, 0, 2), kernelAddress = IPv4Address(10, 20, 0, 9)
            try overlay.engine(on: shoalNode).apply(Topology(
                networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: shoalAddress, namespace: endpoint.name)],
                remoteEndpoints: [RemoteEndpoint(network: "blue", address: kernelAddress, vtep: kernelNode.underlayAddress)]))

            try overlay.addKernelVXLAN(on: kernelNode, address: kernelAddress, peers: [(shoalAddress, shoalNode.underlayAddress)])

            let underlay = try LiveCapture(interface: "eth0", in: shoalNode.namespace, filter: "udp dst port 4789 and src host \(shoalNode.underlayAddress)")
            let toKernel = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(kernelAddress)"], in: endpoint)
            #expect(toKernel.status == 0, "\(toKernel.output)")
            let fromKernel = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(shoalAddress)"], in: kernelNode.namespace)
            #expect(fromKernel.status == 0, "\(fromKernel.output)")

            let path = NSTemporaryDirectory() + "shoal-underlay-\(getpid()).pcap"
            defer { unlink(path) }
            let writer = try PcapWriter(path: path)
            for frame in try underlay.drain(idleMilliseconds: 300, limit: 100) { frame.withUnsafeBytes { writer.write($0) } }
            try writer.close()
            let decoded = try overlay.run(["tcpdump", "-nn", "-r", path], in: shoalNode.namespace).output
            #expect(decoded.contains("VXLAN, flags [I] (0x08), vni \(blue.vni)"), "\(decoded)")
            #expect(decoded.contains("\(shoalAddress) > \(kernelAddress): ICMP echo request"))

            for (server, serverAddress, client) in [(kernelNode.namespace, kernelAddress, endpoint), (endpoint, shoalAddress, kernelNode.namespace)] {
                #expect(try overlay.iperf(from: client, to: server, at: serverAddress, seconds: 1) > 1_000_000)
            }
        }
    }

    /// Two networks with the same subnet and the same addresses on the same nodes: each works,
    /// and a capture of one sees none of the other's traffic.
    @Test func networksWithOverlappingSubnetsAreIsolated() throws {
        let red = OverlayNetwork(name: "red", vni: VNI(100)!, subnet: IPv4Prefix("10.30.0.0/24")!, gateway: IPv4Address(10, 30, 0, 1))
        let green = OverlayNetwork(name: "green", vni: VNI(200)!, subnet: IPv4Prefix("10.30.0.0/24")!, gateway: IPv4Address(10, 30, 0, 1))
        let a1 = IPv4Address(10, 30, 0, 2), a2 = IPv4Address(10, 30, 0, 3)
        try withOverlayLab(nodes: 2) { overlay in
            var sandboxes: [String: NetworkNamespace] = [:]
            for (node, peer, local, remote) in [(overlay.lab.nodes[0], overlay.lab.nodes[1], a1, a2), (overlay.lab.nodes[1], overlay.lab.nodes[0], a2, a1)] {
                for network in [red, green] {
                    sandboxes["\(network.name)-\(node.name)"] = try overlay.lab.addNamespace(on: node, suffix: network.name)
                }
                try overlay.engine(on: node).apply(Topology(
                    networks: [red, green],
                    localEndpoints: [red, green].map {
                        LocalEndpoint(network: $0.name, address: local, namespace: sandboxes["\($0.name)-\(node.name)"]!.name)
                    },
                    remoteEndpoints: [red, green].map { RemoteEndpoint(network: $0.name, address: remote, vtep: peer.underlayAddress) }))
            }
            let engine = try overlay.engine(on: overlay.lab.nodes[1])
            let path = NSTemporaryDirectory() + "shoal-green-\(getpid()).pcap"
            defer { unlink(path) }
            let greenWriter = try PcapWriter(path: path)
            // Capture green on n2 while only red carries traffic.
            let capturing = Thread {
                _ = try? engine.capture(network: "green", into: greenWriter, count: 1000, seconds: 2)
            }
            capturing.start()
            let ping = try overlay.run(["ping", "-c", "5", "-i", "0.2", "-W", "2", "\(a2)"], in: sandboxes["red-n1"]!)
            #expect(ping.status == 0, "\(ping.output)")
            Thread.sleep(forTimeInterval: 2.2)
            try greenWriter.close()
            #expect(try PcapReader(path: path).readAll().count == 0, "green saw red's frames")
            let statistics = engine.statistics()
            #expect(statistics.network("red")!.framesToEndpoints >= 5)
            #expect(statistics.network("green")!.framesToEndpoints == 0)

            let greenPing = try overlay.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "\(a2)"], in: sandboxes["green-n1"]!)
            #expect(greenPing.status == 0, "\(greenPing.output)")
            #expect(engine.statistics().network("green")!.framesToEndpoints >= 2)
        }
    }

    /// Malformed VXLAN from a raw sender is counted per reason and forwarding carries on.
    @Test func malformedDatagramsAreCountedAndForwardingContinues() throws {
        try withOverlayLab(nodes: 3) { overlay in
            let (n1, n2, attacker) = (overlay.lab.nodes[0], overlay.lab.nodes[1], overlay.lab.nodes[2])
            let (e1, _, a1, a2) = try overlay.endpointPair(suffix: "e")
            let engine = try overlay.engine(on: n1)

            let vxlan: [UInt8] = [0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0]  // VNI 4097
            let innerHeader = MACAddress.derived(from: a1).bytes + MACAddress.derived(from: a2).bytes + [0x08, 0x00]
            let cases: [(DropReason, [UInt8], Lab.Node)] = [
                (.malformedVXLAN, [0x08, 0, 0], n2),
                (.badVXLANFlags, [0x0C, 0, 0, 0, 0x00, 0x10, 0x01, 0] + innerHeader, n2),
                (.unknownVNI, [0x08, 0, 0, 0, 0x00, 0x99, 0x99, 0] + innerHeader, n2),
                (.truncatedInner, vxlan + Array(innerHeader[0..<10]), n2),
                (.oversizeFrame, vxlan + innerHeader + [UInt8](repeating: 0x45, count: 8000), n2),
                (.unknownVTEP, vxlan + innerHeader + [UInt8](repeating: 0, count: 40), attacker),
            ]
            for (_, payload, sender) in cases {
                for _ in 0..<3 { try Probe.sendUDP(payload, to: n1.underlayAddress, port: VXLANPacket.port, from: sender.namespace) }
            }
            let ping = try overlay.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "\(a2)"], in: e1)
            #expect(ping.status == 0, "forwarding stopped after bad input: \(ping.output)")
            let statistics = engine.statistics()
            for (reason, _, _) in cases {
                #expect(statistics.drops(reason) == 3, "\(reason): \(statistics.drops(reason))")
            }
        }
    }
}

extension OverlayRootTests {
    /// Two endpoints on the same node: frames go TAP to TAP, TCP super-frames whole, with their
    /// virtio-net headers; ping and a TCP transfer work, and nothing touches the wire.
    @Test func endpointsOnOneNodeSwitchLocally() throws {
        try withOverlayLab(nodes: 1) { overlay in
            let node = overlay.lab.nodes[0]
            let a = try overlay.lab.addNamespace(on: node, suffix: "a"), b = try overlay.lab.addNamespace(on: node, suffix: "b")
            let addressA = IPv4Address(10, 20, 0, 2), addressB = IPv4Address(10, 20, 0, 3)
            let engine = try overlay.engine(on: node)
            try engine.apply(Topology(networks: [blue], localEndpoints: [
                LocalEndpoint(network: "blue", address: addressA, namespace: a.name),
                LocalEndpoint(network: "blue", address: addressB, namespace: b.name),
            ]))
            let ping = try overlay.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "\(addressB)"], in: a)
            #expect(ping.status == 0, "\(ping.output)")
            #expect(try overlay.iperf(from: a, to: b, at: addressB, seconds: 1) > 1_000_000)
            let statistics = try #require(engine.statistics().network("blue"))
            #expect(statistics.datagramsSent == 0 && statistics.datagramsReceived == 0)
            #expect(statistics.framesToEndpoints > 0 && statistics.totalDrops == 0, "\(statistics.drops)")
        }
    }
}
