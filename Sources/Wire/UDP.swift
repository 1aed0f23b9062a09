/// A view of a UDP datagram (RFC 768). Validation checks that the length field covers the
/// 8-byte header and fits the buffer; ``payload`` ends where the length field says.
public struct UDPDatagram {
    public static let headerLength = 8

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.headerLength, .udp)
        let length = Int(bytes.loadBigEndian16(at: 4))
        guard length >= Self.headerLength else { throw .invalid(.udp, .lengthField) }
        try bytes.require(length, .udp)
        self.bytes = bytes
    }

    /// Writes an 8-byte header with checksum 0 ("not computed", allowed for UDP over IPv4 and
    /// what VXLAN senders use); call ``updateChecksum(source:destination:)`` to fill it in.
    @inlinable
    public static func build(
        in buffer: UnsafeMutableRawBufferPointer, sourcePort: UInt16, destinationPort: UInt16,
        payloadLength: Int
    ) throws(WireError) -> UDPDatagram {
        let length = headerLength + payloadLength
        guard payloadLength >= 0, length <= Int(UInt16.max) else { throw .invalid(.udp, .lengthField) }
        try buffer.require(length, .udp)
        buffer.storeBigEndian16(sourcePort, at: 0)
        buffer.storeBigEndian16(destinationPort, at: 2)
        buffer.storeBigEndian16(UInt16(length), at: 4)
        buffer.storeBigEndian16(0, at: 6)
        return try UDPDatagram(validating: buffer)
    }

    @inlinable public var sourcePort: UInt16 {
        get { bytes.loadBigEndian16(at: 0) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 0) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { bytes.loadBigEndian16(at: 2) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 2) }
    }
    /// Header plus payload, from the header field.
    @inlinable public var length: Int { Int(bytes.loadBigEndian16(at: 4)) }
    @inlinable public var checksum: UInt16 {
        get { bytes.loadBigEndian16(at: 6) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 6) }
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength, length) }

    /// True when the checksum is absent (0) or correct for these addresses.
    @inlinable
    public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        if checksum == 0 { return true }
        var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, protocol: .udp, length: length)
        sum.add(UnsafeRawBufferPointer(bytes.slice(0, length)))
        return sum.verifies
    }

    /// Computes and stores the checksum; a computed 0 is sent as 0xFFFF (RFC 768).
    @inlinable
    public func updateChecksum(source: IPv4Address, destination: IPv4Address) {
        checksum = 0
        var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, protocol: .udp, length: length)
        sum.add(UnsafeRawBufferPointer(bytes.slice(0, length)))
        let value = sum.value
        checksum = value == 0 ? 0xFFFF : value
    }
}
