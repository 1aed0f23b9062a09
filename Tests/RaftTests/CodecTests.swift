import Raft
import Testing

/// The message codec: every kind round-trips, and malformed bytes are errors, not crashes.
@Suite struct CodecTests {
    private var samples: [Message] {
        let metadata = SnapshotMetadata(index: 9, term: 3, membership: Membership(voters: [1, 2, 3], learners: [4]))
        return Message.Kind.allCases.map { kind in
            Message(
                kind: kind, from: 1, to: 2, term: 7, logTerm: 6, index: 41,
                entries: kind == .append ? [Entry(term: 7, index: 42, data: [1, 2, 3]), Entry(term: 7, index: 43, kind: .membershipChange, data: MembershipChange(.addLearner, node: 4).encoded)] : [],
                commit: 40, reject: kind == .appendResponse, rejectHint: 39, context: 5,
                snapshot: kind == .snapshot ? SnapshotChunk(metadata: metadata, offset: 10, totalSize: 20, data: Array(repeating: 7, count: 10)) : nil)
        }
    }

    @Test func everyKindRoundTrips() throws {
        for message in samples {
            #expect(try Message(decoding: message.encoded()) == message)
        }
    }

    @Test func everyTruncationAndTrailingByteIsAnError() {
        for message in samples {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: RaftDecodingError.self) { try Message(decoding: Array(bytes.prefix(cut))) }
            }
            #expect(throws: RaftDecodingError.self) { try Message(decoding: bytes + [0]) }
        }
    }

    @Test func hostileCountsAndVersionsAreRejected() {
        var bytes = samples[Int(Message.Kind.append.rawValue)].encoded()
        bytes[0] = 2
        #expect(throws: RaftDecodingError.unsupportedVersion(2)) { try Message(decoding: bytes) }
        bytes[0] = 1
        // The entry count sits after version, kind, 8 words and the reject flag.
        let countOffset = 2 + 64 + 1
        for (position, byte) in [0xFF, 0xFF, 0xFF, 0xFF].enumerated() { bytes[countOffset + position] = UInt8(byte) }
        #expect(throws: RaftDecodingError.self) { try Message(decoding: bytes) }
    }

    @Test func keyValueSnapshotsRoundTripAndRejectGarbage() {
        var store = KeyValueStore()
        store.apply(Entry(term: 1, index: 1, data: KeyValueCommand.put(key: "a", value: [1]).encoded))
        store.apply(Entry(term: 1, index: 2, data: KeyValueCommand.put(key: "b", value: [2, 2]).encoded))
        store.apply(Entry(term: 1, index: 3, data: KeyValueCommand.delete(key: "a").encoded))
        store.apply(Entry(term: 1, index: 4, data: [9, 9, 9]))  // Not a command: only the index moves.
        let restored = KeyValueStore(snapshotData: store.snapshotData())
        #expect(restored == store)
        #expect(restored?.values == ["b": [2, 2]])
        #expect(KeyValueStore(snapshotData: Array(store.snapshotData().dropLast())) == nil)
        #expect(KeyValueStore(snapshotData: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0xFF, count: 8)) == nil)
    }
}
