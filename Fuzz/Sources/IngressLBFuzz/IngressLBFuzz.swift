// The VIP path — the switch's balancing, the connection tracker, the address rewrite — on
// arbitrary input. The input is a script of steps; each step either hands raw bytes to the
// switch (from a port or from the wire) or builds a TCP/UDP frame whose fields come from the
// input (addresses from a small set of clients, backends and VIPs, any ports, flags, lengths),
// so that flows open, answer, close, expire and overflow the small table.
// Findings: any crash, out-of-bounds access (AddressSanitizer) or failed precondition; and a
// broken invariant: a balanced frame whose checksums were right before its rewrite and are
// wrong after, a balanced frame not addressed to a backend of its VIP, more flows than the
// table's capacity, a reset to a client whose checksums are wrong.
import FuzzDriver
import IngressLB
import Overlay
import Wire

let front = OverlayNetwork(name: "front", vni: VNI(4097)!, subnet: IPv4Prefix("10.0.0.0/24")!, gateway: IPv4Address(10, 0, 0, 1))
let clients = [IPv4Address(10, 0, 0, 5), IPv4Address(10, 0, 0, 6)]
let backends = [IPv4Address(10, 0, 0, 11), IPv4Address(10, 0, 0, 12), IPv4Address(10, 0, 0, 13)]
let vips = [IPv4Address(10, 0, 0, 2), IPv4Address(10, 0, 0, 3)]
let vtep = IPv4Address(192, 0, 2, 22)
let topology = Topology(
    networks: [front],
    localEndpoints: clients.map { LocalEndpoint(network: "front", address: $0, namespace: "c\($0)") }
        + [LocalEndpoint(network: "front", address: backends[0], namespace: "b")],
    remoteEndpoints: backends.dropFirst().map { RemoteEndpoint(network: "front", address: $0, vtep: vtep) },
    services: [
        VirtualService(network: "front", address: vips[0], backends: backends),
        VirtualService(network: "front", address: vips[1], backends: [backends[2]]),
    ])
let capacity = 16
let tracker = ConnectionTracker(configuration: .init(capacity: capacity, establishedTimeout: 30, transitoryTimeout: 8, resetTimeout: 2, datagramTimeout: 5))
let tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
/// The same network after backends[1]'s node died: the flows balanced to it are reset.
let lost: ForwardingTables = {
    var topology = topology
    topology.remoteEndpoints.removeAll { $0.address == backends[1] }
    topology.services[0].backends.removeAll { $0 == backends[1] }
    return ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
}()
nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
nonisolated(unsafe) var now: UInt32 = 1

/// Reads input bytes one at a time (zero past the end).
struct Reader {
    let data: UnsafePointer<UInt8>
    let size: Int
    var position = 0
    var atEnd: Bool { position >= size }
    mutating func byte() -> UInt8 {
        defer { position += 1 }
        return position < size ? data[position] : 0
    }
    mutating func word() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
}

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = Reader(data: data, size: size)
    var steps = 0
    while !reader.atEnd, steps < 64 {
        steps += 1
        let selector = reader.byte()
        now &+= UInt32(selector >> 5)  // time moves 0–7 s per step
        if selector & 0x10 != 0 {
            raw(&reader, fromWire: selector & 1 != 0, port: Int(selector >> 1) % topology.localEndpoints.count)
        } else {
            built(&reader, selector)
        }
        precondition(tracker.statistics().flows <= capacity, "more flows than the table holds")
    }
    return 0
}

/// Up to 256 raw bytes through the switch as they are.
func raw(_ reader: inout Reader, fromWire: Bool, port: Int) {
    let length = min(Int(reader.byte()), reader.size - reader.position)
    guard length > 0 else { return }
    let bytes = scratch.slice(0, length)
    for index in 0..<length { bytes[index] = reader.byte() }
    if fromWire {
        var network = -1
        _ = tables.view.fromWire(vtep: vtep, datagram: bytes, networkIndex: &network, now: now)
    } else {
        _ = tables.view.fromPort(port, frame: bytes, now: now)
    }
}

/// A well-formed TCP or UDP frame with fuzzed fields: a client to a VIP (the balancing path)
/// or a backend to a client (the reverse path), with a valid checksum or a fuzzed one.
func built(_ reader: inout Reader, _ selector: UInt8) {
    let isTCP = selector & 1 == 0
    let reply = selector & 2 != 0
    let fields = reader.byte()
    let client = clients[Int(fields & 1)]
    let backend = backends[Int(fields >> 1) % backends.count]
    let vip = vips[Int(fields >> 3) & 1]
    let source = reply ? backend : client, destination = reply ? client : vip
    let sourcePort = reader.word(), destinationPort = reader.word()
    let flags = reader.byte()
    let payload = Int(reader.byte())
    let corrupt = selector & 4 != 0
    let transportLength = (isTCP ? 20 : 8) + payload
    let frame = scratch.slice(0, 14 + 20 + transportLength)
    guard let ethernet = try? EthernetFrame.build(
        in: frame, destination: .derived(from: destination), source: .derived(from: source), etherType: .ipv4),
        let ip = try? IPv4Packet.build(in: ethernet.payload, totalLength: 20 + transportLength, protocol: isTCP ? .tcp : .udp,
                                       source: source, destination: destination)
    else { return }
    let transport = ip.payload
    for index in 0..<transportLength { transport[index] = 0 }
    transport.storeBigEndian16(sourcePort, at: 0)
    transport.storeBigEndian16(destinationPort, at: 2)
    if isTCP {
        transport[12] = 5 << 4
        transport[13] = flags
        if let segment = try? TCPSegment(validating: transport) { segment.updateChecksum(source: source, destination: destination) }
    } else {
        transport.storeBigEndian16(UInt16(transportLength), at: 4)
        if flags & 1 == 0, let datagram = try? UDPDatagram(validating: transport) {
            datagram.updateChecksum(source: source, destination: destination)
        }
    }
    if corrupt { transport[transportLength - 1] ^= flags | 1 }
    let wasValid = checksumsAreValid(frame)
    let verdict: Verdict
    if reply, backend != backends[0] {
        // From a remote backend: through the wire, behind a VXLAN header.
        let datagram = scratch.slice(0, 8 + frame.count)
        datagram.baseAddress!.advanced(by: 8).moveInitializeMemory(as: UInt8.self, from: frame.baseAddress!.assumingMemoryBound(to: UInt8.self), count: frame.count)
        _ = try? VXLANPacket.build(in: datagram, vni: front.vni)
        var network = -1
        verdict = tables.view.fromWire(vtep: vtep, datagram: datagram, networkIndex: &network, now: now)
        if case .deliver = verdict { precondition(!wasValid || checksumsAreValid(datagram.slice(8, datagram.count)), "reverse broke a checksum") }
        return
    }
    let port = reply ? topology.localEndpoints.count - 1 : Int(fields & 1)
    verdict = (selector & 8 != 0 ? lost : tables).view.fromPort(port, frame: frame, now: now)
    switch verdict {
    case .resetToPort(let length):
        precondition(length == 54 && checksumsAreValid(frame.slice(0, length)), "a reset's checksums are wrong")
    case .deliver, .encapsulate:
        precondition(!wasValid || checksumsAreValid(frame), "a rewrite broke a checksum")
        if !reply, let packet = try? IPv4Packet(validating: EthernetFrame(validating: frame).payload) {
            let allowed = vip == vips[0] ? backends : [backends[2]]
            precondition(allowed.contains(packet.destination), "balanced to \(packet.destination), not a backend of \(vip)")
        }
    default:
        break
    }
}

/// Whether the IPv4 header checksum and the TCP/UDP checksum of the frame are right.
func checksumsAreValid(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
    guard let ethernet = try? EthernetFrame(validating: frame), let ip = try? IPv4Packet(validating: ethernet.payload),
        ip.isHeaderChecksumValid
    else { return false }
    if ip.protocol == .tcp, let segment = try? TCPSegment(validating: ip.payload) {
        return segment.isChecksumValid(source: ip.source, destination: ip.destination)
    }
    if let datagram = try? UDPDatagram(validating: ip.payload) {
        return datagram.checksum == 0 || datagram.isChecksumValid(source: ip.source, destination: ip.destination)
    }
    return false
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("IngressLBFuzz_main")
func ingressLBFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
