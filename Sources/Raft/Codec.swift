// The versioned binary encoding of messages, entries and membership, shared by the transport
// frames and the write-ahead log records. Decoding is total: any byte string gives a value or
// a `RaftDecodingError`, never a crash and never an unbounded allocation.

import EngineKit

/// Why bytes did not decode.
public enum RaftDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes end before the value does.
    case truncated(String)
    /// A field holds something no encoder writes.
    case invalid(String)
    /// A version this code does not speak.
    case unsupportedVersion(UInt8)
    /// Bytes left over after the value.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated(let what): "truncated \(what)"
        case .invalid(let what): "invalid \(what)"
        case .unsupportedVersion(let version): "unsupported encoding version \(version)"
        case .trailingBytes(let count): "\(count) trailing bytes"
        }
    }
}

/// Limits that keep a hostile or corrupt input from making the decoder allocate much.
public enum CodecLimits {
    /// Entries in one message.
    public static let maxEntriesPerMessage = 1 << 16
    /// Bytes of one entry's payload, or of one snapshot chunk.
    public static let maxPayloadBytes = 64 << 20
    /// Members in a membership.
    public static let maxMembers = 1 << 10
}

extension ByteWriter {
    /// Writes an entry: term, index, kind, length-prefixed data.
    public mutating func entry(_ entry: Entry) {
        word64(entry.term)
        word64(entry.index)
        byte(entry.kind.rawValue)
        field(entry.data)
    }

    /// Writes a membership: counted voters, then counted learners.
    public mutating func membership(_ membership: Membership) {
        word32(UInt32(membership.voters.count))
        membership.voters.forEach { word64($0) }
        word32(UInt32(membership.learners.count))
        membership.learners.forEach { word64($0) }
    }

    /// Writes a snapshot's index, term and membership.
    public mutating func snapshotMetadata(_ metadata: SnapshotMetadata) {
        word64(metadata.index)
        word64(metadata.term)
        membership(metadata.membership)
    }
}

extension ByteReader {
    /// Reads what ``ByteWriter/entry(_:)`` wrote.
    public mutating func entry() throws(RaftDecodingError) -> Entry {
        guard let term = word64(), let index = word64(), let rawKind = byte() else { throw .truncated("entry header") }
        guard let kind = Entry.Kind(rawValue: rawKind) else { throw .invalid("entry kind \(rawKind)") }
        guard let data = field(limit: CodecLimits.maxPayloadBytes) else { throw .truncated("entry data") }
        return Entry(term: term, index: index, kind: kind, data: data)
    }

    /// Reads what ``ByteWriter/membership(_:)`` wrote, bounded by ``CodecLimits/maxMembers``.
    public mutating func membership() throws(RaftDecodingError) -> Membership {
        func ids(_ what: String) throws(RaftDecodingError) -> [NodeID] {
            guard let count = word32().map(Int.init) else { throw .truncated("\(what) count") }
            guard count <= CodecLimits.maxMembers, remaining >= count * 8 else { throw .invalid("\(what) count \(count)") }
            var ids: [NodeID] = []
            ids.reserveCapacity(count)
            for _ in 0..<count { ids.append(word64()!) }
            return ids
        }
        let voters = try ids("voters")
        let learners = try ids("learners")
        return Membership(voters: voters, learners: learners)
    }

    /// Reads what ``ByteWriter/snapshotMetadata(_:)`` wrote.
    public mutating func snapshotMetadata() throws(RaftDecodingError) -> SnapshotMetadata {
        guard let index = word64(), let term = word64() else { throw .truncated("snapshot metadata") }
        return SnapshotMetadata(index: index, term: term, membership: try membership())
    }
}

extension Message {
    /// The encoding version written by ``encoded()``.
    public static let encodingVersion: UInt8 = 1

    /// The message's bytes: version, kind, fixed fields, entries, optional snapshot chunk.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 80 + entries.reduce(0) { $0 + $1.approximateSize } + (snapshot?.data.count ?? 0))
        writer.byte(Self.encodingVersion)
        writer.byte(kind.rawValue)
        for word in [from, to, term, logTerm, index, commit, rejectHint, context] { writer.word64(word) }
        writer.byte(reject ? 1 : 0)
        writer.word32(UInt32(entries.count))
        entries.forEach { writer.entry($0) }
        if let snapshot {
            writer.byte(1)
            writer.snapshotMetadata(snapshot.metadata)
            writer.word64(snapshot.offset)
            writer.word64(snapshot.totalSize)
            writer.field(snapshot.data)
        } else {
            writer.byte(0)
        }
        return writer.bytes
    }

    /// Decodes ``encoded()``; every malformed input is a ``RaftDecodingError``.
    public init(decoding bytes: [UInt8]) throws(RaftDecodingError) {
        var reader = ByteReader(bytes)
        guard let version = reader.byte(), let rawKind = reader.byte() else { throw .truncated("message header") }
        guard version == Self.encodingVersion else { throw .unsupportedVersion(version) }
        guard let kind = Kind(rawValue: rawKind) else { throw .invalid("message kind \(rawKind)") }
        var words: [UInt64] = []
        for _ in 0..<8 {
            guard let word = reader.word64() else { throw .truncated("message fields") }
            words.append(word)
        }
        guard let rejectByte = reader.byte(), rejectByte <= 1 else { throw .invalid("reject flag") }
        guard let entryCount = reader.word32().map(Int.init) else { throw .truncated("entry count") }
        // Each entry takes at least 21 bytes, which bounds the count by the input's size.
        guard entryCount <= CodecLimits.maxEntriesPerMessage, entryCount <= reader.remaining / 21 else {
            throw .invalid("entry count \(entryCount)")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        for _ in 0..<entryCount { entries.append(try reader.entry()) }
        guard let hasSnapshot = reader.byte(), hasSnapshot <= 1 else { throw .invalid("snapshot flag") }
        var chunk: SnapshotChunk?
        if hasSnapshot == 1 {
            let metadata = try reader.snapshotMetadata()
            guard let offset = reader.word64(), let total = reader.word64(),
                let data = reader.field(limit: CodecLimits.maxPayloadBytes)
            else { throw .truncated("snapshot chunk") }
            guard offset <= total, UInt64(data.count) <= total - offset else { throw .invalid("snapshot chunk bounds") }
            chunk = SnapshotChunk(metadata: metadata, offset: offset, totalSize: total, data: data)
        }
        guard reader.atEnd else { throw .trailingBytes(reader.remaining) }
        self.init(
            kind: kind, from: words[0], to: words[1], term: words[2], logTerm: words[3], index: words[4],
            entries: entries, commit: words[5], reject: rejectByte == 1, rejectHint: words[6], context: words[7],
            snapshot: chunk)
    }
}
