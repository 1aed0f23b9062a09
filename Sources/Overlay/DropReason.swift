/// Why the switch refused a frame. Every drop is counted under one of these, per network
/// (frames whose network is unknown count under no network).
public enum DropReason: Int, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// An Ethernet, ARP or IPv4 header from a local port was too short or invalid.
    case malformedFrame
    /// A datagram on the VXLAN port was shorter than the VXLAN header.
    case malformedVXLAN
    /// The VXLAN flags were not exactly the I flag (RFC 7348, as the kernel checks).
    case badVXLANFlags
    /// No network has the VNI of the datagram.
    case unknownVNI
    /// The inner frame was shorter than an Ethernet header.
    case truncatedInner
    /// The frame was longer than the overlay MTU allows.
    case oversizeFrame
    /// The destination is on no endpoint of the frame's network.
    case unknownDestination
    /// Broadcast or multicast other than ARP: the overlay never floods.
    case broadcast
    /// A local port sent with a MAC or IPv4 source that is not its own.
    case spoofedSource
    /// A datagram for a network came from a VTEP that hosts none of its endpoints.
    case unknownVTEP
    /// An ARP request for an address nobody on the network has.
    case arpUnknownTarget
    /// ARP that is not a request (replies, gratuitous announcements): the proxy needs none.
    case arpNotRequest
    /// Neither IPv4 nor ARP (IPv6 among them).
    case unsupportedEtherType
    /// IPv4 traffic to the gateway's MAC: routing out of the overlay is not built yet.
    case gatewayTraffic
    /// The destination TAP's queue was full.
    case portBusy
    /// The underlay socket refused the datagram.
    case sendFailed
    /// A datagram was larger than the receive buffer.
    case truncatedDatagram
    /// A packet to a VIP that is neither TCP nor UDP, or a fragment: only whole TCP and UDP
    /// packets carry the ports a flow is tracked by.
    case virtualAddressUnsupported
    /// A TCP segment to a VIP that is not a SYN and belongs to no tracked flow (it expired).
    case untrackedFlow
    /// A new flow to a VIP while the connection-tracking table was full.
    case flowTableFull
    /// A frame to a VIP on an engine made without a balancer.
    case noBalancer
    /// A new flow to a VIP whose backends all drain (none takes new flows).
    case noBackend

    public var description: String {
        switch self {
        case .malformedFrame: "malformed_frame"
        case .malformedVXLAN: "malformed_vxlan"
        case .badVXLANFlags: "bad_vxlan_flags"
        case .unknownVNI: "unknown_vni"
        case .truncatedInner: "truncated_inner"
        case .oversizeFrame: "oversize_frame"
        case .unknownDestination: "unknown_destination"
        case .broadcast: "broadcast"
        case .spoofedSource: "spoofed_source"
        case .unknownVTEP: "unknown_vtep"
        case .arpUnknownTarget: "arp_unknown_target"
        case .arpNotRequest: "arp_not_request"
        case .unsupportedEtherType: "unsupported_ethertype"
        case .gatewayTraffic: "gateway_traffic"
        case .portBusy: "port_busy"
        case .sendFailed: "send_failed"
        case .truncatedDatagram: "truncated_datagram"
        case .virtualAddressUnsupported: "vip_unsupported"
        case .untrackedFlow: "untracked_flow"
        case .flowTableFull: "flow_table_full"
        case .noBalancer: "no_balancer"
        case .noBackend: "no_backend"
        }
    }
}
