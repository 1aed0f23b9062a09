import Wire

/// One service's VIP on one network as the switch hands it to the balancer: its address and
/// the addresses of its backends, valid for the duration of the call only.
public struct BalancedService {
    /// The virtual IP the frame was sent to.
    public let address: IPv4Address
    /// The task addresses the VIP's new flows go to, sorted; empty while its only backends
    /// are draining (its open flows go on, a new one is dropped).
    public let backends: UnsafeBufferPointer<IPv4Address>

    public init(address: IPv4Address, backends: UnsafeBufferPointer<IPv4Address>) {
        self.address = address
        self.backends = backends
    }
}

/// What the balancer decided for a frame sent to a VIP.
public enum BalanceDecision: Equatable, Sendable {
    /// The packet's destination now is this backend (rewritten in place, checksums patched).
    case backend(IPv4Address)
    /// Refuse the frame and count it.
    case drop(DropReason)
}

/// The switch's seam to the VIP load balancer (DESIGN.md §7; `IngressLB` subclasses it): the
/// switch knows which addresses are VIPs and which are their backends, and calls in only for
/// frames to a VIP and for frames from a backend to a local port — once per frame, without
/// allocating. Both packet threads may call at once; a subclass synchronizes itself.
///
/// A class to subclass rather than a protocol: the switch holds it `Unmanaged` and calls it
/// through a guaranteed reference, which costs no reference counting per frame; a call through
/// an existential held `unowned(unsafe)` retains and releases around every call (measured by
/// `make hotpath`), and `Unmanaged` cannot hold an existential. This base class is the engine's
/// balancer when it has none: it drops every frame to a VIP, counted.
///
/// `now` is a monotonic second count read once per batch, so a batch needs no clock call per
/// frame and tests can drive time.
open class VirtualIPBalancer: @unchecked Sendable {
    /// The balancer that balances nothing.
    public static let none = VirtualIPBalancer()

    public init() {}

    /// A TCP or UDP packet (not a fragment) from the task at `client` on network `network` to
    /// `service`'s VIP: keeps the flow's backend or picks one for a new flow, and rewrites the
    /// destination. `partialChecksum` tells that the transport checksum is a `NEEDS_CSUM`
    /// partial sum.
    open func balance(
        _ packet: IPv4Packet, network: VNI, client: IPv4Address, service: BalancedService, partialChecksum: Bool,
        now: UInt32
    ) -> BalanceDecision {
        .drop(.noBalancer)
    }

    /// A packet from a backend on network `network`: when it answers a balanced flow, its
    /// source is rewritten to the VIP and the VIP returned; otherwise it is left alone.
    open func reverse(_ packet: IPv4Packet, network: VNI, partialChecksum: Bool, now: UInt32) -> IPv4Address? {
        nil
    }

    /// A packet from a task straight to a backend's own address (not through the VIP): a
    /// balanced flow whose replies would look like this connection's is over (its client
    /// reuses the port), so that the direct connection's replies are not rewritten.
    open func sentDirectly(_ packet: IPv4Packet, network: VNI, now: UInt32) {}

    /// `balance` chose a backend that is no endpoint of the network any more (its node died,
    /// its task ended): the packet, already rewritten to it, was sent by the client to
    /// `virtualAddress`. The balancer forgets that flow.
    open func backendGone(_ packet: IPv4Packet, virtualAddress: IPv4Address, network: VNI) {}
}
