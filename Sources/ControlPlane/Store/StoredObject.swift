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
