import Glibc
import Wire

/// One frame produced by ``TCPCoalescing``: a virtio-net header followed by an Ethernet frame,
/// at `offset` in the output, `length` bytes in all, made of `segments` received frames.
public struct CoalescedFrame: Equatable, Sendable {
    public var offset: Int
    public var length: Int
    public var segments: Int
}

/// Software GRO for TCP/IPv4: merges in-order segments of one flow, received in one batch,
/// into a single large frame with a virtio-net `GSO_TCPV4` header — what Linux GRO would hand
/// up — so that the TAP takes one write instead of dozens.
///
/// Segments merge only when merging loses nothing: same addresses, ports, TOS, TTL, DF, ACK
/// number and identical TCP options; flags no more than ACK and PSH (a PSH ends the merge);
/// consecutive sequence numbers; every segment as long as the first except the last; valid
/// IPv4 and TCP checksums (a corrupt segment must never be hidden inside a fresh checksum);
/// 64 KiB at most. Anything else passes through on its own, with an empty virtio-net header.
/// Flows may interleave within a batch; at most ``openFlows`` are merged at once.
public enum TCPCoalescing {
    /// How many flows can be merging at the same time in one batch.
    public static let openFlows = 8

    private struct Segment {
        var group = -1
        var next = -1
        var payloadOffset = 0  // within the frame
        var payloadLength = 0
        var sequence: UInt32 = 0
    }

    private struct Group {
        var first: Int
        var last: Int
        var count = 1
        var segmentSize: Int
        var totalPayload: Int
        var nextSequence: UInt32
        var open: Bool
    }

    /// Coalesces `frames` (Ethernet frames, in arrival order) into `output`; fills `results` in
    /// the order each group's first frame arrived and returns how many there are. Allocates
    /// nothing on the heap for batches of up to 128 frames.
    public static func coalesce(
        _ frames: UnsafeBufferPointer<UnsafeMutableRawBufferPointer>, into output: UnsafeMutableRawBufferPointer,
        results: UnsafeMutableBufferPointer<CoalescedFrame>
    ) throws(OffloadError) -> Int {
        let count = frames.count
        guard count > 0 else { return 0 }
        return try withUnsafeTemporaryAllocation(of: Segment.self, capacity: count) { segments throws(OffloadError) in
            try withUnsafeTemporaryAllocation(of: Group.self, capacity: count) { groups throws(OffloadError) in
                var groupCount = 0
                for index in 0..<count {
                    segments.initializeElement(at: index, to: Segment())
                    let frame = frames[index]
                    let candidate = mergeable(frame)
                    if let candidate, let target = openGroup(for: frame, candidate, segments, groups, groupCount, frames) {
                        segments[index] = Segment(group: target, payloadOffset: candidate.payload, payloadLength: candidate.length,
                                                  sequence: candidate.sequence)
                        segments[groups[target].last].next = index
                        groups[target].last = index
                        groups[target].count += 1
                        groups[target].totalPayload += candidate.length
                        groups[target].nextSequence = candidate.sequence &+ UInt32(candidate.length)
                        if candidate.length < groups[target].segmentSize || candidate.push { groups[target].open = false }
                    } else {
                        segments[index].group = groupCount
                        segments[index].payloadOffset = candidate?.payload ?? 0
                        segments[index].payloadLength = candidate?.length ?? 0
                        segments[index].sequence = candidate?.sequence ?? 0
                        groups.initializeElement(at: groupCount, to: Group(
                            first: index, last: index, segmentSize: candidate?.length ?? 0, totalPayload: candidate?.length ?? 0,
                            nextSequence: (candidate?.sequence ?? 0) &+ UInt32(candidate?.length ?? 0),
                            open: candidate.map { !$0.push } ?? false))
                        groupCount += 1
                        closeOldestIfTooManyOpen(groups, groupCount)
                    }
                }
                guard groupCount <= results.count else { throw OffloadError.outputTooSmall }
                var offset = 0
                for group in 0..<groupCount {
                    let length = try write(groups[group], segments, frames, into: output, at: offset)
                    results[group] = CoalescedFrame(offset: offset, length: length, segments: groups[group].count)
                    offset += length
                }
                return groupCount
            }
        }
    }

    /// What makes a frame a merge candidate; nil when it must pass on its own.
    private struct Candidate {
        var payload: Int
        var length: Int
        var sequence: UInt32
        var push: Bool
    }

    private static func mergeable(_ frame: UnsafeMutableRawBufferPointer) -> Candidate? {
        guard let layout = try? Segmentation.headers(frame), layout.isTCP else { return nil }
        let flags = TCPFlags(rawValue: frame[layout.transport + 13])
        guard flags.isSubset(of: [.ack, .psh]), flags.contains(.ack), layout.end > layout.payload else { return nil }
        let ip = frame.slice(layout.ip, layout.transport)
        var ipSum = InternetChecksum()
        ipSum.add(UnsafeRawBufferPointer(ip))
        let tcp = frame.slice(layout.transport, layout.end)
        var tcpSum = InternetChecksum.pseudoHeader(
            source: frame.loadIPv4(at: layout.ip + 12), destination: frame.loadIPv4(at: layout.ip + 16), protocol: .tcp,
            length: tcp.count)
        tcpSum.add(UnsafeRawBufferPointer(tcp))
        guard ipSum.verifies, tcpSum.verifies else { return nil }
        return Candidate(payload: layout.payload, length: layout.end - layout.payload,
                         sequence: frame.loadBigEndian32(at: layout.transport + 4), push: flags.contains(.psh))
    }

    /// An open group `frame` continues, if any.
    private static func openGroup(
        for frame: UnsafeMutableRawBufferPointer, _ candidate: Candidate, _ segments: UnsafeMutableBufferPointer<Segment>,
        _ groups: UnsafeMutableBufferPointer<Group>, _ groupCount: Int, _ frames: UnsafeBufferPointer<UnsafeMutableRawBufferPointer>
    ) -> Int? {
        for group in stride(from: groupCount - 1, through: 0, by: -1) where groups[group].open {
            let head = frames[groups[group].first]
            let first = segments[groups[group].first]
            guard groups[group].nextSequence == candidate.sequence, candidate.length <= groups[group].segmentSize,
                groups[group].totalPayload + candidate.length + first.payloadOffset - EthernetFrame.headerLength <= Int(UInt16.max),
                sameFlow(head, headerEnd: first.payloadOffset, frame, headerEnd: candidate.payload)
            else { continue }
            return group
        }
        return nil
    }

    /// Same flow and nothing that merging would lose: headers equal except for the fields that
    /// differ between consecutive segments (IP length, ID, checksum; TCP sequence, flags'
    /// PSH, window, checksum).
    private static func sameFlow(
        _ a: UnsafeMutableRawBufferPointer, headerEnd aEnd: Int, _ b: UnsafeMutableRawBufferPointer, headerEnd bEnd: Int
    ) -> Bool {
        guard aEnd == bEnd else { return false }
        let ip = EthernetFrame.headerLength, tcp = ip + IPv4Packet.minimumHeaderLength
        // Ethernet addresses and type; IP version/IHL, TOS; flags/fragment word; TTL, protocol;
        // addresses; TCP ports; ACK number; data offset; options.
        func equal(_ start: Int, _ end: Int) -> Bool {
            end <= start || memcmp(a.baseAddress! + start, b.baseAddress! + start, end - start) == 0
        }
        return equal(0, 14) && equal(ip, ip + 2) && equal(ip + 6, ip + 10) && equal(ip + 12, ip + 20)
            && equal(tcp, tcp + 4) && equal(tcp + 8, tcp + 13) && equal(tcp + 20, aEnd)
    }

    private static func closeOldestIfTooManyOpen(_ groups: UnsafeMutableBufferPointer<Group>, _ groupCount: Int) {
        var open = 0
        for group in stride(from: groupCount - 1, through: 0, by: -1) where groups[group].open {
            open += 1
            if open > openFlows { groups[group].open = false }
        }
    }

    /// Writes one group: header and frame as they are for a lone frame, or the merged frame.
    private static func write(
        _ group: Group, _ segments: UnsafeMutableBufferPointer<Segment>, _ frames: UnsafeBufferPointer<UnsafeMutableRawBufferPointer>,
        into output: UnsafeMutableRawBufferPointer, at offset: Int
    ) throws(OffloadError) -> Int {
        let head = frames[group.first]
        let headerEnd = segments[group.first].payloadOffset
        let frameLength = group.count == 1 ? head.count : headerEnd + group.totalPayload
        let length = VirtioNetHeader.length + frameLength
        guard offset + length <= output.count else { throw .outputTooSmall }
        let destination = output.slice(offset, offset + length)
        let frame = destination.slice(VirtioNetHeader.length, length)
        if group.count == 1 {
            try? VirtioNetHeader.none.write(to: destination)
            frame.copyMemory(from: UnsafeRawBufferPointer(head))
            return length
        }
        frame.slice(0, headerEnd).copyMemory(from: UnsafeRawBufferPointer(head.slice(0, headerEnd)))
        var position = headerEnd
        var member = group.first
        var lastFlags: UInt8 = 0
        // Bounded: the linked list holds `group.count` members.
        for _ in 0..<group.count {
            let segment = segments[member]
            let source = frames[member]
            frame.slice(position, position + segment.payloadLength)
                .copyMemory(from: UnsafeRawBufferPointer(source.slice(segment.payloadOffset, segment.payloadOffset + segment.payloadLength)))
            position += segment.payloadLength
            lastFlags = source[EthernetFrame.headerLength + IPv4Packet.minimumHeaderLength + 13]
            member = segment.next
        }
        let ip = EthernetFrame.headerLength, tcp = ip + IPv4Packet.minimumHeaderLength
        frame.storeBigEndian16(UInt16(frameLength - ip), at: ip + 2)
        frame.storeBigEndian16(0, at: ip + 10)
        frame.storeBigEndian16(InternetChecksum.of(UnsafeRawBufferPointer(frame.slice(ip, tcp))), at: ip + 10)
        frame[tcp + 13] |= lastFlags & TCPFlags.psh.rawValue
        // CHECKSUM_PARTIAL, as the kernel's GRO leaves it: the field holds the folded
        // pseudo-header sum, and NEEDS_CSUM tells the kernel where to finish it.
        let pseudo = InternetChecksum.pseudoHeader(
            source: frame.loadIPv4(at: ip + 12), destination: frame.loadIPv4(at: ip + 16), protocol: .tcp, length: frameLength - tcp)
        frame.storeBigEndian16(~pseudo.value, at: tcp + 16)
        let header = VirtioNetHeader(
            flags: .needsChecksum, gsoType: .tcpv4, headerLength: UInt16(headerEnd), gsoSize: UInt16(group.segmentSize),
            checksumStart: UInt16(tcp), checksumOffset: 16)
        try? header.write(to: destination)
        return length
    }
}
