import EngineKit
import Framing
import Logging
import NIOCore
import NIOPosix
import Raft

/// TCP on 2377 between members, with SwiftNIO: one listener, and one outbound connection per
/// peer, reconnected with exponential backoff. Raft tolerates loss, so while a peer is
/// unreachable its messages are dropped (a bounded few are kept for the reconnect).
///
/// Confined to one event loop — the member's — so the host sees every frame on the thread
/// that owns its core, with no lock anywhere. (`@unchecked Sendable` rests on that; each entry
/// point checks it.) The pipeline is ready for TLS: a handler in front of the framing.
final class PeerTransport: RaftMessageTransport, @unchecked Sendable {
    typealias MessageHandler = (Message) -> Void
    typealias RequestHandler = (ClientRequest, @escaping (ClientResponse) -> Void) -> Void

    private let loop: EventLoop
    private let logger: Logger
    private var server: Channel?
    private var peers: [NodeID: Peer] = [:]
    /// Accepted connections, by identity, until they close.
    private var inbound: [ObjectIdentifier: Channel] = [:]
    /// Set by ``close()``: nothing is sent or connected after it.
    private var closed = false
    /// Resolves a member's address ("host:port"), from configuration or the replicated store.
    var addressOf: (NodeID) -> String? = { _ in nil }
    var onMessage: MessageHandler = { _ in }
    /// Until the server installs its handler (just after the member starts listening), a client
    /// request is told to retry: dropping it unanswered would leave the client waiting forever.
    var onRequest: RequestHandler = { request, respond in
        respond(ClientResponse(id: request.id, ok: false, error: "member is starting; retry"))
    }
    /// Frames that did not decode (bad input is dropped and counted, the connection closed).
    private(set) var rejectedFrames = 0
    /// What the framing dropped (oversized prefixes, connections cut mid-frame).
    let frameDrops = FrameDropCounters()

    /// One peer's connection state; like the transport, only touched on its event loop.
    private final class Peer: @unchecked Sendable {
        var channel: Channel?
        var connecting = false
        var backoff: TimeAmount = .milliseconds(50)
        var queued: [ByteBuffer] = []
        var nextAttempt: NIODeadline = .uptimeNanoseconds(0)
    }

    private static let maxQueuedPerPeer = 256

    init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    /// Listens on `host:port`; returns the bound port.
    func listen(host: String, port: Int) throws -> Int {
        let channel = try ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.addFraming(to: channel, counters: self.frameDrops)
                    try channel.pipeline.syncOperations.addHandler(InboundFrames(transport: self))
                    self.track(channel)
                }
            }
            .bind(host: host, port: port).wait()
        server = channel
        return channel.localAddress?.port ?? port
    }

    /// The framing of every 2377 connection (frames of at most ``maximumFrameBytes``).
    static func addFraming(to channel: Channel, counters: FrameDropCounters) throws {
        try LengthPrefixedFraming.add(to: channel.pipeline.syncOperations, limit: maximumFrameBytes, counters: counters)
    }

    /// Sends one Ready's messages, then flushes each connection once.
    func send(_ messages: [Message]) {
        for message in messages { send(message) }
        flush()
    }

    /// Sends `message` to its recipient, connecting first if needed.
    func send(_ message: Message) {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        buffer.writeInteger(FrameChannel.raft.rawValue)
        buffer.writeBytes(message.encoded())
        let peer = peers[message.to] ?? Peer()
        peers[message.to] = peer
        if let channel = peer.channel, channel.isActive {
            channel.write(buffer, promise: nil)
            return
        }
        if peer.queued.count < Self.maxQueuedPerPeer { peer.queued.append(buffer) }
        connect(message.to, peer)
    }

    /// Flushes what `send` wrote (once per batch of messages, not per message).
    func flush() {
        for peer in peers.values { peer.channel?.flush() }
    }

    private func connect(_ id: NodeID, _ peer: Peer) {
        guard !peer.connecting, NIODeadline.now() >= peer.nextAttempt, let address = addressOf(id) else { return }
        guard let target = try? HostPort(parsing: address) else {
            logger.warning("member address is not host:port; not connecting", metadata: ["member": "\(id)", "address": "\(address)"])
            peer.nextAttempt = .now() + .seconds(2)
            return
        }
        peer.connecting = true
        ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try Self.addFraming(to: channel, counters: self.frameDrops) }
            }
            .connect(host: target.host, port: Int(target.port))
            .whenComplete { [self] result in
                peer.connecting = false
                switch result {
                case .success(let channel) where closed:
                    channel.close(promise: nil)  // Connected after close(): nothing may go out.
                case .success(let channel):
                    peer.channel = channel
                    peer.backoff = .milliseconds(50)
                    for buffer in peer.queued { channel.write(buffer, promise: nil) }
                    peer.queued = []
                    channel.flush()
                    channel.closeFuture.whenComplete { _ in if peer.channel === channel { peer.channel = nil } }
                case .failure:
                    peer.queued = []
                    peer.nextAttempt = .now() + peer.backoff
                    peer.backoff = min(peer.backoff * 2, .seconds(2))
                }
            }
    }

    fileprivate func received(_ buffer: ByteBuffer, on channel: Channel) {
        var buffer = buffer
        guard let raw = buffer.readInteger(as: UInt8.self), let kind = FrameChannel(rawValue: raw) else {
            reject(channel, "unknown frame channel")
            return
        }
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        switch kind {
        case .raft:
            do throws(RaftDecodingError) {
                onMessage(try Message(decoding: bytes))
            } catch {
                reject(channel, "\(error)")
            }
        case .request:
            guard let request = JSONCoding.decode(ClientRequest.self, from: bytes) else {
                reject(channel, "malformed client request")
                return
            }
            onRequest(request) { response in
                var out = ByteBufferAllocator().buffer(capacity: 128)
                out.writeInteger(FrameChannel.response.rawValue)
                out.writeBytes(JSONCoding.encode(response))
                channel.writeAndFlush(out, promise: nil)
            }
        case .response:
            reject(channel, "unexpected response frame")
        }
    }

    fileprivate func reject(_ channel: Channel, _ why: String) {
        rejectedFrames += 1
        logger.warning("dropped a frame and its connection", metadata: ["reason": "\(why)", "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
        channel.close(promise: nil)
    }

    /// Remembers an accepted connection until it closes, so that ``close()`` ends it too.
    private func track(_ channel: Channel) {
        loop.preconditionInEventLoop()
        let key = ObjectIdentifier(channel)
        inbound[key] = channel
        channel.closeFuture.whenComplete { [self] _ in inbound[key] = nil }
    }

    /// Stops listening and closes every connection, outbound and accepted: no frame reaches
    /// the member after this returns.
    func close() {
        try? loop.submit { [self] in
            closed = true
            onMessage = { _ in }
            onRequest = { _, _ in }
        }.wait()
        try? server?.close().wait()
        let channels = (try? loop.submit { [self] in Array(inbound.values) + peers.values.compactMap(\.channel) }.wait()) ?? []
        for channel in channels { try? channel.close().wait() }
    }
}

/// Hands decoded frames of an inbound connection to the transport; any pipeline error (an
/// oversized frame, a reset) closes just that connection.
private final class InboundFrames: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let transport: PeerTransport

    init(transport: PeerTransport) { self.transport = transport }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        transport.received(unwrapInboundIn(data), on: context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        transport.reject(context.channel, "\(error)")
    }
}
