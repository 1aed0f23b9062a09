// A manager: the replicated store (a Raft member whose messages ride the gRPC server on
// 2377), the services it answers on 2377 and the Unix socket, and the rule that makes any
// manager answer: a call reaching a follower is forwarded whole to the leader (swarmkit's
// raft proxy), so writes are proposed where they can be and reads are linearizable.

import ClusterAPI
import Foundation
import GRPCCore
import Logging
import Metrics
import NIOCore
import PKI
import Raft
import RaftHost
import Synchronization

/// How a manager starts.
public struct ManagerConfiguration: Sendable {
    /// The node's ID (its certificate's CN).
    public var nodeID: String
    /// Its Raft member ID.
    public var raftID: NodeID
    /// host:port other managers reach it at (its 2377 listener).
    public var advertiseAddress: String
    /// Where its Raft data lives.
    public var raftDirectory: String
    /// Start a new cluster alone (`swarm init`) instead of joining one.
    public var bootstrap: Bool
    /// Members of the group it joins, with their addresses (from RaftMembership.Join).
    public var peers: [NodeID: String] = [:]
    /// How long a write waits for its commit before saying quorum may be lost.
    public var writeTimeout: Duration = .milliseconds(1500)

    /// A configuration with defaults.
    public init(nodeID: String, raftID: NodeID, advertiseAddress: String, raftDirectory: String, bootstrap: Bool) {
        self.nodeID = nodeID
        self.raftID = raftID
        self.advertiseAddress = advertiseAddress
        self.raftDirectory = raftDirectory
        self.bootstrap = bootstrap
    }
}

/// One manager's control plane.
public final class Manager: Sendable {
    /// How it was started.
    public let configuration: ManagerConfiguration
    /// Its store.
    public let store: ManagerStore
    /// Connections to the other managers.
    public let connections: PeerConnections
    /// The roots it trusts.
    public let roots: TrustedRoots
    let logger: Logger
    /// Raft messages refused by its RaftTransport service.
    let raftRejections = Metrics.Counter(label: "shoal_raft_rejected_messages_total")
    /// Liveness of the nodes' sessions, decided here while this manager leads.
    let liveness: NodeLiveness

    /// Opens (or bootstraps) the store on `loop`; Raft messages go out over `connections`.
    public init(configuration: ManagerConfiguration, connections: PeerConnections, roots: TrustedRoots, loop: EventLoop) throws {
        self.configuration = configuration
        self.connections = connections
        self.roots = roots
        var logger = Logger(label: "shoal.manager")
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.logger = logger
        var member = RaftMemberConfiguration(
            id: configuration.raftID, listen: configuration.advertiseAddress,
            peers: configuration.bootstrap ? [configuration.raftID: configuration.advertiseAddress] : configuration.peers,
            dataDirectory: configuration.raftDirectory)
        member.join = !configuration.bootstrap
        member.transport = { hooks in GRPCRaftTransport(hooks: hooks, connections: connections) }
        store = try ManagerStore(configuration: member, loop: loop)
        liveness = NodeLiveness()
    }

    /// Stops the store and closes the connections.
    public func stop() {
        liveness.stop()
        store.stop()
        connections.closeAll()
    }

    /// Runs until stopped: while this manager leads, nodes whose heartbeats stopped are
    /// written Down, and the control loops turn specs into allocated, placed tasks.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchLiveness() }
            group.addTask { await self.runControlLoops() }
        }
    }

    // MARK: - Leader, forwarding

    /// Whether this manager leads now.
    public func isLeader() async -> Bool {
        guard let leader = try? await store.member.leader().get() else { return false }
        return leader.id == configuration.raftID
    }

    /// Runs `local` when this manager leads, else `forward` on a connection to the leader.
    /// Waits up to 1.5 s for a leader (an election takes 0.3–0.6 s), then fails with quorum
    /// lost: a caller learns within two seconds, never hangs.
    func onLeader<T: Sendable>(
        _ local: () async throws -> T, forward: @escaping @Sendable (APIConnection) async throws -> T
    ) async throws(APIError) -> T {
        let deadline = ContinuousClock.now + .milliseconds(1500)
        var forwardedOnce = false
        while true {
            let leader: (id: NodeID, address: String?)
            do { leader = try await store.member.leader().get() } catch { throw APIError(.unavailable, "the manager is stopping") }
            if leader.id == configuration.raftID {
                do { return try await local() } catch let error as APIError where error.reason == .notLeader && ContinuousClock.now < deadline {
                    continue  // Lost leadership meanwhile: ask again who leads.
                } catch {
                    throw APIError(error)
                }
            }
            if leader.id != 0, let address = leader.address, !forwardedOnce {
                forwardedOnce = true
                do {
                    if let answer = try await forwardWhileLeading(leader.id, try connections.connection(to: address), forward) { return answer }
                    // The leader changed under the call (it died: the call would wait for it).
                    forwardedOnce = false
                    continue
                } catch {
                    let failure = APIError(error)
                    // The leader died under the call: look for the next one.
                    guard failure.code == .unavailable, failure.reason != .quorumLost, ContinuousClock.now < deadline else {
                        throw failure
                    }
                    forwardedOnce = false
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
            }
            guard ContinuousClock.now < deadline else { throw quorumLost() }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// `forward` on `connection`, or nil as soon as this member's Raft no longer names `leader`
    /// (a call to a leader that died would wait for it to come back).
    private func forwardWhileLeading<T: Sendable>(
        _ leader: NodeID, _ connection: APIConnection, _ forward: @escaping @Sendable (APIConnection) async throws -> T
    ) async throws -> T? {
        let member = store.member
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await forward(connection) }
            group.addTask {
                // Bounded by cancellation: the call's answer cancels it.
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(50))
                    if (try? await member.leader().get().id) != leader { return nil }
                }
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    /// Returns when this manager leads; else NOT_LEADER with the leader's address (for calls
    /// that act as the caller's own certificate and so cannot be forwarded), or quorum lost.
    func requireLeadership() async throws(APIError) {
        let leader: (id: NodeID, address: String?)
        do { leader = try await store.member.leader().get() } catch { throw APIError(.unavailable, "the manager is stopping") }
        guard leader.id == configuration.raftID else {
            if leader.id == 0 { throw quorumLost() }
            throw APIError(.notLeader, "ask the leader", leaderAddress: leader.address ?? "")
        }
    }

    func quorumLost() -> APIError {
        APIError(
            .quorumLost,
            "no manager leads: the swarm has lost quorum (too few managers reachable). Restart the missing managers, "
                + "or run `shoal swarm init --force-new-cluster` on this one to continue alone with its data")
    }

    // MARK: - Store access as API errors

    /// Commits `actions` as one transaction on this (leading) manager.
    func write(_ actions: [Shoal_Api_StoreAction]) async throws(APIError) -> StoreCommit {
        let store = self.store
        let timeout = configuration.writeTimeout
        let result = await firstOf(timeout) { () -> Result<StoreCommit, ManagerStoreError> in
            do throws(ManagerStoreError) { return .success(try await store.update(actions)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let commit): return commit
        case .failure(let error): throw Self.apiError(error)
        case nil:
            throw APIError(
                .quorumLost,
                "the write was not committed within \(timeout): quorum may be lost (it may still apply once it returns). "
                    + "Check `shoal node ls` on another manager")
        }
    }

    /// Reads node `id`, lets `change` edit it (returning false when nothing needs writing) and
    /// writes it with the version it read. The node has several writers (the dispatcher writes
    /// its status, membership its manager status), so a conflict reads it again, at most
    /// `attempts` times. Nil when the node does not exist.
    @discardableResult
    func updateNode(
        _ id: String, attempts: Int = 5, _ change: @escaping (inout Shoal_Api_Node) -> Bool
    ) async throws(APIError) -> Shoal_Api_Node? {
        for attempt in 1...attempts {
            guard var node = try await read({ $0.nodes[id] }) else { return nil }
            guard change(&node) else { return node }
            let failure: APIError
            do {
                _ = try await write([Shoal_Api_StoreAction(.update, node)])
                return node
            } catch {
                failure = error
            }
            guard failure.reason == .versionConflict, attempt < attempts else { throw failure }
        }
        return nil
    }

    /// Reads the store linearizably on this (leading) manager.
    /// Waits at most the write timeout: a leader cut off from its quorum confirms no read.
    func read<T: Sendable>(_ body: @escaping @Sendable (ClusterStore) -> T) async throws(APIError) -> T {
        let store = self.store
        let result = await firstOf(configuration.writeTimeout) { () -> Result<T, ManagerStoreError> in
            do throws(ManagerStoreError) { return .success(try await store.read(body)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw Self.apiError(error)
        case nil: throw quorumLost()
        }
    }

    static func apiError(_ error: ManagerStoreError) -> APIError {
        switch error {
        case .refused(let refusal): return APIError(refusal.reason, refusal.description)
        case .raft(.refused(.notLeader, let address)):
            return APIError(.notLeader, "this manager is not the leader", leaderAddress: address ?? "")
        case .raft(.stopped): return APIError(.unavailable, "the manager is stopping; retry on another")
        case .raft(.readAborted), .raft(.superseded):
            // Leadership moved under the call: the caller asks again who leads.
            return APIError(.notLeader, "leadership changed during the call; retry")
        case .raft(let other): return APIError(.unavailable, "\(other)")
        }
    }

    /// The cluster object (there is one).
    func cluster() async throws(APIError) -> Shoal_Api_Cluster {
        guard let cluster = try await read({ $0.clusters.sorted.first }) else {
            throw APIError(.unavailable, "the swarm is still starting (no cluster object yet); retry")
        }
        return cluster
    }
}

/// The manager a node is, if any: set when it becomes one (init, join as manager, restart),
/// cleared when it stops. The listeners' services are built once over it, so the Unix socket
/// serves from the daemon's start and answers "not a manager" until there is one.
public final class ManagerHandle: Sendable {
    private let manager = Mutex<Manager?>(nil)

    /// An empty handle.
    public init() {}

    /// The manager now, if any.
    public var current: Manager? { manager.withLock { $0 } }

    /// Makes `manager` (or none) the current one.
    public func set(_ manager: Manager?) { self.manager.withLock { $0 = manager } }

    /// The current manager, or the error a worker's or an unjoined daemon's socket gives.
    func require() throws(APIError) -> Manager {
        guard let manager = current else {
            throw APIError(
                .notManager,
                "this node is not a swarm manager: run the command on a manager, promote this node, "
                    + "or create a swarm with `shoal swarm init`")
        }
        return manager
    }

    /// The services a listener serves over this handle: on 2377 with `.network(roots)`, on
    /// the Unix socket with `.localSocket` (there without the CA, membership and Raft).
    public func services(_ authorizer: Authorizer) -> [any RegistrableRPCService] {
        var services: [any RegistrableRPCService] = [
            ControlService(handle: self, authorizer: authorizer), DispatcherService(handle: self, authorizer: authorizer),
        ]
        if authorizer.roots != nil {
            services += [
                CAService(handle: self, authorizer: authorizer), NodeCAService(handle: self, authorizer: authorizer),
                MembershipService(handle: self, authorizer: authorizer), RaftTransportService(handle: self, authorizer: authorizer),
            ]
        }
        return services
    }
}

/// `body`'s value, or nil when `timeout` passes first. The body runs in a task of its own
/// that is not awaited past the deadline (a Raft future cannot be cancelled; its result
/// arrives later and is dropped), so a caller never waits longer than `timeout`.
func firstOf<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    let (stream, continuation) = AsyncStream<T?>.makeStream()
    let work = Task {
        continuation.yield(await body())
        continuation.finish()
    }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        continuation.yield(nil)
        continuation.finish()
    }
    var iterator = stream.makeAsyncIterator()
    let first = await iterator.next() ?? nil
    timer.cancel()
    _ = work
    return first
}
