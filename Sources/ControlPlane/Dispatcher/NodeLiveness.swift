// Which nodes are alive, as the leading manager's dispatcher sees it: each session's last
// heartbeat. A node that misses three heartbeat periods is written Down and its session ends;
// a node that opens a session is written Ready. A manager that has just become leader knows nobody's last
// heartbeat, so every node gets a full grace period from that moment to find the new leader —
// a leader change alone never takes a node down. Meanwhile the nodes it has not heard from are
// written Unknown, as swarm does: what they run is not known, and nothing new goes to them.

import ClusterAPI
import Foundation
import PKI
import Synchronization

/// Heartbeats per node and the sessions they belong to.
final class NodeLiveness: Sendable {
    private struct State {
        var lastSeen: [String: ContinuousClock.Instant] = [:]
        var sessions: [String: String] = [:]  // session ID → node ID
        var sessionOpened: [String: ContinuousClock.Instant] = [:]  // node ID → when its session opened
        var leadingSince: ContinuousClock.Instant?
        /// Set when this manager starts to lead, until the nodes without a session are written Unknown.
        var unknownPending = false
        var stopped = false
    }
    private let state = Mutex(State())

    /// Missed periods before a node is Down.
    static let missedHeartbeats = 3.0

    /// Opens a session for `node`; returns its ID.
    func open(node: String) -> String {
        let session = RandomID.make()
        state.withLock {
            $0.sessions = $0.sessions.filter { $0.value != node }
            $0.sessions[session] = node
            $0.sessionOpened[node] = .now
            $0.lastSeen[node] = .now
        }
        return session
    }

    /// Records a heartbeat; false when the session is unknown (expired, or another leader's).
    func heartbeat(session: String, node: String) -> Bool {
        state.withLock {
            guard $0.sessions[session] == node else { return false }
            $0.lastSeen[node] = .now
            return true
        }
    }

    /// Whether `session` is still `node`'s current one.
    func isCurrent(session: String, node: String) -> Bool {
        state.withLock { $0.sessions[session] == node }
    }

    /// Called on each check: whether this manager leads. Leading anew resets the baseline.
    func leading(_ leads: Bool) {
        state.withLock {
            if !leads {
                $0.leadingSince = nil
                $0.sessions = [:]
                $0.sessionOpened = [:]
                $0.lastSeen = [:]
            } else if $0.leadingSince == nil {
                $0.leadingSince = .now
                $0.unknownPending = true
            }
        }
    }

    /// The status each of `nodes` (ID → stored status) should now be written with, where it
    /// differs: after a leadership change, Unknown for the Ready nodes without a session with
    /// this leader (once: ``wroteUnknown()`` confirms it); at any time, Ready for a node whose
    /// session has been open for `settled` but whose status says Unknown (its session opened
    /// while it was being written Unknown; a younger session writes Ready itself).
    func statusChanges(_ nodes: [String: Shoal_Api_NodeState], settled: Duration = .seconds(1)) -> [String: Shoal_Api_NodeState] {
        state.withLock { state in
            guard state.leadingSince != nil else { return [:] }
            let connected = Set(state.sessions.values)
            let now = ContinuousClock.now
            var changes: [String: Shoal_Api_NodeState] = [:]
            for (id, status) in nodes {
                if connected.contains(id) {
                    if status == .unknown, let opened = state.sessionOpened[id], now - opened >= settled { changes[id] = .ready }
                } else if state.unknownPending && status == .ready {
                    changes[id] = .unknown
                }
            }
            return changes
        }
    }

    /// The Unknown statuses of a leadership change are written.
    func wroteUnknown() { state.withLock { $0.unknownPending = false } }

    /// The nodes among `nodes` (ID → status) whose heartbeats stopped for longer than the
    /// grace period, measured from their last heartbeat or from when this leader took over.
    func expired(_ nodes: [String: Shoal_Api_NodeState], period: Duration) -> [String] {
        state.withLock { state in
            guard let since = state.leadingSince else { return [] }
            let now = ContinuousClock.now
            let grace = period * Self.missedHeartbeats
            let expired = nodes.compactMap { id, status -> String? in
                guard status != .down else { return nil }
                let last = max(state.lastSeen[id] ?? since, since)
                return now - last > grace ? id : nil
            }
            // A node written Down loses its session: its next heartbeat is refused, so it opens
            // a new session, which writes it Ready. A late heartbeat on the old session would
            // otherwise keep a live node Down for good.
            let gone = Set(expired)
            state.sessions = state.sessions.filter { !gone.contains($0.value) }
            return expired
        }
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    func stop() { state.withLock { $0.stopped = true } }
}
