import Testing
import Wire

@testable import Overlay

/// Software TSO and GRO on crafted frames, every checksum checked against a full recomputation.
@Suite struct OffloadTests {
    static let client = IPv4Address(10, 20, 0, 2), server = IPv4Address(10, 20, 0, 3)
    static let timestamps: [UInt8] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]  // NOP NOP TS

    /// An Ethernet/IPv4/TCP frame with `payload`, flags, sequence, options, valid checksums
    /// (unless `checksum` is given), IP ID `identification`.
    static func frame(payload: [UInt8], sequence: UInt32, flags: TCPFlags = [.ack], options: [UInt8] = timestamps,
                      identification: UInt16 = 100, sourcePort: UInt16 = 40000, checksum: UInt16? = nil) -> [UInt8] {
        let tcpLength = 20 + options.count
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + tcpLength + payload.count)
        bytes.withUnsafeMutableBytes { buffer in
            let ethernet = try! EthernetFrame.build(in: buffer, destination: .derived(from: server), source: .derived(from: client), etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: ethernet.payload, totalLength: 20 + tcpLength + payload.count, protocol: .tcp,
                                           source: client, destination: server, identification: identification)
            let tcp = ip.payload
            tcp.storeBigEndian16(sourcePort, at: 0)
            tcp.storeBigEndian16(8080, at: 2)
            tcp.storeBigEndian32(sequence, at: 4)
            tcp.storeBigEndian32(777, at: 8)
            tcp[12] = UInt8(tcpLength / 4) << 4
            tcp[13] = flags.rawValue
            tcp.storeBigEndian16(500, at: 14)
            options.withUnsafeBytes { tcp.slice(20, tcpLength).copyMemory(from: $0) }
            payload.withUnsafeBytes { tcp.slice(tcpLength, tcp.count).copyMemory(from: $0) }
            let segment = try! TCPSegment(validating: tcp)
            segment.updateChecksum(source: client, destination: server)
            if let checksum { segment.checksum = checksum }
        }
        return bytes
    }

    static func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) } }

    struct Parsed {
        var sequence: UInt32, flags: TCPFlags, identification: UInt16, payload: [UInt8], options: [UInt8]
        var ipValid: Bool, tcpValid: Bool
    }

    static func parse(_ bytes: [UInt8]) throws -> Parsed {
        var copy = bytes
        return try copy.withUnsafeMutableBytes { buffer in
            let ip = try IPv4Packet(validating: try EthernetFrame(validating: buffer).payload)
            let tcp = try TCPSegment(validating: ip.payload)
            return Parsed(sequence: tcp.sequenceNumber, flags: tcp.flags, identification: ip.identification,
                          payload: Array(UnsafeRawBufferPointer(tcp.payload)), options: Array(UnsafeRawBufferPointer(tcp.options)),
                          ipValid: ip.isHeaderChecksumValid, tcpValid: tcp.isChecksumValid(source: ip.source, destination: ip.destination))
        }
    }

    /// Runs the segmenter; returns the segments.
    static func segment(_ frame: [UInt8], mss: Int) throws -> [[UInt8]] {
        var input = frame
        let slotSize = 2048
        var output = [UInt8](repeating: 0, count: 64 * slotSize)
        var lengths = [Int](repeating: 0, count: 64)
        let count = try input.withUnsafeMutableBytes { frame in
            try output.withUnsafeMutableBytes { out in
                try lengths.withUnsafeMutableBufferPointer { lengths in
                    try TCPSegmentation.segment(frame, maximumSegmentSize: mss, into: out, slotSize: slotSize, lengths: lengths)
                }
            }
        }
        return (0..<count).map { Array(output[($0 * slotSize)..<($0 * slotSize + lengths[$0])]) }
    }

    /// Runs the coalescer; returns (virtio-net header, frame) per result.
    static func coalesce(_ frames: [[UInt8]]) throws -> [(header: VirtioNetHeader, frame: [UInt8], segments: Int)] {
        var copies = frames
        let pointers = copies.indices.map { index in
            copies[index].withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer.allocate(byteCount: $0.count, alignment: 8), count: $0.count) }
        }
        defer { pointers.forEach { $0.deallocate() } }
        for (index, pointer) in pointers.enumerated() { copies[index].withUnsafeBytes { pointer.copyMemory(from: $0) } }
        var output = [UInt8](repeating: 0, count: 1 << 20)
        var results = [CoalescedFrame](repeating: CoalescedFrame(offset: 0, length: 0, segments: 0), count: frames.count)
        let count = try pointers.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBytes { out in
                try results.withUnsafeMutableBufferPointer { try TCPCoalescing.coalesce(input, into: out, results: $0) }
            }
        }
        return try (0..<count).map { index in
            let result = results[index]
            var bytes = Array(output[result.offset..<(result.offset + result.length)])
            let header = try bytes.withUnsafeMutableBytes { try VirtioNetHeader(parsing: $0, frameLength: result.length - 10) }
            return (header, Array(bytes[10...]), result.segments)
        }
    }

    /// Finishes a CHECKSUM_PARTIAL TCP checksum as the kernel would, and checks it.
    static func completedChecksumIsValid(_ frame: [UInt8], _ header: VirtioNetHeader) -> Bool {
        var bytes = frame
        let start = Int(header.checksumStart), at = start + Int(header.checksumOffset)
        var sum = InternetChecksum()
        bytes.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        let final = sum.value
        bytes[at] = UInt8(final >> 8)
        bytes[at + 1] = UInt8(final & 0xFF)
        return (try? parse(bytes).tcpValid) ?? false
    }

    // MARK: segmentation

    @Test func segmentationSplitsLikeANIC() throws {
        let data = Self.payload(10_000)
        let big = Self.frame(payload: data, sequence: 4_000_000_000, flags: [.ack, .psh, .fin, .cwr], identification: 65534, checksum: 0xBEEF)
        let segments = try Self.segment(big, mss: 1398)
        #expect(segments.count == 8)
        var joined: [UInt8] = []
        for (index, segment) in segments.enumerated() {
            let parsed = try Self.parse(segment)
            #expect(parsed.ipValid && parsed.tcpValid, "segment \(index) checksums")
            #expect(parsed.sequence == 4_000_000_000 &+ UInt32(index * 1398), "sequence numbers wrap like TCP's")
            #expect(parsed.identification == 65534 &+ UInt16(index))
            #expect(parsed.options == Self.timestamps)
            let last = index == segments.count - 1
            #expect(parsed.flags.contains(.fin) == last && parsed.flags.contains(.psh) == last)
            #expect(parsed.flags.contains(.cwr) == (index == 0) && parsed.flags.contains(.ack))
            #expect(parsed.payload.count == (last ? 10_000 - 7 * 1398 : 1398))
            joined += parsed.payload
        }
        #expect(joined == data)
    }

    @Test func segmentationRefusesWhatItCannotSplit() throws {
        var udp = Self.frame(payload: Self.payload(100), sequence: 1)
        udp[14 + 9] = 17
        #expect(throws: OffloadError.notTCPv4) { _ = try Self.segment(udp, mss: 1000) }
        #expect(throws: OffloadError.badSegmentSize) { _ = try Self.segment(Self.frame(payload: Self.payload(100), sequence: 1), mss: 0) }
        #expect(throws: OffloadError.outputTooSmall) { _ = try Self.segment(Self.frame(payload: Self.payload(65_000), sequence: 1), mss: 100) }
        let one = try Self.segment(Self.frame(payload: Self.payload(100), sequence: 1, flags: [.ack, .psh]), mss: 1398)
        #expect(one.count == 1)
        let parsed = try Self.parse(one[0])
        #expect(parsed.flags == [.ack, .psh] && parsed.tcpValid)
    }

    // MARK: coalescing

    @Test func segmentsOfOneFlowCoalesceBack() throws {
        let data = Self.payload(20_000)
        let segments = try Self.segment(Self.frame(payload: data, sequence: 1000, flags: [.ack, .psh]), mss: 1398)
        let results = try Self.coalesce(segments)
        #expect(results.count == 1)
        let (header, frame, count) = results[0]
        #expect(count == segments.count)
        #expect(header.gsoType == .tcpv4 && header.gsoSize == 1398 && header.flags == .needsChecksum)
        #expect(header.headerLength == 14 + 20 + 32 && header.checksumStart == 34 && header.checksumOffset == 16)
        let parsed = try Self.parse(frame)
        #expect(parsed.payload == data && parsed.sequence == 1000 && parsed.ipValid)
        #expect(parsed.flags == [.ack, .psh], "PSH of the last segment is kept")
        #expect(Self.completedChecksumIsValid(frame, header))
    }

    @Test func gapsAndReorderingAreNotBridged() throws {
        let data = Self.payload(5 * 1000)
        var segments = try Self.segment(Self.frame(payload: data, sequence: 0), mss: 1000)
        segments.swapAt(1, 2)  // 0 2 1 3 4
        let results = try Self.coalesce(segments)
        #expect(results.count > 1)
        // Every byte comes out exactly once, at its own sequence number.
        var covered = [UInt8?](repeating: nil, count: data.count)
        for (header, frame, _) in results {
            let parsed = try Self.parse(frame)
            if header.gsoType == .none { #expect(parsed.tcpValid) } else { #expect(Self.completedChecksumIsValid(frame, header)) }
            for (offset, byte) in parsed.payload.enumerated() {
                #expect(covered[Int(parsed.sequence) + offset] == nil)
                covered[Int(parsed.sequence) + offset] = byte
            }
        }
        #expect(covered.map { $0 ?? 0 } == data && !covered.contains(nil))
    }

    @Test func interleavedFlowsCoalesceSeparately() throws {
        let a = try Self.segment(Self.frame(payload: Self.payload(3000), sequence: 0, sourcePort: 1111), mss: 1000)
        let b = try Self.segment(Self.frame(payload: Self.payload(3000), sequence: 500, sourcePort: 2222), mss: 1000)
        let results = try Self.coalesce([a[0], b[0], a[1], b[1], a[2], b[2]])
        #expect(results.count == 2 && results.allSatisfy { $0.segments == 3 })
        let first = try Self.parse(results[0].frame), second = try Self.parse(results[1].frame)
        #expect(first.sequence == 0 && second.sequence == 500)
    }

    @Test func whatMergingWouldHideIsNeverMerged() throws {
        let segments = try Self.segment(Self.frame(payload: Self.payload(3000), sequence: 0), mss: 1000)
        // A corrupted middle segment passes alone, still corrupt; nothing bridges over it.
        var corrupt = segments
        corrupt[1][60] ^= 0xFF
        let results = try Self.coalesce(corrupt)
        #expect(results.count == 3 && results.allSatisfy { $0.segments == 1 })
        let middle = try Self.parse(results[1].frame)
        #expect(!middle.tcpValid)
        // Different TCP options (a newer timestamp) do not merge.
        var options = Self.timestamps
        options[7] = 0x35
        let later = Self.frame(payload: Self.payload(1000), sequence: 1000, options: options)
        #expect(try Self.coalesce([segments[0], later]).count == 2)
        // SYN, FIN, RST and URG pass alone.
        for flag: TCPFlags in [.syn, .fin, .rst, .urg] {
            let odd = Self.frame(payload: Self.payload(1000), sequence: 1000, flags: [.ack, flag])
            #expect(try Self.coalesce([segments[0], odd]).count == 2, "\(flag)")
        }
        // A short segment ends the merge: what follows starts a new frame.
        let short = Self.frame(payload: Self.payload(400), sequence: 1000)
        let after = Self.frame(payload: Self.payload(1000), sequence: 1400)
        let split = try Self.coalesce([segments[0], short, after])
        #expect(split.map(\.segments) == [2, 1])
    }

    @Test func mergedFramesStayWithin64KiB() throws {
        // 50 full segments in sequence, from two super-packets (one cannot exceed 64 KiB either).
        let segments = try Self.segment(Self.frame(payload: Self.payload(40 * 1398), sequence: 0), mss: 1398)
            + Self.segment(Self.frame(payload: Self.payload(10 * 1398), sequence: 40 * 1398), mss: 1398)
        let results = try Self.coalesce(segments)
        #expect(results.count == 2 && results.map(\.segments).reduce(0, +) == 50)
        for (header, frame, _) in results {
            #expect(frame.count - 14 <= 65535)
            #expect(Self.completedChecksumIsValid(frame, header))
        }
    }
}
