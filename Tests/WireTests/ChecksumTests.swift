import EngineKit
import Testing
import Wire

@Suite struct ChecksumTests {
    /// RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    @Test func rfc1071Example() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        let checksum = bytes.withUnsafeBytes { InternetChecksum.of($0) }
        #expect(checksum == ~UInt16(0xDDF2))
    }

    /// The 64-bit loop, the 16-bit tail and the odd byte agree with a plain word-by-word sum.
    @Test func bulkSumMatchesReference() {
        var random = SplitMix64(seed: 1)
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            var reference: UInt32 = 0
            var index = 0
            while index + 1 < length {
                reference += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
                index += 2
            }
            if index < length { reference += UInt32(bytes[index]) << 8 }
            while reference > 0xFFFF { reference = (reference >> 16) + (reference & 0xFFFF) }
            let expected = ~UInt16(reference)
            #expect(bytes.withUnsafeBytes { InternetChecksum.of($0) } == expected, "length \(length)")
        }
    }

    /// The 64-byte SIMD blocks carry nothing away: 64 KiB of 0xFF (every lane at its largest)
    /// and random bytes at every misalignment agree with the word-by-word sum.
    @Test func bulkBlocksMatchReferenceAtEveryAlignmentAndExtreme() {
        func reference(_ bytes: ArraySlice<UInt8>) -> UInt16 {
            var sum: UInt64 = 0
            var index = bytes.startIndex
            while index + 1 < bytes.endIndex {
                sum += UInt64(bytes[index]) << 8 | UInt64(bytes[index + 1])
                index += 2
            }
            if index < bytes.endIndex { sum += UInt64(bytes[index]) << 8 }
            while sum > 0xFFFF { sum = (sum >> 16) + (sum & 0xFFFF) }
            return ~UInt16(sum)
        }
        let ones = [UInt8](repeating: 0xFF, count: 65536)
        #expect(ones.withUnsafeBytes { InternetChecksum.of($0) } == reference(ones[...]))
        var random = SplitMix64(seed: 3)
        let bytes = (0..<4200).map { _ in UInt8.random(in: 0...255, using: &random) }
        for start in 0..<8 {
            for end in [start + 64, start + 129, 1514, 4200] {
                let slice = bytes[start..<end]
                let sum = bytes.withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
                #expect(sum == reference(slice), "bytes \(start)..<\(end)")
            }
        }
    }

    @Test func chunksSumLikeTheWhole() {
        let bytes = (0..<101).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        var chunked = InternetChecksum()
        bytes.withUnsafeBytes { all in
            chunked.add(UnsafeRawBufferPointer(rebasing: all[0..<40]))
            chunked.add(UnsafeRawBufferPointer(rebasing: all[40..<64]))
            chunked.add(UnsafeRawBufferPointer(rebasing: all[64..<101]))
        }
        #expect(chunked.value == bytes.withUnsafeBytes { InternetChecksum.of($0) })
    }

    /// RFC 1624: updating a 16-bit or 32-bit field incrementally equals recomputing.
    @Test func incrementalUpdateEqualsRecomputation() throws {
        var random = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            var header = (0..<20).map { _ in UInt8.random(in: 0...255, using: &random) }
            header[0] = 0x45
            header[10] = 0
            header[11] = 0
            let original = header.withUnsafeBytes { InternetChecksum.of($0) }
            header[10] = UInt8(original >> 8)
            header[11] = UInt8(original & 0xFF)
            let oldAddress = UInt32(header[16]) << 24 | UInt32(header[17]) << 16 | UInt32(header[18]) << 8 | UInt32(header[19])
            let newAddress = UInt32.random(in: 0...UInt32.max, using: &random)
            let oldTTL = UInt16(header[8]) << 8 | UInt16(header[9])
            let newTTL = UInt16.random(in: 0...UInt16.max, using: &random)
            var updated = InternetChecksum.update(original, replacing: oldAddress, with: newAddress)
            updated = InternetChecksum.update(updated, replacing: oldTTL, with: newTTL)
            for (offset, shift) in [(16, 24), (17, 16), (18, 8), (19, 0)] {
                header[offset] = UInt8(truncatingIfNeeded: newAddress >> UInt32(shift))
            }
            header[8] = UInt8(newTTL >> 8)
            header[9] = UInt8(newTTL & 0xFF)
            header[10] = 0
            header[11] = 0
            let recomputed = header.withUnsafeBytes { InternetChecksum.of($0) }
            // Both forms of zero verify; RFC 1624 eqn 3 never yields 0xFFFF from a nonzero sum.
            #expect(updated == recomputed || (updated == 0xFFFF && recomputed == 0) || (updated == 0 && recomputed == 0xFFFF))
            header[10] = UInt8(updated >> 8)
            header[11] = UInt8(updated & 0xFF)
            var verify = InternetChecksum()
            header.withUnsafeBytes { verify.add($0) }
            #expect(verify.verifies)
        }
    }

    @Test func udpZeroChecksumIsSentAsAllOnes() throws {
        // Find a payload whose UDP checksum computes to 0 and check it is stored as 0xFFFF.
        let source = IPv4Address(10, 0, 0, 1), destination = IPv4Address(10, 0, 0, 2)
        for candidate in 0..<UInt32(70_000) {
            var bytes = [UInt8](repeating: 0, count: 12)
            let stored: UInt16? = try bytes.withUnsafeMutableBytes { buffer in
                let udp = try UDPDatagram.build(in: buffer, sourcePort: 1, destinationPort: 2, payloadLength: 4)
                udp.payload.storeBytes(of: candidate.bigEndian, as: UInt32.self)
                var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, protocol: .udp, length: 12)
                sum.add(UnsafeRawBufferPointer(buffer))
                guard sum.value == 0 else { return nil }
                udp.updateChecksum(source: source, destination: destination)
                #expect(udp.isChecksumValid(source: source, destination: destination))
                return udp.checksum
            }
            if let stored {
                #expect(stored == 0xFFFF)
                return
            }
        }
        Issue.record("no payload with a zero checksum found")
    }
}
