import EngineKit
import Framing
import NIOCore
import NIOPosix
import Raft

/// A client of a Raft group over port 2377: sends requests to the member it believes leads,
/// follows "not the leader" answers to the leader's address, and falls back to the other
/// endpoints when a member does not answer. Many requests may be in flight on one connection.
public final class RaftClient: @unchecked Sendable {
    private let loop: EventLoop
    private var endpoints: [String]
    private var current = 0
    private var channel: Channel?
    private var nextID: UInt64 = 0
    private var waiting: [UInt64: EventLoopPromise<ClientResponse>] = [:]

    /// A client on `loop` (all its state lives there) of the members at `endpoints`.
    public init(endpoints: [String], loop: EventLoop) {
        precondition(!endpoints.isEmpty, "a client needs at least one endpoint")
        self.endpoints = endpoints
        self.loop = loop
    }

    /// Sends `operation` to the leader, following redirects and trying other members, up to
    /// `attempts` tries; the future fails only when no member could be reached.
    public func request(_ operation: ClientRequest.Operation, attempts: Int = 8) -> EventLoopFuture<ClientResponse> {
        loop.flatSubmit { [self] in attempt(operation, remaining: attempts) }
    }

    private func attempt(_ operation: ClientRequest.Operation, remaining: Int) -> EventLoopFuture<ClientResponse> {
        send(operation).flatMap { [self] response -> EventLoopFuture<ClientResponse> in
            guard !response.ok, remaining > 1 else { return loop.makeSucceededFuture(response) }
            if let address = response.leaderAddress, address != endpoints[current] {
                redirect(to: address)
                return attempt(operation, remaining: remaining - 1)
            }
            if response.error?.contains("not the leader") == true || response.error?.contains("retry") == true {
                // No leader known yet (an election is on): wait a little, try the next member.
                rotate()
                return loop.scheduleTask(in: .milliseconds(50)) {}.futureResult.flatMap { [self] in
                    attempt(operation, remaining: remaining - 1)
                }
            }
            return loop.makeSucceededFuture(response)
        }.flatMapError { [self] (error: Error) -> EventLoopFuture<ClientResponse> in
            guard remaining > 1 else { return loop.makeFailedFuture(error) }
            rotate()
            return loop.scheduleTask(in: .milliseconds(50)) {}.futureResult.flatMap { [self] in
                attempt(operation, remaining: remaining - 1)
            }
        }
    }

    private func redirect(to address: String) {
        if let known = endpoints.firstIndex(of: address) { current = known } else {
            endpoints.append(address)
            current = endpoints.count - 1
        }
        dropConnection()
    }

    private func rotate() {
        current = (current + 1) % endpoints.count
        dropConnection()
    }

    private func dropConnection() {
        channel?.close(promise: nil)
        channel = nil
    }

    private func send(_ operation: ClientRequest.Operation) -> EventLoopFuture<ClientResponse> {
        connection().flatMap { [self] channel in
            nextID += 1
            let promise = loop.makePromise(of: ClientResponse.self)
            waiting[nextID] = promise
            var buffer = channel.allocator.buffer(capacity: 96)
            buffer.writeInteger(FrameChannel.request.rawValue)
            buffer.writeBytes(JSONCoding.encode(ClientRequest(id: nextID, operation: operation)))
            channel.writeAndFlush(buffer).whenFailure { promise.fail($0) }
            return promise.futureResult
        }
    }

    private func connection() -> EventLoopFuture<Channel> {
        if let channel, channel.isActive { return loop.makeSucceededFuture(channel) }
        guard let target = try? HostPort(parsing: endpoints[current]) else {
            return loop.makeFailedFuture(ChannelError.connectTimeout(.zero))
        }
        return ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try PeerTransport.addFraming(to: channel, counters: FrameDropCounters())
                    try channel.pipeline.syncOperations.addHandler(Responses(client: self))
                }
            }
            .connect(host: target.host, port: Int(target.port))
            .map { [self] channel in
                self.channel = channel
                channel.closeFuture.whenComplete { [self] _ in
                    // Whatever was in flight on this connection has no answer coming.
                    for (_, promise) in waiting { promise.fail(ChannelError.ioOnClosedChannel) }
                    waiting = [:]
                    if self.channel === channel { self.channel = nil }
                }
                return channel
            }
    }

    fileprivate func received(_ buffer: ByteBuffer) {
        var buffer = buffer
        guard buffer.readInteger(as: UInt8.self) == FrameChannel.response.rawValue,
            let response = JSONCoding.decode(ClientResponse.self, from: buffer.readableBytesView),
            let promise = waiting.removeValue(forKey: response.id)
        else { return }
        promise.succeed(response)
    }

    /// Closes the connection.
    public func close() {
        try? loop.submit { [self] in dropConnection() }.wait()
    }

    private final class Responses: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let client: RaftClient
        init(client: RaftClient) { self.client = client }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { client.received(unwrapInboundIn(data)) }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}
