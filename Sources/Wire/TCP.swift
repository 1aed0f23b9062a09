/// TCP header flags (RFC 793, RFC 3168).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A view of a TCP segment (RFC 793): a 20–60 byte header, options, then payload to the end
/// of the buffer. Give it exactly the IP payload (``IPv4Packet/payload``).
public struct TCPSegment {
    public static let minimumHeaderLength = 20

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.minimumHeaderLength, .tcp)
        let headerLength = Int(bytes[12] >> 4) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .invalid(.tcp, .dataOffset) }
        try bytes.require(headerLength, .tcp)
        self.bytes = bytes
    }

    @inlinable public var sourcePort: UInt16 {
        get { bytes.loadBigEndian16(at: 0) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 0) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { bytes.loadBigEndian16(at: 2) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 2) }
    }
    @inlinable public var sequenceNumber: UInt32 {
        get { bytes.loadBigEndian32(at: 4) }
        nonmutating set { bytes.storeBigEndian32(newValue, at: 4) }
    }
    @inlinable public var acknowledgmentNumber: UInt32 {
        get { bytes.loadBigEndian32(at: 8) }
        nonmutating set { bytes.storeBigEndian32(newValue, at: 8) }
    }
    /// Header length in bytes, options included (data offset × 4).
    @inlinable public var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    /// Length of the options alone.
    @inlinable public var optionsLength: Int { headerLength - Self.minimumHeaderLength }
    @inlinable public var flags: TCPFlags {
        get { TCPFlags(rawValue: bytes[13]) }
        nonmutating set { bytes[13] = newValue.rawValue }
    }
    @inlinable public var window: UInt16 {
        get { bytes.loadBigEndian16(at: 14) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 14) }
    }
    @inlinable public var checksum: UInt16 {
        get { bytes.loadBigEndian16(at: 16) }
        nonmutating set { bytes.storeBigEndian16(newValue, at: 16) }
    }
    @inlinable public var urgentPointer: UInt16 { bytes.loadBigEndian16(at: 18) }
    @inlinable public var options: UnsafeMutableRawBufferPointer { bytes.slice(Self.minimumHeaderLength, headerLength) }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(headerLength, bytes.count) }

    /// True when the checksum is correct for these addresses.
    @inlinable
    public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, protocol: .tcp, length: bytes.count)
        sum.add(UnsafeRawBufferPointer(bytes))
        return sum.verifies
    }

    /// Computes and stores the checksum over the whole segment.
    @inlinable
    public func updateChecksum(source: IPv4Address, destination: IPv4Address) {
        checksum = 0
        var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, protocol: .tcp, length: bytes.count)
        sum.add(UnsafeRawBufferPointer(bytes))
        checksum = sum.value
    }
}
