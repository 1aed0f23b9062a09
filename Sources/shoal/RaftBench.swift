import ArgumentParser
import EngineKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RaftHost

/// `shoal raft bench`: closed-loop put load from N clients against Shoal's Raft or, with
/// `--etcd`, against etcd's v3 JSON gateway (the path ANCHORS.md measured); prints puts/s and
/// the latency distribution of acknowledged puts. Each client keeps one put in flight.
struct RaftBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure committed puts/s and latency with N concurrent clients.")

    @OptionGroup var group: RaftEndpoints
    @Option(help: "Concurrent clients, each with one put in flight.") var clients = 1
    @Option(help: "Seconds of load.") var seconds: Double = 15
    @Option(help: "Value size in bytes (keys are 16 bytes).") var valueBytes = 64
    @Flag(help: "Drive etcd's HTTP/JSON gateway (POST /v3/kv/put) at the endpoints instead.") var etcd = false
    @Flag(help: "Print one JSON line instead of text.") var json = false

    func run() throws {
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? eventLoops.syncShutdownGracefully() }
        let value = String(repeating: "v", count: valueBytes)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
        let results = NIOLockedValueBox<(latencies: [Int64], errors: Int)>(([], 0))
        var loops: [EventLoopFuture<Void>] = []
        for client in 0..<clients {
            let loop = eventLoops.next()
            let endpoint = group.list[client % group.list.count]
            let put: (String) -> EventLoopFuture<Bool>
            if etcd {
                let http = EtcdGatewayClient(endpoint: endpoint, loop: loop)
                put = { key in http.put(key: key, value: value) }
            } else {
                let raft = RaftClient(endpoints: group.list, loop: loop)
                put = { key in raft.request(.put(key: key, value: value)).map(\.ok) }
            }
            let driver = ClosedLoop(client: client, loop: loop, deadline: deadline, put: put, results: results)
            loops.append(loop.flatSubmit { driver.next() })
        }
        let started = Date()
        for future in loops { try future.wait() }
        let elapsed = Date().timeIntervalSince(started)
        let (latencies, errors) = results.withLockedValue { ($0.latencies.sorted(), $0.errors) }
        guard !latencies.isEmpty else { throw ValidationError("no put was acknowledged (\(errors) errors)") }
        func percentile(_ p: Double) -> Double {
            Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
        }
        let rate = Double(latencies.count) / elapsed
        if json {
            print(#"{"target":"\#(etcd ? "etcd" : "shoal")","clients":\#(clients),"puts":\#(latencies.count),"errors":\#(errors),"#
                + #""puts_per_second":\#(String(format: "%.0f", rate)),"p50_ms":\#(String(format: "%.2f", percentile(0.5))),"#
                + #""p99_ms":\#(String(format: "%.2f", percentile(0.99)))}"#)
        } else {
            print(String(format: "%@ %d clients: %.0f puts/s, p50 %.2f ms, p99 %.2f ms (%d puts, %d errors)",
                etcd ? "etcd" : "shoal", clients, rate, percentile(0.5), percentile(0.99), latencies.count, errors))
        }
    }
}

/// One closed-loop client: the next put leaves when the previous one is answered. Confined to
/// its event loop (hence `@unchecked Sendable`).
private final class ClosedLoop: @unchecked Sendable {
    let client: Int
    let loop: EventLoop
    let deadline: NIODeadline
    let put: (String) -> EventLoopFuture<Bool>
    let results: NIOLockedValueBox<(latencies: [Int64], errors: Int)>
    var sequence = 0

    init(client: Int, loop: EventLoop, deadline: NIODeadline, put: @escaping (String) -> EventLoopFuture<Bool>,
         results: NIOLockedValueBox<(latencies: [Int64], errors: Int)>) {
        self.client = client
        self.loop = loop
        self.deadline = deadline
        self.put = put
        self.results = results
    }

    func next() -> EventLoopFuture<Void> {
        guard NIODeadline.now() < deadline else { return loop.makeSucceededVoidFuture() }
        sequence += 1
        let key = String(format: "bench%03d-%07d", client % 1000, sequence % 10_000_000)
        let started = NIODeadline.now()
        return put(key).flatMapError { [loop] _ in loop.makeSucceededFuture(false) }.flatMap { ok in
            let elapsed = (NIODeadline.now() - started).nanoseconds
            self.results.withLockedValue { ok ? $0.latencies.append(elapsed) : ($0.errors += 1) }
            return self.next()
        }
    }
}

/// A keep-alive HTTP/1.1 client of etcd's v3 JSON gateway, one request at a time.
private final class EtcdGatewayClient: @unchecked Sendable {
    private let endpoint: String
    private let loop: EventLoop
    private var channel: Channel?
    private var pending: EventLoopPromise<Bool>?

    init(endpoint: String, loop: EventLoop) {
        self.endpoint = endpoint
        self.loop = loop
    }

    func put(key: String, value: String) -> EventLoopFuture<Bool> {
        let body = #"{"key":"\#(Data(key.utf8).base64EncodedString())","value":"\#(Data(value.utf8).base64EncodedString())"}"#
        return connection().flatMap { [self] channel in
            let promise = loop.makePromise(of: Bool.self)
            pending = promise
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v3/kv/put")
            head.headers.add(name: "Host", value: endpoint)
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(string: body))), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { promise.fail($0) }
            return promise.futureResult
        }
    }

    private func connection() -> EventLoopFuture<Channel> {
        if let channel, channel.isActive { return loop.makeSucceededFuture(channel) }
        guard let target = try? HostPort(parsing: endpoint) else { return loop.makeFailedFuture(ChannelError.badInterfaceAddressFamily) }
        return ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Responses(client: self))
                }
            }
            .connect(host: target.host, port: Int(target.port))
            .map { [self] channel in
                self.channel = channel
                return channel
            }
    }

    fileprivate func finished(ok: Bool) {
        // Cleared before succeeding: the callback sends the next request, which sets a new one.
        let promise = pending
        pending = nil
        promise?.succeed(ok)
    }

    private final class Responses: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let client: EtcdGatewayClient
        var ok = false
        init(client: EtcdGatewayClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): ok = head.status == .ok
            case .body: break
            case .end: client.finished(ok: ok)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            client.finished(ok: false)
            context.close(promise: nil)
        }
    }
}
