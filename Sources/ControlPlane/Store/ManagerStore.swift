// A manager's handle on the replicated store: the cluster store as a Raft member (the same
// RaftMember `shoal raft` runs), with typed transactions in and typed outcomes out. Writers
// build a batch of actions against what they read; the leader proposes it as one log entry;
// the caller learns, once the entry is applied, whether the store took it whole or refused it
// whole, and why. Reads are linearizable (ReadIndex) unless asked otherwise.

import ClusterAPI
import Foundation
import NIOCore
import Raft
import RaftHost
import SwiftProtobuf
import Synchronization

/// Why a store write or read did not happen.
public enum ManagerStoreError: Error, Sendable, CustomStringConvertible {
    /// The store refused the transaction (conflict, missing object, taken name): nothing changed.
    case refused(StoreError)
    /// The Raft member could not carry it (not the leader, quorum lost, stopping…).
    case raft(RaftMemberError)

    public var description: String {
        switch self {
        case .refused(let error): error.description
        case .raft(let error): error.description
        }
    }
}

/// The cluster store of one manager, replicated through Raft.
public final class ManagerStore: Sendable {
    /// The Raft member holding the store.
    public let member: RaftMember<ClusterStore>
    /// Request IDs unique among this manager's proposals.
    private let requests = Atomic<UInt64>(0)

    /// Opens (or bootstraps) the store's member with `configuration` on `loop`.
    public init(configuration: RaftMemberConfiguration, loop: EventLoop) throws {
        member = try RaftMember(configuration: configuration, loop: loop, label: "shoal.store")
    }

    /// Stops the member.
    public func stop() { member.stop() }

    /// Proposes `actions` as one transaction and waits until it is applied: the commit, or
    /// why the store refused it whole.
    public func update(_ actions: [Shoal_Api_StoreAction], now: Date = Date()) async throws(ManagerStoreError) -> StoreCommit {
        var transaction = Shoal_Api_StoreTransaction()
        transaction.actions = actions
        transaction.proposer = member.configuration.id
        transaction.requestID = requests.add(1, ordering: .relaxed).newValue
        transaction.proposedAt = Google_Protobuf_Timestamp(date: now)
        let bytes: [UInt8]
        do { bytes = try transaction.serializedBytes() } catch { throw .refused(.malformed("cannot encode: \(error)")) }
        let committed: RaftMember<ClusterStore>.Committed
        do {
            committed = try await member.propose(bytes).get()
        } catch let error as RaftMemberError {
            throw .raft(error)
        } catch {
            throw .raft(.stopped)
        }
        switch committed.output {
        case .committed(let commit): return commit
        case .refused(let error, _, _): throw .refused(error)
        case .noTransaction: throw .refused(.malformed("the entry held no transaction"))
        }
    }

    /// Runs `body` over the store once a linearizable read is confirmed: it sees every write
    /// acknowledged before the call.
    public func read<T: Sendable>(_ body: @escaping @Sendable (ClusterStore) -> T) async throws(ManagerStoreError) -> T {
        do {
            return try await member.read(body).get()
        } catch let error as RaftMemberError {
            throw .raft(error)
        } catch {
            throw .raft(.stopped)
        }
    }

    /// Runs `body` over the store as this manager applied it, without confirming leadership
    /// (a follower may be behind): for watches served from history and for status.
    public func readLocal<T: Sendable>(_ body: @escaping @Sendable (ClusterStore) -> T) async throws(ManagerStoreError) -> T {
        do {
            return try await member.local { store, _ in body(store) }.get()
        } catch {
            throw .raft(.stopped)
        }
    }
}
