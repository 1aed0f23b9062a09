import Glibc
import HostNet
import Wire

/// The TAP side of one local endpoint: a TAP device created inside the endpoint's own network
/// namespace and configured as a container's `eth0` would be — derived MAC, overlay MTU, the
/// address with the network's prefix, a default route via the network's gateway, and IPv6 off
/// on it (the overlay carries IPv4 only, as Docker's default), so that no neighbour discovery
/// chatter reaches the switch.
final class EndpointPort {
    let endpoint: LocalEndpoint
    let tap: TAPDevice

    /// Creates and configures the TAP. On failure nothing is left behind (the TAP goes with
    /// its descriptor).
    init(endpoint: LocalEndpoint, network: OverlayNetwork, mtu: Int) throws {
        let namespace = NetworkNamespace(named: endpoint.namespace)
        tap = try TAPDevice(named: endpoint.interface, in: namespace, virtioNetHeader: true)
        // Partial checksums and TCP and UDP segmentation are done here, in software, so the
        // kernel hands over 64 KiB super-frames instead of MTU-sized ones (DESIGN.md §2). No
        // TSO6: IPv6 is off on the endpoint. USO is all or nothing (4 and 6 together) and
        // needs Linux 6.2; an older kernel refuses the flags, and then TCP alone it is.
        let offloads = Self.checksumOffload | Self.tcpSegmentationOffloadIPv4
        do {
            try tap.setOffload(offloads | Self.udpSegmentationOffloadIPv4 | Self.udpSegmentationOffloadIPv6)
        } catch {
            try tap.setOffload(offloads)
        }
        self.endpoint = endpoint
        let links = try RouteNetlink(in: namespace)
        let index = try links.linkIndex(named: tap.name)
        try namespace.setSysctl("net.ipv6.conf.\(tap.name).disable_ipv6", "1")
        try links.setMAC(index, .derived(from: endpoint.address))
        try links.setMTU(index, mtu)
        try links.addAddress(IPv4Prefix(endpoint.address, length: network.subnet.length), to: index)
        try links.setLinkUp(index)
        do {
            try links.addRoute(to: IPv4Prefix(.any, length: 0), via: network.gateway, device: index)
        } catch {
            // A task on several networks (one of them the ingress network) keeps the default
            // route of the interface made first; each network's own subnet is on its link.
            guard error.errno == EEXIST else { throw error }
        }
        try tap.setNonBlocking(true)
    }

    var descriptor: Int32 { tap.descriptor }

    /// `TUN_F_CSUM`, `TUN_F_TSO4`, `TUN_F_USO4` and `TUN_F_USO6` of <linux/if_tun.h>.
    static let checksumOffload: UInt32 = 0x01
    static let tcpSegmentationOffloadIPv4: UInt32 = 0x02
    static let udpSegmentationOffloadIPv4: UInt32 = 0x20
    static let udpSegmentationOffloadIPv6: UInt32 = 0x40

    func close() { tap.close() }
}
