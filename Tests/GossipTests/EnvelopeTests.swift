import Gossip
import Testing

/// Sealing, keyring rotation and the replay filter.
@Suite struct EnvelopeTests {
    static let oldKey = [UInt8](repeating: 1, count: 32)
    static let newKey = [UInt8](repeating: 2, count: 32)
    static let packet: [UInt8] = [1, 3, 0, 0, 0, 7]

    @Test func sealedEnvelopesOpenWithTheKeyAndNotWithout() throws {
        let ring = try GossipKeyring(primaryKey: Self.oldKey)
        let sealed = GossipEnvelope.seal(Self.packet, sender: "n1", counter: 5, keyring: ring)
        #expect(sealed.count == Self.packet.count + GossipEnvelope.overhead(senderName: "n1", sealed: true))
        #expect(try GossipEnvelope.open(sealed, keyring: ring) == OpenedEnvelope(sender: "n1", counter: 5, packet: Self.packet))
        #expect(throws: EnvelopeError.wrongMode) { try GossipEnvelope.open(sealed, keyring: nil) }
        let other = try GossipKeyring(primaryKey: Self.newKey)
        #expect(throws: EnvelopeError.unknownKey(GossipKeyring.id(of: Self.oldKey))) { try GossipEnvelope.open(sealed, keyring: other) }
        let plain = GossipEnvelope.seal(Self.packet, sender: "n1", counter: 5, keyring: nil)
        #expect(throws: EnvelopeError.wrongMode) { try GossipEnvelope.open(plain, keyring: ring) }
        #expect(try GossipEnvelope.open(plain, keyring: nil).packet == Self.packet)
    }

    @Test func anyFlippedBitFailsAuthentication() throws {
        let ring = try GossipKeyring(primaryKey: Self.oldKey)
        let sealed = GossipEnvelope.seal(Self.packet, sender: "n1", counter: 5, keyring: ring)
        for index in 5..<sealed.count {
            var tampered = sealed
            tampered[index] ^= 0x10
            #expect(throws: EnvelopeError.authenticationFailed) { try GossipEnvelope.open(tampered, keyring: ring) }
        }
        for length in 0..<34 {
            #expect(throws: EnvelopeError.self) { try GossipEnvelope.open(Array(sealed.prefix(length)), keyring: ring) }
        }
    }

    @Test func rotationKeepsEveryStepReadableByBothSides() throws {
        var a = try GossipKeyring(primaryKey: Self.oldKey)
        var b = try GossipKeyring(primaryKey: Self.oldKey)
        let newID = try a.add(Self.newKey)
        try b.add(Self.newKey)
        try a.makePrimary(newID)  // a switched, b not yet: both still read each other
        #expect(throws: Never.self) { try GossipEnvelope.open(GossipEnvelope.seal(Self.packet, sender: "a", counter: 1, keyring: a), keyring: b) }
        #expect(throws: Never.self) { try GossipEnvelope.open(GossipEnvelope.seal(Self.packet, sender: "b", counter: 1, keyring: b), keyring: a) }
        let switched = a
        #expect(throws: KeyringError.removingPrimary(newID)) {
            var copy = switched
            try copy.remove(newID)
        }
        try b.makePrimary(newID)
        try a.remove(GossipKeyring.id(of: Self.oldKey))
        try b.remove(GossipKeyring.id(of: Self.oldKey))
        #expect(a.keyIDs == [newID])
        #expect(throws: Never.self) { try GossipEnvelope.open(GossipEnvelope.seal(Self.packet, sender: "b", counter: 2, keyring: b), keyring: a) }
        #expect(throws: KeyringError.self) { try GossipKeyring(primaryKey: [1, 2, 3]) }
    }

    @Test func replaysAndOldCountersAreRefusedWhileReorderingIsNot() {
        var filter = ReplayFilter(remembered: 4, horizon: 1_000)
        let script: [(counter: UInt64, sender: String, accepted: Bool)] = [
            (10, "a", true), (12, "a", true),
            (11, "a", true),  // reordered, still new
            (12, "a", false),  // replayed
            (12, "b", true),  // per sender
            (13, "a", true), (14, "a", true),  // the window is full: 10 falls out and becomes the floor
            (10, "a", false), (5_000, "a", true),
            (3_000, "a", false),  // beyond the horizon
        ]
        for step in script {
            let accepted = filter.accept(step.counter, from: step.sender)
            #expect(accepted == step.accepted, "counter \(step.counter) from \(step.sender)")
        }
    }
}
