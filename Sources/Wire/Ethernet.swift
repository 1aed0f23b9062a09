/// An EtherType value (IEEE 802.3).
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let ipv4 = EtherType(rawValue: 0x0800)
    public static let arp = EtherType(rawValue: 0x0806)
    public static let vlan = EtherType(rawValue: 0x8100)
    public static let ipv6 = EtherType(rawValue: 0x86DD)

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// A view of an Ethernet II frame: 14-byte header (no 802.1Q tag is interpreted; a tagged
/// frame reports ``EtherType/vlan``) followed by the payload.
///
/// The view does not own its bytes: the buffer must outlive it. Setters write through.
public struct EthernetFrame {
    /// Destination, source, EtherType.
    public static let headerLength = 14

    /// The whole frame, header first.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Validates that `bytes` holds at least an Ethernet header.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.headerLength, .ethernet)
        self.bytes = bytes
    }

    /// Writes a header at the start of `buffer` and returns a view of the whole buffer as a frame.
    @inlinable
    public static func build(
        in buffer: UnsafeMutableRawBufferPointer, destination: MACAddress, source: MACAddress,
        etherType: EtherType
    ) throws(WireError) -> EthernetFrame {
        let frame = try EthernetFrame(validating: buffer)
        frame.destination = destination
        frame.source = source
        frame.etherType = etherType
        return frame
    }

    @inlinable public var destination: MACAddress {
        get { bytes.loadMAC(at: 0) }
        nonmutating set { bytes.storeMAC(newValue, at: 0) }
    }

    @inlinable public var source: MACAddress {
        get { bytes.loadMAC(at: 6) }
        nonmutating set { bytes.storeMAC(newValue, at: 6) }
    }

    @inlinable public var etherType: EtherType {
        get { EtherType(rawValue: bytes.loadBigEndian16(at: 12)) }
        nonmutating set { bytes.storeBigEndian16(newValue.rawValue, at: 12) }
    }

    /// Everything after the header.
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength, bytes.count) }
}
