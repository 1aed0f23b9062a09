import Testing
import Wire

@testable import Overlay

/// The switch's decisions on crafted frames: two networks with the same subnet, two local
/// ports and remote endpoints behind two VTEPs.
@Suite struct SwitchTests {
    static let red = OverlayNetwork(name: "red", vni: VNI(100)!, subnet: IPv4Prefix("10.1.0.0/24")!, gateway: IPv4Address(10, 1, 0, 1))
    static let green = OverlayNetwork(name: "green", vni: VNI(200)!, subnet: IPv4Prefix("10.1.0.0/24")!, gateway: IPv4Address(10, 1, 0, 1))
    static let local1 = LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 2), namespace: "a")
    static let local2 = LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 3), namespace: "b")
    static let greenLocal = LocalEndpoint(network: "green", address: IPv4Address(10, 1, 0, 2), namespace: "c")
    static let vtepA = IPv4Address(192, 0, 2, 21), vtepB = IPv4Address(192, 0, 2, 22)
    static let remote = RemoteEndpoint(network: "red", address: IPv4Address(10, 1, 0, 9), vtep: vtepA)
    static let greenRemote = RemoteEndpoint(network: "green", address: IPv4Address(10, 1, 0, 9), vtep: vtepB)

    let tables: ForwardingTables
    var sw: Switch { tables.view }

    init() throws {
        let topology = Topology(
            networks: [Self.red, Self.green], localEndpoints: [Self.local1, Self.local2, Self.greenLocal],
            remoteEndpoints: [Self.remote, Self.greenRemote])
        try topology.validate()
        tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464)
    }

    // MARK: frames

    static func arp(_ operation: ARPOperation, from sender: IPv4Address, senderMAC: MACAddress? = nil, asking target: IPv4Address,
                    destination: MACAddress = .broadcast) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 42)
        bytes.withUnsafeMutableBytes { buffer in
            let mac = senderMAC ?? .derived(from: sender)
            let frame = try! EthernetFrame.build(in: buffer, destination: destination, source: mac, etherType: .arp)
            _ = try! ARPPacket.build(in: frame.payload, operation: operation, senderMAC: mac, senderIP: sender, targetMAC: .zero, targetIP: target)
        }
        return bytes
    }

    static func icmp(from source: IPv4Address, to destination: IPv4Address, sourceMAC: MACAddress? = nil,
                     destinationMAC: MACAddress? = nil, payload: Int = 56) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + 8 + payload)
        bytes.withUnsafeMutableBytes { buffer in
            let frame = try! EthernetFrame.build(
                in: buffer, destination: destinationMAC ?? .derived(from: destination), source: sourceMAC ?? .derived(from: source),
                etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: frame.payload, totalLength: 28 + payload, protocol: .icmp, source: source, destination: destination)
            _ = try! ICMPMessage.buildEcho(in: ip.payload, type: .echoRequest, identifier: 1, sequenceNumber: 1, payloadLength: payload)
        }
        return bytes
    }

    static func vxlan(_ vni: UInt32, _ inner: [UInt8], flags: UInt8 = 0x08) -> [UInt8] {
        [flags, 0, 0, 0, UInt8(vni >> 16), UInt8(truncatingIfNeeded: vni >> 8), UInt8(truncatingIfNeeded: vni), 0] + inner
    }

    func fromPort(_ port: Int, _ frame: [UInt8]) -> (Verdict, [UInt8]) {
        var copy = frame
        let verdict = copy.withUnsafeMutableBytes { sw.fromPort(port, frame: $0) }
        return (verdict, copy)
    }

    func fromWire(_ vtep: IPv4Address, _ datagram: [UInt8]) -> (Verdict, Int, [UInt8]) {
        var copy = datagram
        var network = -1
        let verdict = copy.withUnsafeMutableBytes { sw.fromWire(vtep: vtep, datagram: $0, networkIndex: &network) }
        return (verdict, network, copy)
    }

    // MARK: from a local port

    @Test func arpIsAnsweredForEveryAddressOfTheNetwork() throws {
        for target in [Self.remote.address, Self.local2.address, Self.red.gateway] {
            let (verdict, reply) = fromPort(0, Self.arp(.request, from: Self.local1.address, asking: target))
            #expect(verdict == .replyToPort)
            try withBuffer(reply) { buffer in
                let frame = try EthernetFrame(validating: buffer)
                #expect(frame.destination == .derived(from: Self.local1.address))
                #expect(frame.source == .derived(from: target))
                let arp = try ARPPacket(validating: frame.payload)
                #expect(arp.operation == .reply)
                #expect(arp.senderIP == target && arp.senderMAC == .derived(from: target))
                #expect(arp.targetIP == Self.local1.address && arp.targetMAC == .derived(from: Self.local1.address))
            }
        }
    }

    @Test func arpThatNeedsNoAnswerIsDropped() {
        #expect(fromPort(0, Self.arp(.request, from: Self.local1.address, asking: IPv4Address(10, 1, 0, 77))).0 == .drop(.arpUnknownTarget))
        #expect(fromPort(0, Self.arp(.request, from: Self.local1.address, asking: Self.local1.address)).0 == .drop(.arpNotRequest))
        #expect(fromPort(0, Self.arp(.reply, from: Self.local1.address, asking: Self.remote.address)).0 == .drop(.arpNotRequest))
        // Port 0 claiming port 1's address.
        let spoof = Self.arp(.request, from: Self.local2.address, senderMAC: .derived(from: Self.local1.address), asking: Self.remote.address)
        #expect(fromPort(0, spoof).0 == .drop(.spoofedSource))
        // The green port asks for a red-only address: networks do not see each other.
        #expect(fromPort(2, Self.arp(.request, from: Self.greenLocal.address, asking: Self.local2.address)).0 == .drop(.arpUnknownTarget))
    }

    @Test func ipv4IsSwitchedByDestination() {
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.remote.address)).0 == .encapsulate(vtep: Self.vtepA, vni: Self.red.vni))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.local2.address)).0 == .deliver(port: 1))
        #expect(fromPort(2, Self.icmp(from: Self.greenLocal.address, to: Self.greenRemote.address)).0 == .encapsulate(vtep: Self.vtepB, vni: Self.green.vni))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.red.gateway)).0 == .drop(.gatewayTraffic))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: IPv4Address(10, 1, 0, 50))).0 == .drop(.unknownDestination))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.remote.address, destinationMAC: MACAddress("52:54:00:00:00:01")!)).0 == .drop(.unknownDestination))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.local1.address)).0 == .drop(.unknownDestination))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.remote.address, destinationMAC: .broadcast)).0 == .drop(.broadcast))
    }

    @Test func badFramesFromPortsAreDropped() {
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.remote.address, sourceMAC: MACAddress("02:42:0a:01:00:63")!)).0 == .drop(.spoofedSource))
        #expect(fromPort(0, Self.icmp(from: IPv4Address(10, 1, 0, 99), to: Self.remote.address, sourceMAC: .derived(from: Self.local1.address))).0 == .drop(.spoofedSource))
        #expect(fromPort(0, Array(Self.icmp(from: Self.local1.address, to: Self.remote.address)[0..<13])).0 == .drop(.malformedFrame))
        #expect(fromPort(0, Array(Self.icmp(from: Self.local1.address, to: Self.remote.address)[0..<30])).0 == .drop(.malformedFrame))
        #expect(fromPort(0, Self.icmp(from: Self.local1.address, to: Self.remote.address, payload: 1500)).0 == .drop(.oversizeFrame))
        var ipv6 = Self.icmp(from: Self.local1.address, to: Self.remote.address)
        ipv6[12] = 0x86; ipv6[13] = 0xDD
        #expect(fromPort(0, ipv6).0 == .drop(.unsupportedEtherType))
    }

    // MARK: from the wire

    @Test func datagramsAreDeliveredOnlyWithinTheirVNI() {
        let toLocal1 = Self.icmp(from: Self.remote.address, to: Self.local1.address)
        let red = fromWire(Self.vtepA, Self.vxlan(100, toLocal1))
        #expect(red.0 == .deliver(port: 0) && red.1 == 0)
        // Same inner frame under green's VNI goes to the green endpoint with that address…
        let green = fromWire(Self.vtepB, Self.vxlan(200, toLocal1))
        #expect(green.0 == .deliver(port: 2) && green.1 == 1)
        // …and the red VTEP cannot inject into green, nor green's into red.
        #expect(fromWire(Self.vtepA, Self.vxlan(200, toLocal1)).0 == .drop(.unknownVTEP))
        #expect(fromWire(Self.vtepB, Self.vxlan(100, toLocal1)).0 == .drop(.unknownVTEP))
        // A remote endpoint's address is never delivered from the wire.
        #expect(fromWire(Self.vtepA, Self.vxlan(100, Self.icmp(from: Self.local1.address, to: Self.remote.address))).0 == .drop(.unknownDestination))
        #expect(fromWire(Self.vtepA, Self.vxlan(100, Self.icmp(from: Self.remote.address, to: Self.local1.address, destinationMAC: .broadcast))).0 == .drop(.broadcast))
    }

    @Test func malformedDatagramsAreDroppedByReason() {
        let inner = Self.icmp(from: Self.remote.address, to: Self.local1.address)
        #expect(fromWire(Self.vtepA, [0x08, 0, 0]).0 == .drop(.malformedVXLAN))
        let flags = fromWire(Self.vtepA, Self.vxlan(100, inner, flags: 0x0C))
        #expect(flags.0 == .drop(.badVXLANFlags) && flags.1 == -1)
        let unknown = fromWire(Self.vtepA, Self.vxlan(300, inner))
        #expect(unknown.0 == .drop(.unknownVNI) && unknown.1 == -1, "no network to count it under")
        let truncated = fromWire(Self.vtepA, Self.vxlan(100, Array(inner[0..<10])))
        #expect(truncated.0 == .drop(.truncatedInner) && truncated.1 == 0)
        #expect(fromWire(Self.vtepA, Self.vxlan(100, Self.icmp(from: Self.remote.address, to: Self.local1.address, payload: 1500))).0 == .drop(.oversizeFrame))
    }

    @Test func arpFromTheWireIsAnsweredForLocalEndpointsOnly() throws {
        let request = Self.vxlan(100, Self.arp(.request, from: Self.remote.address, asking: Self.local1.address))
        let (verdict, _, reply) = fromWire(Self.vtepA, request)
        #expect(verdict == .replyToWire)
        try withBuffer(Array(reply[8...])) { buffer in
            let frame = try EthernetFrame(validating: buffer)
            let arp = try ARPPacket(validating: frame.payload)
            #expect(arp.operation == .reply && arp.senderIP == Self.local1.address && arp.targetIP == Self.remote.address)
            #expect(frame.destination == .derived(from: Self.remote.address))
        }
        #expect(Array(reply[0..<8]) == Array(request[0..<8]), "the VXLAN header goes back unchanged")
        #expect(fromWire(Self.vtepA, Self.vxlan(100, Self.arp(.request, from: Self.remote.address, asking: Self.red.gateway))).0 == .drop(.arpUnknownTarget))
    }

    @Test func topologyValidation() {
        let bad: [(Topology, String)] = [
            (Topology(networks: [Self.red, Self.red]), "defined twice"),
            (Topology(networks: [Self.red, OverlayNetwork(name: "x", vni: VNI(100)!, subnet: IPv4Prefix("10.9.0.0/24")!, gateway: IPv4Address(10, 9, 0, 1))]), "VNI 100"),
            (Topology(networks: [OverlayNetwork(name: "x", vni: VNI(1)!, subnet: IPv4Prefix("10.9.0.5/24")!, gateway: IPv4Address(10, 9, 0, 1))]), "network address"),
            (Topology(networks: [OverlayNetwork(name: "x", vni: VNI(1)!, subnet: IPv4Prefix("10.9.0.0/24")!, gateway: IPv4Address(10, 8, 0, 1))]), "gateway"),
            (Topology(networks: [Self.red], localEndpoints: [LocalEndpoint(network: "blue", address: IPv4Address(10, 1, 0, 2), namespace: "a")]), "unknown network"),
            (Topology(networks: [Self.red], localEndpoints: [LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 1), namespace: "a")]), "free host"),
            (Topology(networks: [Self.red], localEndpoints: [Self.local1], remoteEndpoints: [RemoteEndpoint(network: "red", address: Self.local1.address, vtep: Self.vtepA)]), "used twice"),
            (Topology(networks: [Self.red], localEndpoints: [Self.local1, LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 5), namespace: "a")]), "interface eth0 is used twice"),
        ]
        for (topology, message) in bad {
            do {
                try topology.validate()
                Issue.record("accepted: \(message)")
            } catch {
                #expect(error.description.contains(message), "\(error.description)")
            }
        }
    }
}

func withBuffer<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try body($0) }
}

/// An overlay MTU whose frames cannot fit a send slot is refused with a clear error before
/// anything is bound, rather than overrunning a buffer later.
@Test func engineRefusesAnMTUItCannotCarry() throws {
    let configuration = OverlayEngine.Configuration(underlayAddress: IPv4Address(192, 0, 2, 11), mtu: 8950)
    #expect(throws: OverlayError.unsupportedMTU(8950, maximum: 2026)) { _ = try OverlayEngine(configuration: configuration) }
}
