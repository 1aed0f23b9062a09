// Follower side: entries, heartbeats and snapshot chunks from the leader, and the leader's
// request to take over.

extension RaftNode {
    mutating func handleFromLeader(_ message: Message) {
        if role == .leader { return }  // Same term, two leaders: impossible; handleTerm saw to higher terms.
        if role != .follower { becomeFollower(term: term, leader: message.from) }
        leader = message.from
        electionElapsed = 0
        switch message.kind {
        case .append: handleAppend(message)
        case .heartbeat: handleHeartbeat(message)
        case .snapshot: handleSnapshotChunk(message)
        case .timeoutNow:
            if log.membership.isVoter(id) { startCampaign(preVote: false, forced: true) }
        default: break
        }
    }

    private mutating func handleAppend(_ message: Message) {
        if message.index < log.committed {
            // Everything up to our commit index matches already; say so, the leader skips ahead.
            send(Message(kind: .appendResponse, from: id, to: message.from, term: term, index: log.committed))
            return
        }
        if let lastMatched = log.tryAppend(after: message.index, term: message.logTerm, entries: message.entries) {
            log.commit(to: min(message.commit, lastMatched))
            send(Message(kind: .appendResponse, from: id, to: message.from, term: term, index: lastMatched))
            return
        }
        // No entry (index, logTerm) here: hint the last index whose term could still agree,
        // so the leader skips a whole conflicting term per round trip instead of one entry.
        let hintIndex = log.lastIndex(atOrBefore: min(message.index, log.lastIndex), withTermAtMost: message.logTerm)
        send(Message(
            kind: .appendResponse, from: id, to: message.from, term: term, logTerm: log.term(at: hintIndex) ?? 0,
            index: message.index, reject: true, rejectHint: hintIndex))
    }

    private mutating func handleHeartbeat(_ message: Message) {
        log.commit(to: message.commit)
        send(Message(kind: .heartbeatResponse, from: id, to: message.from, term: term, context: message.context))
    }

    private mutating func handleSnapshotChunk(_ message: Message) {
        guard let chunk = message.snapshot else { return }
        let metadata = chunk.metadata
        func acknowledge(_ bytes: Int, reject: Bool = false) {
            send(Message(
                kind: .snapshotResponse, from: id, to: message.from, term: term, logTerm: metadata.term,
                index: metadata.index, reject: reject, context: UInt64(bytes)))
        }
        if metadata.index <= log.committed {
            // Already have all of it: answer like an append so the leader resumes from here.
            incomingSnapshot = nil
            send(Message(kind: .appendResponse, from: id, to: message.from, term: term, index: log.committed))
            return
        }
        if chunk.offset == 0 { incomingSnapshot = (metadata, []) }
        guard var incoming = incomingSnapshot, incoming.metadata == metadata else {
            acknowledge(0, reject: true)
            return
        }
        guard chunk.offset == UInt64(incoming.bytes.count),
            chunk.offset + UInt64(chunk.data.count) <= chunk.totalSize
        else {
            acknowledge(incoming.bytes.count)  // Out of order or duplicate: say what we have.
            return
        }
        incomingSnapshot = nil  // Drop the reference while appending, so the buffer is not copied.
        incoming.bytes.append(contentsOf: chunk.data)
        guard chunk.isLast else {
            incomingSnapshot = incoming
            acknowledge(incoming.bytes.count)
            return
        }
        let snapshot = Snapshot(metadata: metadata, data: incoming.bytes)
        log.restore(snapshot)
        snapshotToApply = snapshot
        // Only the snapshot is vouched for: entries kept after it are checked by the next append.
        send(Message(kind: .appendResponse, from: id, to: message.from, term: term, index: metadata.index))
    }
}
