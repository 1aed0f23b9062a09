// Every view in Wire validates before it reads; these are the ways bytes from the network can
// be wrong. Cases carry no heap data so a parser on the hot path can throw without allocating.

/// The protocol layer a ``WireError`` is about.
public enum WireLayer: String, Sendable, CaseIterable {
    case ethernet, arp, ipv4, udp, tcp, icmp, vxlan, virtioNet
}

/// What exactly was wrong with a header whose length was sufficient.
public enum WireViolation: String, Sendable {
    case version
    case headerLength
    case totalLength
    case lengthField
    case dataOffset
    case flags
    case hardwareType
    case protocolType
    case addressLength
    case gsoType
    case checksumOffsets
    case vni
}

/// A typed parse or build error. Views never read past the buffer they were given; instead
/// they throw one of these.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The buffer is shorter than the header (or the length a header field claims).
    case truncated(WireLayer, needed: Int, available: Int)
    /// A header field holds a value the protocol forbids.
    case invalid(WireLayer, WireViolation)

    public var description: String {
        switch self {
        case .truncated(let layer, let needed, let available):
            return "\(layer.rawValue): truncated, need \(needed) bytes, have \(available)"
        case .invalid(let layer, let violation):
            return "\(layer.rawValue): invalid \(violation.rawValue)"
        }
    }
}
