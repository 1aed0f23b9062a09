// The network-scoped tables: local writes, remote versions ordered by (clock, owner), network
// joins and leaves that supersede everything their member wrote before them, and what
// watchers see when an owner fails or returns.
//
// Two of Docker NetworkDB's long-standing bugs are ruled out by construction here:
// - A leave and a quick rejoin never shadow a live entry with a tombstone of the same clock:
//   every local write takes a fresh clock strictly above everything seen (a hybrid logical
//   clock), and a network record only supersedes entries written *before* it.
// - A member's entries never outlive it as zombies nor vanish when it returns: they are
//   hidden while it is dead, reappear only when it re-announces them, and what it no longer
//   has is purged by its own authoritative state (see `merge`).

/// Why a local table operation was refused.
public enum GossipTableError: Error, Equatable, CustomStringConvertible {
    /// The member has not joined the network.
    case notJoined(String)
    /// A name, table or key over 255 bytes, or a value over the codec's limit.
    case tooLarge(String)
    /// There is no entry of ours to delete.
    case noSuchEntry(EntryKey)

    public var description: String {
        switch self {
        case .notJoined(let network): "this member has not joined network \(network)"
        case .tooLarge(let what): "\(what) is too large"
        case .noSuchEntry(let key): "no entry of this member at \(key)"
        }
    }
}

extension GossipEngine {
    // MARK: - Local operations

    /// Joins `network`: announces it and asks a member of it for the network's entries.
    public func joinNetwork(_ network: String, now: Int) throws(GossipTableError) {
        guard network.utf8.count <= 255, !network.isEmpty else { throw .tooLarge("network name") }
        guard !tables.hasJoined(name, network) else { return }
        writeNetworkRecord(network, joined: true, now: now)
        let peers = tables.networkMembers[network]?.randomElements(1, using: &random) { self.liveMembers.contains($0) } ?? []
        for peer in peers {
            if let address = members[peer]?.info.address { sendState(to: peer, address: address, isReply: false) }
        }
    }

    /// Leaves `network`: its entries, ours included, are dropped here, and others drop ours.
    public func leaveNetwork(_ network: String, now: Int) {
        guard tables.hasJoined(name, network) else { return }
        writeNetworkRecord(network, joined: false, now: now)
    }

    /// The networks this member has joined.
    public var joinedNetworks: [String] { tables.networks(of: name) }

    /// The networks `member` has joined, as this member knows.
    public func networks(of member: MemberName) -> [String] { tables.networks(of: member) }

    /// Writes our value at `key`.
    public func put(_ key: EntryKey, value: [UInt8], now: Int) throws(GossipTableError) {
        guard tables.hasJoined(name, key.network) else { throw .notJoined(key.network) }
        guard key.table.utf8.count <= 255, key.key.utf8.count <= 255, !key.table.isEmpty, !key.key.isEmpty else {
            throw .tooLarge("table or key name")
        }
        guard value.count <= GossipCodec.maximumValueBytes else { throw .tooLarge("value of \(value.count) bytes") }
        writeOwnEntry(key, value: value, now: now)
    }

    /// Deletes our entry at `key` (a tombstone that outlives every copy, then is reaped).
    public func delete(_ key: EntryKey, now: Int) throws(GossipTableError) {
        guard tables.hasJoined(name, key.network) else { throw .notJoined(key.network) }
        guard let entry = tables.entries[key], entry.owner == name, entry.value != nil else { throw .noSuchEntry(key) }
        writeOwnEntry(key, value: nil, now: now)
    }

    /// The visible entries of `network` (all tables), ordered by key.
    public func entries(in network: String) -> [(key: EntryKey, owner: MemberName, value: [UInt8])] {
        tables.entries.compactMap { key, entry in
            guard key.network == network, entry.visible, let value = entry.value else { return nil }
            return (key, entry.owner, value)
        }.sorted { $0.key < $1.key }
    }

    /// This member's own live entries (what a restart should restore).
    public var ownEntries: [(key: EntryKey, value: [UInt8])] {
        (tables.keysByOwner[name] ?? []).compactMap { key in tables.entries[key]?.value.map { (key, $0) } }
            .sorted { $0.key < $1.key }
    }

    private func writeOwnEntry(_ key: EntryKey, value: [UInt8]?, now: Int) {
        ownStateVersion &+= 1
        let record = EntryRecord(key: key, owner: name, clock: tickClock(now: now), value: value)
        storeVersion(record, now: now)
        broadcast(record)
    }

    private func writeNetworkRecord(_ network: String, joined: Bool, now: Int) {
        ownStateVersion &+= 1
        let record = NetworkRecord(node: name, network: network, joined: joined, clock: tickClock(now: now))
        storeNetworkRecord(record, now: now)
        broadcast(record)
    }

    /// Re-queues everything we own (after refuting a claim about us, or a restart): whoever
    /// hid our entries while we were thought dead gets them back from us, and only from us.
    func reannounceOwnState() {
        for (_, record) in (tables.networkRecords[name] ?? [:]).sorted(by: { $0.key < $1.key }) { broadcast(record) }
        for key in (tables.keysByOwner[name] ?? []).sorted() {
            guard let entry = tables.entries[key] else { continue }
            broadcast(EntryRecord(key: key, owner: name, clock: entry.clock, value: entry.value))
        }
    }

    // MARK: - Remote versions

    /// Applies a network record; true when it was news.
    func apply(_ record: NetworkRecord, now: Int) -> Bool {
        witness(record.clock)
        if record.node == name {
            // A record of ours we do not hold (a previous life's): supersede it with the truth.
            let mine = tables.networkRecords[name]?[record.network]
            if record.clock > (mine?.clock ?? 0) && (mine?.joined ?? false) != record.joined {
                writeNetworkRecord(record.network, joined: mine?.joined ?? false, now: now)
            }
            return false
        }
        if let current = tables.networkRecords[record.node]?[record.network], current.clock >= record.clock { return false }
        storeNetworkRecord(record, now: now)
        return true
    }

    private func storeNetworkRecord(_ record: NetworkRecord, now: Int) {
        let newcomer = record.joined && record.node != name && !tables.hasJoined(record.node, record.network)
        tables.networkRecords[record.node, default: [:]][record.network] = record
        // A member that joins a network we are on gets our own entries of it at once: an entry
        // written before we knew of that member was broadcast to the members known then, and
        // would otherwise reach it only at the next push-pull (libnetwork's bulk sync on join).
        if newcomer, tables.hasJoined(name, record.network), liveMembers.contains(record.node),
            let address = members[record.node]?.info.address
        {
            sendState(to: record.node, address: address, isReply: false, ownerOnly: true)
        }
        if record.joined {
            tables.networkMembers[record.network, default: IndexedSet()].insert(record.node)
        } else {
            tables.networkMembers[record.network]?.remove(record.node)
        }
        if record.node == name {
            if !record.joined {
                // Leaving: every entry of the network goes, and so do its pending broadcasts.
                for key in tables.entries.keys.sorted() where key.network == record.network { removeEntry(key) }
                networkBroadcasts[record.network] = nil
            }
            return
        }
        // Whatever the member wrote in this network before this record is superseded by it.
        for key in (tables.keysByOwner[record.node] ?? []).sorted() where key.network == record.network {
            guard let entry = tables.entries[key] else { continue }
            if entry.clock < record.clock { removeEntry(key) } else { refreshVisibility(key) }
        }
    }

    /// Applies an entry version; true when it was news.
    func apply(_ record: EntryRecord, now: Int) -> Bool {
        witness(record.clock)
        guard tables.hasJoined(name, record.key.network) else {
            statistics.entriesOutsideNetworks += 1
            return false
        }
        if record.owner == name {
            refuteStaleOwnEntry(record, now: now)
            return false
        }
        if let joined = tables.networkRecords[record.owner]?[record.key.network], record.clock < joined.clock { return false }
        if let current = tables.entries[record.key] {
            if (current.clock, current.owner) > (record.clock, record.owner) { return false }
            if current.clock == record.clock && current.owner == record.owner {
                guard current.awaitingOwner else { return false }
                // The owner re-announced it: show it again, and pass the news on.
                tables.entries[record.key]!.awaitingOwner = false
                refreshVisibility(record.key)
                return true
            }
        }
        storeVersion(record, now: now)
        return true
    }

    /// Someone holds a version of our own entry that we did not write in this life, or an
    /// older one: answer with the truth under a fresh clock, which supersedes it everywhere.
    private func refuteStaleOwnEntry(_ record: EntryRecord, now: Int) {
        let mine = tables.entries[record.key]
        if let mine, mine.owner == name, mine.clock >= record.clock {
            if mine.clock > record.clock { broadcast(EntryRecord(key: record.key, owner: name, clock: mine.clock, value: mine.value)) }
            return
        }
        if let mine, mine.owner != name, (mine.clock, mine.owner) > (record.clock, record.owner) { return }
        if mine == nil && record.value == nil { return }
        let truth = mine?.owner == name ? mine?.value : nil
        writeOwnEntry(record.key, value: truth, now: now)
    }

    private func storeVersion(_ record: EntryRecord, now: Int) {
        var entry = StoredEntry(owner: record.owner, clock: record.clock, value: record.value, changedAt: now)
        let previous = tables.entries[record.key]
        entry.visible = previous?.visible ?? false
        tables.store(entry, at: record.key)
        refreshVisibility(record.key, previousOwner: previous?.owner, previousValue: previous?.value)
    }

    /// Drops `key` entirely; watchers see a delete if it was visible.
    func removeEntry(_ key: EntryKey) {
        guard let entry = tables.entries[key] else { return }
        tables.remove(key)
        if entry.visible { events.append(.entry(EntryChange(key: key, owner: entry.owner, value: nil))) }
    }

    /// Recomputes whether watchers should see `key` and tells them when that changed.
    func refreshVisibility(_ key: EntryKey, previousOwner: MemberName? = nil, previousValue: [UInt8]?? = nil) {
        guard var entry = tables.entries[key] else { return }
        let shouldShow = entry.value != nil && !entry.awaitingOwner && isLive(entry.owner)
            && tables.hasJoined(name, key.network) && tables.hasJoined(entry.owner, key.network)
        let wasShown = entry.visible
        entry.visible = shouldShow
        tables.entries[key] = entry
        if shouldShow {
            let changed = !wasShown || previousOwner.map { $0 != entry.owner } ?? false
                || previousValue.map { $0 != entry.value } ?? false
            if changed { events.append(.entry(EntryChange(key: key, owner: entry.owner, value: entry.value))) }
        } else if wasShown {
            events.append(.entry(EntryChange(key: key, owner: previousOwner ?? entry.owner, value: nil)))
        }
    }

    private func isLive(_ member: MemberName) -> Bool {
        if member == name { return !isLeaving }
        guard let status = members[member]?.info.status else { return false }
        return status == .alive || status == .suspect
    }

    // MARK: - Owners failing and returning

    /// A member was declared dead (its entries hide until it re-announces them) or left (its
    /// entries go for good).
    func ownerFailed(_ owner: MemberName, left: Bool) {
        for key in (tables.keysByOwner[owner] ?? []).sorted() {
            if left {
                removeEntry(key)
            } else {
                tables.entries[key]?.awaitingOwner = true
                refreshVisibility(key)
            }
        }
    }

    /// A member back from the dead for a few seconds re-announced its entries by broadcast,
    /// which reaches almost everyone; to be certain, ask it once for its own records (a small
    /// owner-only state), and again every ten seconds while some of its entries stay hidden.
    func requestAwaitedEntries(now: Int) {
        guard !ownersAwaited.isEmpty else { return }
        for (owner, lastAsked) in ownersAwaited.sorted(by: { $0.key < $1.key }) {
            guard let member = members[owner], member.info.status != .left else {
                ownersAwaited[owner] = nil
                continue
            }
            guard member.info.status == .alive, now - member.statusSince > 3 * second else { continue }
            let stillAwaited = (tables.keysByOwner[owner] ?? []).contains { tables.entries[$0]?.awaitingOwner == true }
            if lastAsked != Int.min && !stillAwaited {
                ownersAwaited[owner] = nil
                continue
            }
            guard lastAsked == Int.min || now - lastAsked > 10 * second else { continue }
            ownersAwaited[owner] = now
            sendState(to: owner, address: member.info.address, isReply: false, ownerOnly: true)
        }
    }

    /// A member became known or came back: entries it already re-announced become visible,
    /// and a returning member will be asked for its own records.
    func ownerBecameLive(_ owner: MemberName, returning: Bool) {
        if returning { ownersAwaited[owner] = Int.min }
        for key in (tables.keysByOwner[owner] ?? []).sorted() { refreshVisibility(key) }
    }
}
