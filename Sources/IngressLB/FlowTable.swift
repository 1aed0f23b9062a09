import Wire

/// A connection's identity in one direction: network, protocol, addresses and ports, packed in
/// two words so that a comparison is two integer compares.
struct FlowKey: Equatable {
    /// Source address << 32 | destination address.
    var addresses: UInt64
    /// VNI << 40 | protocol << 32 | source port << 16 | destination port.
    var rest: UInt64

    init(network: VNI, protocol number: IPProtocol, source: IPv4Address, sourcePort: UInt16,
         destination: IPv4Address, destinationPort: UInt16) {
        addresses = UInt64(source.rawValue) << 32 | UInt64(destination.rawValue)
        rest = UInt64(network.rawValue) << 40 | UInt64(number.rawValue) << 32 | UInt64(sourcePort) << 16
            | UInt64(destinationPort)
    }

    /// The destination address of the key.
    var destinationAddress: IPv4Address { IPv4Address(rawValue: UInt32(truncatingIfNeeded: addresses)) }

    /// The key of the same connection seen from the other end.
    var reversed: FlowKey {
        var key = self
        key.addresses = addresses << 32 | addresses >> 32
        let ports = rest & 0xFFFF_FFFF
        key.rest = rest & ~0xFFFF_FFFF | (ports << 16 | ports >> 16) & 0xFFFF_FFFF
        return key
    }

    /// An index-friendly hash: a multiply spreads the bits that differ between flows.
    @inline(__always)
    var hash: Int {
        let mixed = (addresses ^ (rest &* 0x9E37_79B9_7F4A_7C15)) &* 0xC2B2_AE3D_27D4_EB4F
        return Int(truncatingIfNeeded: mixed >> 29)
    }
}

/// Where a tracked connection stands, which decides how long it may stay idle (as the kernel's
/// conntrack: a handshake or a close is short-lived, an established TCP flow lives for days).
enum FlowState: UInt8 {
    /// TCP: the first SYN went out, no answer yet.
    case opening
    /// TCP: the backend answered.
    case established
    /// TCP: a FIN was seen.
    case closing
    /// TCP: a RST was seen.
    case reset
    /// UDP.
    case datagram
}

/// One balanced connection: both of its keys, the VIP it was sent to, the backend it went to.
struct Flow {
    var forward: FlowKey
    var reply: FlowKey
    var virtualAddress: IPv4Address
    var backend: IPv4Address
    var lastSeen: UInt32
    var state: FlowState
}

/// The connection-tracking table: at most `capacity` flows, each found by either of its two
/// keys. Fixed memory from the start (no allocation after `init`), so that a full table is a
/// counted refusal, not growth.
///
/// Why not `Dictionary`: this runs per frame on the packet threads, where a `Dictionary` would
/// hash with SipHash, may retain its storage, and grows by reallocating. The index is open
/// addressing with linear probing at most a quarter full, deletions by backward shift (no
/// tombstones, so probes stay short however long the table lives).
struct FlowTable: ~Copyable, @unchecked Sendable {
    let capacity: Int
    private(set) var count = 0
    private let flows: UnsafeMutablePointer<Flow>
    /// Indices of unused flow records, `freeCount` of them.
    private let free: UnsafeMutablePointer<Int32>
    private var freeCount: Int
    /// Index slots: a key and the flow index + 1 (0: an empty slot).
    private let slotKeys: UnsafeMutablePointer<FlowKey>
    private let slotFlows: UnsafeMutablePointer<Int32>
    private let mask: Int
    /// Where the incremental reaper looks next.
    private var reapCursor = 0

    init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max) / 4, "flow table capacity out of range")
        self.capacity = capacity
        flows = .allocate(capacity: capacity)
        let unused = FlowKey(network: VNI(1)!, protocol: .tcp, source: IPv4Address(rawValue: 0), sourcePort: 0,
                             destination: IPv4Address(rawValue: 0), destinationPort: 0)
        flows.initialize(
            repeating: Flow(forward: unused, reply: unused, virtualAddress: unused.destinationAddress, backend: unused.destinationAddress,
                            lastSeen: 0, state: .opening),
            count: capacity)
        free = .allocate(capacity: capacity)
        for index in 0..<capacity { free[index] = Int32(capacity - 1 - index) }
        freeCount = capacity
        var slots = 16
        while slots < capacity * 4 { slots <<= 1 }
        slotKeys = .allocate(capacity: slots)
        slotFlows = .allocate(capacity: slots)
        slotFlows.initialize(repeating: 0, count: slots)
        mask = slots - 1
    }

    deinit {
        flows.deallocate()
        free.deallocate()
        slotKeys.deallocate()
        slotFlows.deallocate()
    }

    /// The flow `key` belongs to (either direction), or nil.
    @inline(__always)
    func find(_ key: FlowKey) -> Int? {
        var slot = key.hash & mask
        while true {
            let flow = slotFlows[slot]
            if flow == 0 { return nil }
            if slotKeys[slot] == key { return Int(flow - 1) }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    func flow(_ index: Int) -> Flow { flows[index] }

    @inline(__always)
    func touch(_ index: Int, now: UInt32, state: FlowState) {
        // Never backwards: the other packet thread may have stored a later second.
        flows[index].lastSeen = max(flows[index].lastSeen, now)
        flows[index].state = state
    }

    /// Adds a flow; false when the table holds `capacity` flows.
    mutating func insert(_ flow: Flow) -> Bool {
        guard freeCount > 0 else { return false }
        freeCount -= 1
        let index = Int(free[freeCount])
        flows[index] = flow
        place(flow.forward, index)
        if flow.reply != flow.forward { place(flow.reply, index) }
        count += 1
        return true
    }

    /// Removes flow `index` and both of its keys.
    mutating func remove(_ index: Int) {
        let flow = flows[index]
        unplace(flow.forward)
        if flow.reply != flow.forward { unplace(flow.reply) }
        flows[index].lastSeen = 0
        free[freeCount] = Int32(index)
        freeCount += 1
        count -= 1
    }

    /// Looks at up to `limit` flow records after the last one looked at and removes those
    /// `expired` says are; returns how many it removed. Bounded work per call, so the reaper
    /// can run on the packet path (once per new flow) and never stalls it.
    mutating func reap(limit: Int, expired: (Flow) -> Bool) -> Int {
        var removed = 0
        for _ in 0..<min(limit, capacity) {
            let index = reapCursor
            reapCursor = reapCursor + 1 == capacity ? 0 : reapCursor + 1
            if isLive(index), expired(flows[index]) {
                remove(index)
                removed += 1
            }
        }
        return removed
    }

    /// Whether flow record `index` holds a flow (its forward key leads back to it).
    private func isLive(_ index: Int) -> Bool {
        // A removed record keeps its old keys; only a live one is reachable from the index.
        find(flows[index].forward) == index
    }

    private func place(_ key: FlowKey, _ index: Int) {
        var slot = key.hash & mask
        while slotFlows[slot] != 0 { slot = (slot + 1) & mask }
        slotKeys[slot] = key
        slotFlows[slot] = Int32(index + 1)
    }

    /// Deletes `key`'s slot and shifts later slots of the same probe run back into the hole
    /// (Knuth's algorithm R), so that lookups never need tombstones.
    private func unplace(_ key: FlowKey) {
        var hole = key.hash & mask
        while slotFlows[hole] != 0, slotKeys[hole] != key { hole = (hole + 1) & mask }
        guard slotFlows[hole] != 0 else { return }
        var next = hole
        while true {
            next = (next + 1) & mask
            if slotFlows[next] == 0 { break }
            let home = slotKeys[next].hash & mask
            // Move the entry at `next` into the hole unless its home lies cyclically in (hole, next].
            let inRun = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !inRun {
                slotKeys[hole] = slotKeys[next]
                slotFlows[hole] = slotFlows[next]
                hole = next
            }
        }
        slotFlows[hole] = 0
    }
}
