/// A 48-bit Ethernet address, held in the low 48 bits of an integer so that comparing and
/// hashing it costs one machine word.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address as an integer: the first byte on the wire is bits 47–40.
    public let rawValue: UInt64

    /// The all-ones broadcast address.
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    /// The all-zero address, used as the unknown target of an ARP request.
    public static let zero = MACAddress(rawValue: 0)

    /// Creates an address from its integer form; bits above 48 must be zero.
    @inlinable
    public init(rawValue: UInt64) {
        precondition(rawValue >> 48 == 0, "MAC address wider than 48 bits")
        self.rawValue = rawValue
    }

    /// Creates an address from six bytes in wire order.
    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        let high = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
        self.rawValue = high | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        self.rawValue = value
    }

    /// The MAC an overlay endpoint uses: `02:42:` followed by the four bytes of its IPv4
    /// address, so that any node can compute it without learning (DESIGN.md §1).
    @inlinable
    public static func derived(from address: IPv4Address) -> MACAddress {
        MACAddress(rawValue: 0x0242_0000_0000 | UInt64(address.rawValue))
    }

    /// True for group (multicast and broadcast) addresses.
    @inlinable
    public var isMulticast: Bool { (rawValue >> 40) & 1 == 1 }

    /// The six bytes in wire order.
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * $0)) } }

    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    public static func < (lhs: MACAddress, rhs: MACAddress) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    func loadMAC(at offset: Int) -> MACAddress {
        let high = UInt64(loadBigEndian16(at: offset))
        let low = UInt64(loadBigEndian32(at: offset + 2))
        return MACAddress(rawValue: high << 32 | low)
    }

    @inlinable @inline(__always)
    func storeMAC(_ mac: MACAddress, at offset: Int) {
        storeBigEndian16(UInt16(truncatingIfNeeded: mac.rawValue >> 32), at: offset)
        storeBigEndian32(UInt32(truncatingIfNeeded: mac.rawValue), at: offset + 2)
    }
}
