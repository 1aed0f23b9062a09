// The consensus core: one member's Raft state machine, after etcd's raft.go. It takes ticks,
// messages and proposals, and hands back a `Ready` (what to persist, send and apply); it does
// no I/O and reads no clock, so the simulator and the daemon run exactly the same code.
//
// Leader-side replication is in RaftNode+Leader.swift, follower-side handling in
// RaftNode+Follower.swift, linearizable reads and leadership transfer in RaftNode+Reads.swift.

import EngineKit

/// One member of a Raft group, as a pure state machine.
///
/// Not thread-safe: one host loop owns it. Between ``ready()`` and ``advance(_:)`` the host
/// must not feed it anything (checked).
public struct RaftNode: Sendable {
    /// The configuration it was created with.
    public let configuration: RaftConfiguration
    var id: NodeID { configuration.id }

    var term: Term = 0
    var vote: NodeID = 0
    var leader: NodeID = 0
    var role: Role = .follower
    var log: RaftLog

    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var random: SplitMix64

    /// Leader: each other member's replication state.
    var progress: [NodeID: Progress] = [:]
    /// (Pre-)candidate: answers received, true for granted.
    var votes: [NodeID: Bool] = [:]
    /// Leader: the member leadership is being handed to, or 0.
    var transferTarget: NodeID = 0

    /// Leader: reads waiting for quorum confirmation, in request order.
    var pendingReads: [PendingRead] = []
    /// Leader: reads that arrived before the leader committed an entry of its own term.
    var readsAwaitingFirstCommit: [UInt64] = []
    /// Leader: the newest read confirmation round, and each voter's latest echo of it.
    var readRound: UInt64 = 0
    var readAcknowledgements: [NodeID: UInt64] = [:]

    /// Follower: a snapshot arriving in chunks.
    var incomingSnapshot: (metadata: SnapshotMetadata, bytes: [UInt8])?

    // Output accumulated until the next `ready()`.
    var outbox: [Message] = []
    var confirmedReads: [ReadState] = []
    var snapshotToApply: Snapshot?
    var persistedHardState: HardState
    var reportedSoftState: SoftState
    var readyOutstanding = false
    /// Messages refused by ``step(_:)``: addressed elsewhere, or not well formed.
    public private(set) var droppedMessages = 0

    /// Restores a member from what its host persisted.
    ///
    /// Membership comes from the log itself: a new group's members all start from
    /// ``bootstrap(voters:)``; a member joining an existing group starts empty (no vote, no
    /// campaign) and waits for the leader to send it the log or a snapshot.
    public init(
        configuration: RaftConfiguration, hardState: HardState = HardState(), snapshot: Snapshot? = nil,
        entries: [Entry] = []
    ) {
        self.configuration = configuration
        precondition(configuration.heartbeatTicks < configuration.electionTicks, "heartbeat must be shorter than election timeout")
        log = RaftLog(snapshot: snapshot, entries: entries, committed: hardState.commit, initialMembership: Membership(voters: []))
        log.toleratesOverwritingCommitted = configuration.testingOnlyCommitEarlierTermsByCounting
        term = hardState.term
        vote = hardState.vote
        random = SplitMix64(seed: configuration.randomSeed ^ configuration.id &* 0x9E37_79B9_7F4A_7C15)
        persistedHardState = HardState(term: hardState.term, vote: hardState.vote, commit: log.committed)
        reportedSoftState = SoftState(role: .follower, leader: 0)
        resetRandomizedElectionTimeout()
    }

    // MARK: - Host interface

    /// The member's current state, for displays and tests.
    public var status: RaftStatus {
        RaftStatus(
            id: id, term: term, role: role, leader: leader, commit: log.committed, applied: log.applied,
            lastIndex: log.lastIndex, snapshotIndex: log.snapshotMetadata.index, membership: log.membership,
            matched: progress.mapValues(\.match),
            reachable: Set(progress.filter { $0.value.activeInLastPeriod || $0.value.recentlyActive }.keys))
    }

    /// Advances time by one tick: followers may campaign, leaders heartbeat and check quorum.
    public mutating func tick() {
        precondition(!readyOutstanding, "tick between ready() and advance()")
        if role == .leader { tickLeader() } else { tickElection() }
    }

    /// Feeds one message from the network. Messages for another member are ignored.
    public mutating func step(_ message: Message) {
        precondition(!readyOutstanding, "step between ready() and advance()")
        guard message.to == id, message.from != 0, message.from != id, message.isWellFormed else {
            droppedMessages += 1
            return
        }
        guard handleTerm(of: message) else { return }
        switch message.kind {
        case .preVote, .vote: handleVoteRequest(message)
        case .preVoteResponse, .voteResponse: handleVoteResponse(message)
        case .append, .heartbeat, .snapshot, .timeoutNow: handleFromLeader(message)
        case .appendResponse, .heartbeatResponse, .snapshotResponse: handleFromFollower(message)
        }
    }

    /// Appends `data` to the log if this member leads; returns where it went.
    public mutating func propose(_ data: [UInt8]) throws(RaftError) -> LogPosition {
        precondition(!readyOutstanding, "propose between ready() and advance()")
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard transferTarget == 0 else { throw .transferInProgress }
        return appendAndReplicate(kind: .normal, data: data)
    }

    /// Proposes one membership change; only one may be uncommitted at a time, and a new leader
    /// must first commit an entry of its own term (the fix to single-server changes, 2015).
    public mutating func proposeMembershipChange(_ change: MembershipChange) throws(RaftError) -> LogPosition {
        precondition(!readyOutstanding, "propose between ready() and advance()")
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard transferTarget == 0 else { throw .transferInProgress }
        guard log.lastMembershipIndex <= log.committed, log.term(at: log.committed) == term else {
            throw .membershipChangePending
        }
        if case .failure(let error) = log.membership.applying(change) { throw error }
        // A context the decoder would refuse would commit as a change that never takes effect.
        guard change.context.count <= MembershipChange.maxContextBytes else {
            throw .invalidMembershipChange("context of \(change.context.count) bytes is over \(MembershipChange.maxContextBytes)")
        }
        return appendAndReplicate(kind: .membershipChange, data: change.encoded)
    }

    /// Starts an election now (tests, and hosts that want a leader at once).
    public mutating func campaign() {
        precondition(!readyOutstanding, "campaign between ready() and advance()")
        guard role != .leader, log.membership.isVoter(id) else { return }
        startCampaign(preVote: configuration.preVote, forced: false)
    }

    /// Replaces applied entries up to `index` by the state machine's snapshot `data`.
    public mutating func compact(through index: LogIndex, snapshotData data: [UInt8]) throws(RaftError) {
        guard index <= log.applied, index >= log.snapshotMetadata.index else { throw .unavailable(index) }
        log.compact(to: index, data: data)
    }

    /// Whether ``ready()`` has anything to hand over.
    public var hasReady: Bool {
        !outbox.isEmpty || !confirmedReads.isEmpty || snapshotToApply != nil || log.lastIndex > log.stabled
            || log.committed > log.applied || hardState != persistedHardState || softState != reportedSoftState
    }

    /// Takes the accumulated work; see ``Ready`` for what the host must do with it.
    public mutating func ready() -> Ready {
        precondition(!readyOutstanding, "ready() twice without advance()")
        readyOutstanding = true
        let ready = Ready(
            hardState: hardState == persistedHardState ? nil : hardState,
            entries: log.unstableEntries,
            snapshot: snapshotToApply,
            committedEntries: log.entriesToApply(maxBytes: configuration.maxApplyBytes),
            messages: outbox,
            reads: confirmedReads,
            softState: softState == reportedSoftState ? nil : softState)
        outbox = []
        confirmedReads = []
        return ready
    }

    /// Records that the host did everything `ready` asked.
    public mutating func advance(_ ready: Ready) {
        precondition(readyOutstanding, "advance() without ready()")
        readyOutstanding = false
        if let hardState = ready.hardState { persistedHardState = hardState }
        if let softState = ready.softState { reportedSoftState = softState }
        if ready.snapshot != nil { snapshotToApply = nil }
        if let last = ready.committedEntries.last { log.markApplied(through: last.index) }
        if let last = ready.entries.last {
            log.markStable(through: last.index)
            // The leader's own entries count towards commit only now that they are durable.
            if role == .leader { _ = maybeCommit() }
        }
    }

    var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    var softState: SoftState { SoftState(role: role, leader: leader) }

    // MARK: - Terms and roles

    /// Applies the term rules of §5.1 (and the lease of §6.4); false when the message is dropped.
    mutating func handleTerm(of message: Message) -> Bool {
        if message.term > term {
            if message.kind == .preVote || message.kind == .vote {
                let forced = message.context == Self.forcedCampaign
                let leaseHeld = configuration.checkQuorum && leader != 0 && electionElapsed < configuration.electionTicks
                if leaseHeld && !forced { return false }
            }
            switch message.kind {
            case .preVote:
                break  // A pre-vote never moves anyone's term.
            case .preVoteResponse where !message.reject:
                break  // Granted pre-votes carry the term the pre-candidate is about to take.
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: 0)
            }
            return true
        }
        if message.term < term {
            if (configuration.checkQuorum || configuration.preVote) && (message.kind == .append || message.kind == .heartbeat) {
                // A stale leader cut off for a while: tell it the newer term so it steps down.
                send(Message(kind: .appendResponse, from: id, to: message.from, term: term))
            } else if message.kind == .preVote {
                send(Message(kind: .preVoteResponse, from: id, to: message.from, term: term, reject: true))
            }
            return false
        }
        return true
    }

    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID) {
        if newTerm != term {
            precondition(newTerm > term, "terms only grow")
            term = newTerm
            vote = 0
        }
        role = .follower
        leader = newLeader
        resetRoleState()
    }

    mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader")
        role = .leader
        leader = id
        resetRoleState()
        for member in log.membership.all where member != id {
            progress[member] = Progress(next: log.lastIndex + 1)
        }
        // The no-op entry lets the new leader commit, and so learn the commit index (§5.4.2).
        // The broken variant leaves it out, as Figure 8 of the Raft paper does: the no-op
        // alone hides the counting bug in nearly every schedule.
        if configuration.testingOnlyCommitEarlierTermsByCounting {
            broadcastAppends()
        } else {
            _ = appendAndReplicate(kind: .normal, data: [])
        }
    }

    private mutating func resetRoleState() {
        electionElapsed = 0
        heartbeatElapsed = 0
        resetRandomizedElectionTimeout()
        progress = [:]
        votes = [:]
        transferTarget = 0
        pendingReads = []
        readsAwaitingFirstCommit = []
        readAcknowledgements = [:]
        incomingSnapshot = nil
    }

    mutating func resetRandomizedElectionTimeout() {
        let base = configuration.electionTicks
        randomizedElectionTimeout = base + Int(random.next() % UInt64(base))
    }

    // MARK: - Elections

    static let forcedCampaign: UInt64 = 1

    private mutating func tickElection() {
        electionElapsed += 1
        if electionElapsed >= randomizedElectionTimeout && log.membership.isVoter(id) {
            electionElapsed = 0
            startCampaign(preVote: configuration.preVote, forced: false)
        }
    }

    mutating func startCampaign(preVote: Bool, forced: Bool) {
        let campaignTerm: Term
        if preVote {
            role = .preCandidate
            leader = 0
            campaignTerm = term + 1
        } else {
            becomeFollower(term: term + 1, leader: 0)
            role = .candidate
            vote = id
            campaignTerm = term
        }
        votes = [id: true]
        electionElapsed = 0
        resetRandomizedElectionTimeout()
        if tallyVotes(preVote: preVote) { return }
        for voter in log.membership.voters where voter != id {
            send(Message(
                kind: preVote ? .preVote : .vote, from: id, to: voter, term: campaignTerm,
                logTerm: log.lastTerm, index: log.lastIndex, context: forced ? Self.forcedCampaign : 0))
        }
    }

    private mutating func handleVoteRequest(_ message: Message) {
        let isPreVote = message.kind == .preVote
        let canVote = vote == message.from || (vote == 0 && leader == 0) || (isPreVote && message.term > term)
        let granted = canVote && log.isUpToDate(lastIndex: message.index, lastTerm: message.logTerm)
        let kind: Message.Kind = isPreVote ? .preVoteResponse : .voteResponse
        if granted {
            if !isPreVote {
                vote = message.from
                electionElapsed = 0
            }
            send(Message(kind: kind, from: id, to: message.from, term: message.term))
        } else {
            send(Message(kind: kind, from: id, to: message.from, term: term, reject: true))
        }
    }

    private mutating func handleVoteResponse(_ message: Message) {
        let expected: Message.Kind = role == .preCandidate ? .preVoteResponse : .voteResponse
        guard role == .preCandidate || role == .candidate, message.kind == expected,
            log.membership.isVoter(message.from)
        else { return }
        if votes[message.from] == nil { votes[message.from] = !message.reject }
        _ = tallyVotes(preVote: role == .preCandidate)
    }

    /// Acts on the votes so far; true when the campaign ended.
    private mutating func tallyVotes(preVote: Bool) -> Bool {
        let voters = log.membership.voters
        let granted = voters.filter { votes[$0] == true }.count
        let rejected = voters.filter { votes[$0] == false }.count
        if granted >= log.membership.quorum {
            if preVote { startCampaign(preVote: false, forced: false) } else { becomeLeader() }
            return true
        }
        if rejected >= log.membership.quorum {
            becomeFollower(term: term, leader: 0)
            return true
        }
        return false
    }

    // MARK: - Output

    mutating func send(_ message: Message) {
        outbox.append(message)
    }
}

extension RaftNode {
    /// The persisted state every founding member of a new group starts from: one committed
    /// membership entry per voter at term 1 (as etcd bootstraps), so that the log alone says
    /// who the members are, also to members that join later and replay it from index 1.
    public static func bootstrap(voters: [NodeID]) -> (hardState: HardState, entries: [Entry]) {
        let entries = voters.sorted().enumerated().map { position, voter in
            Entry(term: 1, index: LogIndex(position + 1), kind: .membershipChange, data: MembershipChange(.addVoter, node: voter).encoded)
        }
        return (HardState(term: 1, vote: 0, commit: LogIndex(entries.count)), entries)
    }

    /// The latest snapshot (the host's, or one received from the leader), or nil before any.
    public var latestSnapshot: Snapshot? {
        log.snapshotMetadata.index == 0 ? nil : Snapshot(metadata: log.snapshotMetadata, data: log.snapshotData)
    }

    /// The entry at `index` in this member's log, or nil when compacted or absent (checkers).
    public func entry(at index: LogIndex) -> Entry? { log.entry(at: index) }
}
