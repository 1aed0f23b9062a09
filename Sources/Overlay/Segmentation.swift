import Wire

/// Why a frame could not be segmented or coalesced.
public enum OffloadError: Error, Equatable, Sendable {
    /// Not Ethernet + IPv4 (no options) + TCP or UDP, or a fragment.
    case notTCPOrUDPv4
    /// A header did not validate.
    case malformed(WireError)
    /// The segment size is zero, or there is no payload to split.
    case badSegmentSize
    /// The output cannot hold every segment.
    case outputTooSmall
}

/// Software TSO and USO: splits one large TCP/IPv4 or UDP/IPv4 frame — what a TAP with
/// `IFF_VNET_HDR` hands over for a `GSO_TCPV4` or `GSO_UDP_L4` packet — into frames of at most
/// `maximumSegmentSize` payload bytes, as a NIC would: the same headers on every segment, IP ID
/// incremented, every IPv4 checksum complete; for TCP, sequence numbers advanced, FIN and PSH
/// only on the last segment, CWR only on the first; for UDP, each datagram's own length. The
/// input's transport checksum, often only a partial pseudo-header sum, is not trusted: each
/// segment's is computed in full.
public enum Segmentation {
    /// The header offsets of a TCP/IPv4 or UDP/IPv4 Ethernet frame, validated.
    struct Headers {
        let ip: Int  // offset of the IPv4 header
        let transport: Int  // offset of the TCP or UDP header
        let payload: Int  // offset of the payload
        let end: Int  // end of the IP packet (Ethernet padding excluded)
        let isTCP: Bool
    }

    static func headers(_ frame: UnsafeMutableRawBufferPointer) throws(OffloadError) -> Headers {
        // Typed throws end to end: on the packet path a thrown error must not be boxed (that
        // would allocate for every frame that is not TCP).
        let ethernet: EthernetFrame
        do { ethernet = try EthernetFrame(validating: frame) } catch { throw .malformed(error) }
        guard ethernet.etherType == .ipv4 else { throw .notTCPOrUDPv4 }
        let ip: IPv4Packet
        do { ip = try IPv4Packet(validating: ethernet.payload) } catch { throw .malformed(error) }
        guard ip.protocol == .tcp || ip.protocol == .udp, !ip.isFragment, ip.headerLength == IPv4Packet.minimumHeaderLength
        else { throw .notTCPOrUDPv4 }
        let ipStart = EthernetFrame.headerLength
        let transportStart = ipStart + ip.headerLength
        let end = ipStart + ip.totalLength
        if ip.protocol == .udp {
            guard transportStart + UDPDatagram.headerLength <= end else { throw .malformed(.invalid(.udp, .lengthField)) }
            return Headers(ip: ipStart, transport: transportStart, payload: transportStart + UDPDatagram.headerLength, end: end, isTCP: false)
        }
        let tcp: TCPSegment
        do { tcp = try TCPSegment(validating: ip.payload) } catch { throw .malformed(error) }
        return Headers(ip: ipStart, transport: transportStart, payload: transportStart + tcp.headerLength, end: end, isTCP: true)
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
    /// `headers` at `k * slotSize` (`headerLength` bytes each: Ethernet, IPv4 and TCP or UDP;
    /// checksums complete over the payload left where it is), stores the byte range of its
    /// payload within `frame` in `payloads[k]`, and returns how many segments there are and
    /// their header length. The segments go out as gathered buffers (header, payload) with no
    /// copy of the payload in userspace.
    public static func segmentHeaders(
        _ frame: UnsafeMutableRawBufferPointer, maximumSegmentSize: Int, into headers: UnsafeMutableRawBufferPointer,
        slotSize: Int, payloads: UnsafeMutableBufferPointer<Range<Int>>
    ) throws(OffloadError) -> (count: Int, headerLength: Int) {
        let plan = try Plan(frame, maximumSegmentSize: maximumSegmentSize)
        guard plan.count <= payloads.count, plan.layout.payload <= slotSize, plan.count * slotSize <= headers.count else {
            throw .outputTooSmall
        }
        for index in 0..<plan.count {
            plan.writeHeaders(ofSegment: index, into: headers.slice(index * slotSize, index * slotSize + plan.layout.payload))
            payloads[index] = plan.payload(of: index)
        }
        return (plan.count, plan.layout.payload)
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
            baseIdentification = frame.loadBigEndian16(at: layout.ip + 4)
            baseSequence = layout.isTCP ? frame.loadBigEndian32(at: layout.transport + 4) : 0
            flags = layout.isTCP ? TCPFlags(rawValue: frame[layout.transport + 13]) : []
        }

        /// Where segment `index`'s payload lies in the frame.
        func payload(of index: Int) -> Range<Int> {
            let start = layout.payload + index * maximumSegmentSize
            return start..<min(start + maximumSegmentSize, layout.end)
        }

        /// Writes segment `index`'s headers (`layout.payload` bytes) as a NIC would, with the
        /// transport checksum summed over those headers and the payload in the frame.
        func writeHeaders(ofSegment index: Int, into header: UnsafeMutableRawBufferPointer) {
            let payload = payload(of: index)
            header.copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[0..<layout.payload]))
            let ip = header.slice(layout.ip, header.count)
            let transportLength = layout.payload - layout.transport + payload.count
            ip.storeBigEndian16(UInt16(layout.payload - layout.ip + payload.count), at: 2)
            ip.storeBigEndian16(baseIdentification &+ UInt16(truncatingIfNeeded: index), at: 4)
            ip.storeBigEndian16(0, at: 10)
            ip.storeBigEndian16(InternetChecksum.of(UnsafeRawBufferPointer(ip.slice(0, layout.transport - layout.ip))), at: 10)

            let transport = header.slice(layout.transport, header.count)
            let checksumField: Int
            if layout.isTCP {
                var segmentFlags = flags
                if index != count - 1 { segmentFlags.subtract([.fin, .psh]) }
                if index != 0 { segmentFlags.remove(.cwr) }
                transport.storeBigEndian32(baseSequence &+ UInt32(truncatingIfNeeded: index * maximumSegmentSize), at: 4)
                transport[13] = segmentFlags.rawValue
                checksumField = 16
            } else {
                transport.storeBigEndian16(UInt16(transportLength), at: 4)
                checksumField = 6
            }
            transport.storeBigEndian16(0, at: checksumField)
            var sum = InternetChecksum.pseudoHeader(
                source: ip.loadIPv4(at: 12), destination: ip.loadIPv4(at: 16), protocol: layout.isTCP ? .tcp : .udp,
                length: transportLength)
            // Both headers are a whole number of 16-bit words, so the two parts sum separately.
            sum.add(UnsafeRawBufferPointer(transport))
            sum.add(UnsafeRawBufferPointer(rebasing: frame[payload]))
            // A UDP checksum of 0 means "none"; a computed 0 is sent as all ones (RFC 768).
            let value = sum.value
            transport.storeBigEndian16(!layout.isTCP && value == 0 ? 0xFFFF : value, at: checksumField)
        }
    }
}
