// Feeds arbitrary bytes to every Wire parser the decapsulation path uses, the way the overlay
// will meet them: a frame from the underlay (Ethernet → IPv4 → UDP → VXLAN → inner Ethernet →
// ARP/IPv4 → ICMP/TCP/UDP), a bare VXLAN payload from a UDP socket, and a TAP read with a
// virtio-net header. Every accessor is touched so that a read past a validated length shows
// up under AddressSanitizer. A thrown WireError is the expected outcome for bad input.
import FuzzDriver
import Wire

/// One reusable buffer, so the harness itself allocates nothing per input.
nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0, size <= scratch.count - 1 else { return 0 }
    // Copy into an exactly-sized allocation so ASan sees any read past the end.
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { input.deallocate() }
    input.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    var sink: UInt64 = 0
    switch data[0] % 3 {
    case 0: sink &+= (try? decodeUnderlayFrame(input)) ?? 0
    case 1: sink &+= (try? decodeVXLAN(input)) ?? 0
    default: sink &+= (try? decodeTAPRead(input)) ?? 0
    }
    blackHole(sink)
    return 0
}

@inline(never)
func blackHole(_ value: UInt64) { _ = value }

func decodeUnderlayFrame(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> UInt64 {
    let frame = try EthernetFrame(validating: bytes)
    var sum = frame.destination.rawValue &+ frame.source.rawValue &+ UInt64(frame.etherType.rawValue)
    guard frame.etherType == .ipv4 else { return sum }
    let ip = try IPv4Packet(validating: frame.payload)
    sum &+= try touch(ip)
    guard ip.protocol == .udp, !ip.isFragment else { return sum }
    let udp = try UDPDatagram(validating: ip.payload)
    sum &+= UInt64(udp.sourcePort) &+ UInt64(udp.length)
    sum &+= udp.isChecksumValid(source: ip.source, destination: ip.destination) ? 1 : 0
    return sum &+ (try decodeVXLAN(udp.payload))
}

func decodeVXLAN(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> UInt64 {
    let vxlan = try VXLANPacket(validating: bytes)
    let inner = try EthernetFrame(validating: vxlan.payload)
    return UInt64(vxlan.vni.rawValue) &+ (try decodeInner(inner))
}

func decodeTAPRead(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> UInt64 {
    guard bytes.count >= VirtioNetHeader.length else { throw .truncated(.virtioNet, needed: 10, available: bytes.count) }
    let frameBytes = bytes.slice(VirtioNetHeader.length, bytes.count)
    let header = try VirtioNetHeader(parsing: bytes, frameLength: frameBytes.count)
    let frame = try EthernetFrame(validating: frameBytes)
    return UInt64(header.gsoSize) &+ (try decodeInner(frame))
}

func decodeInner(_ frame: EthernetFrame) throws(WireError) -> UInt64 {
    var sum = frame.destination.rawValue ^ frame.source.rawValue
    switch frame.etherType {
    case .arp:
        let arp = try ARPPacket(validating: frame.payload)
        sum &+= arp.senderMAC.rawValue &+ arp.targetMAC.rawValue &+ UInt64(arp.senderIP.rawValue)
        sum &+= UInt64(arp.targetIP.rawValue) &+ UInt64(arp.operation.rawValue)
    case .ipv4:
        let ip = try IPv4Packet(validating: frame.payload)
        sum &+= try touch(ip)
        guard !ip.isFragment else { return sum }
        switch ip.protocol {
        case .icmp:
            let icmp = try ICMPMessage(validating: ip.payload)
            sum &+= UInt64(icmp.type.rawValue) &+ UInt64(icmp.identifier) &+ (icmp.isChecksumValid ? 1 : 0)
        case .tcp:
            let tcp = try TCPSegment(validating: ip.payload)
            sum &+= UInt64(tcp.sequenceNumber) &+ UInt64(tcp.flags.rawValue) &+ UInt64(tcp.options.count)
            sum &+= UInt64(tcp.payload.count) &+ (tcp.isChecksumValid(source: ip.source, destination: ip.destination) ? 1 : 0)
        case .udp:
            let udp = try UDPDatagram(validating: ip.payload)
            sum &+= UInt64(udp.payload.count) &+ (udp.isChecksumValid(source: ip.source, destination: ip.destination) ? 1 : 0)
        default:
            break
        }
    default:
        break
    }
    return sum
}

func touch(_ ip: IPv4Packet) throws(WireError) -> UInt64 {
    var sum = UInt64(ip.source.rawValue) &+ UInt64(ip.destination.rawValue) &+ UInt64(ip.totalLength)
    sum &+= UInt64(ip.options.count) &+ UInt64(ip.fragmentOffset) &+ UInt64(ip.timeToLive)
    sum &+= ip.isHeaderChecksumValid ? 1 : 0
    return sum
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("WireFuzz_main")
func wireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
