import CShoal
import Dispatch
import Foundation
import HostNet
import Logging
import Synchronization
import Wire

/// The VTEP of one node: local endpoints (TAPs), the switch between them, and the UDP socket
/// on the underlay, driven by one packet thread, or two: one per direction (``EngineWorker``).
///
/// The packet path is a plain epoll loop over raw descriptors rather than SwiftNIO: each wake
/// moves a batch of frames with one `recvmmsg`/`sendmmsg` and no allocation, which NIO's
/// per-read `ByteBuffer`s and pipeline would not allow (DESIGN.md §2, STYLE.md on the overlay).
/// Everything else — applying a topology, statistics, capture — reaches every packet thread as
/// a command.
///
/// Thread safety: every public method may be called from any thread.
public final class OverlayEngine: @unchecked Sendable {
    /// How the engine is set up; fixed for its lifetime.
    public struct Configuration: Sendable {
        /// The node's underlay address (its VTEP address).
        public var underlayAddress: IPv4Address
        /// The VXLAN UDP port; 4789 unless a test needs another.
        public var port: UInt16
        /// Where the underlay socket is created (the caller's namespace when nil).
        public var namespace: NetworkNamespace?
        /// The MTU of endpoint interfaces: 1450 on a 1500-byte underlay.
        public var mtu: Int
        /// Frames moved per system call.
        public var batchSize: Int
        /// Whether the underlay socket takes UDP GRO: a sender's consecutive datagrams arrive
        /// in one buffer, up to 64 KiB per receive slot. Off only to measure or test without.
        public var receiveOffload: Bool
        /// Whether segments of a super-frame leave in one `sendmsg` with UDP GSO (`UDP_SEGMENT`)
        /// rather than as separate datagrams in a `sendmmsg` batch. Off only to measure.
        public var sendOffload: Bool
        /// Packet threads: 1 serves both directions; 2 give the wire → endpoint direction (UDP
        /// receive, coalescing, TAP writes) and the endpoint → wire one (TAP reads,
        /// segmentation, UDP sends) a thread each, with no lock shared on the packet path.
        /// Two by default wherever there are two cores: measured 10–20% more throughput with
        /// several streams or both directions, the same RTT (bench/README.md).
        public var threads: Int
        /// Where frames to VIPs are balanced (``Topology/services``); without one they are
        /// dropped and counted.
        public var balancer: VirtualIPBalancer?

        /// One packet thread per direction where the host has the cores for it.
        public static let defaultThreads = min(2, ProcessInfo.processInfo.activeProcessorCount)

        public init(
            underlayAddress: IPv4Address, port: UInt16 = VXLANPacket.port, namespace: NetworkNamespace? = nil,
            mtu: Int = 1450, batchSize: Int = 64, receiveOffload: Bool = true, sendOffload: Bool = true,
            threads: Int = defaultThreads, balancer: VirtualIPBalancer? = nil
        ) {
            self.balancer = balancer
            self.sendOffload = sendOffload
            self.threads = threads
            self.underlayAddress = underlayAddress
            self.port = port
            self.namespace = namespace
            self.mtu = mtu
            self.batchSize = batchSize
            self.receiveOffload = receiveOffload
        }
    }

    public let configuration: Configuration
    private let logger = Logger(label: "shoal.overlay")
    private let socket: UnderlaySocket
    /// Serializes ``apply(_:)`` calls; holds what the control side knows.
    private let control = Mutex<ControlState>(ControlState())
    private let started = Atomic<Bool>(false)
    /// The packet threads' state; each is touched by its own thread only, or by the caller while
    /// no thread runs.
    private let workers: [EngineWorker]

    /// Binds the underlay socket; no endpoint exists until ``apply(_:)``.
    public init(configuration: Configuration) throws {
        precondition((1...Int(SHOAL_MAX_BATCH)).contains(configuration.batchSize), "batch size out of range")
        precondition((1...2).contains(configuration.threads), "threads must be 1 or 2")
        // A frame behind its VXLAN header must fit one send slot (the underlay MTU of 1500
        // leaves room for 1450; jumbo underlays are not supported yet).
        guard configuration.mtu >= 576, configuration.mtu <= PacketBuffers.maximumMTU else {
            throw OverlayError.unsupportedMTU(configuration.mtu, maximum: PacketBuffers.maximumMTU)
        }
        self.configuration = configuration
        socket = try UnderlaySocket(
            address: configuration.underlayAddress, port: configuration.port, in: configuration.namespace,
            receiveOffload: configuration.receiveOffload)
        let roles: [EngineWorker.Roles] = configuration.threads == 1 ? [[.wire, .ports]] : [.wire, .ports]
        let socket = self.socket
        workers = try roles.map { try EngineWorker(roles: $0, configuration: configuration, socket: socket) }
    }

    deinit { stop() }

    // MARK: - Lifecycle

    /// Starts the packet threads. Calling it twice is a no-op.
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        workers.forEach { $0.start() }
    }

    /// Stops the threads and closes every endpoint. Safe to call more than once.
    public func stop() {
        guard started.exchange(false, ordering: .acquiringAndReleasing) else { return }
        // Under the control lock: an apply() in flight finishes first, and none starts until
        // the threads are gone, so a worker that refuses a command is one that has stopped.
        control.withLock { state in
            workers.forEach { $0.stop() }
            state.ports.forEach { $0.close() }
            state.ports = []
        }
    }

    // MARK: - Control

    /// Makes the engine serve `topology`: creates the TAPs of new local endpoints inside their
    /// namespaces, removes those of endpoints no longer listed, and swaps the forwarding tables.
    /// Applying the same topology twice changes nothing; unchanged endpoints keep their TAPs and
    /// keep forwarding throughout.
    public func apply(_ topology: Topology) throws {
        try topology.validate()
        try control.withLock { state in
            if state.topology == topology { return }
            let networks = Dictionary(uniqueKeysWithValues: topology.networks.map { ($0.name, $0) })
            let previous = Dictionary(uniqueKeysWithValues: state.topology.networks.map { ($0.name, $0) })
            // A port survives when its endpoint is listed again on an identical network.
            let (kept, removed) = state.ports.partitioned { port in
                topology.localEndpoints.contains(port.endpoint) && networks[port.endpoint.network] == previous[port.endpoint.network]
            }
            if !removed.isEmpty {
                // First stop forwarding to the leaving TAPs, then close them, so that a new TAP
                // may take a leaving one's name.
                try install(topology: state.topology, ports: kept, networks: state.topology.networks)
                removed.forEach { $0.close() }
                state.ports = kept
            }
            var ports = kept
            for endpoint in topology.localEndpoints where !kept.contains(where: { $0.endpoint == endpoint }) {
                do {
                    ports.append(try EndpointPort(endpoint: endpoint, network: networks[endpoint.network]!, mtu: configuration.mtu))
                } catch {
                    // Leave the engine as it was before this call, minus the ports already removed.
                    ports[kept.count...].forEach { $0.close() }
                    throw error
                }
            }
            try install(topology: topology, ports: ports, networks: topology.networks)
            state.ports = ports
            state.topology = topology
            logger.info(
                "applied topology",
                metadata: ["networks": "\(topology.networks.count)", "local": "\(ports.count)",
                           "remote": "\(topology.remoteEndpoints.count)"])
        }
    }

    /// The topology the engine serves.
    public var topology: Topology { control.withLock { $0.topology } }

    /// A snapshot of every counter, summed over the packet threads.
    public func statistics() -> OverlayStatistics {
        control.withLock { _ in
            OverlayStatistics(summing: workers.map { worker in
                let reply = Reply<OverlayStatistics>()
                return worker.submit(.snapshot(reply)) ? reply.wait() : worker.collectStatistics()
            })
        }
    }

    /// Writes the frames of network `name` — decapsulated ones from the wire and those of its
    /// local endpoints — to `writer` until `count` frames or `seconds` have passed. Returns the
    /// number written; the writer is left open for the caller to close.
    public func capture(network name: String, into writer: PcapWriter, count: Int, seconds: Double) throws -> Int {
        guard topology.networks.contains(where: { $0.name == name }) else { throw OverlayError.unknownNetwork(name) }
        guard started.load(ordering: .acquiring) else { return 0 }
        let session = CaptureSession(network: name, writer: writer, remaining: count)
        workers.forEach { $0.submit(.startCapture(session)) }
        _ = session.done.wait(timeout: .now() + seconds)
        for worker in workers {
            let stopped = Reply<Void>()
            if worker.submit(.stopCapture(stopped)) { stopped.wait() }
        }
        return session.written
    }

    /// Hands every packet thread the tables and descriptors for `topology` and waits until all
    /// have switched to them.
    private func install(topology: Topology, ports: [EndpointPort], networks: [OverlayNetwork]) throws {
        let tables = ForwardingTables(
            topology: topology, ports: ports.map(\.endpoint),
            maximumFrameLength: configuration.mtu + EthernetFrame.headerLength, balancer: configuration.balancer)
        let installation = Installation(tables: tables, descriptors: ports.map(\.descriptor), networks: networks)
        for worker in workers {
            let reply = Reply<Void>()
            if worker.submit(.install(installation, reply)) {
                reply.wait()
            } else {
                // Not running (the caller holds the control lock, so not stopping either):
                // install directly; nothing else touches the worker's state meanwhile.
                worker.perform(.install(installation, reply))
            }
        }
    }
}

/// Why the engine refused a request.
public enum OverlayError: Error, Equatable, CustomStringConvertible {
    case unknownNetwork(String)
    case unsupportedMTU(Int, maximum: Int)

    public var description: String {
        switch self {
        case .unknownNetwork(let name): "no overlay network named '\(name)'"
        case .unsupportedMTU(let mtu, let maximum): "overlay MTU \(mtu) is not supported: use 576 to \(maximum) (1450 on a 1500-byte underlay)"
        }
    }
}

// MARK: - Engine internals

/// What the control side knows; guarded by the engine's `control` mutex.
private struct ControlState {
    var topology = Topology()
    var ports: [EndpointPort] = []
}

extension Array {
    /// Splits into the elements that satisfy `belongs` and those that do not, in order.
    fileprivate func partitioned(by belongs: (Element) throws -> Bool) rethrows -> ([Element], [Element]) {
        var yes: [Element] = [], no: [Element] = []
        for element in self { try belongs(element) ? yes.append(element) : no.append(element) }
        return (yes, no)
    }
}
