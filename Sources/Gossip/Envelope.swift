// What goes on the wire around a packet: who sent it, a counter that never repeats, and —
// with a keyring — AES-GCM sealing. The counter feeds the replay filter; sealing makes the
// sender and counter unforgeable.
//
//   plaintext: 0x01 | counter (8) | sender length (1) | sender | packet
//   sealed:    0x02 | key ID (4) | nonce (12) | AES-GCM(counter | sender length | sender | packet) | tag (16)
//
// The first five bytes of a sealed envelope are authenticated as associated data.

import Crypto
import EngineKit

/// Why an envelope was dropped.
public enum EnvelopeError: Error, Equatable, CustomStringConvertible {
    /// Too short, or a field runs past the end.
    case truncated
    /// A sealed envelope without a keyring, or a plaintext one with a keyring.
    case wrongMode
    /// Sealed under a key this ring does not hold.
    case unknownKey(UInt32)
    /// The tag did not verify: tampered with, or sealed under another key with the same ID.
    case authenticationFailed
    /// An unknown first byte.
    case unknownFormat(UInt8)

    public var description: String {
        switch self {
        case .truncated: "truncated envelope"
        case .wrongMode: "encryption mode differs from this member's"
        case .unknownKey(let id): "sealed under unknown key \(GossipKeyring.format(id))"
        case .authenticationFailed: "authentication failed"
        case .unknownFormat(let byte): "unknown envelope format \(byte)"
        }
    }
}

/// An opened envelope.
public struct OpenedEnvelope: Sendable, Equatable {
    /// The sender's member name.
    public var sender: MemberName
    /// The sender's counter (strictly increasing per sender, across its restarts).
    public var counter: UInt64
    /// The packet for the engine.
    public var packet: [UInt8]

    /// An opened envelope's contents.
    public init(sender: MemberName, counter: UInt64, packet: [UInt8]) {
        self.sender = sender
        self.counter = counter
        self.packet = packet
    }
}

/// Seals and opens envelopes.
public enum GossipEnvelope {
    private static let plaintextFormat: UInt8 = 1
    private static let sealedFormat: UInt8 = 2

    /// Bytes an envelope adds to a packet from `sender`, sealed or not.
    public static func overhead(senderName sender: MemberName, sealed: Bool) -> Int {
        (sealed ? 1 + 4 + 12 + 16 : 1) + 8 + 1 + sender.utf8.count
    }

    /// Wraps `packet`; seals it under the ring's primary key when a ring is given.
    public static func seal(_ packet: [UInt8], sender: MemberName, counter: UInt64, keyring: GossipKeyring?) -> [UInt8] {
        var inner = ByteWriter(capacity: packet.count + 9 + sender.utf8.count)
        inner.word64(counter)
        inner.byte(UInt8(sender.utf8.count))
        inner.bytes.append(contentsOf: sender.utf8)
        inner.bytes.append(contentsOf: packet)
        guard let keyring else { return [plaintextFormat] + inner.bytes }
        let primary = keyring.primary
        var header = ByteWriter(capacity: 5)
        header.byte(sealedFormat)
        header.word32(primary.id)
        // A fresh random nonce per message: 96 bits make a collision negligible for the few
        // billion packets a key carries before rotation.
        let sealed = try! AES.GCM.seal(inner.bytes, using: primary.key, nonce: AES.GCM.Nonce(), authenticating: header.bytes)
        return header.bytes + Array(sealed.nonce) + Array(sealed.ciphertext) + Array(sealed.tag)
    }

    /// Unwraps `bytes`, verifying them when a ring is given.
    public static func open(_ bytes: [UInt8], keyring: GossipKeyring?) throws(EnvelopeError) -> OpenedEnvelope {
        guard let format = bytes.first else { throw .truncated }
        let inner: [UInt8]
        switch format {
        case plaintextFormat:
            guard keyring == nil else { throw .wrongMode }
            inner = Array(bytes.dropFirst())
        case sealedFormat:
            guard let keyring else { throw .wrongMode }
            guard bytes.count >= 1 + 4 + 12 + 16 else { throw .truncated }
            let id = bytes[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard let key = keyring.key(withID: id) else { throw .unknownKey(id) }
            do {
                let box = try AES.GCM.SealedBox(
                    nonce: AES.GCM.Nonce(data: bytes[5..<17]), ciphertext: bytes[17..<(bytes.count - 16)],
                    tag: bytes[(bytes.count - 16)...])
                inner = Array(try AES.GCM.open(box, using: key, authenticating: bytes[0..<5]))
            } catch {
                throw .authenticationFailed
            }
        default:
            throw .unknownFormat(format)
        }
        var reader = ByteReader(inner)
        guard let counter = reader.word64(), let length = reader.byte(), reader.remaining >= Int(length) else {
            throw .truncated
        }
        let start = reader.position
        guard let sender = String(validating: inner[start..<start + Int(length)], as: UTF8.self), !sender.isEmpty else {
            throw .truncated
        }
        return OpenedEnvelope(sender: sender, counter: counter, packet: Array(inner[(start + Int(length))...]))
    }
}

/// Drops envelopes seen before: per sender, counters at or below a floor are refused, and
/// the last few hundred above it are remembered (datagrams may arrive out of order).
public struct ReplayFilter: Sendable {
    private struct Window: Sendable {
        var floor: UInt64
        var recent: [UInt64]  // sorted, all above floor
    }

    private var windows: [MemberName: Window] = [:]
    private let remembered: Int
    private let horizon: UInt64

    /// A filter that remembers `remembered` counters per sender and refuses counters more than
    /// `horizon` below the newest (counters are microsecond-based, so this is a time).
    public init(remembered: Int = 256, horizon: UInt64 = 60_000_000) {
        self.remembered = remembered
        self.horizon = horizon
    }

    /// True, and remembered, when `counter` from `sender` is new.
    public mutating func accept(_ counter: UInt64, from sender: MemberName) -> Bool {
        var window = windows[sender] ?? Window(floor: 0, recent: [])
        if let newest = window.recent.last, newest > horizon { window.floor = max(window.floor, newest - horizon) }
        guard counter > window.floor else { return false }
        var low = 0
        var high = window.recent.count
        while low < high {
            let middle = (low + high) / 2
            if window.recent[middle] < counter { low = middle + 1 } else { high = middle }
        }
        if low < window.recent.count && window.recent[low] == counter { return false }
        window.recent.insert(counter, at: low)
        if window.recent.count > remembered { window.floor = window.recent.removeFirst() }
        if let newest = window.recent.last, newest > horizon { window.floor = max(window.floor, newest - horizon) }
        while let oldest = window.recent.first, oldest <= window.floor { window.recent.removeFirst() }
        windows[sender] = window
        return true
    }
}
