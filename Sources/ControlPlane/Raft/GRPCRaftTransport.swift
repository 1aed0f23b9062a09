// Raft's messages between managers inside the gRPC server on 2377, under the same mutual TLS
// as every other call. Sending never blocks the member's loop: each Ready's messages for a
// peer go into that peer's bounded queue, and one task per peer sends whatever has queued
// as one call, then the next (so batches grow with load, and a slow peer costs one call in
// flight). While a peer is unreachable the oldest are dropped (Raft retransmits what
// matters) and calls are retried with backoff.

import ClusterAPI
import Foundation
import GRPCCore
import Logging
import NIOCore
import Raft
import RaftHost
import Synchronization

/// The outbound half: ``RaftMessageTransport`` over ``PeerConnections``.
final class GRPCRaftTransport: RaftMessageTransport, @unchecked Sendable {
    // @unchecked: `senders` and `closed` are touched only on the member's loop.
    private let hooks: RaftTransportHooks
    private let connections: PeerConnections
    private var senders: [NodeID: PeerSender] = [:]
    private var closed = false

    /// Batches kept per peer while it is unreachable.
    static let bufferedBatches = 256

    init(hooks: RaftTransportHooks, connections: PeerConnections) {
        self.hooks = hooks
        self.connections = connections
    }

    func send(_ messages: [Message]) {
        hooks.loop.preconditionInEventLoop()
        guard !closed else { return }
        var batches: [NodeID: Shoal_Api_RaftMessageBatch] = [:]
        for message in messages { batches[message.to, default: .init()].messages.append(Data(message.encoded())) }
        for (peer, batch) in batches {
            guard let sender = sender(to: peer) else { continue }
            sender.push(batch)
        }
    }

    private func sender(to peer: NodeID) -> PeerSender? {
        if let existing = senders[peer] { return existing }
        guard let address = hooks.addressOf(peer) else { return nil }
        let sender = PeerSender(peer: peer, address: address, connections: connections, logger: hooks.logger)
        senders[peer] = sender
        return sender
    }

    func close() {
        let all: [PeerSender] = (try? hooks.loop.submit { [self] () -> [PeerSender] in
            closed = true
            defer { senders = [:] }
            return Array(senders.values)
        }.wait()) ?? []
        for sender in all { sender.stop() }
    }
}

/// One peer's queue and the task that drains it into calls.
private final class PeerSender: Sendable {
    private let queue = OutboundQueue()
    private let task: Task<Void, Never>

    init(peer: NodeID, address: String, connections: PeerConnections, logger: Logger) {
        let queue = self.queue
        task = Task {
            var backoff = Duration.milliseconds(20)
            while let batches = await queue.takeAll() {
                var request = Shoal_Api_RaftMessageBatch()
                request.messages = batches.flatMap(\.messages)
                do {
                    let connection = try connections.connection(to: address)
                    _ = try await connection.raftTransport.send(request, options: callOptions(timeout: .seconds(2)))
                    backoff = .milliseconds(20)
                } catch {
                    logger.debug("raft messages to a peer dropped", metadata: ["peer": "\(peer)", "error": "\(error)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .milliseconds(500))
                }
            }
        }
    }

    func push(_ batch: Shoal_Api_RaftMessageBatch) { queue.push(batch) }

    func stop() {
        queue.close()
        task.cancel()
    }
}

/// Batches waiting for a peer; at most ``GRPCRaftTransport/bufferedBatches``, oldest dropped.
private final class OutboundQueue: Sendable {
    private struct State {
        var batches: [Shoal_Api_RaftMessageBatch] = []
        var waiter: CheckedContinuation<[Shoal_Api_RaftMessageBatch]?, Never>?
        var closed = false
    }
    private let state = Mutex(State())

    func push(_ batch: Shoal_Api_RaftMessageBatch) {
        let waiter = state.withLock { state -> CheckedContinuation<[Shoal_Api_RaftMessageBatch]?, Never>? in
            guard !state.closed else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            if state.batches.count == GRPCRaftTransport.bufferedBatches { state.batches.removeFirst() }
            state.batches.append(batch)
            return nil
        }
        waiter?.resume(returning: [batch])
    }

    /// Everything queued, waiting for at least one batch; nil once closed.
    func takeAll() async -> [Shoal_Api_RaftMessageBatch]? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [Shoal_Api_RaftMessageBatch]?? in
                if !state.batches.isEmpty {
                    defer { state.batches = [] }
                    return .some(state.batches)
                }
                if state.closed { return .some(nil) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<[Shoal_Api_RaftMessageBatch]?, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}

/// The inbound half: the RaftTransport service, handing each message to the member.
struct RaftTransportService: Shoal_Api_RaftTransport.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer

    func send(request: Shoal_Api_RaftMessageBatch, context: ServerContext) async throws -> Shoal_Api_RaftSendResponse {
        let manager: Manager
        do {
            try authorizer.requireManager(context)
            manager = try handle.require()
        } catch {
            throw APIError(error).rpcError
        }
        let member = manager.store.member
        for bytes in request.messages {
            do throws(RaftDecodingError) {
                member.receive(try Message(decoding: [UInt8](bytes)))
            } catch {
                manager.raftRejections.increment()
                throw APIError(.invalidSpec, "undecodable raft message: \(error)").rpcError
            }
        }
        return Shoal_Api_RaftSendResponse()
    }
}
