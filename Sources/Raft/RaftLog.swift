// The log as one member sees it: a snapshot, the entries after it, and three marks — what
// is persisted (stabled), what is known committed, what was handed to the state machine.
//
// Invariants (checked by `assertInvariants`): snapshot.index ≤ applied ≤ committed ≤ lastIndex,
// entries are contiguous from snapshot.index + 1 with non-decreasing terms.

/// A member's copy of the replicated log.
struct RaftLog {
    /// The latest snapshot's metadata (index 0, term 0 when there is none).
    private(set) var snapshotMetadata: SnapshotMetadata
    /// The latest snapshot's data, kept to send to followers that fell behind it.
    private(set) var snapshotData: [UInt8]
    /// Entries after the snapshot, contiguous.
    private(set) var entries: [Entry]
    /// The highest index known committed.
    private(set) var committed: LogIndex
    /// The highest index handed to the host to apply.
    private(set) var applied: LogIndex
    /// The highest index the host has persisted (entries after it are still to be written).
    private(set) var stabled: LogIndex
    /// Membership-change entries still in `entries` with the membership each one makes, ascending.
    private var membershipHistory: [(index: LogIndex, membership: Membership)] = []
    /// Lets a leader overwrite committed entries instead of stopping the process: only for
    /// the deliberately broken variant, whose damage the simulator's checkers must find.
    var toleratesOverwritingCommitted = false

    /// Restores a log from what the host persisted.
    init(snapshot: Snapshot?, entries: [Entry], committed: LogIndex, initialMembership: Membership) {
        let metadata = snapshot?.metadata ?? SnapshotMetadata(index: 0, term: 0, membership: initialMembership)
        snapshotMetadata = metadata
        snapshotData = snapshot?.data ?? []
        let kept = entries.filter { $0.index > metadata.index }
        self.entries = kept
        let last = kept.last?.index ?? metadata.index
        self.committed = min(max(committed, metadata.index), last)
        applied = metadata.index
        stabled = last
        rebuildMembershipHistory()
        assertInvariants()
    }

    var firstIndex: LogIndex { snapshotMetadata.index + 1 }
    var lastIndex: LogIndex { entries.last?.index ?? snapshotMetadata.index }
    var lastTerm: Term { entries.last?.term ?? snapshotMetadata.term }

    /// The membership made by the latest membership entry in the log, committed or not
    /// (Raft dissertation §4.1: a server uses the newest configuration in its log).
    var membership: Membership { membershipHistory.last?.membership ?? snapshotMetadata.membership }

    /// The membership in force at `index` (index ≥ snapshot index).
    func membership(at index: LogIndex) -> Membership {
        membershipHistory.last(where: { $0.index <= index })?.membership ?? snapshotMetadata.membership
    }

    /// Index of the newest membership entry, committed or not (0 when it is the snapshot's).
    var lastMembershipIndex: LogIndex { membershipHistory.last?.index ?? 0 }

    /// The term of the entry at `index`, or nil when it is compacted away or not there yet.
    func term(at index: LogIndex) -> Term? {
        if index == snapshotMetadata.index { return snapshotMetadata.term }
        return entry(at: index)?.term
    }

    /// The entry at `index`, or nil when it is compacted away or not there yet.
    func entry(at index: LogIndex) -> Entry? {
        guard index > snapshotMetadata.index, index <= lastIndex else { return nil }
        return entries[Int(index - firstIndex)]
    }

    /// Whether the log holds an entry at `index` with `term`.
    func matches(index: LogIndex, term: Term) -> Bool { self.term(at: index) == term }

    /// Whether a log ending at (`index`, `term`) is at least as up to date as this one (§5.4.1).
    func isUpToDate(lastIndex index: LogIndex, lastTerm term: Term) -> Bool {
        term > lastTerm || (term == lastTerm && index >= lastIndex)
    }

    /// Entries in `from...` up to `maxBytes` (at least one when any exist), or nil if compacted.
    func entries(from index: LogIndex, maxBytes: Int) -> [Entry]? {
        guard index >= firstIndex else { return nil }
        guard index <= lastIndex else { return [] }
        var result: [Entry] = []
        var bytes = 0
        for position in Int(index - firstIndex)..<entries.count {
            let entry = entries[position]
            if !result.isEmpty && bytes + entry.approximateSize > maxBytes { break }
            bytes += entry.approximateSize
            result.append(entry)
        }
        return result
    }

    /// The largest index ≤ `index` whose term is ≤ `term` (etcd's findConflictByTerm): the
    /// first place a log whose entry at `index` has `term` could agree with this one.
    func lastIndex(atOrBefore index: LogIndex, withTermAtMost term: Term) -> LogIndex {
        var candidate = min(index, lastIndex)
        while candidate > snapshotMetadata.index, let found = self.term(at: candidate), found > term {
            candidate -= 1
        }
        return candidate
    }

    /// Appends the leader's own new entries (indices must follow `lastIndex`).
    mutating func appendAsLeader(_ new: [Entry]) {
        for entry in new {
            precondition(entry.index == lastIndex + 1, "leader appends must be contiguous")
            entries.append(entry)
            recordMembership(entry)
        }
    }

    /// Merges entries from a leader that follow (`index`, `term`): conflicting suffixes are cut,
    /// duplicates skipped. Returns the last index now known to match the leader, or nil when
    /// the log has no entry (`index`, `term`).
    mutating func tryAppend(after index: LogIndex, term: Term, entries new: [Entry]) -> LogIndex? {
        guard matches(index: index, term: term) else { return nil }
        var position = 0
        // Skip what is already there; an entry at a compacted index is committed and matches.
        while position < new.count {
            let entry = new[position]
            if entry.index <= snapshotMetadata.index { position += 1; continue }
            guard let existing = self.term(at: entry.index) else { break }
            if existing != entry.term {
                precondition(
                    entry.index > committed || toleratesOverwritingCommitted,
                    "a leader tried to overwrite committed entry \(entry.index)")
                if entry.index <= committed { committed = entry.index - 1 }
                if entry.index <= applied { applied = entry.index - 1 }
                truncate(after: entry.index - 1)
                break
            }
            position += 1
        }
        while position < new.count {
            let entry = new[position]
            precondition(entry.index == lastIndex + 1, "appended entries must be contiguous")
            entries.append(entry)
            recordMembership(entry)
            position += 1
        }
        return index + UInt64(new.count)
    }

    /// Raises the commit mark (never lowers it, never past the log's end).
    mutating func commit(to index: LogIndex) {
        let target = min(index, lastIndex)
        if target > committed { committed = target }
    }

    /// Committed entries not yet handed to the host, up to `maxBytes` (at least one).
    func entriesToApply(maxBytes: Int) -> [Entry] {
        guard committed > applied else { return [] }
        let start = Int(applied + 1 - firstIndex)
        let end = Int(committed + 1 - firstIndex)
        var result: [Entry] = []
        var bytes = 0
        for position in start..<end {
            if !result.isEmpty && bytes + entries[position].approximateSize > maxBytes { break }
            bytes += entries[position].approximateSize
            result.append(entries[position])
        }
        return result
    }

    /// Entries the host has not persisted yet.
    var unstableEntries: [Entry] {
        guard lastIndex > stabled else { return [] }
        return Array(entries[Int(stabled + 1 - firstIndex)...])
    }

    mutating func markStable(through index: LogIndex) { stabled = max(stabled, min(index, lastIndex)) }

    mutating func markApplied(through index: LogIndex) {
        precondition(index <= committed, "applied past commit")
        applied = max(applied, index)
    }

    /// Drops the entries up to `index` (already applied) in favour of the host's snapshot.
    mutating func compact(to index: LogIndex, data: [UInt8]) {
        precondition(index <= applied, "cannot compact unapplied entries")
        guard index > snapshotMetadata.index, let term = term(at: index) else { return }
        let dropped = Int(index - snapshotMetadata.index)
        snapshotMetadata = SnapshotMetadata(index: index, term: term, membership: membership(at: index))
        snapshotData = data
        entries.removeFirst(dropped)
        membershipHistory.removeAll { $0.index <= index }
        assertInvariants()
    }

    /// Replaces the log by a snapshot received from the leader. Entries after it are kept when
    /// the log agrees with the snapshot's last entry (they may still be valid), else dropped.
    mutating func restore(_ snapshot: Snapshot) {
        let metadata = snapshot.metadata
        if matches(index: metadata.index, term: metadata.term) && metadata.index <= lastIndex {
            entries.removeFirst(Int(metadata.index - (firstIndex - 1)))
        } else {
            entries = []
            stabled = metadata.index
        }
        snapshotMetadata = metadata
        snapshotData = snapshot.data
        committed = max(committed, metadata.index)
        applied = metadata.index
        stabled = max(min(stabled, lastIndex), metadata.index)
        rebuildMembershipHistory()
        assertInvariants()
    }

    private mutating func truncate(after index: LogIndex) {
        entries.removeLast(Int(lastIndex - index))
        stabled = min(stabled, index)
        membershipHistory.removeAll { $0.index > index }
    }

    private mutating func recordMembership(_ entry: Entry) {
        guard entry.kind == .membershipChange, let change = MembershipChange(encoded: entry.data),
            case .success(let next) = membership.applying(change)
        else { return }
        membershipHistory.append((entry.index, next))
    }

    private mutating func rebuildMembershipHistory() {
        membershipHistory = []
        for entry in entries { recordMembership(entry) }
    }

    func assertInvariants() {
        precondition(snapshotMetadata.index <= applied && applied <= committed && committed <= lastIndex,
            "log marks out of order: snapshot \(snapshotMetadata.index) applied \(applied) committed \(committed) last \(lastIndex)")
        precondition(entries.first.map { $0.index == firstIndex } ?? true, "entries do not follow the snapshot")
    }
}
