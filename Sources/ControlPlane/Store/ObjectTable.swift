// One table of the store: objects of one kind by ID, plus the index of their names when names
// must be unique. Value semantics, so a transaction works on a copy and commits by assignment.

import ClusterAPI

/// The objects of one kind, by ID.
public struct ObjectTable<Object: StoredObject>: Sendable {
    /// Every object, by ID.
    public private(set) var byID: [String: Object] = [:]
    /// Lower-cased unique name → ID (only for kinds whose names are unique).
    private var idByName: [String: String] = [:]

    /// An empty table.
    public init() {}

    /// The object with `id`, if any.
    public subscript(id: String) -> Object? { byID[id] }

    /// How many objects the table holds.
    public var count: Int { byID.count }

    /// Every object, in ID order (deterministic, for snapshots and listings).
    public var sorted: [Object] { byID.keys.sorted().map { byID[$0]! } }

    /// The ID of the object named `name` (case-insensitive), for kinds with unique names.
    public func id(named name: String) -> String? { idByName[name.lowercased()] }

    /// Inserts or replaces `object`, keeping the name index, after ``check(_:)`` passed.
    mutating func put(_ object: Object) {
        if Object.namesAreUnique {
            if let old = byID[object.id] { idByName[old.uniqueName.lowercased()] = nil }
            if !object.uniqueName.isEmpty { idByName[object.uniqueName.lowercased()] = object.id }
        }
        byID[object.id] = object
    }

    /// Removes the object with `id`; returns it.
    @discardableResult
    mutating func remove(_ id: String) -> Object? {
        guard let old = byID.removeValue(forKey: id) else { return nil }
        if Object.namesAreUnique { idByName[old.uniqueName.lowercased()] = nil }
        return old
    }

    /// Why `object` may not be written under `kind`, or nil when it may: the rules of create,
    /// update and remove, including the version the writer read (optimistic concurrency).
    func refusal(of kind: Shoal_Api_StoreActionKind, _ object: Object) -> StoreError? {
        guard !object.id.isEmpty else { return .malformed("\(Object.kind) without an ID") }
        let current = byID[object.id]
        switch kind {
        case .create:
            if current != nil { return .exists(Object.kind, id: object.id) }
        case .update, .remove:
            guard let current else { return .notFound(Object.kind, id: object.id) }
            let read = object.meta.version.index
            // A removal may skip the check (version 0: "whatever it is now"); an update may not.
            if (kind == .update || read != 0) && read != current.meta.version.index {
                return .versionConflict(Object.kind, id: object.id, expected: read, actual: current.meta.version.index)
            }
            if kind == .update, let refusal = object.refusal(replacing: current) { return refusal }
        default:
            return .malformed("action \(kind) on \(Object.kind) \(object.id)")
        }
        if kind != .remove, Object.namesAreUnique, !object.uniqueName.isEmpty,
            let holder = idByName[object.uniqueName.lowercased()], holder != object.id
        {
            return .nameConflict(Object.kind, name: object.uniqueName, heldBy: holder)
        }
        return nil
    }
}
