/// A fixed map from 64-bit keys to 64-bit values, built once and then only read: open
/// addressing with linear probing over two plain arrays.
///
/// Why not `Dictionary`: the switch looks up every frame, and a `Dictionary` read can retain
/// and release its storage and hashes with SipHash; this map is a trivial value (two pointers
/// and a mask), so copying it into a local costs nothing and a lookup touches one cache line in
/// the common case. Its memory belongs to whoever built it and must be freed with
/// ``deallocate()`` once no reader can be using it.
struct FlatMap {
    private static let emptyKey = UInt64.max

    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<UInt64>
    private let mask: Int
    /// Number of entries.
    let count: Int

    /// Builds the map; `pairs` must not contain `UInt64.max` as a key or a key twice.
    init(_ pairs: [(key: UInt64, value: UInt64)]) {
        var capacity = 16
        while capacity < pairs.count * 2 { capacity <<= 1 }
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: Self.emptyKey, count: capacity)
        values = .allocate(capacity: capacity)
        values.initialize(repeating: 0, count: capacity)
        mask = capacity - 1
        count = pairs.count
        for (key, value) in pairs {
            precondition(key != Self.emptyKey, "FlatMap key collides with the empty marker")
            var slot = Self.hash(key) & mask
            while keys[slot] != Self.emptyKey {
                precondition(keys[slot] != key, "FlatMap built with a duplicate key")
                slot = (slot + 1) & mask
            }
            keys[slot] = key
            values[slot] = value
        }
    }

    @inline(__always)
    private static func hash(_ key: UInt64) -> Int {
        // Fibonacci hashing: the multiply spreads the low bits that differ between keys.
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32)
    }

    /// The value for `key`, or nil. At most `capacity` probes (the table is at most half full).
    @inline(__always)
    func value(for key: UInt64) -> UInt64? {
        var slot = Self.hash(key) & mask
        while true {
            let candidate = keys[slot]
            if candidate == key { return values[slot] }
            if candidate == Self.emptyKey { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// Frees the storage. The map must not be used afterwards.
    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }
}
