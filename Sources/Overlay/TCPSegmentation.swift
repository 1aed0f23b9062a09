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
        let layout = try headers(frame)
        let payloadLength = layout.end - layout.payload
        guard maximumSegmentSize > 0, payloadLength > 0 else { throw .badSegmentSize }
        let count = (payloadLength + maximumSegmentSize - 1) / maximumSegmentSize
        guard count <= lengths.count, layout.payload + min(maximumSegmentSize, payloadLength) <= slotSize,
            count * slotSize <= output.count
        else { throw .outputTooSmall }

        let original = UnsafeRawBufferPointer(frame)
        let baseSequence = frame.loadBigEndian32(at: layout.tcp + 4)
        let baseIdentification = frame.loadBigEndian16(at: layout.ip + 4)
        let flags = TCPFlags(rawValue: frame[layout.tcp + 13])
        for index in 0..<count {
            let start = layout.payload + index * maximumSegmentSize
            let length = min(maximumSegmentSize, layout.end - start)
            let slot = output.slice(index * slotSize, index * slotSize + layout.payload + length)
            slot.copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<layout.payload]))
            slot.slice(layout.payload, layout.payload + length)
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: original[start..<(start + length)]))

            let ip = slot.slice(layout.ip, slot.count)
            ip.storeBigEndian16(UInt16(slot.count - layout.ip), at: 2)
            ip.storeBigEndian16(baseIdentification &+ UInt16(truncatingIfNeeded: index), at: 4)
            ip.storeBigEndian16(0, at: 10)
            ip.storeBigEndian16(InternetChecksum.of(UnsafeRawBufferPointer(ip.slice(0, layout.tcp - layout.ip))), at: 10)

            var segmentFlags = flags
            if index != count - 1 { segmentFlags.subtract([.fin, .psh]) }
            if index != 0 { segmentFlags.remove(.cwr) }
            slot.storeBigEndian32(baseSequence &+ UInt32(truncatingIfNeeded: index * maximumSegmentSize), at: layout.tcp + 4)
            slot[layout.tcp + 13] = segmentFlags.rawValue
            let tcp = slot.slice(layout.tcp, slot.count)
            tcp.storeBigEndian16(0, at: 16)
            var sum = InternetChecksum.pseudoHeader(
                source: ip.loadIPv4(at: 12), destination: ip.loadIPv4(at: 16), protocol: .tcp, length: tcp.count)
            sum.add(UnsafeRawBufferPointer(tcp))
            tcp.storeBigEndian16(sum.value, at: 16)
            lengths[index] = slot.count
        }
        return count
    }
}
