/// ICMP message types the overlay looks at (RFC 792).
public struct ICMPType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let echoReply = ICMPType(rawValue: 0)
    public static let destinationUnreachable = ICMPType(rawValue: 3)
    public static let echoRequest = ICMPType(rawValue: 8)
    public static let timeExceeded = ICMPType(rawValue: 11)
}

/// A view of an ICMPv4 message: type, code, checksum, then a 4-byte rest-of-header that for
/// echo request and reply is the identifier and sequence number. Give it exactly the IP payload.
public struct ICMPMessage {
    public static let headerLength = 8

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.headerLength, .icmp)
        self.bytes = bytes
    }

    /// Writes an echo request or reply with `payloadLength` bytes of payload left as they are
    /// in the buffer, and a correct checksum over all of it.
    @inlinable
    public static func buildEcho(
        in buffer: UnsafeMutableRawBufferPointer, type: ICMPType, identifier: UInt16, sequenceNumber: UInt16,
        payloadLength: Int
    ) throws(WireError) -> ICMPMessage {
        try buffer.require(headerLength + payloadLength, .icmp)
        let message = try ICMPMessage(validating: buffer.slice(0, headerLength + payloadLength))
        buffer[0] = type.rawValue
        buffer[1] = 0
        message.identifier = identifier
        message.sequenceNumber = sequenceNumber
        message.updateChecksum()
        return message
    }

    @inlinable public var type: ICMPType { ICMPType(rawValue: bytes[0]) }
    @inlinable public var code: UInt8 { bytes[1] }
    @inlinable public var checksum: UInt16 {
        get { bytes.loadBigEndian16(at: 2) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 2) }
    }
    /// Echo identifier (meaningful for echo request and reply only).
    @inlinable public var identifier: UInt16 {
        get { bytes.loadBigEndian16(at: 4) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 4) }
    }
    /// Echo sequence number (meaningful for echo request and reply only).
    @inlinable public var sequenceNumber: UInt16 {
        get { bytes.loadBigEndian16(at: 6) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 6) }
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength, bytes.count) }

    @inlinable public var isChecksumValid: Bool {
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(bytes))
        return sum.verifies
    }

    @inlinable public func updateChecksum() {
        checksum = 0
        checksum = InternetChecksum.of(UnsafeRawBufferPointer(bytes))
    }
}
