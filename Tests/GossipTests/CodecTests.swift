import EngineKit
@testable import Gossip
import Testing

/// The wire format: every message kind round-trips, and anything else is refused with a reason.
@Suite struct CodecTests {
    static let address = GossipAddress(ipv4: 0xC000_020A, port: 7946)
    static let key = EntryKey(network: "ov", table: "endpoints", key: "task-1")

    static let messages: [GossipMessage] = [
        .ping(sequence: 7, target: "n2"),
        .indirectPing(sequence: 8, target: "n3", address: address, wantsNack: true),
        .ack(sequence: 9),
        .nack(sequence: 10),
        .member(MemberRecord(name: "n2", address: address, incarnation: 42, status: .suspect, from: "n1")),
        .network(NetworkRecord(node: "n1", network: "ov", joined: true, clock: 1_000)),
        .entry(EntryRecord(key: key, owner: "n1", clock: 1_001, value: Array("10.0.0.2".utf8))),
        .entry(EntryRecord(key: key, owner: "n1", clock: 1_002, value: nil)),
    ]

    static let state = GossipMessage.state(
        StateExchange(
            isReply: true, ownerOnly: true, senderClock: 99,
            members: [MemberRecord(name: "n1", address: address, incarnation: 1, status: .alive, from: "n1")],
            networks: [NetworkRecord(node: "n1", network: "ov", joined: false, clock: 5)], coveredNetworks: ["ov"],
            entries: [EntryRecord(key: key, owner: "n1", clock: 6, value: [])]))

    @Test func everyKindRoundTripsAloneAndTogether() throws {
        for message in Self.messages {
            #expect(try GossipCodec.decode(GossipCodec.packet([GossipCodec.encode(message)]), fromStream: false) == [message])
        }
        let packet = GossipCodec.packet(Self.messages.map(GossipCodec.encode))
        #expect(try GossipCodec.decode(packet, fromStream: false) == Self.messages)
        #expect(try GossipCodec.decode(GossipCodec.packet([GossipCodec.encode(Self.state)]), fromStream: true) == [Self.state])
    }

    @Test func stateIsRefusedOnADatagram() {
        let packet = GossipCodec.packet([GossipCodec.encode(Self.state)])
        #expect(throws: GossipCodecError.misplaced("state message in a datagram")) {
            try GossipCodec.decode(packet, fromStream: false)
        }
    }

    @Test func everyTruncationIsAnError() {
        let packet = GossipCodec.packet((Self.messages + [Self.state]).map(GossipCodec.encode))
        // Cutting inside a message must fail; cutting at a boundary yields fewer messages.
        var boundaries = Set<Int>([1])
        var offset = 1
        for message in Self.messages + [Self.state] {
            offset += GossipCodec.encode(message).count
            boundaries.insert(offset)
        }
        for length in 0..<packet.count where !boundaries.contains(length) {
            #expect(throws: GossipCodecError.self) { try GossipCodec.decode(Array(packet.prefix(length)), fromStream: true) }
        }
    }

    @Test func hostileFieldsAreRefused() {
        #expect(throws: GossipCodecError.unsupportedVersion(9)) { try GossipCodec.decode([9], fromStream: false) }
        #expect(throws: GossipCodecError.unknownKind(200)) { try GossipCodec.decode([1, 200], fromStream: false) }
        // A member record with status 9.
        var member = GossipCodec.encode(.member(MemberRecord(name: "a", address: Self.address, incarnation: 1, status: .alive, from: "a")))
        member[1 + 2 + 6 + 8] = 9
        #expect(throws: GossipCodecError.invalidField("member status 9")) { try GossipCodec.decode([1] + member, fromStream: false) }
        // An incarnation near 2^64, which a refutation would overflow.
        var absurd = GossipCodec.encode(.member(MemberRecord(name: "a", address: Self.address, incarnation: 1, status: .alive, from: "a")))
        absurd[1 + 2 + 6] = 0x80
        #expect(throws: GossipCodecError.self) { try GossipCodec.decode([1] + absurd, fromStream: false) }
        // A state that claims four billion members in a few bytes.
        var writer = ByteWriter()
        writer.byte(1)
        writer.byte(8)
        writer.byte(0)
        writer.word64(1)
        writer.word32(0xFFFF_FFFF)
        #expect(throws: GossipCodecError.self) { try GossipCodec.decode(writer.bytes, fromStream: true) }
        // A name that is not UTF-8.
        #expect(throws: GossipCodecError.invalidField("string is not UTF-8")) {
            try GossipCodec.decode([1, 1, 0, 0, 0, 1, 2, 0xC3, 0x28], fromStream: false)
        }
    }

    @Test func retransmitLimitGrowsWithTheLogarithmOfTheGroup() {
        #expect(retransmitLimit(multiplier: 4, members: 1) == 4)
        #expect(retransmitLimit(multiplier: 4, members: 9) == 4)
        #expect(retransmitLimit(multiplier: 4, members: 10) == 8)
        #expect(retransmitLimit(multiplier: 4, members: 200) == 12)
        #expect(retransmitLimit(multiplier: 4, members: 1_000) == 16)
    }
}
