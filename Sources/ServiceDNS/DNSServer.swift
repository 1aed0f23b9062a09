import Glibc
import HostNet
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import Wire

/// The DNS responder: UDP and TCP listeners on SwiftNIO that answer from a ``DNSResolver``
/// and relay everything else through a ``DNSForwarder``.
///
/// A listener can live in another network namespace: its sockets are created and bound inside
/// that namespace (a socket keeps the namespace it was made in) and then served by this
/// server's event loops — how `127.0.0.11:53` works inside every task (DESIGN.md §2).
public final class DNSServer: Sendable {
    public let resolver: DNSResolver
    public let forwarder: DNSForwarder?
    private let group: EventLoopGroup
    private let logger = Logger(label: "shoal.dns")

    /// One bound address (UDP and TCP on the same port) and the sandbox whose view it serves.
    public struct Listener: Sendable {
        public let address: IPv4Address
        public let port: UInt16
        public let sandbox: String
        let channels: [Channel]
    }

    public init(resolver: DNSResolver, forwarder: DNSForwarder?, group: EventLoopGroup) {
        self.resolver = resolver
        self.forwarder = forwarder
        self.group = group
    }

    /// Serves `sandbox`'s view on `address:port` (UDP and TCP) inside `namespace` (the
    /// caller's when nil). Port 0 picks a free port, the same for both protocols.
    public func listen(on address: IPv4Address, port: UInt16, namespace: NetworkNamespace? = nil, sandbox: String) throws -> Listener {
        let (udp, tcp, boundPort) = try Self.bindSockets(address, port, namespace)
        let udpChannel: Channel
        do {
            udpChannel = try DatagramBootstrap(group: group)
                // Many datagrams per system call (recvmmsg), each with room for the largest
                // query Shoal reads; answers written during one read burst go out together
                // (sendmmsg) when the burst ends.
                .channelOption(.datagramVectorReadMessageCount, value: Self.datagramsPerRead)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.datagramsPerRead * Self.largestQuery))
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPHandler(server: self, sandbox: sandbox))
                    }
                }
                .withBoundSocket(udp)
                .wait()
        } catch {
            Glibc.close(udp)
            Glibc.close(tcp)
            throw error
        }
        let tcpChannel: Channel
        do {
            tcpChannel = try ServerBootstrap(group: group)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                        try pipeline.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .twoBytes)))
                        try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .twoBytes))
                        try pipeline.addHandler(TCPHandler(server: self, sandbox: sandbox))
                    }
                }
                .withBoundSocket(tcp)
                .wait()
        } catch {
            try? udpChannel.close().wait()
            Glibc.close(tcp)
            throw error
        }
        logger.info("dns listening", metadata: ["address": "\(address):\(boundPort)", "sandbox": "\(sandbox)",
                                               "namespace": "\(namespace?.name ?? "-")"])
        return Listener(address: address, port: boundPort, sandbox: sandbox, channels: [udpChannel, tcpChannel])
    }

    /// Stops serving a listener.
    public func close(_ listener: Listener) {
        for channel in listener.channels { try? channel.close().wait() }
    }

    /// Creates, configures and binds the UDP and TCP sockets inside the namespace.
    private static func bindSockets(_ address: IPv4Address, _ port: UInt16, _ namespace: NetworkNamespace?) throws
        -> (Int32, Int32, UInt16)
    {
        let make = { () throws -> (Int32, Int32, UInt16) in
            let udp = try open(SOCK_DGRAM, address, port, "udp")
            let bound = IPv4SocketAddress.local(of: udp)?.port ?? port
            do {
                let tcp = try open(SOCK_STREAM, address, bound, "tcp")
                guard Glibc.listen(tcp, 128) == 0 else {
                    let error = HostNetError("listen", "\(address):\(bound)/tcp", errno: errno)
                    Glibc.close(tcp)
                    throw error
                }
                return (udp, tcp, bound)
            } catch {
                Glibc.close(udp)
                throw error
            }
        }
        return try namespace.map { try $0.run(make) } ?? make()
    }

    private static func open(_ kind: __socket_type, _ address: IPv4Address, _ port: UInt16, _ name: String) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(kind.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HostNetError("socket", name, errno: errno) }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let result = IPv4SocketAddress(address, port: port).withSockaddr { bind(descriptor, $0, $1) }
        guard result == 0 else {
            let error = HostNetError("bind", "\(address):\(port)/\(name)", errno: errno)
            Glibc.close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Datagrams read per system call on a UDP listener.
    static let datagramsPerRead = 32
    /// Room for one query in a vector read: a query is one question and an OPT record, far
    /// below this; a longer datagram is cut and answered FORMERR.
    static let largestQuery = 2048

    /// Answers one message: at once through `now`, or later (a forwarded query) through
    /// `later`; at most one of them is called, and neither for a drop.
    fileprivate func handle(
        _ bytes: UnsafeRawBufferPointer, sandbox: String, overTCP: Bool, now: ([UInt8]) -> Void,
        later: @escaping @Sendable ([UInt8]) -> Void
    ) {
        switch resolver.resolve(bytes, sandbox: sandbox, overTCP: overTCP) {
        case .respond(let response):
            now(response)
        case .drop:
            break
        case .forward(let query):
            guard let forwarder else {
                now(resolver.serverFailure(for: query, overTCP: overTCP))
                return
            }
            let resolver = self.resolver
            let reply = later
            forwarder.forward(Array(bytes)).whenComplete { result in
                switch result {
                case .success(let answer): reply(answer)
                case .failure: reply(resolver.serverFailure(for: query, overTCP: overTCP))
                }
            }
        }
    }

    private final class UDPHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let server: DNSServer
        let sandbox: String

        init(server: DNSServer, sandbox: String) {
            self.server = server
            self.sandbox = sandbox
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let channel = context.channel
            let client = envelope.remoteAddress
            envelope.data.withUnsafeReadableBytes { bytes in
                server.handle(bytes, sandbox: sandbox, overTCP: false) { response in
                    // Flushed with the rest of the read burst, in channelReadComplete.
                    let answer = AddressedEnvelope(remoteAddress: client, data: context.channel.allocator.buffer(bytes: response))
                    context.write(wrapOutboundOut(answer), promise: nil)
                } later: { response in
                    channel.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: ByteBuffer(bytes: response)), promise: nil)
                }
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    private final class TCPHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let server: DNSServer
        let sandbox: String

        init(server: DNSServer, sandbox: String) {
            self.server = server
            self.sandbox = sandbox
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let channel = context.channel
            unwrapInboundIn(data).withUnsafeReadableBytes { bytes in
                server.handle(bytes, sandbox: sandbox, overTCP: true) { response in
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: response)), promise: nil)
                } later: { response in
                    channel.writeAndFlush(ByteBuffer(bytes: response), promise: nil)
                }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)  // a bad frame or a reset: this connection is done
        }
    }
}
