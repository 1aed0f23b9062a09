import Testing
import Wire

@testable import Overlay

/// Software TSO and GRO on crafted frames, every checksum checked against a full recomputation.
@Suite struct OffloadTests {
    static let client = IPv4Address(10, 20, 0, 2), server = IPv4Address(10, 20, 0, 3)
    static let timestamps: [UInt8] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]  // NOP NOP TS

    /// An Ethernet/IPv4/TCP frame with `payload`, flags, sequence, options, valid checksums
    /// (unless `checksum` is given), IP ID `identification`, ports, ACK number and TTL.
    static func frame(payload: [UInt8], sequence: UInt32, flags: TCPFlags = [.ack], options: [UInt8] = timestamps,
                      identification: UInt16 = 100, sourcePort: UInt16 = 40000, destinationPort: UInt16 = 8080,
                      acknowledgment: UInt32 = 777, timeToLive: UInt8 = 64, checksum: UInt16? = nil) -> [UInt8] {
        let tcpLength = 20 + options.count
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + tcpLength + payload.count)
        bytes.withUnsafeMutableBytes { buffer in
            let ethernet = try! EthernetFrame.build(in: buffer, destination: .derived(from: server), source: .derived(from: client), etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: ethernet.payload, totalLength: 20 + tcpLength + payload.count, protocol: .tcp,
                                           source: client, destination: server, timeToLive: timeToLive, identification: identification)
            let tcp = ip.payload
            tcp.storeBigEndian16(sourcePort, at: 0)
            tcp.storeBigEndian16(destinationPort, at: 2)
            tcp.storeBigEndian32(sequence, at: 4)
            tcp.storeBigEndian32(acknowledgment, at: 8)
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
                    try Segmentation.segment(frame, maximumSegmentSize: mss, into: out, slotSize: slotSize, lengths: lengths)
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

    /// `frame` with its CHECKSUM_PARTIAL TCP checksum finished as the kernel would.
    static func completed(_ frame: [UInt8], _ header: VirtioNetHeader) -> [UInt8] {
        var bytes = frame
        let start = Int(header.checksumStart), at = start + Int(header.checksumOffset)
        var sum = InternetChecksum()
        bytes.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        let final = sum.value
        bytes[at] = UInt8(final >> 8)
        bytes[at + 1] = UInt8(final & 0xFF)
        return bytes
    }

    /// Finishes a CHECKSUM_PARTIAL TCP checksum as the kernel would, and checks it.
    static func completedChecksumIsValid(_ frame: [UInt8], _ header: VirtioNetHeader) -> Bool {
        (try? parse(completed(frame, header)).tcpValid) ?? false
    }

    /// True when the IPv4 total length covers exactly the rest of `frame` (Ethernet, 20-byte
    /// IPv4 header, TCP) and its IPv4 header and TCP checksums hold on a full recomputation by
    /// a plain big-endian ones'-complement sum written here, independent of Wire's.
    static func checksumsHoldOnRecomputation(_ frame: [UInt8]) -> Bool {
        func folded(_ bytes: [UInt8]) -> UInt32 {
            var total: UInt32 = 0
            for index in stride(from: 0, to: bytes.count, by: 2) {
                let high = UInt32(bytes[index]) << 8
                let low = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
                total += high | low
            }
            while total > 0xFFFF { total = (total & 0xFFFF) + (total >> 16) }
            return total
        }
        guard frame.count >= 14 + 20 + 20, (Int(frame[16]) << 8 | Int(frame[17])) == frame.count - 14 else { return false }
        let tcp = Array(frame[34...])
        let pseudo: [UInt8] = Array(frame[26..<34]) + [0, 6, UInt8(tcp.count >> 8), UInt8(tcp.count & 0xFF)]
        return folded(Array(frame[14..<34])) == 0xFFFF && folded(pseudo + tcp) == 0xFFFF
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
        var icmp = Self.frame(payload: Self.payload(100), sequence: 1)
        icmp[14 + 9] = 1
        #expect(throws: OffloadError.notTCPOrUDPv4) { _ = try Self.segment(icmp, mss: 1000) }
        #expect(throws: OffloadError.badSegmentSize) { _ = try Self.segment(Self.frame(payload: Self.payload(100), sequence: 1), mss: 0) }
        #expect(throws: OffloadError.outputTooSmall) { _ = try Self.segment(Self.frame(payload: Self.payload(65_000), sequence: 1), mss: 100) }
        let one = try Self.segment(Self.frame(payload: Self.payload(100), sequence: 1, flags: [.ack, .psh]), mss: 1398)
        #expect(one.count == 1)
        let parsed = try Self.parse(one[0])
        #expect(parsed.flags == [.ack, .psh] && parsed.tcpValid)
    }

    /// The gathering segmenter (headers written apart, payload left in place, as UDP GSO sends
    /// it) yields the same datagrams byte for byte as the copying one, odd sizes included.
    @Test func gatheredSegmentsEqualCopiedSegments() throws {
        for (size, mss, flags) in [(10_000, 1398, TCPFlags.ack), (65_000, 1398, [.ack, .psh]), (4_001, 1000, [.ack, .fin]), (77, 1398, .ack)] {
            var frame = Self.frame(payload: Self.payload(size), sequence: 0xFFFF_FF00, flags: flags)
            let copied = try Self.segment(frame, mss: mss)
            let slotSize = 128
            var headers = [UInt8](repeating: 0, count: 64 * slotSize)
            var payloads = [Range<Int>](repeating: 0..<0, count: 64)
            let (count, headerLength) = try frame.withUnsafeMutableBytes { frame in
                try headers.withUnsafeMutableBytes { headers in
                    try payloads.withUnsafeMutableBufferPointer {
                        try Segmentation.segmentHeaders(frame, maximumSegmentSize: mss, into: headers, slotSize: slotSize, payloads: $0)
                    }
                }
            }
            #expect(count == copied.count)
            for index in 0..<min(count, copied.count) {
                let gathered = Array(headers[(index * slotSize)..<(index * slotSize + headerLength)]) + Array(frame[payloads[index]])
                #expect(gathered == copied[index], "size \(size), segment \(index)")
            }
        }
    }

    /// Software USO: a UDP super-frame (what a TAP with TUN_F_USO4 hands over for a socket using
    /// UDP_SEGMENT) splits into datagrams of `gso_size` payload bytes, each with its own IP
    /// length, incremented ID and complete checksums, payload in order; coalescing leaves UDP
    /// alone.
    @Test func udpSuperFramesSplitIntoWholeDatagrams() throws {
        let data = Self.payload(5000)
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + 8 + data.count)
        bytes.withUnsafeMutableBytes { buffer in
            let ethernet = try! EthernetFrame.build(in: buffer, destination: .derived(from: Self.server), source: .derived(from: Self.client), etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: ethernet.payload, totalLength: 20 + 8 + data.count, protocol: .udp,
                                           source: Self.client, destination: Self.server, identification: 7)
            let udp = try! UDPDatagram.build(in: ip.payload, sourcePort: 5000, destinationPort: 443, payloadLength: data.count)
            data.withUnsafeBytes { udp.payload.copyMemory(from: $0) }
            udp.checksum = 0x1234  // a partial sum, as the kernel leaves it: must not be trusted
        }
        let datagrams = try Self.segment(bytes, mss: 1400)
        #expect(datagrams.count == 4)
        var received: [UInt8] = []
        for (index, datagram) in datagrams.enumerated() {
            var copy = datagram
            try copy.withUnsafeMutableBytes { buffer in
                let ip = try IPv4Packet(validating: try EthernetFrame(validating: buffer).payload)
                let udp = try UDPDatagram(validating: ip.payload)
                #expect(ip.isHeaderChecksumValid && ip.identification == 7 + UInt16(index))
                #expect(udp.checksum != 0 && udp.isChecksumValid(source: ip.source, destination: ip.destination))
                #expect(udp.sourcePort == 5000 && udp.destinationPort == 443)
                #expect(udp.length == 8 + (index < 3 ? 1400 : 800) && ip.totalLength == 20 + udp.length)
                received += Array(UnsafeRawBufferPointer(udp.payload))
            }
        }
        #expect(received == data)
        let passed = try Self.coalesce(datagrams)
        #expect(passed.map(\.segments) == [1, 1, 1, 1])
        #expect(passed.map(\.frame) == datagrams)
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

// MARK: crafted edge cases

extension OffloadTests {
    @Test func segmentationCopiesEveryOtherFieldAndFlagsTheLastFullSegment() throws {
        // An exact multiple of the MSS: the last segment is full-size and still the only one
        // with FIN and PSH. The input's TCP checksum (0 here) is not trusted.
        let data = Self.payload(4 * 1000)
        let big = Self.frame(payload: data, sequence: 0xFFFF_FC00, flags: [.ack, .psh, .fin], identification: 0xFFFE,
                             sourcePort: 3333, destinationPort: 4444, acknowledgment: 0xDEAD_BEEF, timeToLive: 17, checksum: 0)
        let segments = try Self.segment(big, mss: 1000)
        #expect(segments.count == 4)
        for (index, segment) in segments.enumerated() {
            #expect(segment.count == 14 + 20 + 32 + 1000)
            #expect(Self.checksumsHoldOnRecomputation(segment), "segment \(index)")
            let parsed = try Self.parse(segment)
            let expectedFlags: TCPFlags = index == 3 ? [.ack, .psh, .fin] : [.ack]
            #expect(parsed.flags == expectedFlags, "segment \(index)")
            #expect(parsed.sequence == 0xFFFF_FC00 &+ UInt32(index * 1000))
            #expect(parsed.identification == 0xFFFE &+ UInt16(index))
            #expect(parsed.payload == Array(data[(index * 1000)..<((index + 1) * 1000)]))
            // The rest is the super-frame's: MACs, type, version, TOS; DF, TTL, protocol;
            // addresses, ports; ACK number, data offset; window; urgent pointer, options.
            for range in [0..<16, 20..<24, 26..<38, 42..<47, 48..<50, 52..<66] {
                #expect(Array(segment[range]) == Array(big[range]), "segment \(index) bytes \(range)")
            }
        }
    }

    @Test func segmentingThenCoalescingRestoresTheSuperFrameExactly() throws {
        for flags: TCPFlags in [[.ack], [.ack, .psh]] {
            let original = Self.frame(payload: Self.payload(30_000), sequence: 123_456, flags: flags, identification: 9)
            let segments = try Self.segment(original, mss: 1398)
            #expect(segments.allSatisfy { Self.checksumsHoldOnRecomputation($0) })
            let results = try Self.coalesce(segments)
            #expect(results.count == 1 && results.first?.segments == segments.count)
            guard let result = results.first else { continue }
            let completed = Self.completed(result.frame, result.header)
            #expect(completed == original, "flags \(flags)")
            #expect(Self.checksumsHoldOnRecomputation(completed))
        }
    }

    @Test func cwrAndFinSegmentsStayApartAfterARoundTrip() throws {
        // CWR lands on the first segment and FIN|PSH on the last; neither may be merged, the
        // middle merges back, and every byte comes out once.
        let data = Self.payload(6 * 1000)
        let segments = try Self.segment(Self.frame(payload: data, sequence: 5000, flags: [.ack, .cwr, .psh, .fin]), mss: 1000)
        let results = try Self.coalesce(segments)
        #expect(results.map(\.segments) == [1, 4, 1])
        guard results.count == 3 else { return }
        let expectedFlags: [TCPFlags] = [[.ack, .cwr], [.ack], [.ack, .psh, .fin]]
        #expect(try results.map { try Self.parse($0.frame).flags } == expectedFlags)
        #expect(results[0].header == VirtioNetHeader.none && results[0].frame == segments[0])
        #expect(results[2].header == VirtioNetHeader.none && results[2].frame == segments[5])
        let middle = Self.completed(results[1].frame, results[1].header)
        #expect(Self.checksumsHoldOnRecomputation(middle))
        let parsed = try Self.parse(middle)
        #expect(parsed.sequence == 6000 && parsed.payload == Array(data[1000..<5000]))
    }

    @Test func aPushInTheMiddleEndsTheMergeAndIsKept() throws {
        let data = Self.payload(4 * 1000)
        let frames = (0..<4).map { (index: Int) -> [UInt8] in
            let flags: TCPFlags = index == 1 ? [.ack, .psh] : [.ack]
            return Self.frame(payload: Array(data[(index * 1000)..<((index + 1) * 1000)]), sequence: UInt32(index * 1000),
                              flags: flags, identification: UInt16(100 + index))
        }
        let results = try Self.coalesce(frames)
        #expect(results.map(\.segments) == [2, 2])
        guard results.count == 2 else { return }
        let expectedFlags: [TCPFlags] = [[.ack, .psh], [.ack]]
        for (index, result) in results.enumerated() {
            let completed = Self.completed(result.frame, result.header)
            #expect(Self.checksumsHoldOnRecomputation(completed))
            let parsed = try Self.parse(completed)
            #expect(parsed.flags == expectedFlags[index], "frame \(index)")
            #expect(parsed.sequence == UInt32(index * 2000) && parsed.identification == UInt16(100 + 2 * index))
            #expect(parsed.payload == Array(data[(index * 2000)..<((index + 1) * 2000)]))
        }
    }

    @Test func reversedAndRetransmittedSegmentsAreNotMerged() throws {
        let data = Self.payload(4 * 1000)
        let segments = try Self.segment(Self.frame(payload: data, sequence: 0), mss: 1000)
        // Reversed: no segment follows its predecessor, so each passes alone, untouched.
        let reversed = try Self.coalesce(Array(segments.reversed()))
        #expect(reversed.count == 4 && reversed.allSatisfy { $0.segments == 1 && $0.header == VirtioNetHeader.none })
        #expect(reversed.map(\.frame) == Array(segments.reversed()))
        // A retransmitted copy of segment 1: no frame repeats or skips bytes; each frame's payload
        // is the stream at its own sequence number, and all five copies' bytes come out.
        let results = try Self.coalesce([segments[0], segments[1], segments[1], segments[2], segments[3]])
        #expect(results.count >= 2 && results.map(\.segments).reduce(0, +) == 5)
        var delivered = 0
        for result in results {
            let frame = result.header.gsoType == VirtioNetHeader.GSOType.none ? result.frame : Self.completed(result.frame, result.header)
            #expect(Self.checksumsHoldOnRecomputation(frame))
            let parsed = try Self.parse(frame)
            let start = Int(parsed.sequence), end = Int(parsed.sequence) + parsed.payload.count
            #expect(end <= data.count)
            #expect(parsed.payload == Array(data[start..<min(end, data.count)]))
            delivered += parsed.payload.count
        }
        #expect(delivered == 5 * 1000)
    }

    @Test func mixedFlowsEachCoalesceIntoTheirOwnFrame() throws {
        // Four flows, each differing from the first in one field the merge must respect
        // (destination port, ACK number, TTL), all at sequence 0 with their own bytes; three
        // segments each, interleaved. Each comes back as its own super-frame, byte for byte.
        let originals = [
            Self.frame(payload: Array(Self.payload(3100).suffix(3000)), sequence: 0),
            Self.frame(payload: Array(Self.payload(3200).suffix(3000)), sequence: 0, destinationPort: 9090),
            Self.frame(payload: Array(Self.payload(3300).suffix(3000)), sequence: 0, acknowledgment: 999),
            Self.frame(payload: Array(Self.payload(3400).suffix(3000)), sequence: 0, timeToLive: 63),
        ]
        let flows = try originals.map { try Self.segment($0, mss: 1000) }
        let interleaved = (0..<3).flatMap { index in flows.map { $0[index] } }
        let results = try Self.coalesce(interleaved)
        #expect(results.count == 4 && results.allSatisfy { $0.segments == 3 })
        for (index, (result, original)) in zip(results, originals).enumerated() {
            let completed = Self.completed(result.frame, result.header)
            #expect(completed == original, "flow \(index)")
            #expect(Self.checksumsHoldOnRecomputation(completed))
        }
    }
}
