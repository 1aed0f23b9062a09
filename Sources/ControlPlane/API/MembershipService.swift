// Raft membership on 2377, to manager certificates only: a node that joined with the manager
// token asks the leader to add it at its address (as a learner, promoted to voter by the
// leader once it has caught up — etcd's safe way, and the only one that does not stall a
// one-manager swarm whose new second voter has not started yet). Only the leader can change the
// membership; a follower answers NOT_LEADER with the leader's address and the caller asks
// there (the caller's certificate is its identity, which a forwarded call would lose).

import ClusterAPI
import Foundation
import GRPCCore
import PKI
import Raft
import RaftHost

struct MembershipService: Shoal_Api_RaftMembership.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer
    private var manager: Manager { get throws(APIError) { try handle.require() } }

    func join(request: Shoal_Api_JoinRequest, context: ServerContext) async throws -> Shoal_Api_JoinResponse {
        do {
            guard case .node(let identity) = try authorizer.requireManager(context) else {
                throw APIError(.permissionDenied, "only a node with a manager certificate joins Raft")
            }
            try await manager.requireLeadership()
            guard let node = try await manager.read({ $0.nodes[identity.nodeID] }), node.role == .manager else {
                throw APIError(.permissionDenied, "node \(identity.nodeID) is not a manager in the store")
            }
            guard (try? APITarget.dialable(request.addr)) != nil else {
                throw APIError(.invalidSpec, "\(request.addr) is not host:port", field: "addr")
            }
            let directory = try await directory()
            var raftID = node.managerStatus.raftID
            if raftID == 0 || !directory.status.membership.contains(raftID) {
                raftID = UInt64.random(in: 1...UInt64.max)
                while directory.status.membership.contains(raftID) { raftID = UInt64.random(in: 1...UInt64.max) }
                // A learner first: its entry commits with the current voters alone (the new member
                // starts only once this call returns), and the leader promotes it once caught up.
                try await change(MembershipChange(.addLearner, node: raftID, context: Array(request.addr.utf8)))
                let (id, address) = (raftID, request.addr)
                try await manager.updateNode(identity.nodeID) { node in
                    node.managerStatus.raftID = id
                    node.managerStatus.addr = address
                    return true
                }
            }
            let after = try await self.directory()
            var response = Shoal_Api_JoinResponse()
            response.raftID = raftID
            response.members = after.status.membership.all.map { id in
                var member = Shoal_Api_RaftMember()
                member.raftID = id
                member.addr = after.addresses[id] ?? ""
                return member
            }
            try manager.logger.info("manager joined raft", metadata: ["node": "\(identity.nodeID)", "raftID": "\(raftID)"])
            return response
        } catch {
            throw APIError(error).rpcError
        }
    }

    func leave(request: Shoal_Api_LeaveRequest, context: ServerContext) async throws -> Shoal_Api_LeaveResponse {
        do {
            guard case .node(let identity) = try authorizer.requireManager(context) else {
                throw APIError(.permissionDenied, "only a manager leaves Raft")
            }
            try await manager.requireLeadership()
            guard let node = try await manager.read({ $0.nodes[identity.nodeID] }), node.managerStatus.raftID == request.raftID
            else { throw APIError(.permissionDenied, "raft member \(request.raftID) is not the caller's") }
            try await change(MembershipChange(.remove, node: request.raftID))
            return Shoal_Api_LeaveResponse()
        } catch {
            throw APIError(error).rpcError
        }
    }


    private func directory() async throws(APIError) -> (status: RaftStatus, addresses: [NodeID: String]) {
        do { return try await manager.store.member.directory().get() } catch { throw APIError(.unavailable, "the manager is stopping") }
    }

    /// Proposes `change`, waiting up to 10 s while another change is pending: Raft takes one
    /// at a time, and the one before (a join, or the promotion of the last learner) ends on
    /// its own once it commits — a manager joining meanwhile waits rather than fails.
    private func change(_ change: MembershipChange) async throws(APIError) {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                _ = try await manager.store.member.proposeMembershipChange(change).get()
                return
            } catch RaftMemberError.refused(.membershipChangePending, _) where ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(100))
            } catch let error as RaftMemberError {
                throw Manager.apiError(.raft(error))
            } catch {
                throw APIError(.unavailable, "\(error)")
            }
        }
    }
}
