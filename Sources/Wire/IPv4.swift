/// An IP protocol number (IANA).
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let icmp = IPProtocol(rawValue: 1)
    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
}

/// A view of an IPv4 packet (RFC 791), options included.
///
/// Validation checks version 4, a header length of 20–60 bytes inside the buffer, and a total
/// length that covers the header and fits the buffer (bytes past it, such as Ethernet padding,
/// are not part of ``payload``). Fragments are accepted and flagged (``isFragment``): a
/// fragment's payload is not a whole transport header, and callers must not parse it as one.
public struct IPv4Packet {
    public static let minimumHeaderLength = 20

    /// The buffer the packet starts at; may extend past ``totalLength``.
    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.minimumHeaderLength, .ipv4)
        guard bytes[0] >> 4 == 4 else { throw .invalid(.ipv4, .version) }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .invalid(.ipv4, .headerLength) }
        try bytes.require(headerLength, .ipv4)
        let totalLength = Int(bytes.loadBigEndian16(at: 2))
        guard totalLength >= headerLength else { throw .invalid(.ipv4, .totalLength) }
        try bytes.require(totalLength, .ipv4)
        self.bytes = bytes
    }

    /// Writes a 20-byte header (no options) with a correct checksum at the start of `buffer`.
    /// `totalLength` counts header and payload; the buffer must hold all of it.
    @inlinable
    public static func build(
        in buffer: UnsafeMutableRawBufferPointer, totalLength: Int, protocol number: IPProtocol,
        source: IPv4Address, destination: IPv4Address, timeToLive: UInt8 = 64,
        identification: UInt16 = 0, dontFragment: Bool = true, typeOfService: UInt8 = 0
    ) throws(WireError) -> IPv4Packet {
        guard totalLength >= minimumHeaderLength, totalLength <= Int(UInt16.max) else {
            throw .invalid(.ipv4, .totalLength)
        }
        try buffer.require(totalLength, .ipv4)
        buffer[0] = 0x45
        buffer[1] = typeOfService
        buffer.storeBigEndian16(UInt16(totalLength), at: 2)
        buffer.storeBigEndian16(identification, at: 4)
        buffer.storeBigEndian16(dontFragment ? 0x4000 : 0, at: 6)
        buffer[8] = timeToLive
        buffer[9] = number.rawValue
        buffer.storeBigEndian16(0, at: 10)
        buffer.storeIPv4(source, at: 12)
        buffer.storeIPv4(destination, at: 16)
        let packet = try IPv4Packet(validating: buffer)
        packet.updateHeaderChecksum()
        return packet
    }

    /// Header length in bytes (20–60).
    @inlinable public var headerLength: Int { Int(bytes[0] & 0x0F) * 4 }
    @inlinable public var typeOfService: UInt8 { bytes[1] }
    /// Header plus payload, from the header field.
    @inlinable public var totalLength: Int {
        get { Int(bytes.loadBigEndian16(at: 2)) }
    }
    @inlinable public var identification: UInt16 {
        get { bytes.loadBigEndian16(at: 4) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 4) }
    }
    @inlinable public var dontFragment: Bool { bytes[6] & 0x40 != 0 }
    @inlinable public var moreFragments: Bool { bytes[6] & 0x20 != 0 }
    /// Offset of this fragment's data in the original datagram, in bytes.
    @inlinable public var fragmentOffset: Int { Int(bytes.loadBigEndian16(at: 6) & 0x1FFF) * 8 }
    /// True for any fragment, first or later: the payload is not a whole datagram.
    @inlinable public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
    @inlinable public var timeToLive: UInt8 {
        get { bytes[8] }
        nonmutating set { bytes[8] = newValue }
    }
    @inlinable public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes[9]) }
    @inlinable public var headerChecksum: UInt16 {
        get { bytes.loadBigEndian16(at: 10) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 10) }
    }
    /// Setting an address does not touch the checksum; see ``InternetChecksum/update(_:replacing:with:)-(_,UInt32,_)``.
    @inlinable public var source: IPv4Address {
        get { bytes.loadIPv4(at: 12) }
        nonmutating set { bytes.storeIPv4(newValue, at: 12) }
    }
    @inlinable public var destination: IPv4Address {
        get { bytes.loadIPv4(at: 16) }
        nonmutating set { bytes.storeIPv4(newValue, at: 16) }
    }
    /// Option bytes between the fixed header and the payload (possibly empty).
    @inlinable public var options: UnsafeMutableRawBufferPointer { bytes.slice(Self.minimumHeaderLength, headerLength) }
    /// The bytes after the header, up to ``totalLength``.
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(headerLength, totalLength) }

    /// True when the header checksum is correct.
    @inlinable public var isHeaderChecksumValid: Bool {
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(bytes.slice(0, headerLength)))
        return sum.verifies
    }

    /// Recomputes the header checksum from scratch.
    @inlinable public func updateHeaderChecksum() {
        headerChecksum = 0
        headerChecksum = InternetChecksum.of(UnsafeRawBufferPointer(bytes.slice(0, headerLength)))
    }

    /// The pseudo-header sum for this packet's transport payload.
    @inlinable public var pseudoHeaderChecksum: InternetChecksum {
        .pseudoHeader(source: source, destination: destination, protocol: self.protocol, length: payload.count)
    }
}
