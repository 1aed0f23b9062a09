// Big-endian field access at fixed offsets. The views call these only after validating that the
// offsets are inside the buffer, so the unchecked loads never read out of bounds; code outside
// Wire (offloads that rewrite headers in bulk) must do the same.

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    public func loadBigEndian16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func loadBigEndian32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func storeBigEndian16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    public func storeBigEndian32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// The bytes from `start` to `end`, as a buffer of their own (indices from 0).
    @inlinable @inline(__always)
    public func slice(_ start: Int, _ end: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[start..<end])
    }

    /// Fails with `.truncated` unless the buffer holds at least `needed` bytes.
    @inlinable @inline(__always)
    public func require(_ needed: Int, _ layer: WireLayer) throws(WireError) {
        if count < needed { throw .truncated(layer, needed: needed, available: count) }
    }
}
