// The messages members exchange. One struct for every kind, as in etcd's raftpb.Message: the
// fields a kind does not use stay zero, which keeps the codec and the transport trivial.

/// A message between two members of a group.
public struct Message: Sendable, Hashable {
    /// What a message asks or answers.
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// "Would you vote for me in `term`?" — sent without changing anyone's term (§9.6).
        case preVote = 0
        /// Answer to ``preVote``; `reject` false grants.
        case preVoteResponse = 1
        /// "Vote for me in `term`"; `logTerm`/`index` describe the candidate's last entry.
        case vote = 2
        /// Answer to ``vote``.
        case voteResponse = 3
        /// Entries after (`index`, `logTerm`), plus the leader's commit index.
        case append = 4
        /// Accepts up to `index`, or rejects with a hint (`rejectHint`, `logTerm`) to back up fast.
        case appendResponse = 5
        /// Keeps followers from campaigning; carries `commit` and a read `context`.
        case heartbeat = 6
        /// Echoes the heartbeat's `context` so the leader can confirm reads.
        case heartbeatResponse = 7
        /// One chunk of a snapshot (`snapshot`).
        case snapshot = 8
        /// Acknowledges snapshot bytes up to `index` (an offset), or the install when complete.
        case snapshotResponse = 9
        /// From a leader handing over: campaign now, without waiting for a timeout.
        case timeoutNow = 10
    }

    /// What the message is.
    public var kind: Kind
    /// The sender.
    public var from: NodeID
    /// The recipient.
    public var to: NodeID
    /// The sender's term.
    public var term: Term
    /// A term that goes with `index` (the previous entry's, the last entry's, or a hint's).
    public var logTerm: Term
    /// A log index whose meaning depends on `kind`.
    public var index: LogIndex
    /// Entries to append (``Kind/append``).
    public var entries: [Entry]
    /// The leader's commit index (``Kind/append``, ``Kind/heartbeat``).
    public var commit: LogIndex
    /// True when a request is refused.
    public var reject: Bool
    /// On a rejected append: the follower's guess of the last index that may match.
    public var rejectHint: LogIndex
    /// Read confirmation round (heartbeats), or 1 for a campaign forced by a transfer.
    public var context: UInt64
    /// The chunk carried by ``Kind/snapshot``.
    public var snapshot: SnapshotChunk?

    /// Creates a message; unused fields default to zero.
    public init(
        kind: Kind, from: NodeID, to: NodeID, term: Term, logTerm: Term = 0, index: LogIndex = 0,
        entries: [Entry] = [], commit: LogIndex = 0, reject: Bool = false, rejectHint: LogIndex = 0,
        context: UInt64 = 0, snapshot: SnapshotChunk? = nil
    ) {
        self.kind = kind
        self.from = from
        self.to = to
        self.term = term
        self.logTerm = logTerm
        self.index = index
        self.entries = entries
        self.commit = commit
        self.reject = reject
        self.rejectHint = rejectHint
        self.context = context
        self.snapshot = snapshot
    }
}

/// A bounded piece of a snapshot in transit. Snapshots travel in chunks so that no message
/// grows with the state machine (swarmkit#2374: new managers failed past 4 MB).
public struct SnapshotChunk: Sendable, Hashable {
    /// Which snapshot this belongs to.
    public var metadata: SnapshotMetadata
    /// Where `data` starts in the snapshot's bytes.
    public var offset: UInt64
    /// The snapshot's whole size in bytes.
    public var totalSize: UInt64
    /// The bytes at `offset`.
    public var data: [UInt8]

    /// Creates a chunk.
    public init(metadata: SnapshotMetadata, offset: UInt64, totalSize: UInt64, data: [UInt8]) {
        self.metadata = metadata
        self.offset = offset
        self.totalSize = totalSize
        self.data = data
    }

    /// Whether this chunk completes the snapshot.
    public var isLast: Bool { offset + UInt64(data.count) == totalSize }
}

extension Message {
    /// Whether the fields agree with each other as any correct sender writes them. The core
    /// drops (and counts) anything else, so a garbled or hostile message that still decodes
    /// cannot break the log's invariants: appended entries must follow `index` one by one with
    /// terms that never decrease, start at or after `logTerm` and never exceed the sender's
    /// term; a snapshot chunk must describe a snapshot of a real index.
    public var isWellFormed: Bool {
        // Terms and indices far beyond anything a group reaches would only overflow later
        // (a campaign adds one to the term): refuse them at the door.
        let bound: UInt64 = 1 << 62
        guard term < bound, logTerm < bound, index < bound, commit < bound, rejectHint < bound else { return false }
        switch kind {
        case .append:
            var previousTerm = logTerm
            for (offset, entry) in entries.enumerated() {
                guard entry.index == index &+ 1 &+ UInt64(offset), entry.term >= previousTerm, entry.term <= term else {
                    return false
                }
                previousTerm = entry.term
            }
            return index > 0 || logTerm == 0
        case .snapshot:
            guard let chunk = snapshot else { return false }
            return chunk.metadata.index > 0 && chunk.metadata.index < bound && chunk.metadata.term <= term
                && chunk.offset <= chunk.totalSize
                && UInt64(chunk.data.count) <= chunk.totalSize - chunk.offset && !chunk.metadata.membership.voters.isEmpty
        default:
            return entries.isEmpty && snapshot == nil
        }
    }
}
