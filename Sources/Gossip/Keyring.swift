// The keys gossip is sealed with. Rotation without losing a member: add the new key everywhere
// (it is accepted but not yet used), make it primary everywhere (used for sending; the old
// one is still accepted from members not yet switched), then remove the old one.

import Crypto
import Foundation

/// Why a keyring change was refused.
public enum KeyringError: Error, Equatable, CustomStringConvertible {
    /// Not 16, 24 or 32 bytes (AES-128, -192, -256), or not base64.
    case invalidKey(String)
    /// No key with that ID in the ring.
    case unknownKey(UInt32)
    /// The primary key cannot be removed; make another primary first.
    case removingPrimary(UInt32)

    public var description: String {
        switch self {
        case .invalidKey(let why): "invalid gossip key: \(why)"
        case .unknownKey(let id): "no gossip key \(GossipKeyring.format(id)) in the keyring"
        case .removingPrimary(let id): "key \(GossipKeyring.format(id)) is the primary key; make another key primary first"
        }
    }
}

/// The AES-GCM keys a member accepts, and the primary one it seals with.
public struct GossipKeyring: Sendable {
    /// A key and its ID: the first four bytes of the SHA-256 of the key, sent in clear with
    /// each packet so the receiver picks the right key (or counts an unknown one) at once.
    struct Entry: Sendable {
        let id: UInt32
        let key: SymmetricKey
    }

    private(set) var entries: [Entry]
    /// The ID of the key used to seal.
    public private(set) var primaryID: UInt32

    /// A ring holding one key, which is primary.
    public init(primaryKey: [UInt8]) throws(KeyringError) {
        let entry = try Self.entry(primaryKey)
        entries = [entry]
        primaryID = entry.id
    }

    /// A ring from base64 keys, the first primary.
    public init(base64Keys: [String]) throws(KeyringError) {
        guard let first = base64Keys.first else { throw .invalidKey("no key given") }
        try self.init(primaryKey: try Self.decode(first))
        for key in base64Keys.dropFirst() { try add(try Self.decode(key)) }
    }

    /// The IDs of the keys in the ring, primary first.
    public var keyIDs: [UInt32] { [primaryID] + entries.map(\.id).filter { $0 != primaryID } }

    /// Adds `key` (accepted for opening at once, used for sealing once made primary);
    /// returns its ID. Adding a key already present changes nothing.
    @discardableResult
    public mutating func add(_ key: [UInt8]) throws(KeyringError) -> UInt32 {
        let entry = try Self.entry(key)
        if !entries.contains(where: { $0.id == entry.id }) { entries.append(entry) }
        return entry.id
    }

    /// Makes the key with `id` the one packets are sealed with.
    public mutating func makePrimary(_ id: UInt32) throws(KeyringError) {
        guard entries.contains(where: { $0.id == id }) else { throw .unknownKey(id) }
        primaryID = id
    }

    /// Removes the key with `id`; the primary key cannot be removed.
    public mutating func remove(_ id: UInt32) throws(KeyringError) {
        guard id != primaryID else { throw .removingPrimary(id) }
        guard entries.contains(where: { $0.id == id }) else { throw .unknownKey(id) }
        entries.removeAll { $0.id == id }
    }

    var primary: Entry { entries.first { $0.id == primaryID }! }

    func key(withID id: UInt32) -> SymmetricKey? { entries.first { $0.id == id }?.key }

    /// The ID a key would have.
    public static func id(of key: [UInt8]) -> UInt32 {
        SHA256.hash(data: key).prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// An ID as eight hex digits.
    public static func format(_ id: UInt32) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Decodes a base64 key.
    public static func decode(_ base64: String) throws(KeyringError) -> [UInt8] {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw .invalidKey("not base64")
        }
        return Array(data)
    }

    private static func entry(_ key: [UInt8]) throws(KeyringError) -> Entry {
        guard [16, 24, 32].contains(key.count) else { throw .invalidKey("\(key.count) bytes; AES keys are 16, 24 or 32") }
        return Entry(id: id(of: key), key: SymmetricKey(data: key))
    }
}
