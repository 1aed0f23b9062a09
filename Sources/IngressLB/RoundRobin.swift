import Wire

/// The next backend of each VIP, in turn (swarm's IPVS uses round robin too). The position of
/// every VIP survives topology changes: it is kept here, by VIP, not in the switch's tables
/// that are rebuilt on each change.
///
/// Fixed memory: up to `slots / 2` VIPs get their own position; beyond that (a node that
/// balances to more VIPs than that at once) a VIP shares a position with another, which
/// keeps the spread even over many flows.
struct RoundRobin: ~Copyable, @unchecked Sendable {
    private static let slots = 4096
    private let keys: UnsafeMutablePointer<UInt64>
    private let positions: UnsafeMutablePointer<UInt32>
    private var used = 0

    init() {
        keys = .allocate(capacity: Self.slots)
        keys.initialize(repeating: .max, count: Self.slots)
        positions = .allocate(capacity: Self.slots)
        positions.initialize(repeating: 0, count: Self.slots)
    }

    deinit {
        keys.deallocate()
        positions.deallocate()
    }

    /// The next of `backends` for the VIP `service` (VNI << 32 | address). A client that is
    /// itself a backend is given another one when there is another: a task's kernel drops a
    /// packet that arrives from its own address as a martian.
    mutating func pick(from backends: UnsafeBufferPointer<IPv4Address>, forService service: UInt64, avoiding client: IPv4Address) -> IPv4Address {
        precondition(!backends.isEmpty, "a VIP is balanced only while it has backends")
        let slot = position(of: service)
        var index = Int(positions[slot] % UInt32(backends.count))
        if backends[index] == client, backends.count > 1 { index = (index + 1) % backends.count }
        positions[slot] = UInt32(truncatingIfNeeded: index + 1)
        return backends[index]
    }

    private mutating func position(of service: UInt64) -> Int {
        let mask = Self.slots - 1
        var slot = Int(truncatingIfNeeded: (service &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
        for _ in 0..<Self.slots {
            if keys[slot] == service { return slot }
            if keys[slot] == .max {
                guard used < Self.slots / 2 else { return slot }
                keys[slot] = service
                used += 1
                return slot
            }
            slot = (slot + 1) & mask
        }
        return slot
    }
}
