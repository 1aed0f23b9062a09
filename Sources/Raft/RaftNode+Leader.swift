// Leader side: appending, replicating to each follower under flow control, streaming
// snapshots in chunks, counting commits, checking quorum and heartbeating.

extension RaftNode {
    /// Appends one entry of the current term and sends it on.
    mutating func appendAndReplicate(kind: Entry.Kind, data: [UInt8]) -> LogPosition {
        let entry = Entry(term: term, index: log.lastIndex + 1, kind: kind, data: data)
        log.appendAsLeader([entry])
        if kind == .membershipChange { followMembership() }
        if !maybeCommit() { broadcastAppends() }
        return LogPosition(term: entry.term, index: entry.index)
    }

    /// A membership entry takes effect when appended: new members get a fresh progress at
    /// once, and removed ones lose theirs — a member removed and added again under the same ID
    /// (with a new, empty disk) must not inherit its old match index.
    mutating func followMembership() {
        let members = Set(log.membership.all)
        for member in progress.keys where !members.contains(member) {
            progress[member] = nil
            readAcknowledgements[member] = nil
        }
        for member in log.membership.all where member != id && progress[member] == nil {
            progress[member] = Progress(next: log.lastIndex + 1)
        }
        if log.membership.voters == [id] {
            // No other voter is left to confirm reads: this leader alone is the quorum.
            for read in pendingReads { confirmedReads.append(ReadState(requestID: read.requestID, index: read.index)) }
            pendingReads = []
        }
    }

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= configuration.electionTicks {
            electionElapsed = 0
            if configuration.checkQuorum && !quorumRecentlyActive() {
                becomeFollower(term: term, leader: 0)
                return
            }
            transferTarget = 0  // A transfer that did not finish within an election timeout is abandoned.
        }
        if heartbeatElapsed >= configuration.heartbeatTicks {
            heartbeatElapsed = 0
            broadcastHeartbeats(context: pendingReads.isEmpty ? 0 : readRound)
        }
        for member in progress.keys.sorted() { resendStalledSnapshot(to: member) }
    }

    /// Whether a quorum of voters was heard from since the last check; clears the marks.
    private mutating func quorumRecentlyActive() -> Bool {
        var active = 0
        for voter in log.membership.voters {
            if voter == id || progress[voter]?.recentlyActive == true { active += 1 }
        }
        for member in progress.keys {
            let wasActive = progress[member]?.recentlyActive ?? false
            progress[member]?.activeInLastPeriod = wasActive
            progress[member]?.recentlyActive = false
        }
        return active >= log.membership.quorum
    }

    func broadcastTargets() -> [NodeID] { log.membership.all.filter { $0 != id } }

    mutating func broadcastAppends() {
        for member in broadcastTargets() { sendAppend(to: member, allowEmpty: true) }
    }

    mutating func broadcastHeartbeats(context: UInt64) {
        for member in broadcastTargets() {
            let match = progress[member]?.match ?? 0
            // Never tell a follower a commit index beyond what it is known to hold.
            send(Message(
                kind: .heartbeat, from: id, to: member, term: term, commit: min(match, log.committed), context: context))
        }
    }

    /// Sends what `member` needs next, if flow control allows: entries, or a snapshot chunk.
    mutating func sendAppend(to member: NodeID, allowEmpty: Bool) {
        guard var peer = progress[member], peer.canSend(maxInflight: configuration.maxInflightAppends) else { return }
        let previousIndex = peer.next - 1
        guard let previousTerm = log.term(at: previousIndex),
            let entries = log.entries(from: peer.next, maxBytes: configuration.maxAppendBytes)
        else {
            startSnapshot(to: member)
            return
        }
        if entries.isEmpty && !allowEmpty && peer.mode == .replicate { return }
        send(Message(
            kind: .append, from: id, to: member, term: term, logTerm: previousTerm, index: previousIndex,
            entries: entries, commit: log.committed))
        switch peer.mode {
        case .replicate:
            if let last = entries.last {
                peer.next = last.index + 1
                peer.inflight.append(last.index)
            }
        case .probe:
            peer.probeSent = true
        case .snapshot:
            break
        }
        progress[member] = peer
    }

    /// Keeps appending to `member` while it lags and flow control allows.
    mutating func sendAppendsWhileLagging(to member: NodeID) {
        var rounds = 0
        while let peer = progress[member], peer.next <= log.lastIndex,
            peer.canSend(maxInflight: configuration.maxInflightAppends), rounds < configuration.maxInflightAppends
        {
            sendAppend(to: member, allowEmpty: false)
            rounds += 1
            if progress[member]?.mode != .replicate { break }
        }
    }

    // MARK: - Snapshots

    mutating func startSnapshot(to member: NodeID) {
        guard log.snapshotMetadata.index > 0 else { return }
        let transfer = Progress.SnapshotTransfer(metadata: log.snapshotMetadata, acknowledged: 0, idleTicks: 0)
        progress[member]?.mode = .snapshot(transfer)
        progress[member]?.inflight = []
        sendSnapshotChunk(to: member)
    }

    private mutating func sendSnapshotChunk(to member: NodeID) {
        guard case .snapshot(let transfer) = progress[member]?.mode else { return }
        if transfer.metadata != log.snapshotMetadata {
            startSnapshot(to: member)  // Compacted again meanwhile: send the newer snapshot.
            return
        }
        let data = log.snapshotData
        let start = Int(min(transfer.acknowledged, UInt64(data.count)))
        let end = min(data.count, start + configuration.snapshotChunkBytes)
        let chunk = SnapshotChunk(
            metadata: transfer.metadata, offset: UInt64(start), totalSize: UInt64(data.count), data: Array(data[start..<end]))
        send(Message(kind: .snapshot, from: id, to: member, term: term, snapshot: chunk))
    }

    private mutating func resendStalledSnapshot(to member: NodeID) {
        guard case .snapshot(var transfer) = progress[member]?.mode else { return }
        transfer.idleTicks += 1
        if transfer.idleTicks >= configuration.electionTicks {
            transfer.idleTicks = 0
            progress[member]?.mode = .snapshot(transfer)
            sendSnapshotChunk(to: member)
        } else {
            progress[member]?.mode = .snapshot(transfer)
        }
    }

    // MARK: - Answers from followers

    mutating func handleFromFollower(_ message: Message) {
        guard role == .leader, progress[message.from] != nil else { return }
        progress[message.from]?.recentlyActive = true
        switch message.kind {
        case .appendResponse: handleAppendResponse(message)
        case .heartbeatResponse: handleHeartbeatResponse(message)
        case .snapshotResponse: handleSnapshotResponse(message)
        default: break
        }
    }

    private mutating func handleAppendResponse(_ message: Message) {
        let member = message.from
        guard var peer = progress[member] else { return }
        if message.reject {
            var hint = message.rejectHint
            if message.logTerm > 0 { hint = log.lastIndex(atOrBefore: hint, withTermAtMost: message.logTerm) }
            if peer.backUp(rejected: message.index, hint: hint) {
                if peer.mode == .replicate { peer.becomeProbe() }
                progress[member] = peer
                sendAppend(to: member, allowEmpty: true)
            }
            return
        }
        let wasPaused = peer.mode == .probe && peer.probeSent
        let advanced = peer.acknowledge(message.index)
        if advanced {
            switch peer.mode {
            case .probe:
                peer.becomeReplicate()
            case .snapshot(let transfer) where peer.match >= transfer.metadata.index:
                peer.becomeProbe()
                peer.becomeReplicate()
            default:
                break
            }
        }
        progress[member] = peer
        if member == transferTarget && peer.match == log.lastIndex {
            send(Message(kind: .timeoutNow, from: id, to: member, term: term))
        }
        if advanced && maybeCommit() { return }
        if wasPaused && peer.next > log.lastIndex {
            // A probe was in flight while the commit index moved: tell this follower now
            // rather than at the next heartbeat.
            sendAppend(to: member, allowEmpty: true)
        }
        sendAppendsWhileLagging(to: member)
    }

    private mutating func handleHeartbeatResponse(_ message: Message) {
        let member = message.from
        if progress[member]?.mode == .probe { progress[member]?.probeSent = false }
        if progress[member]?.mode == .replicate, let peer = progress[member],
            peer.inflight.count >= configuration.maxInflightAppends
        {
            // A full window after lost appends would never drain: the follower is alive, so
            // free one slot; the next append then finds the gap and backs up (etcd does so too).
            progress[member]?.inflight.removeFirst()
        }
        if let peer = progress[member], peer.match < log.lastIndex { sendAppend(to: member, allowEmpty: true) }
        if message.context != 0 { acknowledgeReadRound(message.context, from: member) }
    }

    private mutating func handleSnapshotResponse(_ message: Message) {
        guard case .snapshot(var transfer) = progress[message.from]?.mode,
            transfer.metadata.index == message.index, transfer.metadata.term == message.logTerm
        else { return }
        if message.reject {
            // The follower lost its partial copy: start over.
            transfer.acknowledged = 0
        } else if message.context > transfer.acknowledged {
            transfer.acknowledged = message.context
        } else {
            return  // A duplicate or stale acknowledgement: the next chunk is already out.
        }
        transfer.idleTicks = 0
        progress[message.from]?.mode = .snapshot(transfer)
        sendSnapshotChunk(to: message.from)
    }

    // MARK: - Commit

    /// Advances the commit index to what a quorum of voters holds, counting only entries of
    /// the current term (§5.4.2); tells everyone when it moved. True when it moved.
    mutating func maybeCommit() -> Bool {
        let membership = log.membership
        // The leader counts only what it has persisted: its messages may leave before its own
        // fsync, and with a single voter an unpersisted entry would otherwise commit at once.
        var matched = membership.voters.map { $0 == id ? log.stabled : (progress[$0]?.match ?? 0) }
        matched.sort(by: >)
        let quorumIndex = matched[membership.quorum - 1]
        guard quorumIndex > log.committed, let quorumTerm = log.term(at: quorumIndex) else { return false }
        guard quorumTerm == term || configuration.testingOnlyCommitEarlierTermsByCounting else { return false }
        let firstCommitOfTerm = log.term(at: log.committed) != term
        log.commit(to: quorumIndex)
        if firstCommitOfTerm { releaseReadsAwaitingFirstCommit() }
        broadcastAppends()
        if !membership.isVoter(id) && log.committed >= log.lastMembershipIndex {
            // This leader removed itself and the change is committed: step aside (dissertation §4.2.2).
            becomeFollower(term: term, leader: 0)
        }
        return true
    }
}
