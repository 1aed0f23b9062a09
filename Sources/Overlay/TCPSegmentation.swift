import Wire

/// Why a frame could not be segmented or coalesced.
public enum OffloadError: Error, Equatable, Sendable {
    /// Not Ethernet + IPv4 (no options) + TCP, or a fragment.
    case notTCPv4
    /// A header did not validate.
    case malformed(WireError)
    /// The segment size is zero, or there is no payload to split.
    case badSegmentSize
    /// The output cannot hold every segment.
    case outputTooSmall
}

/// Software TSO: splits one large TCP/IPv4 frame — what a TAP with `IFF_VNET_HDR` hands over
/// for a `GSO_TCPV4` packet — into frames of at most `maximumSegmentSize` payload bytes, as a
/// NIC would: the same headers on every segment, sequence numbers advanced, IP ID incremented,
/// FIN and PSH only on the last segment, CWR only on the first, and every IPv4 and TCP
/// checksum complete (the input's TCP checksum, often only a partial pseudo-header sum, is not
/// trusted).
public enum TCPSegmentation {
    /// The header lengths of a TCP/IPv4 Ethernet frame, validated.
    struct Headers {
        let ip: Int  // offset of the IPv4 header
        let tcp: Int  // offset of the TCP header
        let payload: Int  // offset of the payload
        let end: Int  // end of the IP packet (Ethernet padding excluded)
    }

    static func headers(_ frame: UnsafeMutableRawBufferPointer) throws(OffloadError) -> Headers {
        // Typed throws end to end: on the packet path a thrown error must not be boxed (that
        // would allocate for every frame that is not TCP).
        let ethernet: EthernetFrame
        do { ethernet = try EthernetFrame(validating: frame) } catch { throw .malformed(error) }
        guard ethernet.etherType == .ipv4 else { throw .notTCPv4 }
        let ip: IPv4Packet
        do { ip = try IPv4Packet(validating: ethernet.payload) } catch { throw .malformed(error) }
        guard ip.protocol == .tcp, !ip.isFragment, ip.headerLength == IPv4Packet.minimumHeaderLength else {
            throw .notTCPv4
        }
        let tcp: TCPSegment
        do { tcp = try TCPSegment(validating: ip.payload) } catch { throw .malformed(error) }
        let ipStart = EthernetFrame.headerLength
        let tcpStart = ipStart + ip.headerLength
        return Headers(ip: ipStart, tcp: tcpStart, payload: tcpStart + tcp.headerLength, end: ipStart + ip.totalLength)
    }

    /// Writes the segments of `frame` into consecutive slots of `output` (slot `k` starts at
    /// `k * slotSize`), stores each segment's length in `lengths[k]`, and returns how many
    /// segments there are. Allocates nothing.
    public static func segment(
        _ frame: UnsafeMutableRawBufferPointer, maximumSegmentSize: Int, into output: UnsafeMutableRawBufferPointer,
        slotSize: Int, lengths: UnsafeMutableBufferPointer<Int>
    ) throws(OffloadError) -> Int {
        let plan = try Plan(frame, maximumSegmentSize: maximumSegmentSize)
        guard plan.count <= lengths.count, plan.layout.payload + min(maximumSegmentSize, plan.payloadLength) <= slotSize,
            plan.count * slotSize <= output.count
        else { throw .outputTooSmall }
        for index in 0..<plan.count {
            let payload = plan.payload(of: index)
            let slot = output.slice(index * slotSize, index * slotSize + plan.layout.payload + payload.count)
            slot.slice(plan.layout.payload, slot.count)
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(frame)[payload]))
            plan.writeHeaders(ofSegment: index, into: slot.slice(0, plan.layout.payload))
            lengths[index] = slot.count
        }
        return plan.count
    }

    /// Segments `frame` without copying its payload: writes the headers of segment `k` into
    /// `headers` at `k * slotSize` (``headerLength(of:)`` bytes each, checksums complete over the
    /// payload left where it is), stores the byte range of its payload within `frame` in
    /// `payloads[k]`, and returns how many segments there are. The segments go out as
    /// gathered buffers (header, payload) with no copy of the payload in userspace.
    public static func segmentHeaders(
        _ frame: UnsafeMutableRawBufferPointer, maximumSegmentSize: Int, into headers: UnsafeMutableRawBufferPointer,
        slotSize: Int, payloads: UnsafeMutableBufferPointer<Range<Int>>
    ) throws(OffloadError) -> Int {
        let plan = try Plan(frame, maximumSegmentSize: maximumSegmentSize)
        guard plan.count <= payloads.count, plan.layout.payload <= slotSize, plan.count * slotSize <= headers.count else {
            throw .outputTooSmall
        }
        for index in 0..<plan.count {
            plan.writeHeaders(ofSegment: index, into: headers.slice(index * slotSize, index * slotSize + plan.layout.payload))
            payloads[index] = plan.payload(of: index)
        }
        return plan.count
    }

    /// The bytes before the payload (Ethernet, IPv4 and TCP headers) in every segment of `frame`.
    static func headerLength(of frame: UnsafeMutableRawBufferPointer) throws(OffloadError) -> Int {
        try headers(frame).payload
    }

    /// How one super-frame splits: shared by the copying and the gathering segmenter.
    private struct Plan {
        let frame: UnsafeRawBufferPointer
        let layout: Headers
        let maximumSegmentSize: Int
        let payloadLength: Int
        let count: Int
        let baseSequence: UInt32
        let baseIdentification: UInt16
        let flags: TCPFlags

        init(_ frame: UnsafeMutableRawBufferPointer, maximumSegmentSize: Int) throws(OffloadError) {
            layout = try headers(frame)
            payloadLength = layout.end - layout.payload
            guard maximumSegmentSize > 0, payloadLength > 0 else { throw .badSegmentSize }
            self.frame = UnsafeRawBufferPointer(frame)
            self.maximumSegmentSize = maximumSegmentSize
            count = (payloadLength + maximumSegmentSize - 1) / maximumSegmentSize
            baseSequence = frame.loadBigEndian32(at: layout.tcp + 4)
            baseIdentification = frame.loadBigEndian16(at: layout.ip + 4)
            flags = TCPFlags(rawValue: frame[layout.tcp + 13])
        }

        /// Where segment `index`'s payload lies in the frame.
        func payload(of index: Int) -> Range<Int> {
            let start = layout.payload + index * maximumSegmentSize
            return start..<min(start + maximumSegmentSize, layout.end)
        }

        /// Writes segment `index`'s headers (`layout.payload` bytes) as a NIC would, with the
        /// TCP checksum summed over those headers and the payload in the frame.
        func writeHeaders(ofSegment index: Int, into header: UnsafeMutableRawBufferPointer) {
            let payload = payload(of: index)
            header.copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[0..<layout.payload]))
            let ip = header.slice(layout.ip, header.count)
            let tcpLength = layout.payload - layout.tcp + payload.count
            ip.storeBigEndian16(UInt16(layout.payload - layout.ip + payload.count), at: 2)
            ip.storeBigEndian16(baseIdentification &+ UInt16(truncatingIfNeeded: index), at: 4)
            ip.storeBigEndian16(0, at: 10)
            ip.storeBigEndian16(InternetChecksum.of(UnsafeRawBufferPointer(ip.slice(0, layout.tcp - layout.ip))), at: 10)

            var segmentFlags = flags
            if index != count - 1 { segmentFlags.subtract([.fin, .psh]) }
            if index != 0 { segmentFlags.remove(.cwr) }
            header.storeBigEndian32(baseSequence &+ UInt32(truncatingIfNeeded: index * maximumSegmentSize), at: layout.tcp + 4)
            header[layout.tcp + 13] = segmentFlags.rawValue
            let tcp = header.slice(layout.tcp, header.count)
            tcp.storeBigEndian16(0, at: 16)
            var sum = InternetChecksum.pseudoHeader(
                source: ip.loadIPv4(at: 12), destination: ip.loadIPv4(at: 16), protocol: .tcp, length: tcpLength)
            // The TCP header is a whole number of 32-bit words, so the two parts sum separately.
            sum.add(UnsafeRawBufferPointer(tcp))
            sum.add(UnsafeRawBufferPointer(rebasing: frame[payload]))
            tcp.storeBigEndian16(sum.value, at: 16)
        }
    }
}
