// The managers' store (DESIGN.md §9): the cluster's desired and observed state as typed objects,
// and the Raft state machine that holds them. Each committed log entry carries one
// `StoreTransaction`; applying it is all or nothing, checks the version every writer read
// (optimistic concurrency), stamps `Meta` from the entry alone (its index and its proposer's
// clock, never this member's), and records the change for watches. Every manager applies the
// same entries and so holds the same objects at the same version.

import ClusterAPI
import EngineKit
import Raft
import RaftHost
import SwiftProtobuf

/// One object's change in a committed transaction.
public struct StoreEvent: Sendable, Equatable {
    /// Created, updated or removed.
    public var action: Shoal_Api_StoreActionKind
    /// The object after the change (for a removal: as it was last).
    public var object: Shoal_Api_StoreAction.OneOf_Target

    /// An event.
    public init(action: Shoal_Api_StoreActionKind, object: Shoal_Api_StoreAction.OneOf_Target) {
        self.action = action
        self.object = object
    }
}

/// A committed transaction as the store applied it.
public struct StoreCommit: Sendable, Equatable {
    /// The store version it produced: the log index of its entry.
    public var version: UInt64
    /// Its changes, in the order of its actions.
    public var events: [StoreEvent]
    /// The Raft ID of the manager that proposed it, and that manager's request ID.
    public var proposer: UInt64
    public var requestID: UInt64

    /// A commit.
    public init(version: UInt64, events: [StoreEvent], proposer: UInt64, requestID: UInt64) {
        self.version = version
        self.events = events
        self.proposer = proposer
        self.requestID = requestID
    }
}

/// What applying one log entry did to the store.
public enum StoreApplyOutcome: Sendable, Equatable {
    /// The transaction was applied whole.
    case committed(StoreCommit)
    /// The transaction was refused whole; the store is unchanged.
    case refused(StoreError, proposer: UInt64, requestID: UInt64)
    /// The entry holds no transaction (a leader's no-op, a membership change).
    case noTransaction
}

/// The cluster's objects at one version.
public struct ClusterStore: ReplicatedStateMachine, Sendable {
    public typealias Output = StoreApplyOutcome

    /// Nodes by ID.
    public private(set) var nodes = ObjectTable<Shoal_Api_Node>()
    /// Services by ID.
    public private(set) var services = ObjectTable<Shoal_Api_Service>()
    /// Tasks by ID.
    public private(set) var tasks = ObjectTable<Shoal_Api_Task>()
    /// Networks by ID.
    public private(set) var networks = ObjectTable<Shoal_Api_Network>()
    /// The cluster object (one, from `swarm init`).
    public private(set) var clusters = ObjectTable<Shoal_Api_Cluster>()
    /// The last log index applied (a transaction or not).
    public private(set) var appliedIndex: LogIndex = 0
    /// The store version: the index of the last transaction that changed something.
    public private(set) var version: UInt64 = 0
    /// Recent commits, for watches that resume after a version.
    public private(set) var history = ChangeHistory()

    /// An empty store.
    public init() {}

    // MARK: - Applying entries

    public mutating func apply(_ entry: Entry) -> StoreApplyOutcome {
        precondition(entry.index == appliedIndex + 1, "entry \(entry.index) applied after \(appliedIndex)")
        appliedIndex = entry.index
        guard entry.kind == .normal, !entry.data.isEmpty else { return .noTransaction }
        let transaction: Shoal_Api_StoreTransaction
        do {
            transaction = try Shoal_Api_StoreTransaction(serializedBytes: entry.data)
        } catch {
            return .refused(.malformed("entry \(entry.index) does not decode: \(error)"), proposer: 0, requestID: 0)
        }
        switch apply(transaction, at: entry.index) {
        case .success(let events):
            if !events.isEmpty { version = entry.index }
            let commit = StoreCommit(
                version: version, events: events, proposer: transaction.proposer, requestID: transaction.requestID)
            if !events.isEmpty { history.record(commit) }
            return .committed(commit)
        case .failure(let error):
            return .refused(error, proposer: transaction.proposer, requestID: transaction.requestID)
        }
    }

    /// Applies every action of `transaction` or none: on the first refusal the actions already
    /// applied are undone in reverse order.
    private mutating func apply(_ transaction: Shoal_Api_StoreTransaction, at index: LogIndex) -> Result<[StoreEvent], StoreError> {
        var events: [StoreEvent] = []
        var undo: [(inout ClusterStore) -> Void] = []
        let stamp = transaction.proposedAt
        for action in transaction.actions {
            let result: Result<StoreEvent, StoreError>
            switch action.target {
            case .node(let object): result = write(action.kind, object, in: \.nodes, index: index, stamp: stamp, undo: &undo)
            case .service(let object): result = write(action.kind, object, in: \.services, index: index, stamp: stamp, undo: &undo)
            case .task(let object): result = write(action.kind, object, in: \.tasks, index: index, stamp: stamp, undo: &undo)
            case .network(let object): result = write(action.kind, object, in: \.networks, index: index, stamp: stamp, undo: &undo)
            case .cluster(let object): result = write(action.kind, object, in: \.clusters, index: index, stamp: stamp, undo: &undo)
            case nil: result = .failure(.malformed("an action without a target"))
            }
            switch result {
            case .success(let event):
                events.append(event)
            case .failure(let error):
                for step in undo.reversed() { step(&self) }
                return .failure(error)
            }
        }
        return .success(events)
    }

    /// One action on one table, with its undo step.
    private mutating func write<Object: StoredObject>(
        _ kind: Shoal_Api_StoreActionKind, _ object: Object, in path: WritableKeyPath<ClusterStore, ObjectTable<Object>>,
        index: LogIndex, stamp: Google_Protobuf_Timestamp, undo: inout [(inout ClusterStore) -> Void]
    ) -> Result<StoreEvent, StoreError> {
        if let refusal = self[keyPath: path].refusal(of: kind, object) { return .failure(refusal) }
        let previous = self[keyPath: path][object.id]
        let id = object.id
        undo.append { store in
            if let previous { store[keyPath: path].put(previous) } else { store[keyPath: path].remove(id) }
        }
        if kind == .remove {
            self[keyPath: path].remove(id)
            return .success(StoreEvent(action: .remove, object: previous!.storeTarget))
        }
        var written = object
        written.meta.version.index = index
        written.meta.createdAt = previous?.meta.createdAt ?? stamp
        written.meta.updatedAt = stamp
        self[keyPath: path].put(written)
        return .success(StoreEvent(action: kind, object: written.storeTarget))
    }

    // MARK: - Snapshots

    /// The store's bytes: every object in ID order, encoded deterministically, so that two
    /// managers at the same index produce the same bytes.
    public func snapshotData() -> [UInt8] {
        var snapshot = Shoal_Api_StoreSnapshot()
        snapshot.version.index = version
        snapshot.nodes = nodes.sorted
        snapshot.services = services.sorted
        snapshot.tasks = tasks.sorted
        snapshot.networks = networks.sorted
        snapshot.clusters = clusters.sorted
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        // The applied index travels beside the objects: it may be past the last version.
        var writer = ByteWriter()
        writer.word64(appliedIndex)
        let body: [UInt8]
        do {
            body = try snapshot.serializedBytes(options: options)
        } catch {
            // Encoding messages the store itself holds cannot fail; if it did, an empty body
            // would restore as an empty store: stop instead.
            preconditionFailure("store snapshot at \(appliedIndex) does not encode: \(error)")
        }
        writer.field(body)
        return writer.bytes
    }

    /// Restores a store from ``snapshotData()``; nil for anything else. Watches cannot resume
    /// from before the snapshot's version (the history starts there).
    public init?(snapshotData bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let applied = reader.word64(), let body = reader.field(), reader.atEnd,
            let snapshot = try? Shoal_Api_StoreSnapshot(serializedBytes: body)
        else { return nil }
        for node in snapshot.nodes { nodes.put(node) }
        for service in snapshot.services { services.put(service) }
        for task in snapshot.tasks { tasks.put(task) }
        for network in snapshot.networks { networks.put(network) }
        for cluster in snapshot.clusters { clusters.put(cluster) }
        guard snapshot.version.index <= applied else { return nil }
        appliedIndex = applied
        version = snapshot.version.index
        history = ChangeHistory(startingAfter: version)
    }
}
