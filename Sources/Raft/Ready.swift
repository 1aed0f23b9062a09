// What the core hands its host after a batch of input, and the order the host must act on it.

/// Work for the host, produced by ``RaftNode/ready()`` and acknowledged by ``RaftNode/advance(_:)``.
///
/// The host must, in this order: persist `snapshot`, `entries` (truncating its log at the first
/// entry's index when that index is already on disk) and `hardState`, durably; then send
/// `messages`; then apply `snapshot` and `committedEntries` to the state machine and answer
/// `reads` once it has applied up to their index; then call `advance`. Persisting before
/// sending is what makes a vote or an acknowledgement a promise.
public struct Ready: Sendable {
    /// Term, vote and commit to persist, when they changed.
    public var hardState: HardState?
    /// Entries to append to stable storage.
    public var entries: [Entry]
    /// A snapshot received from the leader, to persist and to restore the state machine from.
    public var snapshot: Snapshot?
    /// Committed entries to apply, in order.
    public var committedEntries: [Entry]
    /// Messages to send, after the writes above are durable.
    public var messages: [Message]
    /// Confirmed linearizable reads: answer each once the state machine has applied `index`.
    public var reads: [ReadState]
    /// Role and leader, when either changed.
    public var softState: SoftState?

    /// Whether the host has nothing to do.
    public var isEmpty: Bool {
        hardState == nil && entries.isEmpty && snapshot == nil && committedEntries.isEmpty && messages.isEmpty
            && reads.isEmpty && softState == nil
    }
}

/// A read request the leader has confirmed: reading the state machine once it has applied
/// `index` gives a linearizable result (dissertation §6.4, ReadIndex).
public struct ReadState: Sendable, Hashable {
    /// The host's ID for the request.
    public var requestID: UInt64
    /// The commit index the read must wait for.
    public var index: LogIndex
}

/// The parts of a member's state that need no persistence but that hosts react to.
public struct SoftState: Sendable, Hashable {
    /// This member's role.
    public var role: Role
    /// The leader this member follows (itself when leading), or 0.
    public var leader: NodeID
}

/// The term and index of an entry, returned to the proposer to match it when it commits.
public struct LogPosition: Sendable, Hashable {
    /// Term of the entry.
    public var term: Term
    /// Index of the entry.
    public var index: LogIndex
}

/// A snapshot of a member's state for status displays and tests.
public struct RaftStatus: Sendable {
    /// The member.
    public var id: NodeID
    /// Its current term.
    public var term: Term
    /// Its role.
    public var role: Role
    /// The leader it knows, or 0.
    public var leader: NodeID
    /// Its commit index.
    public var commit: LogIndex
    /// The index handed to its state machine.
    public var applied: LogIndex
    /// Its last log index.
    public var lastIndex: LogIndex
    /// The index of its latest snapshot.
    public var snapshotIndex: LogIndex
    /// The membership in force.
    public var membership: Membership
    /// On a leader: each follower's matched index.
    public var matched: [NodeID: LogIndex]
    /// On a leader: the followers heard from in the last election timeout (Reachable).
    public var reachable: Set<NodeID>
}
