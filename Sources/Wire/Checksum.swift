// The Internet checksum (RFC 1071) and its incremental update (RFC 1624). One implementation
// for IPv4, UDP, TCP and ICMP; the data plane leans on it for every rewritten header and every
// segmented super-packet, so the bulk loop sums 64 bits at a time.

/// A running one's-complement sum of 16-bit big-endian words.
///
/// Add bytes in chunks whose lengths are even, except for the last one. The sum is kept in
/// network-word order, so adding a field read with a big-endian load and adding the raw bytes
/// of that field give the same result.
public struct InternetChecksum: Sendable {
    @usableFromInline var sum: UInt64 = 0

    /// An empty sum.
    @inlinable public init() {}

    /// Adds one 16-bit word (host-order value of a big-endian field).
    @inlinable
    public mutating func add(_ word: UInt16) { sum &+= UInt64(word) }

    /// Adds a 32-bit value as two 16-bit words.
    @inlinable
    public mutating func add(_ word: UInt32) { sum &+= UInt64(word >> 16) &+ UInt64(word & 0xFFFF) }

    /// Adds an IPv4 address as two 16-bit words.
    @inlinable
    public mutating func add(_ address: IPv4Address) { add(address.rawValue) }

    /// Adds raw bytes. Every chunk but the last must have an even length.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        // Native-order sum: one's-complement addition commutes with byte swapping (RFC 1071
        // §2(B)), so summing native words and swapping the folded result is exact. Bulk: 64
        // bytes per step as sixteen 32-bit words widened into 64-bit lanes, which cannot carry
        // out before 2^32 steps, so the lanes run independently (SIMD, no carry chain; about
        // 4x the carry-checked 64-bit loop below, which finishes the tail).
        var offset = 0
        var wide = UInt64(Self.fold(Self.sumOf64ByteBlocks(bytes, end: &offset)))
        while offset + 8 <= count {
            let (result, overflow) = wide.addingReportingOverflow(
                bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            wide = result &+ (overflow ? 1 : 0)
            offset += 8
        }
        while offset + 2 <= count {
            let (result, overflow) = wide.addingReportingOverflow(
                UInt64(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            wide = result &+ (overflow ? 1 : 0)
            offset += 2
        }
        let native = Self.fold(wide)
        sum &+= UInt64(UInt16(bigEndian: native))
        if offset < count {
            sum &+= UInt64(bytes[offset]) << 8
        }
    }

    /// The native-order sum of the 32-bit words of `bytes`' whole 64-byte blocks, unfolded;
    /// `end` is set to where the blocks stop.
    @inlinable @inline(__always)
    static func sumOf64ByteBlocks(_ bytes: UnsafeRawBufferPointer, end: inout Int) -> UInt64 {
        var a0 = SIMD2<UInt64>(), a1 = SIMD2<UInt64>(), a2 = SIMD2<UInt64>(), a3 = SIMD2<UInt64>()
        var b0 = SIMD2<UInt64>(), b1 = SIMD2<UInt64>(), b2 = SIMD2<UInt64>(), b3 = SIMD2<UInt64>()
        var offset = 0
        while offset + 64 <= bytes.count {
            let words = bytes.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt32>.self)
            a0 &+= SIMD2<UInt64>(truncatingIfNeeded: words.lowHalf.lowHalf.lowHalf)
            a1 &+= SIMD2<UInt64>(truncatingIfNeeded: words.lowHalf.lowHalf.highHalf)
            a2 &+= SIMD2<UInt64>(truncatingIfNeeded: words.lowHalf.highHalf.lowHalf)
            a3 &+= SIMD2<UInt64>(truncatingIfNeeded: words.lowHalf.highHalf.highHalf)
            b0 &+= SIMD2<UInt64>(truncatingIfNeeded: words.highHalf.lowHalf.lowHalf)
            b1 &+= SIMD2<UInt64>(truncatingIfNeeded: words.highHalf.lowHalf.highHalf)
            b2 &+= SIMD2<UInt64>(truncatingIfNeeded: words.highHalf.highHalf.lowHalf)
            b3 &+= SIMD2<UInt64>(truncatingIfNeeded: words.highHalf.highHalf.highHalf)
            offset += 64
        }
        end = offset
        // Each lane is below 2^35 times the steps taken, so nothing wrapped for any buffer under
        // 2^32 bytes (a packet is at most 64 KiB). Adding the 32-bit halves of the last two lanes
        // is exact in one's-complement arithmetic: 2^32 ≡ 1 (mod 2^16 − 1).
        let lanes = ((a0 &+ a1) &+ (a2 &+ a3)) &+ ((b0 &+ b1) &+ (b2 &+ b3))
        let low = UInt64(UInt32(truncatingIfNeeded: lanes[0])) &+ UInt64(UInt32(truncatingIfNeeded: lanes[1]))
        let high = (lanes[0] >> 32) &+ (lanes[1] >> 32)
        return low &+ high
    }

    /// Adds raw bytes of a mutable buffer (see ``add(_:)-(UnsafeRawBufferPointer)``).
    @inlinable
    public mutating func add(_ bytes: UnsafeMutableRawBufferPointer) { add(UnsafeRawBufferPointer(bytes)) }

    /// The checksum to store in a header: the complement of the folded sum.
    @inlinable
    public var value: UInt16 { ~Self.fold(sum) }

    /// True when the bytes summed include their own correct checksum field.
    @inlinable
    public var verifies: Bool { Self.fold(sum) == 0xFFFF }

    /// The checksum of a buffer.
    @inlinable
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var checksum = InternetChecksum()
        checksum.add(bytes)
        return checksum.value
    }

    /// A sum started with the IPv4 pseudo-header of a UDP or TCP datagram (RFC 768, RFC 793).
    @inlinable
    public static func pseudoHeader(
        source: IPv4Address, destination: IPv4Address, protocol number: IPProtocol, length: Int
    ) -> InternetChecksum {
        var checksum = InternetChecksum()
        checksum.add(source)
        checksum.add(destination)
        checksum.add(UInt16(number.rawValue))
        checksum.add(UInt16(truncatingIfNeeded: length))
        return checksum
    }

    /// The checksum after one 16-bit field changed from `old` to `new`: RFC 1624 equation 3,
    /// HC' = ~(~HC + ~m + m'), which never produces the ambiguous -0 of equation 2.
    @inlinable
    public static func update(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        let sum = UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new)
        return ~fold(sum)
    }

    /// The checksum after a 32-bit field (an address) changed from `old` to `new`.
    @inlinable
    public static func update(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        var sum = UInt64(~checksum)
        sum &+= UInt64(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt64(~UInt16(truncatingIfNeeded: old))
        sum &+= UInt64(new >> 16) &+ UInt64(new & 0xFFFF)
        return ~fold(sum)
    }

    /// Folds a wide one's-complement sum into 16 bits with end-around carries.
    @inlinable @inline(__always)
    static func fold(_ value: UInt64) -> UInt16 {
        var sum = (value >> 32) &+ (value & 0xFFFF_FFFF)
        sum = (sum >> 32) &+ (sum & 0xFFFF_FFFF)
        sum = (sum >> 16) &+ (sum & 0xFFFF)
        sum = (sum >> 16) &+ (sum & 0xFFFF)
        sum = (sum >> 16) &+ (sum & 0xFFFF)
        return UInt16(truncatingIfNeeded: sum)
    }
}
