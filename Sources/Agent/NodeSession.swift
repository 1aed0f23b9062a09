// A node's session with the managers (swarmkit's agent/session.go): open a Session stream on
// the leading manager's dispatcher, heartbeat at the period it answers with, and when the
// stream or a heartbeat fails, go to the leader the manager named or to the next manager
// known, with backoff. The managers the session reports are remembered for the next attempt
// (and by the daemon for its next start).

import ClusterAPI
import Foundation
import GRPCCore
import Logging
import Synchronization

/// Keeps one node's session alive until cancelled.
public final class NodeSession: Sendable {
    private let connect: @Sendable (String) throws -> APIConnection
    private let description: Shoal_Api_NodeDescription
    private let logger: Logger
    private let state: Mutex<(managers: [String], sessionID: String, connected: Bool)>
    /// Called with the managers' addresses whenever the session learns a new list.
    private let onManagers: @Sendable ([String]) -> Void
    /// Runs the tasks the session's assignments name, if this node runs tasks.
    private let worker: TaskWorker?
    /// Called with the data-plane keys (oldest first) whenever the managers hand out new ones,
    /// and awaited before the node's tasks are followed: the data plane starts sealed.
    private let onKeys: @Sendable ([Shoal_Api_EncryptionKey]) async -> Void
    /// Called with the node object as the managers have it (its attachments) on every session
    /// message.
    private let onNode: @Sendable (Shoal_Api_Node) async -> Void

    /// A session that will try `managers` (host:2377) through `connect`.
    public init(
        managers: [String], description: Shoal_Api_NodeDescription, logger: Logger,
        connect: @escaping @Sendable (String) throws -> APIConnection, worker: TaskWorker? = nil,
        onManagers: @escaping @Sendable ([String]) -> Void = { _ in },
        onKeys: @escaping @Sendable ([Shoal_Api_EncryptionKey]) async -> Void = { _ in },
        onNode: @escaping @Sendable (Shoal_Api_Node) async -> Void = { _ in }
    ) {
        self.connect = connect
        self.onNode = onNode
        self.worker = worker
        self.onKeys = onKeys
        self.description = description
        self.logger = logger
        self.onManagers = onManagers
        state = Mutex((managers, "", false))
    }

    /// The managers known now.
    public var managers: [String] { state.withLock { $0.managers } }
    /// Whether a session is open and heartbeating.
    public var isConnected: Bool { state.withLock { $0.connected } }

    /// Runs the session until the task is cancelled.
    public func run() async {
        var next = 0
        var redirect: String?
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            let known = managers
            guard !known.isEmpty else { return }
            let address = redirect ?? known[next % known.count]
            redirect = nil
            do {
                try await session(at: address)
                backoff = .milliseconds(100)
            } catch {
                state.withLock { $0.connected = false }
                let failure = APIError(error)
                if failure.reason == .notLeader, !failure.detail.leaderAddr.isEmpty, failure.detail.leaderAddr != address {
                    redirect = failure.detail.leaderAddr
                    continue
                }
                logger.debug("session ended", metadata: ["manager": "\(address)", "error": "\(failure.message)"])
                // The manager after the one that failed, in the list as it is now: the session
                // may have replaced the list, and an index into the old one can name the same
                // dead manager again.
                next = managers.firstIndex(of: address).map { $0 + 1 } ?? next + 1
                let jitter = Double.random(in: 0.8...1.2)
                try? await Task.sleep(for: backoff * jitter)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// How long a manager has to send a session's first message. The stream itself has no
    /// deadline (it lasts as long as the session), so without this an agent whose manager's
    /// host vanished (no reset, SYNs unanswered) would wait on it for minutes.
    static let openDeadline: Duration = .seconds(5)

    /// One session: the stream and the heartbeats beside it; returns or throws when either ends.
    private func session(at address: String) async throws {
        let connection = try connect(address)  // Shared with the node's other calls: not closed here.
        var request = Shoal_Api_SessionRequest()
        request.nodeDescription = description
        try await connection.dispatcher.session(request) { [self] response in
            // The stream, the heartbeats and the worker run side by side; the first of them to
            // end ends the session, so a node whose heartbeats fail (a leader change, a lost
            // manager) opens a new session instead of going Down under an open stream.
            // One stream per waiter: an AsyncStream hands each element to one consumer only.
            let (forHeartbeats, openHeartbeats) = AsyncStream<String>.makeStream()
            let (forWorker, openWorker) = AsyncStream<String>.makeStream()
            // No first message in time: the waiters see their streams end empty, and the
            // heartbeat task ends the session.
            let deadline = Task {
                try? await Task.sleep(for: Self.openDeadline)
                openHeartbeats.finish()
                openWorker.finish()
            }
            defer { deadline.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var keys: [Shoal_Api_EncryptionKey] = []
                    var announced = false
                    for try await message in response.messages {
                        if !message.networkBootstrapKeys.isEmpty, message.networkBootstrapKeys != keys {
                            keys = message.networkBootstrapKeys
                            await self.onKeys(keys)
                        }
                        if message.hasNode { await self.onNode(message.node) }
                        let managers = message.managers.map(\.peer.addr).filter { !$0.isEmpty }
                        let changed = self.state.withLock { state -> Bool in
                            state.sessionID = message.sessionID
                            state.connected = true
                            guard !managers.isEmpty, Set(managers) != Set(state.managers) else { return false }
                            state.managers = managers
                            return true
                        }
                        if changed { self.onManagers(managers) }
                        if !announced {
                            announced = true
                            self.logger.info("session open", metadata: ["manager": "\(address)"])
                            for open in [openHeartbeats, openWorker] {
                                open.yield(message.sessionID)
                                open.finish()
                            }
                        }
                    }
                    openHeartbeats.finish()
                    openWorker.finish()
                }
                group.addTask {
                    var first = forHeartbeats.makeAsyncIterator()
                    guard let sessionID = await first.next() else {
                        throw APIError(.unavailable, "no session from \(address) within \(Self.openDeadline)")
                    }
                    try await self.heartbeat(sessionID, at: address)
                }
                if let worker {
                    group.addTask { [logger] in
                        var first = forWorker.makeAsyncIterator()
                        guard let sessionID = await first.next() else { return }
                        // The worker's streams end with the session; a failure of theirs alone
                        // is retried on the same session.
                        while !Task.isCancelled {
                            // The node's current connection each time: one closed since (the
                            // node's certificate was renewed) lets its streams finish but takes no new call.
                            do { try await worker.serve(sessionID: sessionID, connection: try self.connect(address)) } catch {
                                logger.debug("assignments ended", metadata: ["error": "\(APIError(error).message)"])
                            }
                            try await Task.sleep(for: .milliseconds(200))
                        }
                    }
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        }
        throw APIError(.unavailable, "the session stream ended")
    }

    /// Heartbeats on the node's current connection to `address`, taken anew for each (a renewed
    /// certificate replaces the connections; the session's stream goes on over the old one).
    private func heartbeat(_ sessionID: String, at address: String) async throws {
        var request = Shoal_Api_HeartbeatRequest()
        request.sessionID = sessionID
        var timeout = Duration.seconds(5)
        while !Task.isCancelled {
            let response = try await connect(address).dispatcher.heartbeat(request, options: callOptions(timeout: timeout))
            let period = max(response.period.timeInterval, 0.05)
            // A heartbeat that takes two periods is a lost manager: the agent must find the
            // next one before the leader's grace (three periods) runs out, not after.
            timeout = min(.seconds(5), max(.seconds(1), .seconds(period * 2)))
            try await Task.sleep(for: .seconds(period))
        }
    }
}
