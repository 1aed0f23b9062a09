/// A 24-bit VXLAN Network Identifier.
public struct VNI: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public static let maximum: UInt32 = 0xFF_FFFF
    public let rawValue: UInt32

    /// Creates a VNI; nil when `rawValue` does not fit in 24 bits.
    @inlinable
    public init?(_ rawValue: UInt32) {
        guard rawValue <= Self.maximum else { return nil }
        self.rawValue = rawValue
    }

    @inlinable
    init(unchecked rawValue: UInt32) { self.rawValue = rawValue }

    public var description: String { String(rawValue) }
    public static func < (lhs: VNI, rhs: VNI) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: Decoder) throws {
        let value = try decoder.singleValueContainer().decode(UInt32.self)
        guard let vni = VNI(value) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "VNI out of range: \(value)"))
        }
        self = vni
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A view of a VXLAN packet (RFC 7348): an 8-byte header, then the inner Ethernet frame.
///
/// Validation is as strict as the Linux kernel's receive path: the first 32 bits must be
/// exactly the I flag (0x08) with all reserved bits zero; anything else is `.invalid(.flags)`.
/// The reserved low byte after the VNI is ignored, as RFC 7348 asks of receivers.
public struct VXLANPacket {
    public static let headerLength = 8
    /// The IANA port.
    public static let port: UInt16 = 4789
    /// Bytes VXLAN adds in front of an inner frame on an IPv4 underlay: outer IPv4 + UDP + VXLAN.
    public static let ipv4Overhead = 20 + 8 + 8

    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.headerLength, .vxlan)
        guard bytes.loadBigEndian32(at: 0) == 0x0800_0000 else { throw .invalid(.vxlan, .flags) }
        self.bytes = bytes
    }

    /// Writes the 8-byte header at the start of `buffer`; the inner frame follows it.
    @inlinable
    public static func build(in buffer: UnsafeMutableRawBufferPointer, vni: VNI) throws(WireError) -> VXLANPacket {
        try buffer.require(headerLength, .vxlan)
        buffer.storeBigEndian32(0x0800_0000, at: 0)
        buffer.storeBigEndian32(vni.rawValue << 8, at: 4)
        return try VXLANPacket(validating: buffer)
    }

    @inlinable public var vni: VNI { VNI(unchecked: bytes.loadBigEndian32(at: 4) >> 8) }
    /// The inner Ethernet frame (not yet validated).
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength, bytes.count) }
}
