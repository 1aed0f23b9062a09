/// The `virtio_net_hdr` a TAP opened with `IFF_VNET_HDR` puts before every frame (and expects
/// before every frame written): it carries checksum offload and segmentation (GSO) metadata.
/// Fields are little-endian, as the kernel uses them on little-endian hosts without
/// `TUNSETVNETBE` (virtio 1.0 is little-endian).
public struct VirtioNetHeader: Hashable, Sendable {
    /// The size of the header without `num_buffers`, the TAP default.
    public static let length = 10

    /// `flags` bits.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The checksum at `checksumStart + checksumOffset` is partial and must be completed.
        public static let needsChecksum = Flags(rawValue: 1)
        /// The checksum was already validated.
        public static let dataValid = Flags(rawValue: 2)
    }

    /// `gso_type` values.
    public struct GSOType: RawRepresentable, Hashable, Sendable {
        public let rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let none = GSOType(rawValue: 0)
        public static let tcpv4 = GSOType(rawValue: 1)
        public static let udp = GSOType(rawValue: 3)
        public static let tcpv6 = GSOType(rawValue: 4)
        public static let udpL4 = GSOType(rawValue: 5)
        /// OR-ed into a TCP type when the ECN CWR bit must be set on the first segment.
        public static let ecnBit: UInt8 = 0x80

        /// The type without the ECN bit.
        @inlinable public var base: GSOType { GSOType(rawValue: rawValue & ~Self.ecnBit) }
        /// True for the types this header may carry.
        @inlinable public var isKnown: Bool {
            switch base.rawValue {
            case 0, 1, 3, 4, 5: return true
            default: return false
            }
        }
    }

    public var flags: Flags
    public var gsoType: GSOType
    /// Length of the headers to repeat on every segment (Ethernet + IP + TCP/UDP).
    public var headerLength: UInt16
    /// Payload bytes per segment.
    public var gsoSize: UInt16
    /// Where checksumming starts (the transport header).
    public var checksumStart: UInt16
    /// Offset of the checksum field from `checksumStart`.
    public var checksumOffset: UInt16

    /// A header that asks for nothing: no offload, no segmentation.
    public static let none = VirtioNetHeader(
        flags: [], gsoType: .none, headerLength: 0, gsoSize: 0, checksumStart: 0, checksumOffset: 0)

    @inlinable
    public init(
        flags: Flags, gsoType: GSOType, headerLength: UInt16, gsoSize: UInt16, checksumStart: UInt16,
        checksumOffset: UInt16
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads the header at the start of `bytes` and checks it against the `frameLength` bytes
    /// that follow it: the GSO type must be known, and a partial checksum field must lie
    /// inside the frame.
    @inlinable
    public init(parsing bytes: UnsafeMutableRawBufferPointer, frameLength: Int) throws(WireError) {
        try bytes.require(Self.length, .virtioNet)
        flags = Flags(rawValue: bytes[0])
        gsoType = GSOType(rawValue: bytes[1])
        headerLength = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        guard gsoType.isKnown else { throw .invalid(.virtioNet, .gsoType) }
        if flags.contains(.needsChecksum) {
            guard Int(checksumStart) + Int(checksumOffset) + 2 <= frameLength else {
                throw .invalid(.virtioNet, .checksumOffsets)
            }
        }
        if gsoType.base != .none, gsoSize == 0 { throw .invalid(.virtioNet, .gsoType) }
    }

    /// Writes the header at the start of `bytes`.
    @inlinable
    public func write(to bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try bytes.require(Self.length, .virtioNet)
        bytes[0] = flags.rawValue
        bytes[1] = gsoType.rawValue
        bytes.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        bytes.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        bytes.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }
}
