import Overlay
import Synchronization
import Wire

/// The VIP load balancer of one node (DESIGN.md §2): client-side, as IPVS is in swarm. A
/// frame from a task to a VIP finds its connection in the tracking table or, for a new
/// connection, takes the next backend of the service round robin; the destination is
/// rewritten in place, and the backend's replies get the VIP back as their source on the same
/// node. Flows stay while they are in use: an established TCP connection may sit idle for as
/// long as the kernel's conntrack would keep it (5 days by default), not IPVS's 900 s.
///
/// Both packet threads call in (frames to VIPs from the endpoint side, replies from either
/// side), so the table sits behind one lock: uncontended it costs a few atomic operations per
/// balanced frame, and frames that touch no VIP never take it.
public final class ConnectionTracker: VirtualIPBalancer, @unchecked Sendable {
    /// Limits and idle timeouts of the table.
    public struct Configuration: Sendable, Equatable {
        /// Flows tracked at most; a new flow beyond is dropped and counted, tracked ones go on.
        public var capacity: Int
        /// Idle time after which an established TCP flow is forgotten (kernel:
        /// `nf_conntrack_tcp_timeout_established`, 5 days).
        public var establishedTimeout: UInt32
        /// Idle time of a TCP flow opening or closing (kernel: SYN_SENT, FIN_WAIT, 120 s).
        public var transitoryTimeout: UInt32
        /// Idle time of a flow after a RST (kernel: CLOSE, 10 s).
        public var resetTimeout: UInt32
        /// Idle time of a UDP flow (kernel: `nf_conntrack_udp_timeout_stream`, 120 s).
        public var datagramTimeout: UInt32

        public static let fiveDays: UInt32 = 5 * 24 * 3600

        public init(
            capacity: Int = 65536, establishedTimeout: UInt32 = fiveDays, transitoryTimeout: UInt32 = 120,
            resetTimeout: UInt32 = 10, datagramTimeout: UInt32 = 120
        ) {
            self.capacity = capacity
            self.establishedTimeout = establishedTimeout
            self.transitoryTimeout = transitoryTimeout
            self.resetTimeout = resetTimeout
            self.datagramTimeout = datagramTimeout
        }

        /// Whether `flow` is still within its idle timeout at `now`. The two packet threads read
        /// the clock once per batch each, so a flow may have been touched by the other thread
        /// a second "later" than `now`: a negative age is live, not a wrapped-around huge one.
        @inline(__always)
        func isLive(_ flow: Flow, now: UInt32) -> Bool {
            let age = Int32(bitPattern: now &- flow.lastSeen)
            return age <= 0 || UInt32(age) <= timeout(flow.state)
        }

        /// How long a flow in `state` may stay idle.
        @inline(__always)
        func timeout(_ state: FlowState) -> UInt32 {
            switch state {
            case .opening, .closing: transitoryTimeout
            case .established: establishedTimeout
            case .reset: resetTimeout
            case .datagram: datagramTimeout
            }
        }
    }

    /// Counters since the tracker was made, and the flows tracked now.
    public struct Statistics: Sendable, Equatable {
        /// Flows in the table (expired ones count until they are reaped).
        public var flows = 0
        /// Flows created.
        public var newFlows: UInt64 = 0
        /// Flows removed after their idle timeout.
        public var expiredFlows: UInt64 = 0
        /// Frames forwarded to a backend, and replies rewritten back.
        public var balancedFrames: UInt64 = 0
        public var reversedFrames: UInt64 = 0
        /// New flows refused because the table was full.
        public var tableFullDrops: UInt64 = 0
        /// TCP segments other than a SYN for a connection the table does not know (it expired,
        /// or began before this node tracked it).
        public var untrackedDrops: UInt64 = 0
        /// Flows forgotten because their backend was gone (its node died, its task ended); the
        /// switch resets a TCP client's connection.
        public var goneBackendFlows: UInt64 = 0
        /// New flows refused because every backend of their VIP was draining.
        public var noBackendDrops: UInt64 = 0
        /// Flows removed because their client opened a direct connection to the backend from
        /// the same port (it forgot the balanced one).
        public var supersededFlows: UInt64 = 0

        /// All zero.
        public init() {}
    }

    /// The limits this tracker was made with.
    public let configuration: Configuration
    private let state: Mutex<State>

    /// Everything behind the lock.
    private struct State: ~Copyable, Sendable {
        var table: FlowTable
        var rotation: RoundRobin
        var statistics = Statistics()
    }

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        state = Mutex(State(table: FlowTable(capacity: configuration.capacity), rotation: RoundRobin()))
        super.init()
    }

    /// A snapshot of the counters.
    public func statistics() -> Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.flows = state.table.count
            return statistics
        }
    }

    override public func balance(
        _ packet: IPv4Packet, network: VNI, client: IPv4Address, service: BalancedService, partialChecksum: Bool,
        now: UInt32
    ) -> BalanceDecision {
        guard let ports = Self.ports(of: packet) else { return .drop(.virtualAddressUnsupported) }
        let key = FlowKey(
            network: network, protocol: packet.protocol, source: packet.source, sourcePort: ports.source,
            destination: packet.destination, destinationPort: ports.destination)
        let configuration = self.configuration
        let decision: BalanceDecision = state.withLock { state in
            if let index = state.table.find(key) {
                let flow = state.table.flow(index)
                if flow.forward == key, configuration.isLive(flow, now: now),
                    !Self.opensAnew(flow, flags: ports.flags, protocol: packet.protocol, backends: service.backends)
                {
                    state.table.touch(index, now: now, state: Self.next(flow.state, after: ports.flags, fromClient: true))
                    state.statistics.balancedFrames &+= 1
                    return .backend(flow.backend)
                }
                if flow.forward == key {
                    state.table.remove(index)
                    state.statistics.expiredFlows &+= 1
                }
            }
            // A new flow: TCP only from its SYN, so that a segment of a forgotten connection
            // is not sent to a backend that never saw its handshake.
            if packet.protocol == .tcp, ports.flags & Self.syn == 0 || ports.flags & Self.ack != 0 {
                state.statistics.untrackedDrops &+= 1
                return .drop(.untrackedFlow)
            }
            guard !service.backends.isEmpty else {
                state.statistics.noBackendDrops &+= 1
                return .drop(.noBackend)
            }
            state.statistics.expiredFlows &+= UInt64(state.table.reap(limit: 8) { !configuration.isLive($0, now: now) })
            let chosen = state.rotation.pick(
                from: service.backends, forService: UInt64(network.rawValue) << 32 | UInt64(service.address.rawValue),
                avoiding: client)
            var reply = key.reversed
            reply.addresses = UInt64(chosen.rawValue) << 32 | UInt64(client.rawValue)
            let flow = Flow(
                forward: key, reply: reply, virtualAddress: service.address, backend: chosen, lastSeen: now,
                state: packet.protocol == .tcp ? .opening : .datagram)
            guard state.table.find(reply) == nil, state.table.insert(flow) else {
                state.statistics.tableFullDrops &+= 1
                return .drop(.flowTableFull)
            }
            state.statistics.newFlows &+= 1
            state.statistics.balancedFrames &+= 1
            return .backend(chosen)
        }
        guard case .backend(let backend) = decision else { return decision }
        AddressTranslation.rewrite(.destination, of: packet, to: backend, partialChecksum: partialChecksum)
        return .backend(backend)
    }

    override public func reverse(_ packet: IPv4Packet, network: VNI, partialChecksum: Bool, now: UInt32) -> IPv4Address? {
        guard let ports = Self.ports(of: packet) else { return nil }
        let key = FlowKey(
            network: network, protocol: packet.protocol, source: packet.source, sourcePort: ports.source,
            destination: packet.destination, destinationPort: ports.destination)
        let configuration = self.configuration
        let virtualAddress: IPv4Address? = state.withLock { state in
            guard let index = state.table.find(key) else { return nil }
            let flow = state.table.flow(index)
            // Only the reply direction: a backend that is itself a client of its own VIP sends
            // its requests through `balance`.
            guard flow.reply == key, configuration.isLive(flow, now: now) else { return nil }
            state.table.touch(index, now: now, state: Self.next(flow.state, after: ports.flags, fromClient: false))
            state.statistics.reversedFrames &+= 1
            return flow.virtualAddress
        }
        guard let virtualAddress else { return nil }
        AddressTranslation.rewrite(.source, of: packet, to: virtualAddress, partialChecksum: partialChecksum)
        return virtualAddress
    }

    override public func sentDirectly(_ packet: IPv4Packet, network: VNI, now: UInt32) {
        // Only a connection's first SYN: a balanced flow's replies and a direct connection's
        // can be told apart only by which began last, as the kernel's conntrack does when a
        // SYN reuses the tuple of a closed connection.
        guard packet.protocol == .tcp, let ports = Self.ports(of: packet), ports.flags & Self.syn != 0, ports.flags & Self.ack == 0 else {
            return
        }
        let reply = FlowKey(
            network: network, protocol: .tcp, source: packet.destination, sourcePort: ports.destination,
            destination: packet.source, destinationPort: ports.source)
        state.withLock { state in
            guard let index = state.table.find(reply), state.table.flow(index).reply == reply else { return }
            state.table.remove(index)
            state.statistics.supersededFlows &+= 1
        }
    }

    override public func backendGone(_ packet: IPv4Packet, virtualAddress: IPv4Address, network: VNI) {
        guard let ports = Self.ports(of: packet) else { return }
        let key = FlowKey(
            network: network, protocol: packet.protocol, source: packet.source, sourcePort: ports.source,
            destination: virtualAddress, destinationPort: ports.destination)
        state.withLock { state in
            guard let index = state.table.find(key), state.table.flow(index).forward == key else { return }
            state.table.remove(index)
            state.statistics.goneBackendFlows &+= 1
        }
    }

    // MARK: - Packets

    private static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10

    /// The ports (and TCP flags) of a TCP or UDP packet that is not a fragment, or nil.
    @inline(__always)
    private static func ports(of packet: IPv4Packet) -> (source: UInt16, destination: UInt16, flags: UInt8)? {
        guard !packet.isFragment else { return nil }
        let transport = packet.payload
        switch packet.protocol {
        case .tcp:
            guard transport.count >= TCPSegment.minimumHeaderLength else { return nil }
            return (transport.loadBigEndian16(at: 0), transport.loadBigEndian16(at: 2), transport[13])
        case .udp:
            guard transport.count >= UDPDatagram.headerLength else { return nil }
            return (transport.loadBigEndian16(at: 0), transport.loadBigEndian16(at: 2), 0)
        default:
            return nil
        }
    }

    /// Whether a packet on a known flow starts a new one instead: a client's SYN that reuses
    /// the ports of a closed connection, or a SYN or datagram whose flow's backend has left
    /// the service (stopping or unhealthy). A departed backend keeps its established TCP
    /// connections until they end, and gets no new one. The backend scan (backends are few
    /// and sorted) is paid only by SYNs and datagrams, never by a connection's data.
    @inline(__always)
    private static func opensAnew(_ flow: Flow, flags: UInt8, protocol: IPProtocol, backends: UnsafeBufferPointer<IPv4Address>) -> Bool {
        if `protocol` == .tcp {
            guard flags & syn != 0, flags & ack == 0 else { return false }
            if flow.state == .closing || flow.state == .reset { return true }
        }
        return !backends.contains(flow.backend)
    }

    /// The state after a segment with `flags` (UDP flows stay datagrams).
    @inline(__always)
    private static func next(_ state: FlowState, after flags: UInt8, fromClient: Bool) -> FlowState {
        if state == .datagram { return .datagram }
        if flags & rst != 0 { return .reset }
        if flags & fin != 0 || state == .closing { return state == .reset ? .reset : .closing }
        if state == .opening, !fromClient, flags & ack != 0 { return .established }
        return state
    }
}
