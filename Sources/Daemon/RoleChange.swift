// A node takes the role its node object says (`node promote` / `node demote` set the desired
// role; the leader writes the role once it is safe: a demoted manager has already left Raft).
// Promoted: the node gets a manager certificate, joins Raft as a learner through the leader and
// starts its manager. Demoted: it stops its manager, drops its Raft data and gets a worker
// certificate. Its tasks, data plane and session go on throughout.

import ClusterAPI
import ControlPlane
import Foundation
import PKI
import X509

extension Daemon {
    /// Starts a change to `node`'s role when it differs from what this daemon runs (one at a time).
    func takeRole(of node: Shoal_Api_Node) {
        guard let state = joined, state.roleChange == nil else { return }
        let wantsManager = node.role == .manager
        guard wantsManager != state.membership.isManager else { return }
        joined?.roleChange = Task { [weak self] in
            await self?.changeRole(toManager: wantsManager)
        }
    }

    /// Bounded: 30 attempts, a second apart (a manager that has not applied the new role yet
    /// signs the old one); the next node object from the session starts it again after that.
    private func changeRole(toManager: Bool) async {
        defer { joined?.roleChange = nil }
        let role = toManager ? "manager" : "worker"
        for attempt in 1...30 where !Task.isCancelled {
            do {
                if toManager { try await becomeManager() } else { try await becomeWorker() }
                logger.info("role changed", metadata: ["role": "\(role)"])
                return
            } catch {
                logger.warning("role change failed", metadata: ["to": "\(role)", "attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func becomeManager() async throws {
        try await renewCertificate()
        guard let state = joined, let leaf = state.credentials.current.certificateChain.first,
            try state.roots.identity(of: try Certificate(derEncoded: leaf)).role == .manager
        else { throw APIError(.unavailable, "the CA has not signed a manager certificate for this node yet") }
        let joinedRaft = try await firstManagerAnswering(state.membership.managers) { address in
            try await self.joinRaft(
                at: address, advertise: state.membership.advertiseAddress, credentials: state.credentials.current, roots: state.roots)
        }
        var membership = state.membership
        membership.isManager = true
        membership.raftID = joinedRaft.raftID
        membership.raftPeers = Dictionary(joinedRaft.members.map { ($0.raftID, $0.addr) }, uniquingKeysWith: { a, _ in a })
        try files.removeRaftData()
        let (manager, tasks) = try startManager(
            membership, raftID: joinedRaft.raftID, peers: membership.raftPeers, bootstrap: false, connections: state.connections,
            roots: state.roots)
        try files.save(membership)
        joined?.membership = membership
        joined?.manager = manager
        joined?.managerTasks = tasks
    }

    private func becomeWorker() async throws {
        guard let state = joined else { return }
        if let manager = state.manager {
            handle.set(nil)
            for task in state.managerTasks { task.cancel() }
            joined?.manager = nil
            joined?.managerTasks = []
            await Task.detached { manager.stop() }.value
        }
        var membership = state.membership
        membership.isManager = false
        membership.raftID = nil
        membership.raftPeers = [:]
        try files.save(membership)
        joined?.membership = membership
        try files.removeRaftData()
        try await renewCertificate()
    }
}
