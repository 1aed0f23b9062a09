import Wire

/// The RST a host answers a segment with when no socket has its connection (RFC 793 §3.4,
/// "Reset Generation"), written in place over the segment's own frame so that answering
/// costs no allocation. The switch sends it for a balanced flow whose backend is gone.
enum TCPReset {
    /// Frame length of the reset: Ethernet, an IPv4 header without options, a bare TCP header.
    static let frameLength = EthernetFrame.headerLength + IPv4Packet.minimumHeaderLength + TCPSegment.minimumHeaderLength

    /// Rewrites `frame`, which carries the TCP `packet` a client sent, into the RST that
    /// `address` answers it with, to the client's MAC; its length in bytes. Nil, frame left
    /// alone, when the segment is itself a RST (never answered), is not TCP, or is a fragment.
    /// The reset's sequence number is the one the client expects next (the segment's
    /// acknowledgment), so the client's kernel takes it without a challenge ACK (RFC 5961).
    static func answer(_ packet: IPv4Packet, in frame: EthernetFrame, from address: IPv4Address) -> Int? {
        guard packet.protocol == .tcp, !packet.isFragment, let segment = try? TCPSegment(validating: packet.payload) else { return nil }
        let flags = segment.flags
        guard !flags.contains(.rst) else { return nil }
        // Everything read before the header is overwritten: IP options and TCP options move it.
        let client = packet.source, clientPort = segment.sourcePort, serverPort = segment.destinationPort
        let sequence: UInt32, acknowledgment: UInt32, resetFlags: TCPFlags
        if flags.contains(.ack) {
            (sequence, acknowledgment, resetFlags) = (segment.acknowledgmentNumber, 0, .rst)
        } else {
            // SYN and FIN count as one byte each.
            let length = UInt32(truncatingIfNeeded: segment.payload.count)
                &+ (flags.contains(.syn) ? 1 : 0) &+ (flags.contains(.fin) ? 1 : 0)
            (sequence, acknowledgment, resetFlags) = (0, segment.sequenceNumber &+ length, [.rst, .ack])
        }
        let clientMAC = frame.source
        let total = IPv4Packet.minimumHeaderLength + TCPSegment.minimumHeaderLength
        guard let reply = try? IPv4Packet.build(in: frame.payload, totalLength: total, protocol: .tcp, source: address, destination: client)
        else { return nil }
        let header = reply.payload
        header.storeBigEndian16(serverPort, at: 0)
        header.storeBigEndian16(clientPort, at: 2)
        header.storeBigEndian32(sequence, at: 4)
        header.storeBigEndian32(acknowledgment, at: 8)
        header[12] = UInt8(TCPSegment.minimumHeaderLength / 4) << 4
        header[13] = resetFlags.rawValue
        header.storeBigEndian16(0, at: 14)  // window
        header.storeBigEndian16(0, at: 18)  // urgent pointer
        guard let rebuilt = try? TCPSegment(validating: header) else { return nil }
        rebuilt.updateChecksum(source: address, destination: client)
        frame.destination = clientMAC
        frame.source = .derived(from: address)
        return frameLength
    }
}
