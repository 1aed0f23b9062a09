// The replicated tables as data: entry versions (values and tombstones), who joined which
// network, and the indexes that make a member's failure or return touch only its own entries.
// The rules that change them live in GossipEngine+Tables.swift.

/// One entry as stored here.
struct StoredEntry {
    var owner: MemberName
    var clock: UInt64
    var value: [UInt8]?
    /// When it last changed here (tombstones are reaped by age).
    var changedAt: Int
    /// Hidden since its owner was declared dead, until the owner re-announces it: a member
    /// that comes back restores its entries from its own state, never from stale copies.
    var awaitingOwner = false
    /// Whether watchers currently see it.
    var visible = false
}

/// Entries and network memberships.
struct TableStore {
    var entries: [EntryKey: StoredEntry] = [:]
    var keysByOwner: [MemberName: Set<EntryKey>] = [:]
    /// Each member's latest join or leave of each network.
    var networkRecords: [MemberName: [String: NetworkRecord]] = [:]
    /// Members whose latest record for a network is a join.
    var networkMembers: [String: IndexedSet<MemberName>] = [:]

    /// Stores `entry` at `key`, keeping the owner index.
    mutating func store(_ entry: StoredEntry, at key: EntryKey) {
        if let previous = entries[key], previous.owner != entry.owner {
            keysByOwner[previous.owner]?.remove(key)
        }
        entries[key] = entry
        keysByOwner[entry.owner, default: []].insert(key)
    }

    /// Forgets `key`.
    mutating func remove(_ key: EntryKey) {
        guard let previous = entries.removeValue(forKey: key) else { return }
        keysByOwner[previous.owner]?.remove(key)
        if keysByOwner[previous.owner]?.isEmpty == true { keysByOwner[previous.owner] = nil }
    }

    /// Whether `member`'s latest record for `network` is a join.
    func hasJoined(_ member: MemberName, _ network: String) -> Bool {
        networkRecords[member]?[network]?.joined == true
    }

    /// The networks `member` has joined.
    func networks(of member: MemberName) -> [String] {
        (networkRecords[member] ?? [:]).values.filter(\.joined).map(\.network).sorted()
    }
}
