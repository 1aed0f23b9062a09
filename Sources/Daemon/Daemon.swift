// `shoal daemon`: one process per node. It starts unjoined, serving the API on its Unix
// socket; `swarm init` or `swarm join` makes it a manager or a worker, and a restart with the
// same data directory resumes that membership (same identity, role and certificates, no new
// join). Every node runs its agent's session with the managers; a manager also runs the
// control plane and the API on 2377 under mutual TLS.

import Agent
import ClusterAPI
import ControlPlane
import EngineKit
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import IngressLB
import Logging
import NIOCore
import NIOPosix
import PKI
import Prometheus
import Raft
import Wire

/// How a daemon runs (`shoal daemon` flags).
public struct DaemonConfiguration: Sendable {
    /// The node's name (`--node-name`), shown as HOSTNAME in `node ls`.
    public var nodeName: String
    /// Host or host:port other nodes reach it at (`--advertise-addr`); port 2377 by default.
    public var advertiseAddress: String
    /// host:port the cluster listener binds (`--listen-addr`).
    public var listenAddress = "0.0.0.0:2377"
    /// Where it keeps its state (`--data-dir`).
    public var dataDirectory: String
    /// The CLI's Unix socket (`--socket`), mode 0660.
    public var socketPath = "/run/shoal/shoal.sock"
    /// Where `/metrics` is served (`--metrics-addr`); empty for nowhere.
    public var metricsAddress = "127.0.0.1:9323"
    /// The VIP balancer's connection tracking: table size (`--conntrack-max`) and idle
    /// timeouts (`--conntrack-tcp-timeout-established`).
    public var flowTracking = ConnectionTracker.Configuration()

    /// A configuration with defaults.
    public init(nodeName: String, advertiseAddress: String, dataDirectory: String) {
        self.nodeName = nodeName
        self.advertiseAddress = advertiseAddress
        self.dataDirectory = dataDirectory
    }
}

/// One node's daemon.
public actor Daemon {
    /// How it runs.
    public let configuration: DaemonConfiguration
    let files: NodeFiles
    let logger: Logger
    /// The manager this node is, if any (the listeners' services read it per call).
    let handle = ManagerHandle()
    /// The node's membership, once joined (changed by the daemon's own files only: joining,
    /// leaving, renewal, role changes).
    var joined: Joined?
    private let loop: EventLoop

    /// What runs while the node is in a swarm.
    struct Joined {
        var membership: NodeMembershipState
        let roots: TrustedRoots
        /// What the node presents on 2377, replaced when its certificate is renewed.
        let credentials: ReloadableCredentials
        let connections: PeerConnections
        var manager: Manager?
        /// The manager's own loops, stopped with it (on demotion too).
        var managerTasks: [Task<Void, Never>] = []
        /// A promotion or demotion under way.
        var roleChange: Task<Void, Never>?
        var tasks: [Task<Void, Never>]
        var clusterServer: GRPCServer<HTTP2ServerTransport.Posix>?
        /// Overlay, gossip and DNS, once started.
        var network: NodeNetwork?
        /// The node object as the managers last sent it.
        var node: Shoal_Api_Node?
    }

    /// Runs this node's tasks.
    let worker: TaskWorker

    /// The metrics registry `/metrics` serves (from ``DaemonMetrics/bootstrap()``).
    let registry: PrometheusCollectorRegistry?

    /// A daemon for `configuration`; ``run()`` starts it.
    public init(configuration: DaemonConfiguration, metrics registry: PrometheusCollectorRegistry? = nil) {
        self.configuration = configuration
        self.registry = registry
        files = NodeFiles(directory: configuration.dataDirectory)
        var logger = Logger(label: "shoal.daemon")
        logger[metadataKey: "node"] = "\(configuration.nodeName)"
        self.logger = logger
        loop = MultiThreadedEventLoopGroup.singleton.next()
        worker = TaskWorker(directory: files.tasksDirectory, logger: logger)
    }

    /// Serves the Unix socket until the task is cancelled, resuming a saved membership first.
    public func run() async throws {
        await worker.removeLeftovers()
        if let saved = try files.loadState() {
            logger.info("resuming swarm membership", metadata: ["nodeID": "\(saved.nodeID)", "manager": "\(saved.isManager)"])
            try await activate(saved, bootstrap: false)
        }
        var metricsChannel: Channel?
        if let registry, !configuration.metricsAddress.isEmpty {
            guard case .hostPort(let host, let port) = try APITarget.dialable(configuration.metricsAddress) else { return }
            metricsChannel = try await DaemonMetrics.serve(registry, on: host, port: port)
            logger.info("metrics serving", metadata: ["address": "\(configuration.metricsAddress)"])
        }
        defer { metricsChannel?.close(promise: nil) }
        let socket = configuration.socketPath
        try Self.prepareSocket(socket)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
            services: [SwarmService(daemon: self), TaskIOService(daemon: self, authorizer: .localSocket)] + handle.services(.localSocket),
            interceptors: [APIMetricsInterceptor(listener: "socket")])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            if try await server.listeningAddress != nil { chmod(socket, 0o660) }
            logger.info("daemon serving", metadata: ["socket": "\(socket)"])
            do {
                try await group.next()
            } catch {
                server.beginGracefulShutdown()
                throw error
            }
        }
    }

    /// Stops everything the membership runs (the socket server ends with the run task).
    public func shutdown() async {
        await deactivate()
    }

    private static func prepareSocket(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    // MARK: - Running a membership

    /// Starts what `membership` runs: the manager and 2377 for a manager, the session always.
    /// `bootstrap` starts a new Raft group (swarm init).
    func activate(_ membership: NodeMembershipState, bootstrap: Bool, joinPeers: [UInt64: String]? = nil) async throws {
        let stored = try files.loadCredentials()
        let root = try RootCA(certificateDER: stored.root)
        let roots = TrustedRoots([root])
        let credentials = TLSCredentials(certificateChain: [stored.certificate], privateKey: stored.key)
        let current = try ReloadableCredentials(credentials)
        let verify = roots.verificationCallback(.node)
        let connections = PeerConnections(security: { current.current.client(verifying: verify) })
        var state = Joined(
            membership: membership, roots: roots, credentials: current, connections: connections, manager: nil, tasks: [],
            clusterServer: nil)
        // Every node listens on 2377: managers for the cluster's calls, every node for its
        // own tasks' sandboxes (exec, logs) reached through a manager.
        state.clusterServer = try await startClusterServer(membership, credentials: current, roots: roots)
        if membership.isManager, let raftID = membership.raftID {
            let (manager, tasks) = try startManager(
                membership, raftID: raftID, peers: joinPeers ?? membership.raftPeers, bootstrap: bootstrap, connections: connections,
                roots: roots)
            state.manager = manager
            state.managerTasks = tasks
        }
        state.tasks.append(Task { [weak self] in await self?.renewCertificates() })
        joined = state
        // With keys saved from an earlier session the data plane starts at once (managers may
        // all be down); else it starts with the first keys the session brings.
        let saved = files.loadGossipKeys()
        if !saved.isEmpty { await startDataPlane(membership, keys: saved) }
        startSession()
    }

    /// Starts this node's manager (a Raft member of the store) and serves its APIs; returns
    /// it and the tasks that run beside it (its loops, its metrics).
    func startManager(
        _ membership: NodeMembershipState, raftID: UInt64, peers: [UInt64: String], bootstrap: Bool, connections: PeerConnections,
        roots: TrustedRoots
    ) throws -> (Manager, [Task<Void, Never>]) {
        var configuration = ManagerConfiguration(
            nodeID: membership.nodeID, raftID: raftID, advertiseAddress: membership.advertiseAddress,
            raftDirectory: files.raftDirectory, bootstrap: bootstrap)
        configuration.peers = peers
        let manager = try Manager(configuration: configuration, connections: connections, roots: roots, loop: loop)
        handle.set(manager)
        let run = Task { await manager.run() }
        let metrics = Task {
            while !Task.isCancelled {
                await DaemonMetrics.sample(manager)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        return (manager, [run, metrics])
    }

    /// The node object from the managers: its ingress sandbox address goes to the data plane
    /// (now, or when it starts), and a role the managers changed (promote, demote) is taken.
    func received(node: Shoal_Api_Node) async {
        joined?.node = node
        await joined?.network?.useIngress(of: node)
        takeRole(of: node)
    }

    /// New data-plane keys from the managers: saved, then used (or the data plane started).
    func received(keys: [Shoal_Api_EncryptionKey]) async {
        let gossip = keys.filter { $0.subsystem == .gossip }.sorted { $0.lamportTime < $1.lamportTime }.map { [UInt8]($0.key) }
        guard !gossip.isEmpty, let state = joined else { return }
        do { try files.saveGossipKeys(gossip) } catch {
            logger.warning("cannot save the gossip keys", metadata: ["error": "\(error)"])
        }
        if let network = state.network {
            do { try await network.useKeys(gossip) } catch {
                logger.error("cannot use the new gossip keys", metadata: ["error": "\(error)"])
            }
        } else {
            await startDataPlane(state.membership, keys: gossip)
        }
    }

    /// Starts the node's overlay, gossip and DNS on its advertised address. A node whose
    /// data plane cannot start still serves the cluster (its tasks then fail to start,
    /// saying why), so a port clash does not cut a manager off.
    private func startDataPlane(_ membership: NodeMembershipState, keys: [[UInt8]]) async {
        guard let host = try? HostPort(parsing: membership.advertiseAddress, defaultPort: 2377).host, let underlay = IPv4Address(host) else {
            logger.warning("no data plane: the advertised address is not IPv4", metadata: ["address": "\(membership.advertiseAddress)"])
            return
        }
        do {
            let network = try NodeNetwork(
                nodeID: membership.nodeID, underlay: underlay, keys: keys, flowTracking: configuration.flowTracking,
                ingressDirectory: files.ingressDirectory, gossipDirectory: files.gossipDirectory, logger: logger)
            await network.run(joining: Self.gossipHosts(of: membership.managers))
            await worker.use(network)
            joined?.network = network
            if let node = joined?.node { await network.useIngress(of: node) }
            joined?.tasks.append(Task {
                var last = ConnectionTracker.Statistics()
                var lastCounts: [VIPBackendCount] = []
                var lastDataPlane = DataPlaneSample()
                while !Task.isCancelled {
                    DaemonMetrics.sample(network.balancer, since: &last)
                    DaemonMetrics.sample(await network.backendCounts, since: &lastCounts)
                    if let statistics = try? await network.statistics() { DaemonMetrics.sample(statistics, since: &lastDataPlane) }
                    try? await Task.sleep(for: .seconds(1))
                }
            })
        } catch {
            logger.error("the data plane did not start", metadata: ["error": "\(error)"])
        }
    }

    /// Starts the agent's session with the managers.
    private func startSession() {
        guard let state = joined else { return }
        var description = Shoal_Api_NodeDescription()
        description.hostname = configuration.nodeName
        description.advertiseAddr = state.membership.advertiseAddress
        description.engineVersion = engineVersion
        let connections = state.connections
        var managers = state.membership.managers
        if state.membership.isManager { managers = [state.membership.advertiseAddress] + managers.filter { $0 != state.membership.advertiseAddress } }
        let session = NodeSession(
            managers: managers, description: description, logger: logger,
            connect: { address in try connections.connection(to: address) }, worker: worker,
            onManagers: { [weak self] managers in Task { await self?.remember(managers: managers) } },
            onKeys: { [weak self] keys in await self?.received(keys: keys) },
            onNode: { [weak self] node in await self?.received(node: node) })
        joined?.tasks.append(Task { await session.run() })
    }

    /// The hosts of the managers' 2377 addresses: where a node's gossip joins (its own address
    /// among them is left out by the data plane).
    private static func gossipHosts(of managers: [String]) -> [String] {
        managers.compactMap { try? HostPort(parsing: $0, defaultPort: 2377).host }
    }

    private func remember(managers: [String]) {
        guard var state = joined, state.membership.managers != managers else { return }
        state.membership.managers = managers
        joined = state
        if let network = state.network {
            let hosts = Self.gossipHosts(of: managers)
            Task { await network.join(hosts) }
        }
        do { try files.save(state.membership) } catch {
            logger.warning("cannot save the managers' list", metadata: ["error": "\(error)"])
        }
    }

    /// The listener on 2377: every call under mutual TLS; joiners reach only the CA.
    private func startClusterServer(
        _ membership: NodeMembershipState, credentials: ReloadableCredentials, roots: TrustedRoots
    ) async throws -> GRPCServer<HTTP2ServerTransport.Posix> {
        let target = try APITarget(parsing: membership.listenAddress)
        guard case .hostPort(let host, let port) = target else { throw APIError(.invalidSpec, "--listen-addr must be host:port") }
        let address: GRPCNIOTransportCore.SocketAddress = host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        let transport = HTTP2ServerTransport.Posix(
            address: address,
            transportSecurity: credentials.current.server(verifying: roots.verificationCallback(.nodeOrJoiner), reloading: credentials))
        let server = GRPCServer(
            transport: transport, services: handle.services(.network(roots)) + [TaskIOService(daemon: self, authorizer: .network(roots))],
            interceptors: [APIMetricsInterceptor(listener: "cluster")])
        let serving = Task { [logger] in
            do { try await server.serve() } catch { logger.error("cluster listener failed", metadata: ["error": "\(error)"]) }
        }
        guard (try? await transport.listeningAddress) != nil else {
            serving.cancel()
            throw APIError(.unavailable, "cannot listen on \(membership.listenAddress) (in use, or not an address of this host)")
        }
        joinedTasksPending.append(serving)
        logger.info("cluster listener serving", metadata: ["listen": "\(membership.listenAddress)"])
        return server
    }
    private var joinedTasksPending: [Task<Void, Never>] = []

    /// Stops the session, the manager and the cluster listener, and (unless kept, as
    /// `--force-new-cluster` keeps them) the node's tasks.
    func deactivate(keepingTasks: Bool = false) async {
        guard let state = joined else { return }
        joined = nil
        for task in state.tasks + state.managerTasks { task.cancel() }
        state.roleChange?.cancel()
        if !keepingTasks { await worker.stopAll() }
        await worker.use(nil)
        await state.network?.stop()
        handle.set(nil)
        // Cancelling the listener's task ends its streams at once (sessions and Raft streams
        // never finish on their own, so a graceful drain would only wait for the timeout).
        state.clusterServer?.beginGracefulShutdown()
        for task in joinedTasksPending { task.cancel() }
        for task in joinedTasksPending { await task.value }
        joinedTasksPending = []
        if let manager = state.manager { await Task.detached { manager.stop() }.value }
        state.connections.closeAll()
    }
}
