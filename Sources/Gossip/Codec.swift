// The gossip wire format, written by hand: a packet is one version byte, then messages, each a
// kind byte and its fields in big-endian order (EngineKit's ByteWriter). Every length is
// checked against what remains, so any input either decodes or is refused with a reason —
// the fuzz target holds the decoder to that.

import EngineKit

/// Why bytes were refused as a packet.
public enum GossipCodecError: Error, Equatable, CustomStringConvertible {
    /// The first byte is not a version this build speaks.
    case unsupportedVersion(UInt8)
    /// A field runs past the end of the packet.
    case truncated
    /// A message kind this build does not know.
    case unknownKind(UInt8)
    /// A field holds a value no sender writes (an unknown status, a string that is not UTF-8).
    case invalidField(String)
    /// A state message arrived on a datagram, or a list is longer than the bytes could hold.
    case misplaced(String)

    public var description: String {
        switch self {
        case .unsupportedVersion(let version): "unsupported gossip version \(version)"
        case .truncated: "truncated message"
        case .unknownKind(let kind): "unknown message kind \(kind)"
        case .invalidField(let what): "invalid field: \(what)"
        case .misplaced(let what): what
        }
    }
}

/// Encodes and decodes packets.
public enum GossipCodec {
    /// The version byte every packet starts with.
    public static let version: UInt8 = 1
    /// Values larger than this are refused by `put` and by the decoder.
    public static let maximumValueBytes = 64 * 1024
    /// Incarnations and clocks at or above this are refused: real ones (milliseconds and
    /// microseconds since 1970) are far below, and the engine adds to them without overflow.
    public static let versionLimit: UInt64 = 1 << 62

    fileprivate enum Kind: UInt8 {
        case ping = 1, indirectPing, ack, nack, member, network, entry, state
    }

    /// A packet holding `messages`, already encoded one by one.
    public static func packet(_ encodedMessages: [[UInt8]]) -> [UInt8] {
        var bytes = [version]
        bytes.reserveCapacity(1 + encodedMessages.reduce(0) { $0 + $1.count })
        for message in encodedMessages { bytes.append(contentsOf: message) }
        return bytes
    }

    /// One message's bytes, to be concatenated into a packet.
    public static func encode(_ message: GossipMessage) -> [UInt8] {
        var writer = ByteWriter(capacity: 32)
        switch message {
        case .ping(let sequence, let target):
            writer.byte(Kind.ping.rawValue)
            writer.word32(sequence)
            writer.name(target)
        case .indirectPing(let sequence, let target, let address, let wantsNack):
            writer.byte(Kind.indirectPing.rawValue)
            writer.word32(sequence)
            writer.name(target)
            writer.address(address)
            writer.byte(wantsNack ? 1 : 0)
        case .ack(let sequence):
            writer.byte(Kind.ack.rawValue)
            writer.word32(sequence)
        case .nack(let sequence):
            writer.byte(Kind.nack.rawValue)
            writer.word32(sequence)
        case .member(let record):
            writer.byte(Kind.member.rawValue)
            writer.member(record)
        case .network(let record):
            writer.byte(Kind.network.rawValue)
            writer.network(record)
        case .entry(let record):
            writer.byte(Kind.entry.rawValue)
            writer.entry(record)
        case .state(let state):
            writer.byte(Kind.state.rawValue)
            writer.byte((state.isReply ? 1 : 0) | (state.ownerOnly ? 2 : 0))
            writer.word64(state.senderClock)
            writer.word32(UInt32(state.members.count))
            for member in state.members { writer.member(member) }
            writer.word32(UInt32(state.networks.count))
            for network in state.networks { writer.network(network) }
            writer.word32(UInt32(state.coveredNetworks.count))
            for network in state.coveredNetworks { writer.name(network) }
            writer.word32(UInt32(state.entries.count))
            for entry in state.entries { writer.entry(entry) }
        }
        return writer.bytes
    }

    /// Decodes a packet. `fromStream` allows state messages, which never fit a datagram.
    public static func decode(_ bytes: [UInt8], fromStream: Bool) throws(GossipCodecError) -> [GossipMessage] {
        var reader = ByteReader(bytes)
        guard let version = reader.byte() else { throw .truncated }
        guard version == Self.version else { throw .unsupportedVersion(version) }
        var messages: [GossipMessage] = []
        while !reader.atEnd {
            let message = try reader.message()
            if case .state = message, !fromStream { throw .misplaced("state message in a datagram") }
            messages.append(message)
        }
        return messages
    }

    fileprivate enum Decoding {
        static func kind(_ raw: UInt8) throws(GossipCodecError) -> Kind {
            guard let kind = Kind(rawValue: raw) else { throw .unknownKind(raw) }
            return kind
        }
    }
}

// Field encodings shared by several messages.
extension ByteWriter {
    fileprivate mutating func name(_ text: String) {
        let utf8 = Array(text.utf8)
        precondition(utf8.count <= 255, "names, networks, tables and keys are at most 255 bytes")
        byte(UInt8(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    fileprivate mutating func address(_ address: GossipAddress) {
        word32(address.ipv4)
        byte(UInt8(address.port >> 8))
        byte(UInt8(address.port & 0xFF))
    }

    fileprivate mutating func member(_ record: MemberRecord) {
        name(record.name)
        address(record.address)
        word64(record.incarnation)
        byte(record.status.rawValue)
        name(record.from)
    }

    fileprivate mutating func network(_ record: NetworkRecord) {
        name(record.node)
        name(record.network)
        byte(record.joined ? 1 : 0)
        word64(record.clock)
    }

    fileprivate mutating func entry(_ record: EntryRecord) {
        name(record.key.network)
        name(record.key.table)
        name(record.key.key)
        name(record.owner)
        word64(record.clock)
        if let value = record.value {
            byte(1)
            field(value)
        } else {
            byte(0)
        }
    }
}

extension ByteReader {
    fileprivate mutating func need<T>(_ value: T?) throws(GossipCodecError) -> T {
        guard let value else { throw .truncated }
        return value
    }

    fileprivate mutating func name() throws(GossipCodecError) -> String {
        let count = Int(try need(byte()))
        guard remaining >= count else { throw .truncated }
        var utf8: [UInt8] = []
        utf8.reserveCapacity(count)
        for _ in 0..<count { utf8.append(try need(byte())) }
        guard let text = String(validating: utf8, as: UTF8.self) else { throw .invalidField("string is not UTF-8") }
        return text
    }

    fileprivate mutating func address() throws(GossipCodecError) -> GossipAddress {
        let ipv4 = try need(word32())
        let high = try need(byte())
        let low = try need(byte())
        return GossipAddress(ipv4: ipv4, port: UInt16(high) << 8 | UInt16(low))
    }

    fileprivate mutating func flag() throws(GossipCodecError) -> Bool {
        switch try need(byte()) {
        case 0: return false
        case 1: return true
        case let other: throw .invalidField("flag \(other)")
        }
    }

    /// An incarnation or clock, refused at or above ``GossipCodec/versionLimit``.
    fileprivate mutating func version() throws(GossipCodecError) -> UInt64 {
        let value = try need(word64())
        guard value < GossipCodec.versionLimit else { throw .invalidField("version \(value) beyond 2^62") }
        return value
    }

    fileprivate mutating func member() throws(GossipCodecError) -> MemberRecord {
        let name = try name()
        let address = try address()
        let incarnation = try version()
        let raw = try need(byte())
        guard let status = MemberStatus(rawValue: raw) else { throw .invalidField("member status \(raw)") }
        return MemberRecord(name: name, address: address, incarnation: incarnation, status: status, from: try self.name())
    }

    fileprivate mutating func network() throws(GossipCodecError) -> NetworkRecord {
        let node = try name()
        let network = try name()
        let joined = try flag()
        return NetworkRecord(node: node, network: network, joined: joined, clock: try version())
    }

    fileprivate mutating func entry() throws(GossipCodecError) -> EntryRecord {
        let key = EntryKey(network: try name(), table: try name(), key: try name())
        let owner = try name()
        let clock = try version()
        var value: [UInt8]? = nil
        if try flag() {
            guard let bytes = field(limit: GossipCodec.maximumValueBytes) else { throw .truncated }
            value = bytes
        }
        return EntryRecord(key: key, owner: owner, clock: clock, value: value)
    }

    /// A count of items that each take at least `minimumItemBytes`, refused when the packet
    /// could not hold that many (so a hostile count cannot reserve gigabytes).
    fileprivate mutating func count(minimumItemBytes: Int) throws(GossipCodecError) -> Int {
        let count = Int(try need(word32()))
        guard count <= remaining / minimumItemBytes else { throw .misplaced("list of \(count) cannot fit in \(remaining) bytes") }
        return count
    }

    fileprivate mutating func message() throws(GossipCodecError) -> GossipMessage {
        switch try GossipCodec.Decoding.kind(try need(byte())) {
        case .ping:
            return .ping(sequence: try need(word32()), target: try name())
        case .indirectPing:
            let sequence = try need(word32())
            let target = try name()
            let address = try address()
            return .indirectPing(sequence: sequence, target: target, address: address, wantsNack: try flag())
        case .ack:
            return .ack(sequence: try need(word32()))
        case .nack:
            return .nack(sequence: try need(word32()))
        case .member:
            return .member(try member())
        case .network:
            return .network(try network())
        case .entry:
            return .entry(try entry())
        case .state:
            let flags = try need(byte())
            guard flags & ~3 == 0 else { throw .invalidField("state flags \(flags)") }
            let senderClock = try version()
            var members: [MemberRecord] = []
            for _ in 0..<(try count(minimumItemBytes: 17)) { members.append(try member()) }
            var networks: [NetworkRecord] = []
            for _ in 0..<(try count(minimumItemBytes: 11)) { networks.append(try network()) }
            var covered: [String] = []
            for _ in 0..<(try count(minimumItemBytes: 1)) { covered.append(try name()) }
            var entries: [EntryRecord] = []
            for _ in 0..<(try count(minimumItemBytes: 13)) { entries.append(try entry()) }
            return .state(
                StateExchange(
                    isReply: flags & 1 != 0, ownerOnly: flags & 2 != 0, senderClock: senderClock, members: members,
                    networks: networks, coveredNetworks: covered, entries: entries))
        }
    }
}
