import Foundation
import Glibc
import HostNet
import Logging
import NIOCore
import NIOPosix
import Wire

/// One port published through the routing mesh, as every node serves it.
public struct PublishedPort: Hashable, Sendable, Codable {
    /// The port every node accepts on.
    public var published: UInt16
    /// The port the service's tasks listen on.
    public var target: UInt16
    /// The service's VIP on the ingress network: connections to it are balanced in the switch.
    public var virtualAddress: IPv4Address
    /// The service's name, for logs.
    public var service: String
    /// Whether each relayed connection starts with a PROXY protocol v2 header carrying the
    /// client's address (the task's server must expect it: it is not HTTP).
    public var proxyProtocol: Bool

    public init(published: UInt16, target: UInt16, virtualAddress: IPv4Address, service: String, proxyProtocol: Bool = false) {
        self.published = published
        self.target = target
        self.virtualAddress = virtualAddress
        self.service = service
        self.proxyProtocol = proxyProtocol
    }
}

/// The routing mesh's way in on one node (DESIGN.md §2): every published TCP port is accepted
/// on all of the node's addresses — whether or not a task of the service runs here, and from
/// the node itself too — and each connection is relayed to the service's VIP on the `ingress`
/// network from the node's ingress sandbox, a network namespace with an endpoint on that
/// network. The switch balances it there like any VIP connection, over the tasks that are
/// running.
///
/// The proxy's event-loop threads live inside the sandbox, so its outgoing connections are
/// made there by NIO itself, non-blocking; the listening sockets are made in the daemon's own
/// namespace and handed to NIO bound (a socket keeps the namespace it was made in, and so do
/// the connections it accepts).
///
/// A relay, not address translation: the task sees the ingress sandbox's address as the
/// client's. A port published with the PROXY protocol (v2, opt-in per port, as haproxy's
/// `send-proxy-v2`) passes the real one on in a header before the client's first byte.
public final class IngressProxy: @unchecked Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    /// Listeners by published port; touched under `lock` only.
    private var listeners: [UInt16: (port: PublishedPort, channel: Channel)] = [:]
    private let lock = NSLock()

    /// Starts `threads` event loops and moves them into `sandbox`.
    public init(sandbox: NetworkNamespace, threads: Int = 2, logger: Logger) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.logger = logger
        do {
            for loop in group.makeIterator() { try loop.submit { try sandbox.enterForGood() }.wait() }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    // Not the blocking shutdown: the last reference may go on one of the group's own loops.
    deinit { group.shutdownGracefully { _ in } }

    /// Serves exactly `ports`: opens listeners for new ones, closes those no longer listed,
    /// and re-opens one whose target, VIP or PROXY protocol changed. A port that cannot be bound (another
    /// process holds it) is logged and tried again at the next call.
    public func apply(_ ports: [PublishedPort]) {
        let wanted = Dictionary(ports.map { ($0.published, $0) }, uniquingKeysWith: { first, _ in first })
        let (stale, missing): ([Channel], [PublishedPort]) = lock.withLock {
            var stale: [Channel] = []
            for (number, listener) in listeners where wanted[number] != listener.port {
                stale.append(listener.channel)
                listeners[number] = nil
            }
            return (stale, wanted.values.filter { listeners[$0.published] == nil })
        }
        for channel in stale {
            try? channel.close().wait()
            logger.info("ingress port closed", metadata: ["port": "\(channel.localAddress?.port ?? 0)"])
        }
        for port in missing.sorted(by: { $0.published < $1.published }) {
            do {
                let channel = try listen(port)
                lock.withLock { listeners[port.published] = (port, channel) }
                logger.info("ingress port open", metadata: ["port": "\(port.published)", "service": "\(port.service)"])
            } catch {
                logger.warning("cannot open an ingress port", metadata: ["port": "\(port.published)", "error": "\(error)"])
            }
        }
    }

    /// The published ports served now.
    public var ports: [UInt16] { lock.withLock { listeners.keys.sorted() } }

    /// Closes every listener (connections in flight go on until they end).
    public func stop() { apply([]) }

    private func listen(_ port: PublishedPort) throws -> Channel {
        let descriptor = try Self.boundSocket(port: port.published)
        // From here NIO owns the descriptor and closes it on any failure.
        do {
            return try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 4096)
                .childChannelOption(.autoRead, value: false)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { [weak self] client in
                    guard let self else { return client.close() }
                    relay(client, to: port)
                    return client.eventLoop.makeSucceededVoidFuture()
                }
                .withBoundSocket(descriptor).wait()
        }
    }

    /// A TCP socket bound to 0.0.0.0:`port` in the calling thread's (the daemon's) namespace.
    private static func boundSocket(port: UInt16) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HostNetError("socket", "ingress port \(port)", errno: errno) }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = IPv4SocketAddress(IPv4Address(0, 0, 0, 0), port: port).withSockaddr { bind(descriptor, $0, $1) }
        guard bound == 0 else {
            let error = HostNetError("bind", "0.0.0.0:\(port)", errno: errno)
            Glibc.close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Connects to the VIP (from the sandbox: this loop's thread lives there), then splices
    /// the two connections.
    private func relay(_ client: Channel, to port: PublishedPort) {
        let logger = self.logger
        guard let target = try? SocketAddress(ipAddress: "\(port.virtualAddress)", port: Int(port.target)) else {
            client.close(promise: nil)
            return
        }
        ClientBootstrap(group: client.eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectTimeout(.seconds(3))
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success(let backend):
                    if port.proxyProtocol {
                        guard let header = ProxyProtocolHeader(client: client.remoteAddress, server: client.localAddress) else {
                            client.close(promise: nil)
                            backend.close(promise: nil)
                            return
                        }
                        var buffer = backend.allocator.buffer(capacity: ProxyProtocolHeader.size)
                        header.write(to: &buffer)
                        // Queued before any of the client's bytes: the glue writes after it.
                        backend.writeAndFlush(buffer, promise: nil)
                    }
                    let (toBackend, toClient) = GlueHandler.matchedPair()
                    do {
                        try client.pipeline.syncOperations.addHandler(toBackend)
                        try backend.pipeline.syncOperations.addHandler(toClient)
                    } catch {
                        client.close(promise: nil)
                        backend.close(promise: nil)
                        return
                    }
                    // Reading starts now that both ends exist; the handlers gate it by writability.
                    client.setOption(.autoRead, value: true).whenFailure { _ in client.close(promise: nil) }
                case .failure(let error):
                    logger.debug("ingress connection refused", metadata: ["port": "\(port.published)", "error": "\(error)"])
                    client.close(promise: nil)
                }
            }
    }
}
