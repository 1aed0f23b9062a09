// What a member has made durable, and the one set of rules for changing it: the write-ahead
// log replays its records through these rules, and the simulator's disk is this type, so the
// two cannot disagree on what a torn or truncating write leaves behind.

/// The durable state of one member: hard state, the latest snapshot's metadata, the entries after it.
public struct PersistentLog: Sendable, Equatable {
    /// Term, vote and commit as last written.
    public private(set) var hardState = HardState()
    /// The snapshot the log starts after, or nil.
    public private(set) var snapshot: SnapshotMetadata?
    /// Entries after the snapshot, contiguous.
    public private(set) var entries: [Entry] = []

    /// An empty log.
    public init() {}

    /// One durable write, in the order a host makes them for a ``Ready``.
    public enum Record: Sendable, Equatable {
        /// The log now starts after this snapshot.
        case snapshot(SnapshotMetadata)
        /// An entry; one at an index already present replaces it and everything after it.
        case entry(Entry)
        /// New term, vote and commit.
        case hardState(HardState)
    }

    /// The records a ``Ready`` asks to persist, in write order: snapshot, entries, hard state.
    public static func records(of ready: Ready) -> [Record] {
        var records: [Record] = []
        if let snapshot = ready.snapshot { records.append(.snapshot(snapshot.metadata)) }
        records += ready.entries.map(Record.entry)
        if let hardState = ready.hardState { records.append(.hardState(hardState)) }
        return records
    }

    /// The last index held (the snapshot's when there are no entries after it).
    public var lastIndex: LogIndex { entries.last?.index ?? snapshot?.index ?? 0 }

    /// The term at `index`, or nil when the log does not hold it.
    public func term(at index: LogIndex) -> Term? {
        if index == 0 { return 0 }
        if let snapshot, index == snapshot.index { return snapshot.term }
        guard let first = entries.first?.index, index >= first, index <= lastIndex else { return nil }
        return entries[Int(index - first)].term
    }

    /// Applies one record. Throws when an entry would leave a gap (a corrupt or reordered log).
    public mutating func apply(_ record: Record) throws(StorageError) {
        switch record {
        case .hardState(let state):
            hardState = state
        case .entry(let entry):
            if let first = entries.first?.index, entry.index >= first, entry.index <= lastIndex {
                entries.removeLast(Int(lastIndex - entry.index + 1))
            }
            guard entry.index == lastIndex + 1 else {
                throw .corrupt("entry \(entry.index) does not follow \(lastIndex)")
            }
            entries.append(entry)
        case .snapshot(let metadata):
            // Entries after the snapshot stay when the log agrees with it, as the core's log does.
            let keep = term(at: metadata.index) == metadata.term
            entries = keep ? entries.filter { $0.index > metadata.index } : []
            snapshot = metadata
        }
    }
}
