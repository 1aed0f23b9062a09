/// ARP operation codes (RFC 826).
public struct ARPOperation: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let request = ARPOperation(rawValue: 1)
    public static let reply = ARPOperation(rawValue: 2)
}

/// A view of an ARP packet for IPv4 over Ethernet (RFC 826), the only kind the overlay speaks.
/// Any other hardware or protocol type is rejected as invalid.
public struct ARPPacket {
    /// The fixed length of Ethernet/IPv4 ARP.
    public static let length = 28

    public let bytes: UnsafeMutableRawBufferPointer

    /// Validates length, hardware type 1, protocol 0x0800, address lengths 6 and 4.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.length, .arp)
        guard bytes.loadBigEndian16(at: 0) == 1 else { throw .invalid(.arp, .hardwareType) }
        guard bytes.loadBigEndian16(at: 2) == EtherType.ipv4.rawValue else { throw .invalid(.arp, .protocolType) }
        guard bytes[4] == 6, bytes[5] == 4 else { throw .invalid(.arp, .addressLength) }
        self.bytes = bytes
    }

    /// Writes a complete Ethernet/IPv4 ARP packet at the start of `buffer`.
    @inlinable
    public static func build(
        in buffer: UnsafeMutableRawBufferPointer, operation: ARPOperation,
        senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address
    ) throws(WireError) -> ARPPacket {
        try buffer.require(length, .arp)
        buffer.storeBigEndian16(1, at: 0)
        buffer.storeBigEndian16(EtherType.ipv4.rawValue, at: 2)
        buffer[4] = 6
        buffer[5] = 4
        buffer.storeBigEndian16(operation.rawValue, at: 6)
        buffer.storeMAC(senderMAC, at: 8)
        buffer.storeIPv4(senderIP, at: 14)
        buffer.storeMAC(targetMAC, at: 18)
        buffer.storeIPv4(targetIP, at: 24)
        return try ARPPacket(validating: buffer)
    }

    @inlinable public var operation: ARPOperation { ARPOperation(rawValue: bytes.loadBigEndian16(at: 6)) }
    @inlinable public var senderMAC: MACAddress { bytes.loadMAC(at: 8) }
    @inlinable public var senderIP: IPv4Address { bytes.loadIPv4(at: 14) }
    @inlinable public var targetMAC: MACAddress { bytes.loadMAC(at: 18) }
    @inlinable public var targetIP: IPv4Address { bytes.loadIPv4(at: 24) }
}
