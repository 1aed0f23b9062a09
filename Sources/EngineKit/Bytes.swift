// Big-endian integers and length-prefixed fields, written and read without ever reading past
// the end: the one encoding helper under Raft's message codec, WAL records and key-value
// snapshots, and Gossip's message codec.

/// Appends big-endian integers and length-prefixed fields to a byte array.
public struct ByteWriter {
    public var bytes: [UInt8] = []

    @inlinable public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    @inlinable public mutating func byte(_ value: UInt8) { bytes.append(value) }

    @inlinable public mutating func word32(_ value: UInt32) {
        bytes.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)])
    }

    @inlinable public mutating func word64(_ value: UInt64) {
        word32(UInt32(truncatingIfNeeded: value >> 32))
        word32(UInt32(truncatingIfNeeded: value))
    }

    /// A 32-bit length, then the bytes.
    @inlinable public mutating func field<Bytes: Collection<UInt8>>(_ field: Bytes) {
        word32(UInt32(field.count))
        bytes.append(contentsOf: field)
    }
}

/// Reads what ``ByteWriter`` wrote; every read returns nil instead of reading past the end.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var position: Int

    public init(_ bytes: [UInt8], from position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    public var atEnd: Bool { position == bytes.count }
    public var remaining: Int { bytes.count - position }

    public mutating func byte() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func word32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 { value = value << 8 | UInt32(bytes[position + offset]) }
        position += 4
        return value
    }

    public mutating func word64() -> UInt64? {
        guard let high = word32(), let low = word32() else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }

    /// A length-prefixed field of at most `limit` bytes.
    public mutating func field(limit: Int = Int.max) -> [UInt8]? {
        let start = position
        guard let count = word32().map(Int.init), count <= limit, remaining >= count else {
            position = start
            return nil
        }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }
}
