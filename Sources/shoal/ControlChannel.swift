import Foundation
import NIOCore
import NIOExtras
import NIOPosix

/// The daemon's control socket: newline-delimited JSON over a Unix socket, one request and one
/// response per line. The CLI's `overlay stats`, `overlay apply` and `capture` speak it.
enum ControlChannel {
    /// A request from the CLI.
    struct Request: Codable, Sendable {
        enum Command: String, Codable, Sendable { case statistics, metrics, topology, apply, capture }
        var command: Command
        /// `apply`: the configuration file to (re)load.
        var configPath: String?
        /// `capture`: network, destination pcap path, limits.
        var network: String?
        var pcapPath: String?
        var count: Int?
        var seconds: Double?
    }

    /// The daemon's answer: `ok` with a payload, or an error message for the user.
    struct Response: ControlAnswer {
        var ok: Bool
        var error: String?
        var text: String?
        var json: String?
        var count: Int?

        static func failure(_ message: String) -> Response { Response(ok: false, error: message) }
    }

    /// Serves `handle` on `path` until the returned channel is closed. `handle` runs off the
    /// event loop (it may block, as a capture does).
    static func serve(
        at path: String, group: EventLoopGroup, handle: @escaping @Sendable (Request) -> Response
    ) throws -> Channel {
        try serveLines(at: path, group: group, handle: handle)
    }

    /// Sends one request to the daemon at `path` and waits (at most `timeout` seconds) for the answer.
    static func send(_ request: Request, to path: String, timeout: Double) throws -> Response {
        try exchange(request, to: path, timeout: timeout)
    }

    /// Serves any JSON-line protocol on `path`: one `Incoming` per line, one `Outgoing` answer.
    static func serveLines<Incoming: Decodable & Sendable, Outgoing: ControlAnswer>(
        at path: String, group: EventLoopGroup, handle: @escaping @Sendable (Incoming) -> Outgoing
    ) throws -> Channel {
        unlink(path)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        return try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .childChannelInitializer { channel in lines(channel, RequestHandler(handle: handle)) }
            .bind(unixDomainSocketPath: path)
            .wait()
    }

    /// Sends one line of any JSON-line protocol to `path` and waits for the answer.
    static func exchange<Outgoing: Encodable, Incoming: Decodable & Sendable>(
        _ request: Outgoing, to path: String, timeout: Double
    ) throws -> Incoming {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let answer = group.next().makePromise(of: Incoming.self)
        let channel: Channel
        do {
            channel = try ClientBootstrap(group: group)
                .channelInitializer { channel in lines(channel, ResponseHandler(promise: answer)) }
                .connect(unixDomainSocketPath: path)
                .wait()
        } catch {
            answer.fail(error)  // a promise must be completed before it is dropped
            throw ControlError.unreachable(path, "\(error)")
        }
        var line = try JSONEncoder().encode(request)
        line.append(0x0A)
        try channel.writeAndFlush(ByteBuffer(bytes: line)).wait()
        let timer = group.next().scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            answer.fail(ControlError.timedOut(path))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try answer.futureResult.wait()
    }

    /// Frames `channel` into lines and hands each to `handler`.
    private static func lines(_ channel: Channel, _ handler: some ChannelInboundHandler & Sendable) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    private final class RequestHandler<Incoming: Decodable & Sendable, Outgoing: ControlAnswer>: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let handle: @Sendable (Incoming) -> Outgoing

        init(handle: @escaping @Sendable (Incoming) -> Outgoing) { self.handle = handle }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Data(unwrapInboundIn(data).readableBytesView)
            let channel = context.channel
            let handle = self.handle
            DispatchQueue.global().async {
                let response: Outgoing
                do {
                    response = handle(try JSONDecoder().decode(Incoming.self, from: bytes))
                } catch {
                    response = .failure("malformed request: \(error)")
                }
                var line = (try? JSONEncoder().encode(response)) ?? Data("{\"ok\":false}".utf8)
                line.append(0x0A)
                channel.writeAndFlush(ByteBuffer(bytes: line), promise: nil)
            }
        }
    }

    private final class ResponseHandler<Incoming: Decodable & Sendable>: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Incoming>

        init(promise: EventLoopPromise<Incoming>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            do {
                promise.succeed(try JSONDecoder().decode(Incoming.self, from: Data(unwrapInboundIn(data).readableBytesView)))
            } catch {
                promise.fail(error)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ControlError.closed)
        }
    }
}

/// An answer type of a JSON-line control protocol: it can carry a refusal.
protocol ControlAnswer: Codable, Sendable {
    /// An answer that reports `message` as the error.
    static func failure(_ message: String) -> Self
}

/// Why the CLI could not talk to a daemon.
enum ControlError: Error, CustomStringConvertible {
    case unreachable(String, String)
    case timedOut(String)
    case closed
    case refused(String)

    var description: String {
        switch self {
        case .unreachable(let path, let why): "cannot reach the daemon at \(path) (\(why)); is the daemon running?"
        case .timedOut(let path): "the daemon at \(path) did not answer in time"
        case .closed: "the daemon closed the connection without answering"
        case .refused(let message): message
        }
    }
}
