// IPAM for the cluster's overlay networks (DESIGN §9): subnets cut as /24s from 10.0.0.0/8
// unless the user names one, VNIs from 4096 up, one address per task per network and one VIP
// per service per network. The allocator keeps no state of its own that the store does not
// hold: the leader rebuilds it from the store at each pass, so a new leader allocates exactly
// as the old one would have, and an address is free the moment no stored object holds it.

import ClusterAPI
import Wire

/// Which subnets, VNIs and addresses the store's objects hold, and the next free ones.
struct NetworkAllocator: Sendable {
    /// Where default subnets come from.
    static let defaultPool = IPv4Prefix(IPv4Address(10, 0, 0, 0), length: 8)
    /// The size of a default subnet.
    static let defaultSubnetLength = 24
    /// The routing mesh's network, made at `swarm init`.
    static let ingressSubnet = IPv4Prefix(IPv4Address(10, 255, 0, 0), length: 16)
    /// The name of the routing mesh's network.
    static let ingressName = "ingress"
    /// The first VNI handed out; below it is left to other VXLAN users on the hosts.
    static let firstVNI: UInt32 = 4096
    /// The last VNI (24 bits).
    static let lastVNI: UInt32 = (1 << 24) - 1
    /// Where a published port without a number comes from (swarm's range).
    static let dynamicPorts: ClosedRange<UInt32> = 30000...32767

    /// Address pools of the allocated networks, by network ID.
    private(set) var pools: [String: AddressPool] = [:]
    /// Subnets in use.
    private var subnets: [IPv4Prefix] = []
    /// VNIs in use.
    private var vnis: Set<UInt32> = []
    /// Ingress-mode published ports in use, as port << 1 | (1 for UDP).
    private var publishedPorts: Set<UInt32> = []
    /// Allocations found twice in the store (two holders of one address); the store's
    /// invariant is that this stays empty.
    private(set) var conflicts: [String] = []

    /// The allocations held by `networks`, `tasks`, `services` and `nodes` (their ingress
    /// sandbox addresses).
    init(networks: [Shoal_Api_Network], services: [Shoal_Api_Service], tasks: [Shoal_Api_Task], nodes: [Shoal_Api_Node] = []) {
        for network in networks where network.vni != 0 {
            guard let subnet = IPv4Prefix(network.subnet), let gateway = IPv4Address(network.gateway) else {
                conflicts.append("network \(network.id) holds subnet \(network.subnet) gateway \(network.gateway)")
                continue
            }
            subnets.append(subnet)
            vnis.insert(network.vni)
            pools[network.id] = AddressPool(subnet: subnet, gateway: gateway)
        }
        for service in services {
            for vip in service.endpoint.virtualIps { reserve(vip.addr, on: vip.networkID, holder: "service \(service.id)") }
            for port in service.endpoint.ports where port.publishMode == .ingress && port.publishedPort != 0 {
                publishedPorts.insert(Self.portKey(port.publishedPort, port.protocol))
            }
        }
        for node in nodes {
            for attachment in node.attachments {
                for address in attachment.addresses { reserve(address, on: attachment.network.id, holder: "node \(node.id)") }
            }
        }
        for task in tasks {
            for attachment in task.networks {
                for address in attachment.addresses { reserve(address, on: attachment.network.id, holder: "task \(task.id)") }
            }
        }
    }

    private mutating func reserve(_ cidr: String, on networkID: String, holder: String) {
        guard let prefix = IPv4Prefix(cidr), pools[networkID]?.reserve(prefix.address) == true else {
            conflicts.append("\(holder) holds \(cidr) on network \(networkID)")
            return
        }
    }

    // MARK: - Networks

    /// Why `spec` cannot be a new network next to the allocated ones, or nil when it can.
    func refusal(of spec: Shoal_Api_NetworkSpec) -> APIError? {
        guard spec.driver.isEmpty || spec.driver == "overlay" else {
            return APIError(.invalidSpec, "network driver \"\(spec.driver)\" is not supported: only overlay", field: "driver")
        }
        if spec.encrypted {
            return APIError(
                .invalidSpec, "encrypted overlay networks (--opt encrypted) are not supported yet", field: "encrypted")
        }
        if !spec.gateway.isEmpty && spec.subnet.isEmpty {
            return APIError(.invalidSpec, "a gateway needs a subnet (--subnet)", field: "gateway")
        }
        guard !spec.subnet.isEmpty else { return nil }
        guard let subnet = IPv4Prefix(spec.subnet), subnet.address == subnet.network else {
            return APIError(.invalidSpec, "invalid subnet \(spec.subnet): give it as a.b.c.d/n with the host bits zero", field: "subnet")
        }
        guard (8...29).contains(subnet.length) else {
            return APIError(.invalidSpec, "subnet \(spec.subnet): the prefix length must be 8 to 29", field: "subnet")
        }
        if let taken = subnets.first(where: { $0.overlaps(subnet) }) {
            return APIError(.inUse, "subnet \(spec.subnet) overlaps \(taken), which another network uses", field: "subnet")
        }
        if !spec.gateway.isEmpty {
            guard let gateway = IPv4Address(spec.gateway), subnet.contains(gateway), gateway != subnet.network,
                gateway != subnet.broadcast
            else {
                return APIError(.invalidSpec, "gateway \(spec.gateway) is not a host address of \(spec.subnet)", field: "gateway")
            }
        }
        return nil
    }

    /// Gives `network` its VNI, subnet and gateway.
    mutating func allocate(_ network: inout Shoal_Api_Network) throws(APIError) {
        if let refusal = refusal(of: network.spec) { throw refusal }
        let subnet: IPv4Prefix
        if let given = IPv4Prefix(network.spec.subnet) {
            subnet = given
        } else if network.spec.ingress {
            guard !subnets.contains(where: { $0.overlaps(Self.ingressSubnet) }) else {
                throw APIError(.exhausted, "the ingress subnet \(Self.ingressSubnet) overlaps a network's subnet")
            }
            subnet = Self.ingressSubnet
        } else {
            subnet = try nextDefaultSubnet()
        }
        guard let vni = (Self.firstVNI...Self.lastVNI).first(where: { !vnis.contains($0) }) else {
            throw APIError(.exhausted, "every VXLAN network identifier is in use")
        }
        let gateway = IPv4Address(network.spec.gateway) ?? IPv4Address(rawValue: subnet.network.rawValue + 1)
        network.vni = vni
        network.subnet = "\(subnet)"
        network.gateway = "\(gateway)"
        subnets.append(subnet)
        vnis.insert(vni)
        pools[network.id] = AddressPool(subnet: subnet, gateway: gateway)
    }

    /// The first /24 of the default pool that no network overlaps; never inside the ingress
    /// subnet, which `swarm init` takes first.
    private func nextDefaultSubnet() throws(APIError) -> IPv4Prefix {
        let step: UInt32 = 1 << UInt32(32 - Self.defaultSubnetLength)
        let count = 1 << (Self.defaultSubnetLength - Self.defaultPool.length)
        for index in 0..<UInt32(count) {
            let candidate = IPv4Prefix(IPv4Address(rawValue: Self.defaultPool.network.rawValue + index * step), length: Self.defaultSubnetLength)
            if !Self.ingressSubnet.overlaps(candidate) && !subnets.contains(where: { $0.overlaps(candidate) }) {
                return candidate
            }
        }
        throw APIError(.exhausted, "the default address pool \(Self.defaultPool) has no free /\(Self.defaultSubnetLength) left: give --subnet")
    }

    // MARK: - Published ports

    private static func portKey(_ port: UInt32, _ protocolNumber: Shoal_Api_PortProtocol) -> UInt32 {
        port << 1 | (protocolNumber == .udp ? 1 : 0)
    }

    /// The ingress-mode ports of `ports` with a number each: one the service holds already
    /// (`held`, its allocated endpoint ports) for the same target and protocol, else the next
    /// free one of ``dynamicPorts``. Host-mode ports are left as given. The spec's explicit
    /// numbers are reserved first, so a port without a number listed before one with a
    /// number in the dynamic range never takes that number.
    mutating func publish(_ ports: [Shoal_Api_PortConfig], holding held: [Shoal_Api_PortConfig]) throws(APIError) -> [Shoal_Api_PortConfig] {
        let explicit = Set(ports.filter { $0.publishMode == .ingress && $0.publishedPort != 0 }.map { Self.portKey($0.publishedPort, $0.protocol) })
        var result: [Shoal_Api_PortConfig] = []
        for var port in ports {
            if port.publishMode == .ingress {
                if port.publishedPort == 0 {
                    if let kept = held.first(where: { old in
                        old.publishMode == .ingress && old.targetPort == port.targetPort && old.protocol == port.protocol
                            && old.publishedPort != 0 && !explicit.contains(Self.portKey(old.publishedPort, old.protocol))
                            && !result.contains(where: { $0.publishedPort == old.publishedPort && $0.protocol == old.protocol })
                    }) {
                        port.publishedPort = kept.publishedPort
                    } else {
                        guard let free = Self.dynamicPorts.first(where: {
                            !publishedPorts.contains(Self.portKey($0, port.protocol)) && !explicit.contains(Self.portKey($0, port.protocol))
                        }) else {
                            throw APIError(.exhausted, "no published port is free in \(Self.dynamicPorts.lowerBound)-\(Self.dynamicPorts.upperBound)")
                        }
                        port.publishedPort = free
                    }
                }
                publishedPorts.insert(Self.portKey(port.publishedPort, port.protocol))
            }
            result.append(port)
        }
        return result
    }

    // MARK: - Addresses

    /// A new address on `network` (allocated), as CIDR.
    mutating func address(on network: Shoal_Api_Network) throws(APIError) -> String {
        guard var pool = pools[network.id] else {
            throw APIError(.failedPrecondition, "network \(network.spec.annotations.name) is not allocated yet")
        }
        guard let address = pool.next() else {
            throw APIError(.exhausted, "network \(network.spec.annotations.name) (\(network.subnet)) has no free address left")
        }
        pools[network.id] = pool
        return pool.cidr(address)
    }
}

extension IPv4Prefix {
    /// True when the two subnets share an address.
    func overlaps(_ other: IPv4Prefix) -> Bool { contains(other.network) || other.contains(network) }
}
