// Knobs of one member's core. Ticks are the host's unit of time; the core never reads a clock.

/// How one member's core behaves.
public struct RaftConfiguration: Sendable {
    /// This member's ID (non-zero).
    public var id: NodeID
    /// Ticks without a leader before a follower campaigns; randomized in [n, 2n) per term.
    public var electionTicks: Int = 10
    /// Ticks between a leader's heartbeats; must be less than `electionTicks`.
    public var heartbeatTicks: Int = 1
    /// Appends a leader keeps in flight to one follower before it waits (flow control).
    public var maxInflightAppends: Int = 256
    /// Upper bound on the entry bytes of one append message (one entry may exceed it).
    public var maxAppendBytes: Int = 1 << 20
    /// Upper bound on the committed-entry bytes handed to the host in one ``Ready``.
    public var maxApplyBytes: Int = 64 << 20
    /// Bytes of snapshot per message.
    public var snapshotChunkBytes: Int = 512 << 10
    /// Ask for pre-votes before a real election, so a member that was cut off does not force
    /// a new term on a healthy group when it returns (dissertation §9.6).
    public var preVote = true
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// members that hear from a leader ignore campaigns (the leader lease of §6.4).
    public var checkQuorum = true
    /// Seed of the core's own randomness (election timeouts); deterministic given the seed.
    public var randomSeed: UInt64
    /// Deliberately breaks safety for checker tests: commit entries of earlier terms by
    /// counting replicas, and (as in the paper's Figure 8) start a term without the leader's
    /// no-op entry. Never set it elsewhere.
    public var testingOnlyCommitEarlierTermsByCounting = false

    /// A configuration with defaults for everything but the ID and the seed.
    public init(id: NodeID, randomSeed: UInt64) {
        precondition(id != 0, "node ID 0 means none")
        self.id = id
        self.randomSeed = randomSeed
    }
}
