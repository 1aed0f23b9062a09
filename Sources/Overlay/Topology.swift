import Wire

/// An overlay network: a name, a 24-bit VNI, an IPv4 subnet and its gateway.
public struct OverlayNetwork: Codable, Hashable, Sendable {
    public var name: String
    public var vni: VNI
    /// The subnet, host bits clear (`10.10.0.0/24`).
    public var subnet: IPv4Prefix
    /// The gateway address inside the subnet; ARP for it is answered like any endpoint's.
    public var gateway: IPv4Address
    /// Encryption is a later issue; accepted and refused until then.
    public var encrypted: Bool

    public init(name: String, vni: VNI, subnet: IPv4Prefix, gateway: IPv4Address, encrypted: Bool = false) {
        self.name = name
        self.vni = vni
        self.subnet = subnet
        self.gateway = gateway
        self.encrypted = encrypted
    }

    enum CodingKeys: String, CodingKey { case name, vni, subnet, gateway, encrypted }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        vni = try container.decode(VNI.self, forKey: .vni)
        subnet = try container.decode(IPv4Prefix.self, forKey: .subnet)
        gateway = try container.decodeIfPresent(IPv4Address.self, forKey: .gateway)
            ?? IPv4Address(rawValue: subnet.network.rawValue + 1)
        encrypted = try container.decodeIfPresent(Bool.self, forKey: .encrypted) ?? false
    }
}

/// An endpoint on this node: a TAP named `interface` created inside the existing network
/// namespace `namespace`, carrying `address` on `network`.
public struct LocalEndpoint: Codable, Hashable, Sendable {
    public var network: String
    public var address: IPv4Address
    public var namespace: String
    public var interface: String

    public init(network: String, address: IPv4Address, namespace: String, interface: String = "eth0") {
        self.network = network
        self.address = address
        self.namespace = namespace
        self.interface = interface
    }

    enum CodingKeys: String, CodingKey { case network, address, namespace, interface }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        network = try container.decode(String.self, forKey: .network)
        address = try container.decode(IPv4Address.self, forKey: .address)
        namespace = try container.decode(String.self, forKey: .namespace)
        interface = try container.decodeIfPresent(String.self, forKey: .interface) ?? "eth0"
    }
}

/// An endpoint on another node, reached through that node's VTEP (its underlay address).
public struct RemoteEndpoint: Codable, Hashable, Sendable {
    public var network: String
    public var address: IPv4Address
    public var vtep: IPv4Address

    public init(network: String, address: IPv4Address, vtep: IPv4Address) {
        self.network = network
        self.address = address
        self.vtep = vtep
    }
}

/// A service's virtual IP on one network and the task addresses behind it (DESIGN.md §2): a
/// frame to the VIP is balanced over the backends by the engine's ``VirtualIPBalancer``.
public struct VirtualService: Codable, Hashable, Sendable {
    public var network: String
    public var address: IPv4Address
    /// Endpoints of the network (local or remote) that take the VIP's new flows.
    public var backends: [IPv4Address]
    /// Endpoints that left the rotation and drain (stopping or unhealthy tasks): they get no
    /// new flow, and the replies of the flows they have still come back from the VIP, so a
    /// client's open connection to one goes on until the task ends it.
    public var draining: [IPv4Address]

    public init(network: String, address: IPv4Address, backends: [IPv4Address], draining: [IPv4Address] = []) {
        self.network = network
        self.address = address
        self.backends = backends
        self.draining = draining
    }

    enum CodingKeys: String, CodingKey {
        case network, address, backends, draining
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        network = try container.decode(String.self, forKey: .network)
        address = try container.decode(IPv4Address.self, forKey: .address)
        backends = try container.decode([IPv4Address].self, forKey: .backends)
        draining = try container.decodeIfPresent([IPv4Address].self, forKey: .draining) ?? []
    }
}

/// The complete desired topology of one node (DESIGN.md §7): the engine applies the difference
/// to what it has. Applying the same topology twice changes nothing.
public struct Topology: Codable, Hashable, Sendable {
    public var networks: [OverlayNetwork]
    public var localEndpoints: [LocalEndpoint]
    public var remoteEndpoints: [RemoteEndpoint]
    /// The VIPs to balance, with their backends.
    public var services: [VirtualService]

    public init(
        networks: [OverlayNetwork] = [], localEndpoints: [LocalEndpoint] = [], remoteEndpoints: [RemoteEndpoint] = [],
        services: [VirtualService] = []
    ) {
        self.networks = networks
        self.localEndpoints = localEndpoints
        self.remoteEndpoints = remoteEndpoints
        self.services = services
    }

    enum CodingKeys: String, CodingKey {
        case networks
        case localEndpoints = "local"
        case remoteEndpoints = "remote"
        case services
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        networks = try container.decodeIfPresent([OverlayNetwork].self, forKey: .networks) ?? []
        localEndpoints = try container.decodeIfPresent([LocalEndpoint].self, forKey: .localEndpoints) ?? []
        remoteEndpoints = try container.decodeIfPresent([RemoteEndpoint].self, forKey: .remoteEndpoints) ?? []
        services = try container.decodeIfPresent([VirtualService].self, forKey: .services) ?? []
    }

    /// Checks everything the engine relies on; the first problem found is thrown.
    public func validate() throws(TopologyError) {
        var names = Set<String>(), vnis = Set<VNI>()
        for network in networks {
            guard !network.name.isEmpty else { throw .invalid("a network has an empty name") }
            guard names.insert(network.name).inserted else { throw .invalid("network \(network.name) is defined twice") }
            guard vnis.insert(network.vni).inserted else { throw .invalid("VNI \(network.vni) is used by two networks") }
            guard network.subnet.address == network.subnet.network, network.subnet.length <= 30 else {
                throw .invalid("network \(network.name): subnet \(network.subnet) must be a network address of /30 or wider")
            }
            guard isHost(network.gateway, in: network.subnet) else {
                throw .invalid("network \(network.name): gateway \(network.gateway) is not a host address of \(network.subnet)")
            }
            guard !network.encrypted else {
                throw .invalid("network \(network.name): encrypted overlays are not supported yet")
            }
        }
        var taken = Set<String>()
        var interfaces = Set<String>()
        let endpoints = localEndpoints.map { ($0.network, $0.address) } + remoteEndpoints.map { ($0.network, $0.address) }
        for (networkName, address) in endpoints {
            guard let network = networks.first(where: { $0.name == networkName }) else {
                throw .invalid("endpoint \(address) is on unknown network \(networkName)")
            }
            guard isHost(address, in: network.subnet), address != network.gateway else {
                throw .invalid("endpoint \(address) is not a free host address of \(network.name) (\(network.subnet))")
            }
            guard taken.insert("\(networkName)/\(address)").inserted else {
                throw .invalid("address \(address) is used twice on network \(networkName)")
            }
        }
        let endpointNames = taken
        for service in services {
            guard let network = networks.first(where: { $0.name == service.network }) else {
                throw .invalid("VIP \(service.address) is on unknown network \(service.network)")
            }
            guard isHost(service.address, in: network.subnet), service.address != network.gateway else {
                throw .invalid("VIP \(service.address) is not a host address of \(network.name) (\(network.subnet))")
            }
            guard taken.insert("\(service.network)/\(service.address)").inserted else {
                throw .invalid("VIP \(service.address) is used twice on network \(service.network)")
            }
            for backend in service.backends + service.draining where !endpointNames.contains("\(service.network)/\(backend)") {
                throw .invalid("backend \(backend) of VIP \(service.address) is no endpoint of network \(service.network)")
            }
            for backend in service.draining where service.backends.contains(backend) {
                throw .invalid("backend \(backend) of VIP \(service.address) is both in the rotation and draining")
            }
        }
        for endpoint in localEndpoints {
            guard !endpoint.namespace.isEmpty, endpoint.interface.utf8.count < 16, !endpoint.interface.isEmpty else {
                throw .invalid("endpoint \(endpoint.address): needs a namespace and an interface name of 1-15 bytes")
            }
            guard interfaces.insert("\(endpoint.namespace)/\(endpoint.interface)").inserted else {
                throw .invalid("interface \(endpoint.interface) is used twice in namespace \(endpoint.namespace)")
            }
        }
    }

    private func isHost(_ address: IPv4Address, in subnet: IPv4Prefix) -> Bool {
        subnet.contains(address) && address != subnet.network && address != subnet.broadcast
    }
}

/// A topology the engine cannot apply, and why.
public enum TopologyError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let reason): "invalid overlay topology: \(reason)"
        }
    }
}
