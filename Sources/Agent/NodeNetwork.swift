// The node's data plane, programmed by its agent from two sources (DESIGN §3): its own tasks
// (from the assignments: networks, addresses, services' VIPs and modes) and the gossip
// tables, where every node puts one entry per running task endpoint. From the tables it
// builds the overlay's remote endpoints and the DNS records of every network its tasks are
// on, so that with every manager down, tasks keep finding and reaching each other. DNS is
// served at 127.0.0.11:53 inside every task's namespace.

import ClusterAPI
import Foundation
import Gossip
import HostNet
import IngressLB
import Logging
import NIOCore
import NIOPosix
import Overlay
import ServiceDNS
import Wire

/// One service's VIP on one network and the number of its backends in the rotation here.
public struct VIPBackendCount: Sendable, Hashable {
    /// The service's name.
    public var service: String
    /// The network's name.
    public var network: String
    /// Running, serving tasks the overlay can reach (draining ones not counted).
    public var backends: Int
}

/// What a node's data plane has counted: the overlay's frames and drops per network, the gossip
/// member's traffic, refusals and view of the members, and the DNS server's answers by kind.
public struct DataPlaneStatistics: Sendable {
    /// The overlay engine's counters.
    public var overlay: OverlayStatistics
    /// The gossip engine's counters.
    public var gossip: GossipStatistics
    /// What the gossip server refused before the engine saw it.
    public var gossipDrops: GossipDrops
    /// Members as this node sees them, by status (alive, suspect, dead, left).
    public var gossipMembers: [String: Int]
    /// DNS queries by outcome (``DNSStatistics/Counter`` names).
    public var dns: [String: UInt64]
}

/// One running task's endpoint on one network, as the gossip tables carry it.
struct EndpointEntry: Codable, Equatable {
    var task: String
    var service: String
    var serviceName: String
    var slot: UInt64
    var address: IPv4Address
    var vtep: IPv4Address
    var vip: IPv4Address?
    var dnsrr: Bool
    var aliases: [String]
    /// On the ingress network: the service's ports published through the routing mesh.
    var published: [PublishedEntry]?
    /// False while the task is not in its service's rotation — starting and not yet healthy,
    /// or draining before its stop signal: it stays reachable at its address (its open
    /// connections go on) but is in no name and behind no VIP. Absent means serving.
    var serving: Bool?

    /// Whether the task is in its service's names and VIP backends.
    var isServing: Bool { serving ?? true }

    /// One ingress-mode port of the service (published on every node, to `target` in tasks).
    struct PublishedEntry: Codable, Equatable {
        var published: UInt16
        var target: UInt16
        /// True when relayed connections start with a PROXY v2 header; absent means false
        /// (so that entries of nodes that predate it still decode).
        var proxyProtocol: Bool?
    }

    /// The gossip table endpoint entries live in, per network.
    static let table = "endpoints"
}

/// Overlay, gossip and DNS of one node.
public actor NodeNetwork {
    /// A task with a sandbox here.
    struct LocalTask {
        var task: Shoal_Api_Task
        var namespace: String
        var listener: DNSServer.Listener?
    }

    private let nodeID: String
    private let underlay: IPv4Address
    private let logger: Logger
    private let overlay: OverlayEngine
    /// The VIP load balancer the overlay's switch calls into.
    public nonisolated let balancer: ConnectionTracker
    /// How many backends each VIP balances new connections over on this node now (after the
    /// last topology change): what `shoal_vip_backends` reports.
    public private(set) var backendCounts: [VIPBackendCount] = []
    private let gossip: GossipServer
    private let records: RecordStore
    private let resolver: DNSResolver
    private let dns: DNSServer
    private var locals: [String: LocalTask] = [:]
    /// The routing mesh on this node: its sandbox's address on the ingress network (from the
    /// managers), the sandbox's record (so a later daemon or a lab teardown removes it), and
    /// the listeners on the published ports.
    private var ingress: (network: Shoal_Api_Network, address: IPv4Address)?
    private let ingressDirectory: String
    private let ingressNamespace: NetworkNamespace
    private var ingressProxy: IngressProxy?
    private var eventSequence = 0
    private var watcher: Task<Void, Never>?

    /// Starts the overlay on `underlay`:4789, gossip on `underlay`:7946 sealed with `keys`
    /// (oldest first, the last primary; none: plaintext) and the DNS server. The gossip
    /// member keeps its networks in `gossipDirectory` and rejoins them at once after a restart.
    public init(
        nodeID: String, underlay: IPv4Address, keys: [[UInt8]], flowTracking: ConnectionTracker.Configuration = .init(),
        ingressDirectory: String, gossipDirectory: String? = nil, logger: Logger
    ) throws {
        self.ingressDirectory = ingressDirectory
        ingressNamespace = NetworkNamespace(named: "shoal-ingress-\(nodeID.prefix(12))")
        // A sandbox a killed daemon left behind is made anew.
        SandboxRecord.load(from: ingressDirectory)?.removeSandbox()
        self.nodeID = nodeID
        self.underlay = underlay
        self.logger = logger
        let group = MultiThreadedEventLoopGroup.singleton
        balancer = ConnectionTracker(configuration: flowTracking)
        overlay = try OverlayEngine(configuration: .init(underlayAddress: underlay, balancer: balancer))
        overlay.start()
        var configuration = GossipConfiguration(
            name: nodeID, address: GossipAddress(ipv4: underlay.rawValue, port: 7946), randomSeed: UInt64.random(in: 0...UInt64.max),
            startWallMicroseconds: UInt64(Date().timeIntervalSince1970 * 1_000_000))
        configuration.maximumDatagramBytes = 1_400
        var keyring: GossipKeyring?
        if let primary = keys.last {
            var ring = try GossipKeyring(primaryKey: primary)
            for key in keys.dropLast() { try ring.add(key) }
            keyring = ring
        }
        gossip = GossipServer(configuration: configuration, keyring: keyring, group: group, logger: logger, stateDirectory: gossipDirectory)
        do {
            // The networks come back; the endpoint entries do not: a restarted daemon removes the
            // tasks (and the ingress sandbox) it left, and publishes each task it starts anew.
            let networksOnly: @Sendable (GossipPersistentState) -> GossipPersistentState = { GossipPersistentState(networks: $0.networks) }
            do {
                try gossip.start(bindHost: "\(underlay)", restoring: networksOnly)
            } catch let error as GossipStateFileError {
                // Only a convenience is lost: the networks are joined again as tasks need them.
                logger.warning("gossip state unreadable, starting without it", metadata: ["error": "\(error)"])
                try? FileManager.default.removeItem(atPath: error.path)
                try gossip.start(bindHost: "\(underlay)", restoring: networksOnly)
            }
        } catch {
            overlay.stop()
            throw error
        }
        records = try RecordStore()
        // Names outside the swarm go where the host sends its own queries.
        let upstreams = DNSForwarder.upstreams()
        let forwarder = upstreams.isEmpty ? nil : try? DNSForwarder(upstreams: upstreams, group: group)
        resolver = DNSResolver(store: records, ownsSwarmNames: true)
        dns = DNSServer(resolver: resolver, forwarder: forwarder, group: group)
    }

    /// Joins the gossip of the nodes at `hosts` (the managers: every node reaches them) and
    /// follows the tables until ``stop()``.
    public func run(joining hosts: [String]) {
        join(hosts)
        watcher = Task { await self.followTables() }
    }

    /// Joins the gossip of the managers at `hosts` (the list the session brings, which grows as
    /// managers join), and keeps joining any of them that is not a live member.
    public func join(_ hosts: [String]) {
        let seeds = hosts.compactMap { GossipAddress($0, defaultPort: 7946) }.map { GossipAddress(ipv4: $0.ipv4, port: 7946) }
            .filter { $0.ipv4 != underlay.rawValue }
        guard seeds != self.seeds else { return }
        self.seeds = seeds
        _ = gossip.run { engine, now in engine.join(seeds, now: now) }
    }

    /// The managers' gossip addresses this node joins through.
    private var seeds: [GossipAddress] = []

    /// Seals with the newest of `keys` (oldest first) from now on, opens with any of them, and
    /// forgets the keys no longer listed.
    public func useKeys(_ keys: [[UInt8]]) async throws {
        guard let primary = keys.last else { return }
        _ = try await gossip.updateKeyring { ring in
            let ids = try keys.map { try ring.add($0) }
            try ring.makePrimary(try ring.add(primary))
            for id in ring.keyIDs where !ids.contains(id) { try ring.remove(id) }
        }.get()
    }

    /// Takes this node's ingress sandbox address from its node object (the allocator gives one
    /// to every node): makes the sandbox, joins the ingress network's tables so that every
    /// published port is served here even without a local task, and opens the ports.
    public func useIngress(of node: Shoal_Api_Node) {
        guard let attachment = node.attachments.first(where: { $0.network.spec.ingress }),
            let address = attachment.addresses.first.flatMap({ IPv4Prefix($0)?.address })
        else { return }
        if let ingress, ingress.network == attachment.network, ingress.address == address { return }
        do {
            if !ingressNamespace.exists {
                var record = SandboxRecord(taskID: "ingress")
                record.namespace = ingressNamespace.name
                try FileManager.default.createDirectory(atPath: ingressDirectory, withIntermediateDirectories: true)
                try record.save(in: ingressDirectory)
                try NetworkNamespace.create(named: ingressNamespace.name)
            }
        } catch {
            logger.error("cannot make the ingress sandbox", metadata: ["error": "\(error)"])
            return
        }
        if ingressProxy == nil {
            do { ingressProxy = try IngressProxy(sandbox: ingressNamespace, logger: logger) } catch {
                logger.error("cannot start the ingress proxy", metadata: ["error": "\(error)"])
                return
            }
        }
        // A new ingress network (the old one removed and made anew): the sandbox's entry on
        // the old one would keep its address taken there.
        let replaced = ingress.flatMap { $0.network.id == attachment.network.id ? nil : $0.network.id }
        ingress = (attachment.network, address)
        // The sandbox is an endpoint like a task's: the nodes its connections reach answer it
        // through the table entry (one without a service, so in no name and no VIP).
        let id = attachment.network.id
        let entry = EndpointEntry(
            task: "ingress-\(nodeID)", service: "", serviceName: "", slot: 0, address: address, vtep: underlay, vip: nil, dnsrr: false,
            aliases: [])
        let value = (try? JSONEncoder().encode(entry)).map(Array.init) ?? []
        _ = gossip.run { engine, now in
            if let replaced, engine.joinedNetworks.contains(replaced) {
                try? engine.delete(EntryKey(network: replaced, table: EndpointEntry.table, key: entry.task), now: now)
            }
            if !engine.joinedNetworks.contains(id) { try? engine.joinNetwork(id, now: now) }
            try? engine.put(EntryKey(network: id, table: EndpointEntry.table, key: entry.task), value: value, now: now)
        }
        refresh()
    }

    /// What the data plane has counted so far.
    public func statistics() async throws -> DataPlaneStatistics {
        let (gossipStatistics, members) = try await gossip.run { engine, _ in
            (engine.statistics, Dictionary(grouping: engine.memberList, by: { $0.status.description }).mapValues(\.count))
        }.get()
        return DataPlaneStatistics(
            overlay: overlay.statistics(), gossip: gossipStatistics, gossipDrops: try await gossip.dropCounters().get(),
            gossipMembers: members, dns: resolver.statistics.snapshot)
    }

    /// Stops the data plane: DNS listeners, gossip (announcing the leave), overlay.
    public func stop() async {
        ingressProxy?.stop()
        ingressProxy = nil
        watcher?.cancel()
        for local in locals.values { if let listener = local.listener { dns.close(listener) } }
        locals = [:]
        _ = try? await gossip.leave().get()
        _ = try? await gossip.close().get()
        overlay.stop()
        if let record = SandboxRecord.load(from: ingressDirectory) {
            record.removeSandbox()
            try? FileManager.default.removeItem(atPath: ingressDirectory)
        }
    }

    // MARK: - Tasks

    /// Gives `task` its interfaces (a TAP per network, inside `namespace`) and its DNS at
    /// 127.0.0.11; called before its process starts.
    func attach(_ task: Shoal_Api_Task, namespace: String) throws {
        locals[task.id] = LocalTask(task: task, namespace: namespace, listener: nil)
        do {
            try apply()
            let listener = try dns.listen(on: IPv4Address(127, 0, 0, 11), port: 53, namespace: NetworkNamespace(named: namespace), sandbox: namespace)
            locals[task.id]?.listener = listener
        } catch {
            if let listener = locals.removeValue(forKey: task.id)?.listener { dns.close(listener) }
            refresh()
            throw error
        }
    }

    /// Puts the running task's endpoints in the gossip tables: its address is reachable from
    /// every node and, when `serving`, it is in its service's names and VIP backends.
    func publish(_ taskID: String, serving: Bool = true) async {
        guard let local = locals[taskID] else { return }
        let entries = endpointEntries(local.task).map { network, entry in
            var entry = entry
            if !serving { entry.serving = false }
            return (network, entry)
        }
        do {
            try await gossip.run { engine, now in
                for (network, entry) in entries {
                    if !engine.joinedNetworks.contains(network) { try engine.joinNetwork(network, now: now) }
                    try engine.put(EntryKey(network: network, table: EndpointEntry.table, key: entry.task), value: Array(try JSONEncoder().encode(entry)), now: now)
                }
            }.get()
        } catch {
            logger.warning("cannot publish a task's endpoints", metadata: ["task": "\(taskID)", "error": "\(error)"])
        }
        refresh()
    }

    /// Takes the task out of its service's rotation everywhere (before it stops, or when it
    /// turned unhealthy): no name and no VIP leads to it any more, while the connections it
    /// has go on until its process ends.
    func withdraw(_ taskID: String) async {
        await publish(taskID, serving: false)
    }

    /// Removes the task's table entries, interfaces and DNS listener (its process has ended).
    func detach(_ taskID: String) async {
        guard let local = locals.removeValue(forKey: taskID) else { return }
        let networks = local.task.networks.map(\.network.id)
        _ = try? await gossip.run { engine, now in
            for network in networks where engine.joinedNetworks.contains(network) {
                try? engine.delete(EntryKey(network: network, table: EndpointEntry.table, key: taskID), now: now)
            }
        }.get()
        if let listener = local.listener { dns.close(listener) }
        refresh()
    }

    private func endpointEntries(_ task: Shoal_Api_Task) -> [(String, EndpointEntry)] {
        task.networks.compactMap { attachment in
            guard let cidr = attachment.addresses.first, let address = IPv4Prefix(cidr)?.address else { return nil }
            let vip = task.endpoint.virtualIps.first { $0.networkID == attachment.network.id }.flatMap { IPv4Prefix($0.addr)?.address }
            var entry = EndpointEntry(
                task: task.id, service: task.serviceID, serviceName: task.serviceAnnotations.name, slot: task.slot, address: address,
                vtep: underlay, vip: vip, dnsrr: task.endpoint.spec.mode == .dnsrr, aliases: attachment.aliases)
            if attachment.network.spec.ingress {
                entry.published = task.endpoint.ports.filter { $0.publishMode == .ingress && $0.protocol == .tcp }.map {
                    EndpointEntry.PublishedEntry(
                        published: UInt16(truncatingIfNeeded: $0.publishedPort), target: UInt16(truncatingIfNeeded: $0.targetPort),
                        proxyProtocol: $0.proxyProtocol ? true : nil)
                }
            }
            return (attachment.network.id, entry)
        }
    }

    // MARK: - From the tables to the data plane

    private func followTables() async {
        var rounds = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            rounds += 1
            // A manager not among the live members (its data plane started after our join, or it
            // came back): asked again every second rather than at gossip's own reconnect
            // interval. Joining through any one member is not enough: two groups that each
            // joined a different manager first would otherwise never meet.
            if rounds % 20 == 0, !seeds.isEmpty {
                let seeds = self.seeds
                _ = gossip.run { engine, now in
                    let live = Set(engine.memberList.filter { $0.status == .alive }.map(\.address.ipv4))
                    let missing = seeds.filter { !live.contains($0.ipv4) }
                    if !missing.isEmpty { engine.join(missing, now: now) }
                }
            }
            guard let events = try? await gossip.events(after: eventSequence).get(), let last = events.last else { continue }
            eventSequence = last.sequence
            if events.contains(where: { if case .entry = $0.event { true } else { false } }) { refresh() }
        }
    }

    /// Rebuilds the overlay topology and the DNS records from the local tasks and the tables.
    private func refresh() {
        do { try apply() } catch { logger.warning("cannot update the data plane", metadata: ["error": "\(error)"]) }
    }

    private func apply() throws {
        var networks: [String: Shoal_Api_Network] = [:]
        for local in locals.values {
            for attachment in local.task.networks { networks[attachment.network.id] = attachment.network }
        }
        if let ingress { networks[ingress.network.id] = ingress.network }
        let ids = Array(networks.keys)
        let tables = (try? gossip.run { engine, _ in
            ids.map { id in (id, engine.entries(in: id).compactMap { try? JSONDecoder().decode(EndpointEntry.self, from: Data($0.value)) }) }
        }.wait()) ?? []
        var topology = Topology()
        var dnsRecords = DNSRecords()
        var virtualServices: [VirtualService] = []
        var published: [PublishedPort] = []
        /// "network/VIP" → the service's and the network's names, for the backends gauge.
        var serviceNames: [String: (service: String, network: String)] = [:]
        for id in ids.sorted() {
            let network = networks[id]!
            guard let subnet = IPv4Prefix(network.subnet), let gateway = IPv4Address(network.gateway), let vni = VNI(network.vni) else { continue }
            topology.networks.append(OverlayNetwork(name: id, vni: vni, subnet: IPv4Prefix(subnet.network, length: subnet.length), gateway: gateway))
            let entries = tables.first { $0.0 == id }?.1 ?? []
            for entry in entries where entry.vtep != underlay {
                topology.remoteEndpoints.append(RemoteEndpoint(network: id, address: entry.address, vtep: entry.vtep))
            }
            var services: [String: ServiceRecord] = [:]
            for entry in entries.sorted(by: { ($0.slot, $0.task) < ($1.slot, $1.task) }) where !entry.service.isEmpty && entry.isServing {
                var record = services[entry.service] ?? ServiceRecord(name: entry.serviceName, mode: entry.dnsrr ? .dnsrr : .vip, vip: entry.vip)
                record.tasks.append(TaskRecord(slot: Int(entry.slot), id: entry.task, address: entry.address))
                services[entry.service] = record
            }
            // Tasks out of the rotation (stopping or unhealthy) keep their open flows through the
            // VIP until they end: the switch still rewrites their replies.
            var draining: [IPv4Address: [IPv4Address]] = [:]
            for entry in entries where !entry.service.isEmpty && !entry.isServing && !entry.dnsrr {
                if let vip = entry.vip { draining[vip, default: []].append(entry.address) }
            }
            dnsRecords.networks[id] = services.keys.sorted().map { services[$0]! }
            for record in dnsRecords.networks[id]! where record.mode == .vip {
                guard let vip = record.vip else { continue }
                virtualServices.append(
                    VirtualService(network: id, address: vip, backends: record.tasks.map(\.address), draining: draining.removeValue(forKey: vip) ?? []))
                serviceNames["\(id)/\(vip)"] = (record.name, network.spec.annotations.name)
            }
            for (vip, addresses) in draining.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                virtualServices.append(VirtualService(network: id, address: vip, backends: [], draining: addresses))
            }
            if network.spec.ingress {
                for entry in entries.sorted(by: { $0.task < $1.task }) where entry.isServing {
                    guard let vip = entry.vip else { continue }
                    for port in entry.published ?? [] where !published.contains(where: { $0.published == port.published }) {
                        published.append(
                            PublishedPort(
                                published: port.published, target: port.target, virtualAddress: vip, service: entry.serviceName,
                                proxyProtocol: port.proxyProtocol ?? false))
                    }
                }
                // Names are not served on the routing mesh's network.
                dnsRecords.networks[id] = nil
            }
        }
        for local in locals.values.sorted(by: { $0.task.id < $1.task.id }) {
            for (index, attachment) in local.task.networks.enumerated() {
                guard let cidr = attachment.addresses.first, let address = IPv4Prefix(cidr)?.address else { continue }
                topology.localEndpoints.append(
                    LocalEndpoint(network: attachment.network.id, address: address, namespace: local.namespace, interface: "eth\(index)"))
            }
            dnsRecords.sandboxes[local.namespace] = local.task.networks.filter { !$0.network.spec.ingress }.map(\.network.id)
        }
        if let ingress {
            topology.localEndpoints.append(
                LocalEndpoint(network: ingress.network.id, address: ingress.address, namespace: ingressNamespace.name, interface: "eth0"))
        }
        // A VIP balances over the endpoints the overlay has: a task just gone from this node may
        // still have its gossip entry for a moment.
        let reachable = Set(topology.localEndpoints.map { "\($0.network)/\($0.address)" } + topology.remoteEndpoints.map { "\($0.network)/\($0.address)" })
        topology.services = virtualServices.map { service in
            var service = service
            service.backends = service.backends.filter { reachable.contains("\(service.network)/\($0)") }
            service.draining = service.draining.filter { reachable.contains("\(service.network)/\($0)") && !service.backends.contains($0) }
            return service
        }
        try overlay.apply(topology)
        backendCounts = topology.services.compactMap { service in
            serviceNames["\(service.network)/\(service.address)"].map {
                VIPBackendCount(service: $0.service, network: $0.network, backends: service.backends.count)
            }
        }
        try records.replace(with: dnsRecords)
        ingressProxy?.apply(published)
    }
}
