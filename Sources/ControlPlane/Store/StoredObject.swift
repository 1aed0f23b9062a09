// What the store needs to know about each kind of object it holds, so that one generic table
// (ObjectTable.swift) serves nodes, services, tasks, networks and the cluster alike: the ID,
// the bookkeeping `Meta`, and the name that must be unique among objects of the kind, if any.

import ClusterAPI
import SwiftProtobuf

/// The kinds of object the store holds (swarmkit's tables).
public enum ObjectKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case node, service, task, network, cluster

    public var description: String { rawValue }
}

/// An object the store holds: a generated API message with an ID and a `Meta`.
public protocol StoredObject: SwiftProtobuf.Message, Sendable {
    /// Which table holds it.
    static var kind: ObjectKind { get }
    /// Whether two live objects of this kind may share a name (nodes and tasks may; services,
    /// networks and clusters may not). Names compare without case, as DNS names do.
    static var namesAreUnique: Bool { get }
    /// The object's ID, unique in its table.
    var id: String { get set }
    /// Version and timestamps, set by the store.
    var meta: Shoal_Api_Meta { get set }
    /// The name that must be unique when ``namesAreUnique``.
    var uniqueName: String { get }
    /// The object as the target of a store action or event.
    var storeTarget: Shoal_Api_StoreAction.OneOf_Target { get }
    /// Why this object may not replace `current`, its stored version, or nil when it may:
    /// the kind's own rules for an update, beyond the version check.
    func refusal(replacing current: Self) -> StoreError?
}

extension StoredObject {
    public func refusal(replacing current: Self) -> StoreError? { nil }
}

extension Shoal_Api_Node: StoredObject {
    public static var kind: ObjectKind { .node }
    public static var namesAreUnique: Bool { false }
    public var uniqueName: String { spec.annotations.name }
    public var storeTarget: Shoal_Api_StoreAction.OneOf_Target { .node(self) }
}

extension Shoal_Api_Service: StoredObject {
    public static var kind: ObjectKind { .service }
    public static var namesAreUnique: Bool { true }
    public var uniqueName: String { spec.annotations.name }
    public var storeTarget: Shoal_Api_StoreAction.OneOf_Target { .service(self) }
}

extension Shoal_Api_Task: StoredObject {
    public static var kind: ObjectKind { .task }
    public static var namesAreUnique: Bool { false }
    public var uniqueName: String { annotations.name }
    public var storeTarget: Shoal_Api_StoreAction.OneOf_Target { .task(self) }

    /// A task's observed state and its desired state only move forward (DESIGN §9): a
    /// writer that read an older task and would move either back is refused.
    public func refusal(replacing current: Shoal_Api_Task) -> StoreError? {
        if status.state.rawValue < current.status.state.rawValue {
            return .backwards(.task, id: id, field: "status.state", from: "\(current.status.state)", to: "\(status.state)")
        }
        if desiredState.rawValue < current.desiredState.rawValue {
            return .backwards(.task, id: id, field: "desired_state", from: "\(current.desiredState)", to: "\(desiredState)")
        }
        return nil
    }
}

extension Shoal_Api_Network: StoredObject {
    public static var kind: ObjectKind { .network }
    public static var namesAreUnique: Bool { true }
    public var uniqueName: String { spec.annotations.name }
    public var storeTarget: Shoal_Api_StoreAction.OneOf_Target { .network(self) }
}

extension Shoal_Api_Cluster: StoredObject {
    public static var kind: ObjectKind { .cluster }
    public static var namesAreUnique: Bool { true }
    public var uniqueName: String { spec.annotations.name }
    public var storeTarget: Shoal_Api_StoreAction.OneOf_Target { .cluster(self) }
}

extension Shoal_Api_StoreAction {
    /// The action `kind` on `object`.
    public init(_ kind: Shoal_Api_StoreActionKind, _ object: some StoredObject) {
        self.init()
        self.kind = kind
        self.target = object.storeTarget
    }
}
