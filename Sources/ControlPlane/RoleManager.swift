// Promotions and demotions, decided by the leader (swarmkit's role manager): `node promote` and
// `node demote` only change a node's desired role. A promotion is written at once (the node
// then gets a manager certificate and joins Raft itself, as a learner the leader promotes
// once caught up). A demotion first takes the manager out of Raft — after handing leadership
// over when it is this leader, and only while the managers left keep a quorum — and then
// writes the role, so a node told it is a worker is no longer a voter anywhere.

import ClusterAPI
import Foundation
import Raft
import RaftHost

extension Manager {
    /// Why demoting the manager with Raft ID `raftID` is unsafe now, or nil when it is safe:
    /// the last manager, or one whose removal leaves fewer reachable voters than a quorum.
    func demotionRisk(of node: Shoal_Api_Node, managers: Int) async -> String? {
        guard node.role == .manager else { return nil }
        guard managers > 1 else { return "it is the last manager of the swarm: promote another node first" }
        let raftID = node.managerStatus.raftID
        guard raftID != 0, let status = try? await store.member.directory().get().status, status.membership.contains(raftID) else { return nil }
        let remaining = status.membership.voters.filter { $0 != raftID }
        let reachable = remaining.filter { $0 == status.id || status.reachable.contains($0) }
        let quorum = remaining.count / 2 + 1
        guard reachable.count >= quorum else {
            return "the \(remaining.count) managers left would have \(reachable.count) reachable, fewer than the \(quorum) a quorum needs: "
                + "bring the unreachable managers back first"
        }
        return nil
    }

    /// One pass over `nodes` (as the leader's liveness pass just read them) whose role differs
    /// from their desired role; each write re-reads its node.
    func reconcileRoles(_ nodes: [Shoal_Api_Node]) async {
        for node in nodes where node.spec.desiredRole != node.role {
            switch node.spec.desiredRole {
            case .manager:
                let promoted = try? await updateNode(node.id) { node in
                    guard node.spec.desiredRole == .manager, node.role != .manager else { return false }
                    node.role = .manager
                    node.managerStatus = Shoal_Api_ManagerStatus()
                    node.managerStatus.addr = node.status.addr
                    return true
                }
                if promoted?.role == .manager { logger.info("node promoted", metadata: ["node": "\(node.id)"]) }
            case .worker:
                await demote(node, managers: nodes.filter { $0.role == .manager }.count)
            default:
                continue
            }
        }
    }

    private func demote(_ node: Shoal_Api_Node, managers: Int) async {
        let raftID = node.managerStatus.raftID
        guard let status = try? await store.member.directory().get().status else { return }
        if raftID != 0 && status.membership.contains(raftID) {
            if raftID == status.id {
                // This leader is the one demoted: another voter leads first, and does the rest.
                let others = status.membership.voters.filter { $0 != raftID && status.reachable.contains($0) }
                let target = others.max { (status.matched[$0] ?? 0) < (status.matched[$1] ?? 0) }
                if let target {
                    logger.info("handing leadership over before this manager's demotion", metadata: ["to": "\(target)"])
                    _ = try? await store.member.transferLeadership(to: target).get()
                }
                return
            }
            if let risk = await demotionRisk(of: node, managers: managers) {
                logger.warning("demotion waits", metadata: ["node": "\(node.id)", "why": "\(risk)"])
                return
            }
            do {
                _ = try await store.member.proposeMembershipChange(MembershipChange(.remove, node: raftID)).get()
            } catch {
                logger.warning("demotion: cannot remove the Raft member yet", metadata: ["node": "\(node.id)", "error": "\(error)"])
                return
            }
        }
        let demoted = try? await updateNode(node.id) { node in
            guard node.spec.desiredRole == .worker, node.role == .manager else { return false }
            node.role = .worker
            node.managerStatus = Shoal_Api_ManagerStatus()
            return true
        }
        if demoted?.role == .worker { logger.info("node demoted", metadata: ["node": "\(node.id)"]) }
    }
}
