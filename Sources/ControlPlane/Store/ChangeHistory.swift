// The store's recent commits, kept so that a watch can resume "after version V" on any
// manager — including one that became leader since — with no gap and no duplicate. Every
// manager applies the same log, so each one's history holds the same commits; a watch from
// before what a manager still holds gets a clear "history compacted" instead of a silent gap.

/// Recent commits in version order, bounded.
public struct ChangeHistory: Sendable {
    /// Commits kept at most; older ones are dropped first.
    public static let defaultLimit = 10_000

    private var commits: [StoreCommit] = []
    private var start = 0
    /// Every commit after this version is held (none before it may be asked for).
    public private(set) var floor: UInt64
    private let limit: Int

    /// An empty history that holds everything after `version`.
    public init(startingAfter version: UInt64 = 0, limit: Int = ChangeHistory.defaultLimit) {
        precondition(limit > 0)
        floor = version
        self.limit = limit
    }

    /// The newest version recorded (the floor when none is).
    public var newest: UInt64 { commits.last?.version ?? floor }

    /// Appends a commit; versions must grow. Only the store records its own commits.
    public mutating func record(_ commit: StoreCommit) {
        precondition(commit.version > newest, "commit \(commit.version) recorded after \(newest)")
        commits.append(commit)
        if commits.count - start > limit {
            floor = commits[start].version
            start += 1
            // Drop the dead prefix now and then, so the array does not grow without bound.
            if start >= limit {
                commits.removeFirst(start)
                start = 0
            }
        }
    }

    /// Every commit after `version`, oldest first; nil when some of them are no longer held.
    public func commits(after version: UInt64) -> ArraySlice<StoreCommit>? {
        guard version >= floor else { return nil }
        let live = commits[start...]
        // Versions grow along the array: find the first one after `version`.
        var low = live.startIndex
        var high = live.endIndex
        while low < high {
            let middle = (low + high) / 2
            if live[middle].version <= version { low = middle + 1 } else { high = middle }
        }
        return live[low...]
    }
}
