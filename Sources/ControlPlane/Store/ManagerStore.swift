// A manager's handle on the replicated store: the cluster store as a Raft member (the same
// RaftMember `shoal raft` runs), with typed transactions in and typed outcomes out. Writers
// build a batch of actions against what they read; the leader proposes it as one log entry;
// the caller learns, once the entry is applied, whether the store took it whole or refused it
// whole, and why. Reads are linearizable (ReadIndex) unless asked otherwise.

import ClusterAPI
import Foundation
import Metrics
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
    /// The watches served from this manager's store.
    let watchers = WatcherRegistry()

    /// Opens (or bootstraps) the store's member with `configuration` on `loop`.
    public init(configuration: RaftMemberConfiguration, loop: EventLoop) throws {
        member = try RaftMember(configuration: configuration, loop: loop, label: "shoal.store")
        try loop.submit { [member, watchers] in
            member.onApply = { [weak watchers] store in watchers?.deliver(store) }
        }.wait()
    }

    /// Stops the member; open watches end with ``WatchEnd/stopped``.
    public func stop() {
        try? member.loop.submit { [watchers] in watchers.finishAll(throwing: WatchEnd.stopped) }.wait()
        member.stop()
    }

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
        do throws(ManagerStoreError) { committed = try await Self.result(of: member.propose(bytes)) } catch {
            Counter(label: "shoal_store_transactions_total", dimensions: [("result", "not_committed")]).increment()
            throw error
        }
        switch committed.output {
        case .committed(let commit):
            Counter(label: "shoal_store_transactions_total", dimensions: [("result", "committed")]).increment()
            return commit
        case .refused(let error, _, _):
            Counter(label: "shoal_store_transactions_total", dimensions: [("result", "refused")]).increment()
            throw .refused(error)
        case .noTransaction: throw .refused(.malformed("the entry held no transaction"))
        }
    }

    /// Runs `body` over the store once a linearizable read is confirmed: it sees every write
    /// acknowledged before the call.
    public func read<T: Sendable>(_ body: @escaping @Sendable (ClusterStore) -> T) async throws(ManagerStoreError) -> T {
        try await Self.result(of: member.read(body))
    }

    /// The value of a member's future, its failure as a ``ManagerStoreError``. The member
    /// fails its futures with ``RaftMemberError`` only; anything else means its loop is gone.
    private static func result<T: Sendable>(of future: EventLoopFuture<T>) async throws(ManagerStoreError) -> T {
        do {
            return try await future.get()
        } catch let error as RaftMemberError {
            throw .raft(error)
        } catch {
            throw .raft(.stopped)
        }
    }

    /// Runs `body` over the store as this manager applied it, without confirming leadership
    /// (a follower may be behind): for watches served from history and for status.
    public func readLocal<T: Sendable>(_ body: @escaping @Sendable (ClusterStore) -> T) async throws(ManagerStoreError) -> T {
        try await Self.result(of: member.local { store, _ in body(store) })
    }
}

extension ManagerStore {
    /// Why a watch ended.
    public enum WatchEnd: Error, Sendable, CustomStringConvertible {
        /// This manager no longer holds the commits after the version asked for: list again
        /// and watch from the list's version.
        case historyCompacted(after: UInt64, oldestHeld: UInt64)
        /// The member stopped.
        case stopped

        public var description: String {
            switch self {
            case .historyCompacted(let after, let floor):
                "changes after version \(after) are no longer held here (history starts after \(floor)): list again, then watch"
            case .stopped: "the manager stopped"
            }
        }
    }

    /// Every commit after `version`, in order, each once, as this manager applies them — the
    /// history it holds first, then live. A watcher that loses its manager resumes on another
    /// with the last version it saw: every manager applies the same log, so nothing is missed
    /// or repeated. Ends with ``WatchEnd/historyCompacted(after:oldestHeld:)`` when this
    /// manager's history does not reach back to `version`.
    public func watch(after version: UInt64) -> AsyncThrowingStream<StoreCommit, Error> {
        let (stream, continuation) = AsyncThrowingStream<StoreCommit, Error>.makeStream()
        let loop = member.loop
        loop.execute { [member, watchers] in
            let watcher = StoreWatcher(after: version, continuation: continuation)
            let registry = watchers
            registry.add(watcher)
            continuation.onTermination = { _ in loop.execute { registry.remove(watcher) } }
            // The history already applied, then whatever the next Readies apply.
            _ = member.local { store, _ in store }.map { store in registry.deliver(store) }
        }
        return stream
    }
}

/// One watch: the last version it was given and where to send the next commits.
final class StoreWatcher: @unchecked Sendable {
    // @unchecked: touched only on the member's loop.
    var last: UInt64
    let continuation: AsyncThrowingStream<StoreCommit, Error>.Continuation

    init(after version: UInt64, continuation: AsyncThrowingStream<StoreCommit, Error>.Continuation) {
        last = version
        self.continuation = continuation
    }
}

/// The watches of one manager's store, fed from its member's `onApply` hook, on its loop.
final class WatcherRegistry: @unchecked Sendable {
    // @unchecked: touched only on the member's loop.
    private var watchers: [ObjectIdentifier: StoreWatcher] = [:]

    /// Set once the store stopped: a watch asked for after that ends at once.
    private var stopped = false

    func add(_ watcher: StoreWatcher) {
        guard !stopped else { return watcher.continuation.finish(throwing: ManagerStore.WatchEnd.stopped) }
        watchers[ObjectIdentifier(watcher)] = watcher
    }

    /// Ends every watch, and every one asked for later.
    func finishAll(throwing error: Error) {
        stopped = true
        for watcher in watchers.values { watcher.continuation.finish(throwing: error) }
        watchers = [:]
    }
    func remove(_ watcher: StoreWatcher) { watchers[ObjectIdentifier(watcher)] = nil }

    /// Sends each watcher the commits after its last version.
    func deliver(_ store: ClusterStore) {
        for watcher in watchers.values {
            guard let commits = store.history.commits(after: watcher.last) else {
                watcher.continuation.finish(
                    throwing: ManagerStore.WatchEnd.historyCompacted(after: watcher.last, oldestHeld: store.history.floor))
                remove(watcher)
                continue
            }
            for commit in commits {
                watcher.continuation.yield(commit)
                watcher.last = commit.version
            }
        }
    }
}
