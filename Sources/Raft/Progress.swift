// What a leader knows of one follower: how far its log matches, what to send next, and how
// many appends are in flight (flow control, as etcd's tracker.Progress and Inflights).

/// A leader's view of one follower's replication.
struct Progress {
    /// How the leader is sending to this follower.
    enum Mode: Equatable {
        /// Where the logs agree is not known: one append at a time, waiting for its answer.
        case probe
        /// Logs agree up to `match`: appends are pipelined up to the in-flight limit.
        case replicate
        /// The follower is behind the leader's snapshot; chunks of it are on the way.
        case snapshot(SnapshotTransfer)
    }

    /// A snapshot being streamed to a follower, one chunk in flight at a time.
    struct SnapshotTransfer: Equatable {
        var metadata: SnapshotMetadata
        /// Bytes the follower confirmed.
        var acknowledged: UInt64
        /// Ticks since the last confirmation, to resend a lost chunk.
        var idleTicks: Int
    }

    /// Highest index known to match the leader's log.
    var match: LogIndex = 0
    /// Next index to send.
    var next: LogIndex
    var mode: Mode = .probe
    /// In probe mode: an append was sent and no answer came yet.
    var probeSent = false
    /// Last index of each append in flight, oldest first (replicate mode).
    var inflight: [LogIndex] = []
    /// Heard from since the leader last checked its quorum.
    var recentlyActive = false
    /// Whether it was heard from in the last complete check-quorum period (what operators see
    /// as Reachable; `recentlyActive` is cleared at every check).
    var activeInLastPeriod = false

    init(next: LogIndex) { self.next = next }

    /// Records an acknowledgement up to `index`; false when it tells nothing new.
    mutating func acknowledge(_ index: LogIndex) -> Bool {
        var advanced = false
        if index > match {
            match = index
            advanced = true
            probeSent = false
        }
        next = max(next, index + 1)
        inflight.removeAll { $0 <= index }
        return advanced
    }

    /// Backs `next` up after a rejected append at `rejected`, towards `hint`; false when the
    /// rejection is stale (an answer to an append sent before the current one).
    mutating func backUp(rejected: LogIndex, hint: LogIndex) -> Bool {
        if mode == .replicate {
            if rejected <= match { return false }
            next = match + 1
            return true
        }
        if next == 0 || rejected != next - 1 { return false }
        next = max(min(rejected, hint + 1), match + 1)
        probeSent = false
        return true
    }

    /// Whether another append may go now.
    func canSend(maxInflight: Int) -> Bool {
        switch mode {
        case .probe: !probeSent
        case .replicate: inflight.count < maxInflight
        case .snapshot: false
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let transfer) = mode {
            next = max(match + 1, transfer.metadata.index + 1)
        } else {
            next = match + 1
        }
        mode = .probe
        probeSent = false
        inflight = []
    }

    mutating func becomeReplicate() {
        mode = .replicate
        next = match + 1
        inflight = []
    }
}
