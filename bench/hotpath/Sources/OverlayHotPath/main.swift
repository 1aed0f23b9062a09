// Usage: OverlayHotPath switch N | vip N | engine N | control N | dns-replace N
//
//   switch N  runs N rounds of three switch decisions (encapsulate from a port, deliver from
//             the wire, answer an ARP request) on copies of template frames;
//   engine N  brings up a 2-node lab with an OverlayEngine per node and sends N UDP datagrams
//             from an endpoint on n1 to one on n2 (TAP → switch → VXLAN → switch → TAP),
//             reading each one back;
//   vip N     runs N rounds of three balanced decisions (a new flow's SYN to a VIP, the
//             backend's answer from the wire rewritten back, a data segment of the flow) with
//             a ConnectionTracker behind the switch;
//   control N the switch loop plus one deliberate heap allocation per round, so that the
//             counting script can show it would notice one;
//   dns-replace N  replaces a ServiceDNS record snapshot (100 services, 1,000 tasks) N times
//             and prints the rate (the agent applies one per cluster change).
//
// Everything before the measured loop is identical for every N, so the difference between two
// runs under callgrind is what the extra frames cost.
import Foundation
import Glibc
import HostNet
import IngressLB
import Lab
import Overlay
import ServiceDNS
import Wire

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[2]), count > 0 else {
    FileHandle.standardError.write(Data("usage: OverlayHotPath switch|engine N\n".utf8))
    exit(64)
}

let blue = OverlayNetwork(name: "blue", vni: VNI(4097)!, subnet: IPv4Prefix("10.20.0.0/24")!, gateway: IPv4Address(10, 20, 0, 1))
let near = IPv4Address(10, 20, 0, 2), far = IPv4Address(10, 20, 0, 3)

/// Builds a frame of `length` bytes with `build` and returns it.
func frame(_ length: Int, _ build: (UnsafeMutableRawBufferPointer) throws -> Void) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: length)
    bytes.withUnsafeMutableBytes { try! build($0) }
    return bytes
}

/// A fresh heap buffer, kept out of line so the optimizer cannot remove the allocation.
@inline(never)
func allocateOnPurpose(_ round: Int) -> [UInt8] { [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 64) }

func runSwitch(_ rounds: Int, allocating: Bool = false) -> Int {
    let vtep = IPv4Address(192, 0, 2, 12)
    let topology = Topology(
        networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: near, namespace: "x")],
        remoteEndpoints: [RemoteEndpoint(network: "blue", address: far, vtep: vtep)])
    let tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464)
    let ping = frame(98) { buffer in
        let ethernet = try EthernetFrame.build(in: buffer, destination: .derived(from: far), source: .derived(from: near), etherType: .ipv4)
        let ip = try IPv4Packet.build(in: ethernet.payload, totalLength: 84, protocol: .icmp, source: near, destination: far)
        _ = try ICMPMessage.buildEcho(in: ip.payload, type: .echoRequest, identifier: 1, sequenceNumber: 1, payloadLength: 56)
    }
    var reply = [UInt8](repeating: 0, count: 8) + ping
    reply.withUnsafeMutableBytes { buffer in
        _ = try! VXLANPacket.build(in: buffer, vni: blue.vni)
        let ethernet = try! EthernetFrame(validating: buffer.slice(8, buffer.count))
        ethernet.destination = .derived(from: near)
        ethernet.source = .derived(from: far)
        let ip = try! IPv4Packet(validating: ethernet.payload)
        ip.source = far
        ip.destination = near
    }
    let arp = frame(42) { buffer in
        let ethernet = try EthernetFrame.build(in: buffer, destination: .broadcast, source: .derived(from: near), etherType: .arp)
        _ = try ARPPacket.build(in: ethernet.payload, operation: .request, senderMAC: .derived(from: near), senderIP: near,
                                targetMAC: .zero, targetIP: far)
    }
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
    defer { scratch.deallocate() }
    var handled = 0
    let sw = tables.view
    for _ in 0..<rounds {
        ping.withUnsafeBytes { scratch.copyMemory(from: $0) }
        if case .encapsulate = sw.fromPort(0, frame: scratch.slice(0, ping.count)) { handled += 1 }
        reply.withUnsafeBytes { scratch.copyMemory(from: $0) }
        var network = -1
        if case .deliver = sw.fromWire(vtep: vtep, datagram: scratch.slice(0, reply.count), networkIndex: &network) { handled += 1 }
        arp.withUnsafeBytes { scratch.copyMemory(from: $0) }
        if case .replyToPort = sw.fromPort(0, frame: scratch.slice(0, arp.count)) { handled += 1 }
        if allocating { handled += allocateOnPurpose(handled).count > 64 ? 1 : 0 }
    }
    withExtendedLifetime(tables) {}
    return handled
}

/// A UDP socket created inside `namespace`, bound to `address:port`, with a receive timeout.
func udpSocket(in namespace: NetworkNamespace, bind address: IPv4Address, port: UInt16) throws -> Int32 {
    try namespace.run {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        precondition(descriptor >= 0)
        let bound = IPv4SocketAddress(address, port: port).withSockaddr { bind(descriptor, $0, $1) }
        precondition(bound == 0, "bind \(address):\(port): errno \(errno)")
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return descriptor
    }
}

func runEngines(_ datagrams: Int) throws -> Int {
    let lab = try Lab.up(nodes: 2)
    defer { try? lab.down() }
    let (n1, n2) = (lab.nodes[0], lab.nodes[1])
    let e1 = try lab.addNamespace(on: n1, suffix: "ep"), e2 = try lab.addNamespace(on: n2, suffix: "ep")
    let engine1 = try OverlayEngine(configuration: .init(underlayAddress: n1.underlayAddress, namespace: n1.namespace))
    let engine2 = try OverlayEngine(configuration: .init(underlayAddress: n2.underlayAddress, namespace: n2.namespace))
    defer {
        engine1.stop()
        engine2.stop()
    }
    try engine1.apply(Topology(networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: near, namespace: e1.name)],
                               remoteEndpoints: [RemoteEndpoint(network: "blue", address: far, vtep: n2.underlayAddress)]))
    try engine2.apply(Topology(networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: far, namespace: e2.name)],
                               remoteEndpoints: [RemoteEndpoint(network: "blue", address: near, vtep: n1.underlayAddress)]))
    engine1.start()
    engine2.start()
    let sender = try udpSocket(in: e1, bind: near, port: 5001)
    let receiver = try udpSocket(in: e2, bind: far, port: 5000)
    defer {
        close(sender)
        close(receiver)
    }
    let target = IPv4SocketAddress(far, port: 5000)
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
    defer { payload.deallocate() }
    payload.initializeMemory(as: UInt8.self, repeating: 0x5A)
    // One exchange first, so that ARP is resolved before the measured loop.
    var received = 0
    for round in 0..<(datagrams + 1) {
        let sent = target.withSockaddr { sendto(sender, payload.baseAddress, 1000, 0, $0, $1) }
        precondition(sent == 1000, "sendto: errno \(errno)")
        if recv(receiver, payload.baseAddress, payload.count, 0) == 1000, round > 0 { received += 1 }
    }
    return received
}

func dnsRecords() -> DNSRecords {
    var services: [ServiceRecord] = []
    for service in 0..<100 {
        var tasks: [TaskRecord] = []
        for task in 0..<10 {
            tasks.append(TaskRecord(slot: task + 1, id: "t\(service)x\(task)", address: IPv4Address(10, 2, UInt8(service), UInt8(task + 2))))
        }
        let mode: EndpointMode = service % 2 == 0 ? .vip : .dnsrr
        services.append(ServiceRecord(name: "svc\(service)", mode: mode, vip: IPv4Address(10, 1, UInt8(service), 1), tasks: tasks))
    }
    return DNSRecords(networks: ["front": services], sandboxes: ["t1": ["front"]])
}

func dnsReplaceRate(_ count: Int) throws -> String {
    let records = dnsRecords()
    // Variant k moves one task of service k: consecutive snapshots differ in two services, as
    // when a task of one service is rescheduled after another's.
    let variants = (0..<100).map { service in
        var changed = records
        changed.networks["front"]![service].tasks[0].address = IPv4Address(10, 3, UInt8(service), 2)
        return changed
    }
    let store = try RecordStore(records)
    let start = ContinuousClock.now
    for round in 0..<count { try store.replace(with: variants[round % variants.count]) }
    let seconds = Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000
    let rate = Int(Double(count) / seconds)
    return "dns-replace: \(count) snapshots of 100 services / 1,000 tasks, 2 services changed each, in \(seconds) s = \(rate) per second"
}

/// A TCP frame from `source`:`sourcePort` to `destination`:80 (or the reverse with `reply`).
func tcpFrame(from source: IPv4Address, _ sourcePort: UInt16, to destination: IPv4Address, _ destinationPort: UInt16, flags: UInt8) -> [UInt8] {
    frame(14 + 40 + 64) { buffer in
        let ethernet = try EthernetFrame.build(in: buffer, destination: .derived(from: destination), source: .derived(from: source), etherType: .ipv4)
        let ip = try IPv4Packet.build(in: ethernet.payload, totalLength: 40 + 64, protocol: .tcp, source: source, destination: destination)
        let transport = ip.payload
        transport.storeBigEndian16(sourcePort, at: 0)
        transport.storeBigEndian16(destinationPort, at: 2)
        transport[12] = 5 << 4
        transport[13] = flags
        try TCPSegment(validating: transport).updateChecksum(source: source, destination: destination)
    }
}

/// N rounds of three balanced decisions: a new flow's SYN to the VIP (picks a backend,
/// rewrites, encapsulates), the backend's answer from the wire (rewritten back to the VIP), and
/// a data segment of the round's flow (found in the table).
func runBalancedSwitch(_ rounds: Int) -> Int {
    let vtep = IPv4Address(192, 0, 2, 12), vip = IPv4Address(10, 20, 0, 9)
    let topology = Topology(
        networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: near, namespace: "x")],
        remoteEndpoints: [RemoteEndpoint(network: "blue", address: far, vtep: vtep)],
        services: [VirtualService(network: "blue", address: vip, backends: [far])])
    let tracker = ConnectionTracker()
    let tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
    let syn = tcpFrame(from: near, 0, to: vip, 80, flags: 0x02)
    let data = tcpFrame(from: near, 0, to: vip, 80, flags: 0x18)
    let answer = [0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0] + tcpFrame(from: far, 80, to: near, 0, flags: 0x12)
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
    defer { scratch.deallocate() }
    var handled = 0
    let sw = tables.view
    let ports = 14 + 20
    for round in 0..<rounds {
        let port = UInt16(truncatingIfNeeded: 1024 + round)
        syn.withUnsafeBytes { scratch.copyMemory(from: $0) }
        scratch.storeBytes(of: port.bigEndian, toByteOffset: ports, as: UInt16.self)
        if case .encapsulate = sw.fromPort(0, frame: scratch.slice(0, syn.count), now: 1) { handled += 1 }
        answer.withUnsafeBytes { scratch.copyMemory(from: $0) }
        scratch.storeBytes(of: port.bigEndian, toByteOffset: 8 + ports + 2, as: UInt16.self)
        var network = -1
        if case .deliver = sw.fromWire(vtep: vtep, datagram: scratch.slice(0, answer.count), networkIndex: &network, now: 1),
            scratch.load(fromByteOffset: 8 + 14 + 12, as: UInt32.self) == vip.rawValue.bigEndian
        { handled += 1 }
        data.withUnsafeBytes { scratch.copyMemory(from: $0) }
        scratch.storeBytes(of: port.bigEndian, toByteOffset: ports, as: UInt16.self)
        if case .encapsulate = sw.fromPort(0, frame: scratch.slice(0, data.count), now: 1) { handled += 1 }
    }
    return handled
}

switch arguments[1] {
case "switch":
    print("switch: \(runSwitch(count)) of \(3 * count) decisions as expected")
case "vip":
    print("vip: \(runBalancedSwitch(count)) of \(3 * count) decisions as expected")
case "control":
    print("control: \(runSwitch(count, allocating: true)) of \(3 * count) decisions as expected, one allocation per round")
case "dns-replace":
    print(try dnsReplaceRate(count))
case "engine":
    print("engine: \(try runEngines(count)) of \(count) datagrams crossed the overlay")
default:
    FileHandle.standardError.write(Data("unknown mode \(arguments[1])\n".utf8))
    exit(64)
}
