import Wire

/// Rewrites one address of an IPv4 packet in place and patches every checksum that covers it
/// (RFC 1624 incremental updates, so a 64 KiB super-frame costs the same as a small one).
///
/// Two kinds of transport checksum reach the switch: complete ones (frames from the wire,
/// frames a task's kernel finished) and partial ones (`NEEDS_CSUM` frames from a TAP, where
/// the field holds only the folded pseudo-header sum for the device to complete). The
/// pseudo-header covers the addresses, so both change; a partial sum is updated without the
/// final complement, as the kernel's `inet_proto_csum_replace4` does for `CHECKSUM_PARTIAL`.
enum AddressTranslation {
    /// Which address of the packet changes.
    enum Field {
        case source, destination
    }

    /// Sets `field` of `packet` to `address` and keeps the IPv4 header checksum and the TCP or
    /// UDP checksum right. The packet must be TCP or UDP, not a fragment, with a whole
    /// transport header (the caller parsed it).
    @inline(__always)
    static func rewrite(_ field: Field, of packet: IPv4Packet, to address: IPv4Address, partialChecksum: Bool) {
        let old = field == .source ? packet.source : packet.destination
        guard old != address else { return }
        if field == .source { packet.source = address } else { packet.destination = address }
        packet.headerChecksum = InternetChecksum.update(packet.headerChecksum, replacing: old.rawValue, with: address.rawValue)
        let transport = packet.payload
        let isTCP = packet.protocol == .tcp
        let offset = isTCP ? 16 : 6
        guard transport.count >= offset + 2 else { return }
        let checksum = transport.loadBigEndian16(at: offset)
        if partialChecksum {
            // The field holds the uncomplemented pseudo-header sum: update it as a sum.
            let updated = ~InternetChecksum.update(~checksum, replacing: old.rawValue, with: address.rawValue)
            transport.storeBigEndian16(updated, at: offset)
        } else if !isTCP && checksum == 0 {
            return  // a UDP datagram sent without a checksum stays without one (RFC 768)
        } else {
            let updated = InternetChecksum.update(checksum, replacing: old.rawValue, with: address.rawValue)
            // A UDP checksum that computes to 0 is sent as all ones: 0 would mean "none".
            transport.storeBigEndian16(!isTCP && updated == 0 ? 0xFFFF : updated, at: offset)
        }
    }
}
