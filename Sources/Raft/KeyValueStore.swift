// The replicated key-value state machine that tests, the simulator and `shoal raft` run on top
// of the log. Deterministic: the same entries give the same bytes of snapshot on every member.

import EngineKit

/// A command carried by a normal log entry.
public enum KeyValueCommand: Sendable, Hashable {
    /// Set `key` to `value`.
    case put(key: String, value: [UInt8])
    /// Remove `key`.
    case delete(key: String)

    /// Encoding: a tag byte, then length-prefixed (32-bit big-endian) key and value.
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .put(let key, let value):
            writer.byte(1)
            writer.field(key.utf8)
            writer.field(value)
        case .delete(let key):
            writer.byte(2)
            writer.field(key.utf8)
        }
        return writer.bytes
    }

    /// Decodes ``encoded``; nil for anything else (including an empty leader no-op).
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let tag = reader.byte() else { return nil }
        switch tag {
        case 1:
            guard let key = reader.field(), let value = reader.field(), reader.atEnd else { return nil }
            self = .put(key: String(decoding: key, as: UTF8.self), value: value)
        case 2:
            guard let key = reader.field(), reader.atEnd else { return nil }
            self = .delete(key: String(decoding: key, as: UTF8.self))
        default:
            return nil
        }
    }
}

/// A map from keys to values, changed only by applying committed entries in order.
public struct KeyValueStore: Sendable, Equatable {
    /// The current contents.
    public private(set) var values: [String: [UInt8]] = [:]
    /// The index of the last entry applied.
    public private(set) var appliedIndex: LogIndex = 0

    /// An empty store.
    public init() {}

    /// Applies a committed entry; entries must come in index order. Entries that are not
    /// commands (no-ops, membership changes, garbage) only advance the index.
    public mutating func apply(_ entry: Entry) {
        precondition(entry.index == appliedIndex + 1, "entry \(entry.index) applied after \(appliedIndex)")
        appliedIndex = entry.index
        guard entry.kind == .normal, let command = KeyValueCommand(encoded: entry.data) else { return }
        switch command {
        case .put(let key, let value): values[key] = value
        case .delete(let key): values[key] = nil
        }
    }

    /// The store's bytes: applied index, count, then sorted key/value fields.
    public func snapshotData() -> [UInt8] {
        var writer = ByteWriter()
        writer.word64(appliedIndex)
        writer.word64(UInt64(values.count))
        for key in values.keys.sorted() {
            writer.field(key.utf8)
            writer.field(values[key]!)
        }
        return writer.bytes
    }

    /// Restores a store from ``snapshotData()``; nil when the bytes are not such a snapshot.
    public init?(snapshotData bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let index = reader.word64(), let count = reader.word64(), count <= UInt64(bytes.count) else { return nil }
        var values: [String: [UInt8]] = [:]
        for _ in 0..<count {
            guard let key = reader.field(), let value = reader.field() else { return nil }
            values[String(decoding: key, as: UTF8.self)] = value
        }
        guard reader.atEnd else { return nil }
        self.values = values
        appliedIndex = index
    }
}
