import Raft

/// The Raft safety properties (Raft paper, Figure 3), checked as the simulation runs.
///
/// - Election safety: at most one leader per term.
/// - Log matching: two logs holding an entry with the same index and term hold the same
///   entry and agree on everything before it. Checked incrementally: every (index, term)
///   ever persisted anywhere maps to one payload and one predecessor term; by induction on
///   the index that is the whole property.
/// - Leader completeness: a new leader's log holds every entry anyone has applied.
/// - State machine safety: no two members apply different entries at the same index.
public struct SafetyChecker {
    /// What was found, at most 20.
    public private(set) var violations: [String] = []
    private var leaderOfTerm: [Term: NodeID] = [:]
    private var persisted: [LogKey: (kind: Entry.Kind, data: [UInt8], previousTerm: Term)] = [:]
    private var applied: [LogIndex: Entry] = [:]
    /// The highest index anyone applied.
    public private(set) var highestApplied: LogIndex = 0

    /// A checker that has seen nothing.
    public init() {}

    private struct LogKey: Hashable {
        var index: LogIndex
        var term: Term
    }

    /// Records a violation found elsewhere (by the history checker, or a host).
    public mutating func fail(_ description: String) {
        if violations.count < 20 { violations.append(description) }
    }

    /// `node` leads `term`.
    public mutating func observeLeader(_ node: NodeID, term: Term, time: Int) {
        if let existing = leaderOfTerm[term], existing != node {
            fail("t=\(time)ms election safety: \(existing) and \(node) both lead term \(term)")
        }
        leaderOfTerm[term] = node
    }

    /// How many terms had a leader.
    public var termsWithLeader: Int { leaderOfTerm.count }

    /// `node` made `entry` durable right after an entry of `previousTerm`.
    public mutating func observePersisted(_ entry: Entry, previousTerm: Term, node: NodeID, time: Int) {
        let key = LogKey(index: entry.index, term: entry.term)
        if let known = persisted[key] {
            if known.data != entry.data || known.kind != entry.kind || known.previousTerm != previousTerm {
                fail("t=\(time)ms log matching: node \(node) holds a different entry at index \(entry.index) term \(entry.term)")
            }
        } else {
            persisted[key] = (entry.kind, entry.data, previousTerm)
        }
    }

    /// `node` applied `entry` to its state machine.
    public mutating func observeApplied(_ entry: Entry, node: NodeID, time: Int) {
        if let known = applied[entry.index] {
            if known != entry {
                fail("t=\(time)ms state machine safety: node \(node) applied term \(entry.term) at index \(entry.index), another applied term \(known.term)")
            }
        } else {
            applied[entry.index] = entry
            highestApplied = max(highestApplied, entry.index)
        }
    }

    /// Every applied entry above the leader's snapshot must be in the new leader's log.
    public mutating func observeNewLeader(_ node: RaftNode, time: Int) {
        let status = node.status
        for index in (status.snapshotIndex + 1)...max(status.snapshotIndex + 1, highestApplied) {
            guard let entry = applied[index] else { continue }
            if node.entry(at: index) != entry {
                fail("t=\(time)ms leader completeness: leader \(status.id) of term \(status.term) lacks committed entry \(index) (term \(entry.term))")
                return
            }
        }
    }
}
