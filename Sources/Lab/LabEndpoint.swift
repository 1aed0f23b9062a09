import HostNet
import Wire

/// A TAP endpoint inside a lab node: the kernel side carries an overlay address, the file
/// descriptor side is where a data plane (or a test) reads and writes frames. Used by the demo
/// and tests before the Overlay owns endpoints.
public struct LabEndpoint {
    public let tap: TAPDevice
    public let address: IPv4Prefix
    /// `02:42:` + the address (DESIGN.md §1).
    public var mac: MACAddress { MACAddress.derived(from: address.address) }

    /// Creates TAP `name` in `node`'s namespace with `address`, a derived MAC, `mtu`, and up.
    public init(
        in node: Lab.Node, name: String = "tap0", address: IPv4Prefix, mtu: Int = 1450, virtioNetHeader: Bool = false
    ) throws {
        tap = try TAPDevice(named: name, in: node.namespace, virtioNetHeader: virtioNetHeader)
        self.address = address
        let links = try RouteNetlink(in: node.namespace)
        let index = try links.linkIndex(named: tap.name)
        try links.setMAC(index, MACAddress.derived(from: address.address))
        try links.setMTU(index, mtu)
        try links.addAddress(address, to: index)
        try links.setLinkUp(index)
    }

    /// Writes an ARP request for `target` into the TAP, as a host `sender` on the same wire
    /// would, and waits for the kernel's reply on the descriptor. Returns the MAC the kernel
    /// answered with, or nil when no reply came within `timeoutMilliseconds`. Other frames the
    /// kernel sends meanwhile (IPv6 router solicitations and the like) are skipped.
    public func resolve(_ target: IPv4Address, asking sender: IPv4Address, timeoutMilliseconds: Int32 = 2000) throws
        -> MACAddress?
    {
        let senderMAC = MACAddress.derived(from: sender)
        var frame = [UInt8](repeating: 0, count: EthernetFrame.headerLength + ARPPacket.length)
        try frame.withUnsafeMutableBytes { buffer in
            let ethernet = try EthernetFrame.build(
                in: buffer, destination: .broadcast, source: senderMAC, etherType: .arp)
            _ = try ARPPacket.build(
                in: ethernet.payload, operation: .request, senderMAC: senderMAC, senderIP: sender, targetMAC: .zero,
                targetIP: target)
            try tap.write(UnsafeRawBufferPointer(buffer))
        }
        var reply = [UInt8](repeating: 0, count: 2048)
        // Bounded: at most 64 frames read, each wait at most the timeout.
        for _ in 0..<64 {
            guard try tap.waitReadable(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
            let answer: MACAddress? = try reply.withUnsafeMutableBytes { buffer in
                let count = try tap.read(into: buffer)
                guard let ethernet = try? EthernetFrame(validating: buffer.slice(0, count)),
                    ethernet.etherType == .arp, ethernet.destination == senderMAC,
                    let arp = try? ARPPacket(validating: ethernet.payload),
                    arp.operation == .reply, arp.senderIP == target, arp.targetIP == sender
                else { return nil }
                return arp.senderMAC
            }
            if let answer { return answer }
        }
        return nil
    }
}
