import Foundation
import NIOCore
import NIOPosix

/// Relays queries for names outside the cluster to the node's own resolvers: over UDP from one
/// socket, a fresh random ID per attempt, a timeout per attempt, then the next upstream. The
/// upstream's answer goes back unchanged except for the client's ID.
///
/// All state lives on one event loop; ``forward(_:)`` may be called from any thread.
public final class DNSForwarder: @unchecked Sendable {
    public let upstreams: [SocketAddress]
    public let attemptTimeout: TimeAmount
    private let channel: Channel
    private var pending: [UInt16: Attempt] = [:]  // event loop only

    private struct Attempt {
        let query: [UInt8]
        let clientID: UInt16
        let upstream: Int
        let promise: EventLoopPromise<[UInt8]>
        let timeout: Scheduled<Void>
    }

    /// Opens the forwarding socket (in the caller's network namespace, the node's).
    public init(upstreams: [SocketAddress], group: EventLoopGroup, attemptTimeout: TimeAmount = .seconds(2)) throws {
        self.upstreams = upstreams
        self.attemptTimeout = attemptTimeout
        let handler = ReplyHandler()
        channel = try DatagramBootstrap(group: group)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
            .bind(host: "0.0.0.0", port: 0)
            .wait()
        handler.forwarder = self
    }

    /// Closes the socket; pending queries fail.
    public func close() {
        try? channel.close().wait()
    }

    /// The upstream's answer to `query` (bytes as the client sent them), with the client's ID.
    public func forward(_ query: [UInt8]) -> EventLoopFuture<[UInt8]> {
        let promise = channel.eventLoop.makePromise(of: [UInt8].self)
        guard query.count >= 12, !upstreams.isEmpty else {
            promise.fail(DNSForwardError.noUpstream)
            return promise.futureResult
        }
        let clientID = UInt16(query[0]) << 8 | UInt16(query[1])
        channel.eventLoop.execute { self.send(query, clientID: clientID, upstream: 0, promise: promise) }
        return promise.futureResult
    }

    private func send(_ query: [UInt8], clientID: UInt16, upstream: Int, promise: EventLoopPromise<[UInt8]>) {
        guard upstream < upstreams.count else {
            promise.fail(DNSForwardError.noAnswer)
            return
        }
        var draw = UInt16.random(in: 0...UInt16.max)
        // Bounded: at most 64 draws; a collision with every one of them is practically impossible.
        for _ in 0..<64 where pending[draw] != nil { draw = UInt16.random(in: 0...UInt16.max) }
        let id = draw
        var bytes = query
        bytes[0] = UInt8(id >> 8)
        bytes[1] = UInt8(truncatingIfNeeded: id)
        let timeout = channel.eventLoop.scheduleTask(in: attemptTimeout) { [self] in
            guard let attempt = pending.removeValue(forKey: id) else { return }
            send(attempt.query, clientID: attempt.clientID, upstream: attempt.upstream + 1, promise: attempt.promise)
        }
        pending[id] = Attempt(query: query, clientID: clientID, upstream: upstream, promise: promise, timeout: timeout)
        let envelope = AddressedEnvelope(remoteAddress: upstreams[upstream], data: channel.allocator.buffer(bytes: bytes))
        channel.writeAndFlush(envelope, promise: nil)
    }

    fileprivate func received(_ envelope: AddressedEnvelope<ByteBuffer>) {
        var bytes = Array(envelope.data.readableBytesView)
        guard bytes.count >= 12 else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        // Only the upstream asked may answer, with the ID it was given.
        guard let attempt = pending[id], upstreams[attempt.upstream] == envelope.remoteAddress else { return }
        pending[id] = nil
        attempt.timeout.cancel()
        bytes[0] = UInt8(attempt.clientID >> 8)
        bytes[1] = UInt8(truncatingIfNeeded: attempt.clientID)
        attempt.promise.succeed(bytes)
    }

    private final class ReplyHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        weak var forwarder: DNSForwarder?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            forwarder?.received(unwrapInboundIn(data))
        }
    }

    /// The IPv4 nameservers of a resolv.conf file (port 53), in order.
    public static func upstreams(fromResolvConf path: String = "/etc/resolv.conf") -> [SocketAddress] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { return nil }
            return try? SocketAddress(ipAddress: String(fields[1]), port: 53)
        }
    }
}

/// Why a query could not be relayed.
public enum DNSForwardError: Error, Sendable {
    case noUpstream
    case noAnswer
}
