// Linearizable reads without writing to the log (ReadIndex, dissertation §6.4) and handing
// leadership to another member (§3.10).

/// A read the leader is confirming: it may be served at `index` once a quorum has answered a
/// heartbeat of `round` or later.
struct PendingRead {
    var requestID: UInt64
    var index: LogIndex
    var round: UInt64
}

extension RaftNode {
    /// Asks for a linearizable read; its ``ReadState`` appears in a later ``Ready`` once this
    /// member has confirmed it still leads. Throws when it does not lead.
    public mutating func readIndex(requestID: UInt64) throws(RaftError) {
        precondition(!readyOutstanding, "readIndex between ready() and advance()")
        guard role == .leader else { throw .notLeader(leader: leader) }
        // Until it commits an entry of its term, a new leader does not know the commit index.
        guard log.term(at: log.committed) == term else {
            readsAwaitingFirstCommit.append(requestID)
            return
        }
        startRead(requestID)
    }

    /// Hands leadership to `target` once its log is complete; proposals are refused meanwhile.
    public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
        precondition(!readyOutstanding, "transferLeadership between ready() and advance()")
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard target != id else { return }
        guard log.membership.isVoter(target), let peer = progress[target] else {
            throw .invalidMembershipChange("\(target) is not a voter")
        }
        guard transferTarget != target else { return }  // Asked again: the first request is running.
        transferTarget = target
        electionElapsed = 0
        if peer.match == log.lastIndex {
            send(Message(kind: .timeoutNow, from: id, to: target, term: term))
        } else {
            sendAppend(to: target, allowEmpty: true)
        }
    }

    private mutating func startRead(_ requestID: UInt64) {
        if log.membership.voters == [id] {
            confirmedReads.append(ReadState(requestID: requestID, index: log.committed))
            return
        }
        readRound += 1
        pendingReads.append(PendingRead(requestID: requestID, index: log.committed, round: readRound))
        broadcastHeartbeats(context: readRound)
    }

    mutating func releaseReadsAwaitingFirstCommit() {
        let waiting = readsAwaitingFirstCommit
        readsAwaitingFirstCommit = []
        for requestID in waiting { startRead(requestID) }
    }

    /// A voter echoed read round `round`: every read of that round or earlier that a quorum has
    /// now confirmed is released, in order.
    mutating func acknowledgeReadRound(_ round: UInt64, from member: NodeID) {
        guard log.membership.isVoter(member), round > readAcknowledgements[member] ?? 0 else { return }
        readAcknowledgements[member] = round
        var rounds = log.membership.voters.map { $0 == id ? readRound : (readAcknowledgements[$0] ?? 0) }
        rounds.sort(by: >)
        let confirmed = rounds[log.membership.quorum - 1]
        while let first = pendingReads.first, first.round <= confirmed {
            confirmedReads.append(ReadState(requestID: first.requestID, index: first.index))
            pendingReads.removeFirst()
        }
    }
}
