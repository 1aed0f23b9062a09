// The vocabulary of the consensus core: identifiers, log entries, the durable hard state and
// cluster membership. Plain values, no I/O; the codec (Codec.swift) gives their bytes.

import EngineKit

/// A member's identity in a Raft group. Zero means "none" (no vote, no known leader).
public typealias NodeID = UInt64

/// A Raft term: a logical clock that only grows; at most one leader is elected per term.
public typealias Term = UInt64

/// A position in the replicated log; the first entry has index 1, index 0 is "before the log".
public typealias LogIndex = UInt64

/// One entry of the replicated log.
public struct Entry: Sendable, Hashable {
    /// What an entry carries.
    public enum Kind: UInt8, Sendable {
        /// Application data for the state machine; an empty one is a new leader's no-op.
        case normal = 0
        /// A ``MembershipChange``, encoded by ``MembershipChange/encoded``.
        case membershipChange = 1
    }

    /// The term of the leader that created the entry.
    public var term: Term
    /// The entry's position in the log.
    public var index: LogIndex
    /// What `data` holds.
    public var kind: Kind
    /// The payload, opaque to the core for ``Kind/normal`` entries.
    public var data: [UInt8]

    /// Creates an entry.
    public init(term: Term, index: LogIndex, kind: Kind = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }

    /// Bytes this entry costs in a message, for batching limits.
    var approximateSize: Int { data.count + 24 }
}

/// The state a member must persist before it answers a message or acknowledges an entry.
public struct HardState: Sendable, Hashable {
    /// The latest term this member has seen.
    public var term: Term
    /// The candidate this member voted for in `term`, or 0.
    public var vote: NodeID
    /// The highest index this member knows to be committed.
    public var commit: LogIndex

    /// Creates a hard state.
    public init(term: Term = 0, vote: NodeID = 0, commit: LogIndex = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// The members of a group: voters count towards quorums and may lead; learners only replicate.
///
/// Both lists are kept sorted so that iterating them is deterministic (a `Set`'s order is
/// seeded per process, which would make simulations unreplayable).
public struct Membership: Sendable, Hashable {
    /// Members that vote and count in quorums, ascending.
    public private(set) var voters: [NodeID]
    /// Members that receive the log but do not vote, ascending.
    public private(set) var learners: [NodeID]

    /// Creates a membership; an ID in both lists is a voter.
    public init(voters: [NodeID], learners: [NodeID] = []) {
        let voterSet = Set(voters)
        self.voters = voterSet.sorted()
        self.learners = Set(learners).subtracting(voterSet).sorted()
    }

    /// Voters and learners, ascending.
    public var all: [NodeID] { (voters + learners).sorted() }

    /// Whether `id` votes.
    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }

    /// Whether `id` is a voter or a learner.
    public func contains(_ id: NodeID) -> Bool { voters.contains(id) || learners.contains(id) }

    /// The smallest number of voters that forms a majority.
    public var quorum: Int { voters.count / 2 + 1 }

    /// The membership after `change`, or a reason it cannot be made.
    public func applying(_ change: MembershipChange) -> Result<Membership, RaftError> {
        switch change.action {
        case .addVoter:
            if isVoter(change.node) { return .failure(.invalidMembershipChange("\(change.node) is already a voter")) }
            return .success(Membership(voters: voters + [change.node], learners: learners.filter { $0 != change.node }))
        case .addLearner:
            if contains(change.node) { return .failure(.invalidMembershipChange("\(change.node) is already a member")) }
            return .success(Membership(voters: voters, learners: learners + [change.node]))
        case .remove:
            if !contains(change.node) { return .failure(.invalidMembershipChange("\(change.node) is not a member")) }
            let remaining = voters.filter { $0 != change.node }
            if remaining.isEmpty { return .failure(.invalidMembershipChange("cannot remove the last voter")) }
            return .success(Membership(voters: remaining, learners: learners.filter { $0 != change.node }))
        }
    }
}

/// One server added, promoted or removed: the unit of membership change (Raft dissertation §4.1).
///
/// Changing one voter at a time keeps every majority of the old configuration overlapping every
/// majority of the new one, so the change needs no joint phase.
public struct MembershipChange: Sendable, Hashable {
    /// What happens to `node`.
    public enum Action: UInt8, Sendable {
        /// Add as a voter, or promote a learner.
        case addVoter = 0
        /// Add as a learner that replicates without voting, to catch up first.
        case addLearner = 1
        /// Remove a voter or a learner.
        case remove = 2
    }

    /// What happens.
    public var action: Action
    /// To whom.
    public var node: NodeID
    /// Bytes the core carries without reading them, as etcd's `ConfChange.Context`: hosts put
    /// the member's address here, so that every member learns it from the same log entry
    /// that changes the membership, and from nothing else.
    public var context: [UInt8]

    /// Creates a change.
    public init(_ action: Action, node: NodeID, context: [UInt8] = []) {
        self.action = action
        self.node = node
        self.context = context
    }

    /// The change as an entry payload: action byte, the node ID big-endian, then, when there is
    /// a context, its length-prefixed bytes (entries written before contexts existed end after
    /// the ID and decode with an empty one).
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 13 + context.count)
        writer.byte(action.rawValue)
        writer.word64(node)
        if !context.isEmpty { writer.field(context) }
        return writer.bytes
    }

    /// The largest context a change may carry (an address is a few dozen bytes).
    public static let maxContextBytes = 4_096

    /// Decodes ``encoded``; nil for anything else.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let raw = reader.byte(), let action = Action(rawValue: raw), let node = reader.word64() else { return nil }
        var context: [UInt8] = []
        if !reader.atEnd {
            guard let field = reader.field(limit: Self.maxContextBytes), !field.isEmpty else { return nil }
            context = field
        }
        guard reader.atEnd else { return nil }
        self.init(action, node: node, context: context)
    }
}

/// What a snapshot stands for: the log up to `index` (whose entry had `term`), and the
/// membership in force at that point.
public struct SnapshotMetadata: Sendable, Hashable {
    /// The last log index the snapshot covers.
    public var index: LogIndex
    /// The term of the entry at `index`.
    public var term: Term
    /// The membership as of `index`.
    public var membership: Membership

    /// Creates snapshot metadata.
    public init(index: LogIndex, term: Term, membership: Membership) {
        self.index = index
        self.term = term
        self.membership = membership
    }
}

/// A state-machine snapshot: metadata plus the application's opaque bytes.
public struct Snapshot: Sendable, Hashable {
    /// What the snapshot covers.
    public var metadata: SnapshotMetadata
    /// The state machine's serialized state at `metadata.index`.
    public var data: [UInt8]

    /// Creates a snapshot.
    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}

/// The role a member plays in its current term.
public enum Role: String, Sendable, Hashable {
    /// Follows a leader (or waits for one).
    case follower
    /// Asking for pre-votes, before it disturbs anyone's term.
    case preCandidate
    /// Asking for votes in a new term.
    case candidate
    /// Leads the term.
    case leader
}

/// Why the core refused a request of its host.
public enum RaftError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Only the leader accepts proposals and reads; `leader` is the known leader or 0.
    case notLeader(leader: NodeID)
    /// A leadership transfer is under way; proposals wait until it ends.
    case transferInProgress
    /// A membership change is already in the log and not yet committed.
    case membershipChangePending
    /// The requested change makes no sense for the current membership.
    case invalidMembershipChange(String)
    /// The log has no entry at that index any more, or not yet.
    case unavailable(LogIndex)

    public var description: String {
        switch self {
        case .notLeader(let leader): leader == 0 ? "not the leader (no leader known)" : "not the leader (leader is \(leader))"
        case .transferInProgress: "a leadership transfer is in progress"
        case .membershipChangePending: "a membership change is still pending"
        case .invalidMembershipChange(let why): "invalid membership change: \(why)"
        case .unavailable(let index): "log index \(index) is not available"
        }
    }
}
