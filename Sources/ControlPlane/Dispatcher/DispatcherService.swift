// The dispatcher on 2377: every node (managers too) keeps a session with the leading manager
// and heartbeats on it. Only the leader serves sessions — it alone writes node status — so a
// follower answers NOT_LEADER with the leader's address and the agent goes there.

import ClusterAPI
import Foundation
import GRPCCore
import Metrics
import PKI
import Raft
import RaftHost
import SwiftProtobuf

struct DispatcherService: Shoal_Api_Dispatcher.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer
    private var manager: Manager { get throws(APIError) { try handle.require() } }

    func session(
        request: Shoal_Api_SessionRequest, response: RPCWriter<Shoal_Api_SessionMessage>, context: ServerContext
    ) async throws {
        do {
            let identity = try authorizer.requireNode(context)
            try await manager.requireLeadership()
            guard var node = try await manager.read({ $0.nodes[identity.nodeID] }) else {
                throw APIError(.permissionDenied, "node \(identity.nodeID) is not in the swarm (removed?): join again")
            }
            let session = try manager.liveness.open(node: identity.nodeID)
            Counter(label: "shoal_dispatcher_sessions_opened_total").increment()
            // Written Ready (and with the address it advertises now); another writer meanwhile (the
            // leader's liveness pass after a leadership change) makes it read again.
            let advertised = request.hasNodeDescription ? request.nodeDescription.advertiseAddr : ""
            if let updated = try await manager.updateNode(identity.nodeID, { node in
                guard node.status.state != .ready || (!advertised.isEmpty && node.status.addr != advertised) else { return false }
                node.status.state = .ready
                node.status.message = ""
                if !advertised.isEmpty { node.status.addr = advertised }
                return true
            }) {
                node = updated
            }
            var lastManagers: [Shoal_Api_WeightedPeer] = []
            var lastKeys: [Shoal_Api_EncryptionKey]?
            var lastAttachments: [Shoal_Api_NetworkAttachment]?
            var lastRole: Shoal_Api_NodeRole?
            while try manager.liveness.isCurrent(session: session, node: identity.nodeID), !Task.isCancelled {
                let managers = try await managerPeers()
                let keys = KeyRotation.gossipKeys(of: try await manager.cluster())
                // The node's own attachments (its ingress sandbox address) arrive once the
                // allocator gives them.
                // (and its role, which it takes when a promotion or demotion is written).
                if let current = try await manager.read({ $0.nodes[identity.nodeID] }) {
                    node.attachments = current.attachments
                    node.role = current.role
                    node.spec.desiredRole = current.spec.desiredRole
                }
                // The first message waits for the swarm's first gossip key (the leader makes it
                // at once): a node's data plane starts sealed from the beginning.
                if (managers != lastManagers || keys != lastKeys || node.attachments != lastAttachments || node.role != lastRole) && !keys.isEmpty {
                    var message = Shoal_Api_SessionMessage()
                    message.sessionID = session
                    message.node = node
                    message.managers = managers
                    message.networkBootstrapKeys = keys
                    try await response.write(message)
                    lastManagers = managers
                    lastKeys = keys
                    lastAttachments = node.attachments
                    lastRole = node.role
                }
                try? await Task.sleep(for: .milliseconds(500))
                guard try await manager.isLeader() else { throw APIError(.notLeader, "leadership moved; reconnect") }
            }
        } catch {
            throw APIError(error).rpcError
        }
    }

    func heartbeat(request: Shoal_Api_HeartbeatRequest, context: ServerContext) async throws -> Shoal_Api_HeartbeatResponse {
        do {
            let identity = try authorizer.requireNode(context)
            guard try manager.liveness.heartbeat(session: request.sessionID, node: identity.nodeID) else {
                throw APIError(.invalidSession, "session \(request.sessionID) is not current here; open a new session")
            }
            Counter(label: "shoal_dispatcher_heartbeats_total").increment()
            var response = Shoal_Api_HeartbeatResponse()
            response.period = Google_Protobuf_Duration(timeInterval: try await heartbeatPeriod())
            return response
        } catch {
            throw APIError(error).rpcError
        }
    }

    /// Applies a batch of an agent's reports in one transaction: only for tasks placed on the
    /// caller's node, only states at or past ACCEPTED, and never backwards (a lower state is
    /// ignored, as a late duplicate). A batch raced by another writer is read again and retried.
    func updateTaskStatus(
        request: Shoal_Api_UpdateTaskStatusRequest, context: ServerContext
    ) async throws -> Shoal_Api_UpdateTaskStatusResponse {
        do {
            let identity = try authorizer.requireNode(context)
            let manager = try manager
            guard manager.liveness.isCurrent(session: request.sessionID, node: identity.nodeID) else {
                throw APIError(.invalidSession, "session \(request.sessionID) is not current here; open a new session")
            }
            for attempt in 0..<5 {
                let ids = request.updates.map(\.taskID)
                let tasks = try await manager.read { store in ids.map { store.tasks[$0] } }
                var latest: [String: Shoal_Api_Task] = [:]
                for (update, stored) in zip(request.updates, tasks) {
                    guard var task = latest[update.taskID] ?? stored else { continue }  // Deleted meanwhile: nothing to say.
                    guard task.nodeID == identity.nodeID else {
                        throw APIError(
                            .permissionDenied, "task \(update.taskID) is not assigned to node \(identity.nodeID)", objectID: update.taskID)
                    }
                    guard update.status.state.rawValue >= Shoal_Api_TaskState.accepted.rawValue,
                        update.status.state.rawValue <= Shoal_Api_TaskState.rejected.rawValue
                    else {
                        throw APIError(.invalidSpec, "an agent reports states from ACCEPTED to REJECTED, not \(update.status.state)", objectID: update.taskID)
                    }
                    guard update.status.state.rawValue >= task.status.state.rawValue, update.status != task.status else { continue }
                    task.status = update.status
                    task.status.appliedBy = manager.configuration.nodeID
                    task.status.appliedAt = Google_Protobuf_Timestamp(date: Date())
                    latest[task.id] = task
                }
                guard !latest.isEmpty else { return Shoal_Api_UpdateTaskStatusResponse() }
                if try await Self.write(latest, on: manager, retryingConflicts: attempt < 4) {
                    return Shoal_Api_UpdateTaskStatusResponse()
                }
            }
            throw APIError(.unavailable, "the tasks kept changing under the status update; retry")
        } catch {
            throw APIError(error).rpcError
        }
    }

    /// Writes `tasks` in one transaction; false when it raced another writer and may retry.
    private static func write(_ tasks: [String: Shoal_Api_Task], on manager: Manager, retryingConflicts: Bool) async throws(APIError) -> Bool {
        do {
            _ = try await manager.write(tasks.keys.sorted().map { Shoal_Api_StoreAction(.update, tasks[$0]!) })
        } catch where error.reason == .versionConflict && retryingConflicts {
            return false
        }
        Counter(label: "shoal_dispatcher_status_updates_total").increment(by: tasks.count)
        return true
    }

    /// The node's assignments: the complete set, then a change message after each store
    /// commit that changed the set, for as long as the session is current here.
    func assignments(
        request: Shoal_Api_AssignmentsRequest, response: RPCWriter<Shoal_Api_AssignmentsMessage>, context: ServerContext
    ) async throws {
        do {
            let identity = try authorizer.requireNode(context)
            let manager = try manager
            guard manager.liveness.isCurrent(session: request.sessionID, node: identity.nodeID) else {
                throw APIError(.invalidSession, "session \(request.sessionID) is not current here; open a new session")
            }
            let node = identity.nodeID
            var (sent, version) = try await manager.read { store in (AssignmentSet(for: node, in: store), store.version) }
            var message = Shoal_Api_AssignmentsMessage()
            message.type = .complete
            message.resultsIn = "\(version)"
            message.changes = sent.complete
            try await response.write(message)
            var appliesTo = message.resultsIn
            for try await commit in manager.store.watch(after: version) {
                guard manager.liveness.isCurrent(session: request.sessionID, node: node) else {
                    throw APIError(.invalidSession, "session \(request.sessionID) ended; open a new session")
                }
                // Commits queued behind this one are folded into the same message.
                let (next, at) = try await manager.store.readLocal { store in (AssignmentSet(for: node, in: store), store.version) }
                version = max(commit.version, at)
                let changes = sent.changes(to: next)
                guard !changes.isEmpty else { continue }
                var update = Shoal_Api_AssignmentsMessage()
                update.type = .incremental
                update.appliesTo = appliesTo
                update.resultsIn = "\(version)"
                update.changes = changes
                try await response.write(update)
                appliesTo = update.resultsIn
                sent = next
            }
        } catch {
            throw APIError(error).rpcError
        }
    }

    private func heartbeatPeriod() async throws(APIError) -> TimeInterval {
        ClusterDefaults.heartbeatPeriod(of: try await manager.cluster().spec)
    }

    /// The managers an agent may fall back to, from the Raft directory.
    private func managerPeers() async throws(APIError) -> [Shoal_Api_WeightedPeer] {
        let nodes = try await manager.read { $0.nodes.sorted }
        return nodes.filter { $0.role == .manager && !$0.managerStatus.addr.isEmpty }.map { node in
            var peer = Shoal_Api_WeightedPeer()
            peer.peer.nodeID = node.id
            peer.peer.addr = node.managerStatus.addr
            peer.weight = 1
            return peer
        }
    }
}

extension Manager {
    /// While this manager runs: each heartbeat period, if it leads, writes Down every node
    /// whose heartbeats stopped for three periods (Unknown after a leadership change), promotes
    /// caught-up learners, and carries out promotions and demotions.
    func watchLiveness() async {
        while !liveness.isStopped && !Task.isCancelled {
            var nodesRead: [Shoal_Api_Node]?
            let leads = await isLeader()
            liveness.leading(leads)
            var period = ClusterDefaults.heartbeatPeriod
            if leads, let cluster = try? await cluster() {
                period = ClusterDefaults.heartbeatPeriod(of: cluster.spec)
                if let nodes = try? await read({ store in store.nodes.sorted }) {
                    nodesRead = nodes
                    let states = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.status.state) })
                    let changes = liveness.statusChanges(states)
                    let marks = nodes.compactMap { node -> Shoal_Api_StoreAction? in
                        guard let state = changes[node.id] else { return nil }
                        var node = node
                        node.status.state = state
                        node.status.message = state == .unknown ? "Node moved to unknown state due to leadership change in cluster" : ""
                        return Shoal_Api_StoreAction(.update, node)
                    }
                    // Written with the versions read: a node whose session opened meanwhile
                    // (and wrote it Ready) makes this a conflict, and the next pass looks again.
                    let written = marks.isEmpty ? true : (try? await write(marks)) != nil
                    if written {
                        if changes.values.contains(.unknown) {
                            logger.info("nodes unknown after a leadership change", metadata: ["nodes": "\(changes.filter { $0.value == .unknown }.keys.sorted())"])
                        }
                        liveness.wroteUnknown()
                    }
                    let expired = liveness.expired(states, period: .seconds(period))
                    let updates = nodes.filter { expired.contains($0.id) }.map { node -> Shoal_Api_StoreAction in
                        var node = node
                        node.status.state = .down
                        node.status.message = "heartbeat failure"
                        return Shoal_Api_StoreAction(.update, node)
                    }
                    if !updates.isEmpty {
                        logger.warning("nodes down", metadata: ["nodes": "\(expired)"])
                        _ = try? await write(updates)
                    }
                }
            }
            if leads {
                await promoteCaughtUpLearners()
                if let nodes = nodesRead { await reconcileRoles(nodes) }
            }
            try? await Task.sleep(for: .seconds(min(max(period / 2, 0.05), 0.2)))
        }
    }

    /// Makes voters of the learners whose log reached the leader's commit index.
    private func promoteCaughtUpLearners() async {
        guard let directory = try? await store.member.directory().get() else { return }
        let status = directory.status
        for learner in status.membership.learners where (status.matched[learner] ?? 0) >= status.commit {
            let member = store.member
            let outcome = await firstOf(.seconds(2)) { () -> String? in
                do {
                    _ = try await member.proposeMembershipChange(MembershipChange(.addVoter, node: learner)).get()
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            switch outcome {
            case .some(nil): logger.info("promoted a caught-up learner to voter", metadata: ["raftID": "\(learner)"])
            case .some(let error?): logger.info("promotion not done yet", metadata: ["raftID": "\(learner)", "error": "\(error)"])
            case nil: logger.warning("promotion not committed within 2 s", metadata: ["raftID": "\(learner)"])
            }
        }
    }
}
