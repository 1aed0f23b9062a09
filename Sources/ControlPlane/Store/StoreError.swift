// Why a store transaction was refused. The store refuses a transaction whole: either every
// action of it is applied or none is, so a refusal never leaves half a change behind.

import ClusterAPI

/// A refused store transaction, with what was wrong.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An update or removal names an object that does not exist.
    case notFound(ObjectKind, id: String)
    /// A create reuses an ID.
    case exists(ObjectKind, id: String)
    /// A create or rename takes a name another object of the kind holds.
    case nameConflict(ObjectKind, name: String, heldBy: String)
    /// The writer read version `expected`, but the object is at `actual` now: read again.
    case versionConflict(ObjectKind, id: String, expected: UInt64, actual: UInt64)
    /// An update would move a state that only moves forward back (a task's status or desired state).
    case backwards(ObjectKind, id: String, field: String, from: String, to: String)
    /// The transaction itself is malformed (no target, unknown action, empty ID, undecodable).
    case malformed(String)

    /// The API's reason code for this refusal (errors are typed, never told apart by text).
    public var reason: Shoal_Api_ErrorDetail.Reason {
        switch self {
        case .notFound: .notFound
        case .exists, .nameConflict: .nameConflict
        case .versionConflict: .versionConflict
        case .backwards: .failedPrecondition
        case .malformed: .invalidSpec
        }
    }

    public var description: String {
        switch self {
        case .notFound(let kind, let id): "\(kind) \(id) not found"
        case .exists(let kind, let id): "\(kind) \(id) already exists"
        case .nameConflict(let kind, let name, let holder): "\(kind) name \"\(name)\" is already in use by \(holder)"
        case .versionConflict(let kind, let id, let expected, let actual):
            "\(kind) \(id) changed since it was read (version \(expected), now \(actual)): read it again and retry"
        case .backwards(let kind, let id, let field, let from, let to):
            "\(kind) \(id): \(field) only moves forward, not from \(from) to \(to)"
        case .malformed(let why): "malformed store transaction: \(why)"
        }
    }
}
