import Wire

/// What the switch decided for one frame.
public enum Verdict: Equatable, Sendable {
    /// Write the frame to local port `port`.
    case deliver(port: Int)
    /// Prefix a VXLAN header with `vni` and send to the VTEP at `vtep`.
    case encapsulate(vtep: IPv4Address, vni: VNI)
    /// The frame was rewritten in place (an ARP reply); send it back out of the port it came from.
    case replyToPort
    /// The TCP segment was turned in place into a RST to its sender (its flow's backend is
    /// gone), `length` bytes of frame; send those back out of the port it came from.
    case resetToPort(length: Int)
    /// The inner frame was rewritten in place (an ARP reply); send the datagram back to its VTEP.
    case replyToWire
    /// Refuse the frame and count it.
    case drop(DropReason)
}

/// One local port as the switch sees it (trivial, so reading it costs no reference counting).
struct PortEntry {
    var networkIndex: Int
    var address: IPv4Address
    var mac: MACAddress
}

/// One VIP as the switch sees it: its address and where its backends are in
/// ``Switch/backendAddresses``.
struct ServiceEntry {
    var address: IPv4Address
    var firstBackend: Int
    var backendCount: Int
}

/// One network as the switch sees it.
struct NetworkEntry {
    var vni: VNI
    var subnet: IPv4Prefix
    var gateway: IPv4Address
}

/// The forwarding decision for every frame, as a pure function of the tables: no I/O, no
/// allocation, no reference counting. The engine copies this struct into a local for each
/// batch; the memory behind it belongs to a ``ForwardingTables`` kept alive meanwhile.
///
/// ARP is answered here (DESIGN.md §2): any address of a network — endpoint, local or remote,
/// or the gateway — is resolved to its derived MAC without flooding.
public struct Switch {
    /// (VNI << 32 | IPv4) → destination (see ``Destination``).
    let endpoints: FlatMap
    /// VNI → network index.
    let networksByVNI: FlatMap
    /// (network index << 32 | VTEP IPv4) → 1 for every VTEP that hosts an endpoint of the network.
    let vteps: FlatMap
    let networks: UnsafeBufferPointer<NetworkEntry>
    let ports: UnsafeBufferPointer<PortEntry>
    /// The largest Ethernet frame accepted (overlay MTU + 14).
    let maximumFrameLength: Int
    /// The VIPs (``Destination/virtual(_:)`` values index it) and their backends, sorted per VIP.
    let services: UnsafeBufferPointer<ServiceEntry>
    let backendAddresses: UnsafeBufferPointer<IPv4Address>
    /// (VNI << 32 | IPv4) → 1 for every backend of a VIP: only frames from these can be replies
    /// of a balanced flow.
    let backends: FlatMap
    /// Where frames to VIPs are balanced (the base class, dropping, when the engine has none); kept alive by
    /// the ``ForwardingTables``. Unmanaged, so that neither copying the switch into a local per
    /// batch nor calling the balancer per frame costs reference counting (a call through an
    /// `unowned(unsafe)` reference still retains for its duration; a guaranteed reference
    /// does not).
    let balancer: Unmanaged<VirtualIPBalancer>

    /// How a destination is packed in a ``FlatMap`` value.
    enum Destination {
        static let localFlag: UInt64 = 1 << 63
        static let gatewayFlag: UInt64 = 1 << 62
        static let virtualFlag: UInt64 = 1 << 61

        static func local(_ port: Int) -> UInt64 { localFlag | UInt64(port) }
        static func remote(_ vtep: IPv4Address) -> UInt64 { UInt64(vtep.rawValue) }
        static let gateway = gatewayFlag
        static func virtual(_ service: Int) -> UInt64 { virtualFlag | UInt64(service) }
    }

    @inline(__always)
    static func endpointKey(_ vni: VNI, _ address: IPv4Address) -> UInt64 {
        UInt64(vni.rawValue) << 32 | UInt64(address.rawValue)
    }

    /// The network index of local port `port`.
    @inline(__always)
    func networkIndex(ofPort port: Int) -> Int { ports[port].networkIndex }

    /// The IPv4 address a derived MAC (`02:42:` + address) stands for, or nil for any other MAC.
    @inline(__always)
    static func address(fromDerived mac: MACAddress) -> IPv4Address? {
        mac.rawValue >> 32 == 0x0242 ? IPv4Address(rawValue: UInt32(truncatingIfNeeded: mac.rawValue)) : nil
    }

    // MARK: - From a local port

    /// Decides for a frame read from local port `port`. A `superFrame` (a TCP or UDP
    /// segmentation offload frame from the TAP, to be segmented before it leaves) may exceed the
    /// MTU. `partialChecksum`: the frame's transport checksum is a `NEEDS_CSUM` partial sum
    /// (matters only to frames the balancer rewrites). `now`: monotonic seconds, for the
    /// balancer's idle timeouts.
    public func fromPort(
        _ port: Int, frame bytes: UnsafeMutableRawBufferPointer, superFrame: Bool = false, partialChecksum: Bool = false,
        now: UInt32 = 0
    ) -> Verdict {
        let source = ports[port]
        let network = networks[source.networkIndex]
        guard let frame = try? EthernetFrame(validating: bytes) else { return .drop(.malformedFrame) }
        guard superFrame || bytes.count <= maximumFrameLength else { return .drop(.oversizeFrame) }
        guard frame.source == source.mac else { return .drop(.spoofedSource) }
        switch frame.etherType {
        case .arp:
            guard let arp = try? ARPPacket(validating: frame.payload) else { return .drop(.malformedFrame) }
            guard arp.operation == .request, arp.senderIP != arp.targetIP else { return .drop(.arpNotRequest) }
            guard arp.senderIP == source.address, arp.senderMAC == source.mac else { return .drop(.spoofedSource) }
            guard endpoints.value(for: Self.endpointKey(network.vni, arp.targetIP)) != nil else {
                return .drop(.arpUnknownTarget)
            }
            Self.answer(arp, in: frame)
            return .replyToPort
        case .ipv4:
            guard let packet = try? IPv4Packet(validating: frame.payload) else { return .drop(.malformedFrame) }
            guard packet.source == source.address else { return .drop(.spoofedSource) }
            if frame.destination.isMulticast { return .drop(.broadcast) }
            guard let target = Self.address(fromDerived: frame.destination),
                var destination = endpoints.value(for: Self.endpointKey(network.vni, target))
            else { return .drop(.unknownDestination) }
            var balanced = false
            if destination & Destination.virtualFlag != 0 {
                let entry = services[Int(truncatingIfNeeded: destination & 0xFFFF_FFFF)]
                let service = BalancedService(
                    address: entry.address,
                    backends: UnsafeBufferPointer(rebasing: backendAddresses[entry.firstBackend..<entry.firstBackend + entry.backendCount]))
                guard packet.destination == entry.address else { return .drop(.unknownDestination) }
                let decision = balancer._withUnsafeGuaranteedRef {
                    $0.balance(packet, network: network.vni, client: source.address, service: service, partialChecksum: partialChecksum, now: now)
                }
                switch decision {
                case .backend(let backend):
                    frame.destination = .derived(from: backend)
                    guard let found = endpoints.value(for: Self.endpointKey(network.vni, backend)) else {
                        // The flow's backend is gone: its node died or its task ended. The
                        // client hears it at once, as from a host whose socket is closed,
                        // rather than after its retransmissions time out.
                        balancer._withUnsafeGuaranteedRef { $0.backendGone(packet, virtualAddress: entry.address, network: network.vni) }
                        guard let length = TCPReset.answer(packet, in: frame, from: entry.address) else {
                            return .drop(.unknownDestination)
                        }
                        return .resetToPort(length: length)
                    }
                    destination = found
                    balanced = true
                case .drop(let reason):
                    return .drop(reason)
                }
            }
            if !balanced, backends.count > 0, backends.value(for: Self.endpointKey(network.vni, target)) != nil {
                balancer._withUnsafeGuaranteedRef { $0.sentDirectly(packet, network: network.vni, now: now) }
            }
            if destination & Destination.localFlag != 0 {
                let targetPort = Int(truncatingIfNeeded: destination & 0xFFFF_FFFF)
                // A task balanced to itself (its VIP's only backend) gets its frame back.
                if targetPort == port, !balanced { return .drop(.unknownDestination) }
                // Replies of balanced flows are rewritten where the client is: on this node.
                if !balanced { reverseIfReply(packet, from: source.address, in: frame, network: network.vni, partialChecksum: partialChecksum, now: now) }
                return .deliver(port: targetPort)
            }
            if destination & Destination.gatewayFlag != 0 { return .drop(.gatewayTraffic) }
            return .encapsulate(vtep: IPv4Address(rawValue: UInt32(truncatingIfNeeded: destination)), vni: network.vni)
        default:
            return .drop(.unsupportedEtherType)
        }
    }

    // MARK: - From the wire

    /// Decides for a VXLAN datagram (UDP payload) from the VTEP at `vtep`. On `.deliver`, the
    /// inner frame starts ``VXLANPacket/headerLength`` bytes into `datagram`. `networkIndex` is
    /// set as soon as the VNI is known (and left alone otherwise) so drops count per network.
    public func fromWire(
        vtep: IPv4Address, datagram: UnsafeMutableRawBufferPointer, networkIndex: inout Int, now: UInt32 = 0
    ) -> Verdict {
        let vxlan: VXLANPacket
        do { vxlan = try VXLANPacket(validating: datagram) } catch {
            if case .invalid = error { return .drop(.badVXLANFlags) }
            return .drop(.malformedVXLAN)
        }
        guard let index = networksByVNI.value(for: UInt64(vxlan.vni.rawValue)) else { return .drop(.unknownVNI) }
        networkIndex = Int(truncatingIfNeeded: index)
        let inner = vxlan.payload
        guard let frame = try? EthernetFrame(validating: inner) else { return .drop(.truncatedInner) }
        guard inner.count <= maximumFrameLength else { return .drop(.oversizeFrame) }
        guard vteps.value(for: UInt64(index) << 32 | UInt64(vtep.rawValue)) != nil else { return .drop(.unknownVTEP) }
        switch frame.etherType {
        case .arp:
            // A kernel vxlan peer without static neighbours asks by broadcast; answer for ours.
            guard let arp = try? ARPPacket(validating: frame.payload) else { return .drop(.malformedFrame) }
            guard arp.operation == .request, arp.senderIP != arp.targetIP else { return .drop(.arpNotRequest) }
            guard let destination = endpoints.value(for: Self.endpointKey(vxlan.vni, arp.targetIP)),
                destination & Destination.localFlag != 0
            else { return .drop(.arpUnknownTarget) }
            Self.answer(arp, in: frame)
            return .replyToWire
        case .ipv4:
            if frame.destination.isMulticast { return .drop(.broadcast) }
            guard let target = Self.address(fromDerived: frame.destination),
                let destination = endpoints.value(for: Self.endpointKey(vxlan.vni, target)),
                destination & Destination.localFlag != 0
            else { return .drop(.unknownDestination) }
            if backends.count > 0, let sender = Self.address(fromDerived: frame.source),
                backends.value(for: Self.endpointKey(vxlan.vni, sender)) != nil,
                let packet = try? IPv4Packet(validating: frame.payload), packet.source == sender
            {
                reverseIfReply(packet, from: sender, in: frame, network: vxlan.vni, partialChecksum: false, now: now)
            }
            return .deliver(port: Int(truncatingIfNeeded: destination & 0xFFFF_FFFF))
        default:
            return .drop(.unsupportedEtherType)
        }
    }

    /// A frame from `sender` on its way to a local port: when `sender` is a backend of a VIP and
    /// the frame answers a flow balanced on this node, its source becomes the VIP (address and
    /// derived MAC), as the client expects.
    @inline(__always)
    func reverseIfReply(
        _ packet: IPv4Packet, from sender: IPv4Address, in frame: EthernetFrame, network: VNI, partialChecksum: Bool, now: UInt32
    ) {
        guard backends.count > 0, backends.value(for: Self.endpointKey(network, sender)) != nil else { return }
        let virtualAddress = balancer._withUnsafeGuaranteedRef {
            $0.reverse(packet, network: network, partialChecksum: partialChecksum, now: now)
        }
        if let virtualAddress {
            frame.source = .derived(from: virtualAddress)
        }
    }

    /// Turns an ARP request into the reply in place: the target's derived MAC answers.
    @inline(__always)
    static func answer(_ request: ARPPacket, in frame: EthernetFrame) {
        let askerMAC = request.senderMAC, askerIP = request.senderIP
        let targetIP = request.targetIP
        let targetMAC = MACAddress.derived(from: targetIP)
        _ = try? ARPPacket.build(
            in: request.bytes, operation: .reply, senderMAC: targetMAC, senderIP: targetIP, targetMAC: askerMAC,
            targetIP: askerIP)
        frame.destination = frame.source
        frame.source = targetMAC
    }
}

/// Owns the memory behind a ``Switch``: built off the hot path from a topology and the port
/// numbering, swapped in by the engine between batches, freed when the engine drops it.
/// Immutable once built: any number of threads may read it concurrently.
public final class ForwardingTables: @unchecked Sendable {
    /// The switch over these tables; valid while this object lives.
    public let view: Switch
    private let networkStorage: UnsafeMutableBufferPointer<NetworkEntry>
    private let portStorage: UnsafeMutableBufferPointer<PortEntry>
    private let serviceStorage: UnsafeMutableBufferPointer<ServiceEntry>
    private let backendStorage: UnsafeMutableBufferPointer<IPv4Address>
    /// The switch's `balancer`, held here.
    private let balancer: VirtualIPBalancer

    /// `ports[i]` is the local endpoint served by port index `i`; `topology` must be valid
    /// (``Topology/validate()``) and list those endpoints. Frames to the topology's VIPs go to
    /// `balancer` (dropped and counted without one).
    public init(topology: Topology, ports: [LocalEndpoint], maximumFrameLength: Int, balancer: VirtualIPBalancer? = nil) {
        self.balancer = balancer ?? VirtualIPBalancer.none
        let networkIndex = Dictionary(uniqueKeysWithValues: topology.networks.enumerated().map { ($1.name, $0) })
        networkStorage = .allocate(capacity: topology.networks.count)
        _ = networkStorage.initialize(from: topology.networks.map {
            NetworkEntry(vni: $0.vni, subnet: $0.subnet, gateway: $0.gateway)
        })
        portStorage = .allocate(capacity: ports.count)
        _ = portStorage.initialize(from: ports.map {
            PortEntry(networkIndex: networkIndex[$0.network]!, address: $0.address, mac: .derived(from: $0.address))
        })
        var endpoints: [(key: UInt64, value: UInt64)] = []
        for network in topology.networks {
            endpoints.append((Switch.endpointKey(network.vni, network.gateway), Switch.Destination.gateway))
        }
        let vniOf = Dictionary(uniqueKeysWithValues: topology.networks.map { ($0.name, $0.vni) })
        for (index, endpoint) in ports.enumerated() {
            endpoints.append((Switch.endpointKey(vniOf[endpoint.network]!, endpoint.address), Switch.Destination.local(index)))
        }
        var vteps = Set<UInt64>()
        for endpoint in topology.remoteEndpoints {
            endpoints.append((Switch.endpointKey(vniOf[endpoint.network]!, endpoint.address), Switch.Destination.remote(endpoint.vtep)))
            vteps.insert(UInt64(networkIndex[endpoint.network]!) << 32 | UInt64(endpoint.vtep.rawValue))
        }
        // A VIP with no backend, not even a draining one, is left out: ARP for it goes
        // unanswered, as for any unused address. One with only draining backends stays for
        // their open flows (its new flows are dropped).
        let services = topology.services.filter { !$0.backends.isEmpty || !$0.draining.isEmpty }
        var entries: [ServiceEntry] = [], addresses: [IPv4Address] = [], backendKeys = Set<UInt64>()
        for (index, service) in services.enumerated() {
            let vni = vniOf[service.network]!
            endpoints.append((Switch.endpointKey(vni, service.address), Switch.Destination.virtual(index)))
            let sorted = Array(Set(service.backends)).sorted { $0.rawValue < $1.rawValue }
            entries.append(ServiceEntry(address: service.address, firstBackend: addresses.count, backendCount: sorted.count))
            addresses += sorted
            // Draining backends take no new flow but their replies are still reversed.
            for backend in sorted + service.draining { backendKeys.insert(Switch.endpointKey(vni, backend)) }
        }
        serviceStorage = .allocate(capacity: max(1, entries.count))
        _ = serviceStorage.initialize(from: entries)
        backendStorage = .allocate(capacity: max(1, addresses.count))
        _ = backendStorage.initialize(from: addresses)
        view = Switch(
            endpoints: FlatMap(endpoints),
            networksByVNI: FlatMap(topology.networks.enumerated().map { (UInt64($1.vni.rawValue), UInt64($0)) }),
            vteps: FlatMap(vteps.map { ($0, 1) }),
            networks: UnsafeBufferPointer(networkStorage), ports: UnsafeBufferPointer(portStorage),
            maximumFrameLength: maximumFrameLength,
            services: UnsafeBufferPointer(rebasing: serviceStorage[0..<entries.count]),
            backendAddresses: UnsafeBufferPointer(rebasing: backendStorage[0..<addresses.count]),
            backends: FlatMap(backendKeys.map { ($0, 1) }), balancer: Unmanaged.passUnretained(self.balancer))
    }

    deinit {
        view.endpoints.deallocate()
        view.networksByVNI.deallocate()
        view.vteps.deallocate()
        view.backends.deallocate()
        serviceStorage.deallocate()
        backendStorage.deallocate()
        networkStorage.deallocate()
        portStorage.deallocate()
    }
}
