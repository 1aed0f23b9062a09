// Getting news around: broadcasts piggybacked on every packet, gossip rounds to random
// members (and to random members of each network with news of its own), push/pull of full
// state over streams for anti-entropy, joins and partition healing, and reaping of what has
// outlived its purpose.

extension GossipEngine {
    /// Adds to `parts` what fits in `budget` for `destination`: first what we believe of the
    /// destination itself if that is bad news for it (so it can refute — Lifeguard's buddy
    /// system), then membership news, then news of the networks it shares with us.
    func piggyback(for destination: MemberName?, budget: inout Int, into parts: inout [[UInt8]]) {
        if let destination, let member = members[destination], member.info.status == .suspect || member.info.status == .dead {
            let claim = GossipCodec.encode(.member(member.info.claim(member.info.status, from: name)))
            if claim.count <= budget {
                parts.append(claim)
                budget -= claim.count
            }
        }
        memberBroadcasts.take(budget: &budget, limit: retransmitLimit(forGroupOf: liveMemberCount), into: &parts)
        guard let destination, !networkBroadcasts.isEmpty else { return }
        for network in networkBroadcasts.keys.sorted()
        where !networkBroadcasts[network]!.isEmpty && tables.hasJoined(destination, network) {
            let limit = retransmitLimit(forGroupOf: tables.networkMembers[network]?.count ?? 1)
            networkBroadcasts[network]!.take(budget: &budget, limit: limit, into: &parts)
        }
    }

    /// One gossip round: membership news to `gossipFanout` random members (the recently dead
    /// included, so they learn it), each network's news to as many random members of it.
    func gossip(now: Int) {
        let hasNetworkNews = networkBroadcasts.values.contains { !$0.isEmpty }
        guard !memberBroadcasts.isEmpty || hasNetworkNews else { return }
        var targets: [MemberName] = []
        if !memberBroadcasts.isEmpty {
            targets = liveMembers.randomElements(configuration.gossipFanout, using: &random) { _ in true }
            if !deadMembers.isEmpty && Int.random(in: 0..<4, using: &random) == 0 {
                targets += deadMembers.randomElements(1, using: &random) {
                    now - (self.members[$0]?.statusSince ?? 0) < self.configuration.gossipToTheDead
                }
            }
        }
        if hasNetworkNews {
            for network in networkBroadcasts.keys.sorted() where !networkBroadcasts[network]!.isEmpty {
                let peers = tables.networkMembers[network]?.randomElements(configuration.gossipFanout, using: &random) {
                    $0 != self.name && self.liveMembers.contains($0) && !targets.contains($0)
                } ?? []
                targets += peers
                sendOversized(network: network, to: peers)
            }
        }
        for target in targets {
            guard let address = members[target]?.info.address else { continue }
            send([], to: address, destinationName: target)
        }
    }

    /// Broadcasts too large for a datagram go to the same random peers over a stream.
    private func sendOversized(network: String, to peers: [MemberName]) {
        guard !peers.isEmpty else { return }
        let oversized = networkBroadcasts[network]!.takeOversized(
            budget: configuration.maximumDatagramBytes - 1,
            limit: retransmitLimit(forGroupOf: tables.networkMembers[network]?.count ?? 1))
        for bytes in oversized {
            for peer in peers {
                if let address = self.members[peer]?.info.address { emit(GossipCodec.packet([bytes]), to: address, overStream: true) }
            }
        }
    }

    // MARK: - Push/pull

    /// Exchanges full state with one random live member.
    func pushPull(now: Int) { offerState(toOneOf: liveMembers) }

    /// Offers our state to one dead member now and then: if it is alive behind a healed
    /// partition, it learns it was declared dead, refutes, and both sides converge.
    func reconnect(now: Int) { offerState(toOneOf: deadMembers) }

    private func offerState(toOneOf candidates: IndexedSet<MemberName>) {
        guard let peer = candidates.randomElements(1, using: &random, where: { _ in true }).first,
            let address = members[peer]?.info.address
        else { return }
        sendState(to: peer, address: address, isReply: false)
    }

    /// Sends our full state over a stream. Entries go only for networks the receiver has
    /// joined as far as we know (none to a member we do not know yet).
    func sendState(to peer: MemberName?, address: GossipAddress, isReply: Bool, ownerOnly: Bool = false) {
        // An owner-only exchange touches only our own records: after a partition heals, a member
        // answers hundreds of them, and each must not cost a walk over the whole cluster.
        let memberNames = ownerOnly ? [name] : members.keys.sorted()
        var memberRecords: [MemberRecord] = []
        memberRecords.reserveCapacity(memberNames.count)
        for memberName in memberNames {
            guard let info = members[memberName]?.info else { continue }
            memberRecords.append(info.claim(info.status, from: name))
        }
        var networkRecords: [NetworkRecord] = []
        for node in ownerOnly ? [name] : tables.networkRecords.keys.sorted() {
            networkRecords.append(contentsOf: (tables.networkRecords[node] ?? [:]).values.sorted { $0.network < $1.network })
        }
        var covered: [String] = []
        var entryRecords: [EntryRecord] = []
        if let peer {
            covered = tables.networks(of: name).filter { tables.hasJoined(peer, $0) }
            let coveredSet = Set(covered)
            let keys = ownerOnly ? (tables.keysByOwner[name] ?? []).sorted() : tables.entries.keys.sorted()
            for key in keys where coveredSet.contains(key.network) {
                guard let entry = tables.entries[key] else { continue }
                // Entries hidden for a dead owner are not vouched for, except to the owner itself.
                if entry.awaitingOwner && entry.owner != peer { continue }
                entryRecords.append(EntryRecord(key: key, owner: entry.owner, clock: entry.clock, value: entry.value))
            }
        }
        let state = StateExchange(
            isReply: isReply, ownerOnly: ownerOnly, senderClock: clock, members: memberRecords, networks: networkRecords, coveredNetworks: covered,
            entries: entryRecords)
        sendOverStream(.state(state), to: address)
    }

    /// Merges another member's full state, and answers it with ours unless it was an answer.
    func merge(_ state: StateExchange, from sender: MemberName, now: Int) {
        witness(state.senderClock)
        for record in state.members {
            var claim = record
            claim.from = sender
            // A remote "dead" becomes a suspicion here, giving the member the chance to refute
            // (memberlist does the same): one member's stale view must not kill another.
            if claim.status == .dead && claim.name != sender { claim.status = .suspect }
            // A suspicion in someone's state is hearsay, not an independent failed probe: it may
            // start a suspicion here but never counts as a confirmation.
            if claim.status == .suspect && members[claim.name]?.info.status == .suspect { continue }
            if claim.status == .left && claim.name != claim.from { claim.from = claim.name }
            if apply(claim, now: now) { broadcast(claim) }
        }
        for record in state.networks where apply(record, now: now) { broadcast(record) }
        var sentBySender = Set<EntryKey>()
        for record in state.entries {
            if record.owner == sender { sentBySender.insert(record.key) }
            if apply(record, now: now) { broadcast(record) }
        }
        purgeWhatOwnerNoLongerHas(sender, state: state, sentBySender: sentBySender)
        if !state.isReply, let address = members[sender]?.info.address {
            sendState(to: sender, address: address, isReply: true, ownerOnly: state.ownerOnly)
        }
    }

    /// The sender is the only writer of its entries: any of them at or below its clock that
    /// its state does not carry, in a network its state covers, it no longer has.
    private func purgeWhatOwnerNoLongerHas(_ owner: MemberName, state: StateExchange, sentBySender: Set<EntryKey>) {
        guard !state.coveredNetworks.isEmpty, let keys = tables.keysByOwner[owner] else { return }
        let covered = Set(state.coveredNetworks)
        for key in keys.sorted() where covered.contains(key.network) && !sentBySender.contains(key) {
            if let entry = tables.entries[key], entry.clock <= state.senderClock { removeEntry(key) }
        }
    }

    // MARK: - Reaping

    /// Forgets old tombstones, long-dead members (with their hidden entries), and members that
    /// left long ago.
    func reap(now: Int) {
        for (key, entry) in tables.entries where entry.value == nil && now - entry.changedAt > configuration.tombstoneRetention {
            tables.remove(key)
        }
        for name in (deadMembers.elements + members.keys.filter({ members[$0]?.info.status == .left })).sorted() {
            guard let member = members[name] else { continue }
            let retention = member.info.status == .left ? configuration.tombstoneRetention : configuration.deadMemberRetention
            guard now - member.statusSince > retention else { continue }
            for key in (tables.keysByOwner[name] ?? []).sorted() { removeEntry(key) }
            for network in (tables.networkRecords[name]?.keys).map(Array.init)?.sorted() ?? [] {
                tables.networkMembers[network]?.remove(name)
            }
            tables.networkRecords[name] = nil
            members[name] = nil
            deadMembers.remove(name)
        }
    }
}
