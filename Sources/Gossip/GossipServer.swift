// A gossip member as a process: the engine on one SwiftNIO event loop, UDP and TCP on the same
// port (7946), envelopes sealed with the keyring and checked against replays. Everything the
// engine touches happens on that loop; other threads reach it through `run`. With a state
// directory the server keeps the member's own networks and entries across restarts: it writes
// them after each change (off the loop: an fsync must not stall probes) and restores them when
// it starts.

import Foundation
import Framing
import Logging
import NIOCore
import NIOPosix

/// Counters of what the server refused before the engine saw it.
public struct GossipDrops: Sendable, Equatable, Codable {
    /// Envelopes that did not open: truncated, unknown format, mode mismatch.
    public var malformedEnvelopes = 0
    /// Sealed under a key this member does not hold.
    public var unknownKey = 0
    /// The AES-GCM tag did not verify.
    public var authenticationFailures = 0
    /// Seen before (or older than the replay horizon).
    public var replays = 0
    /// Stream frames over the size limit (the connection is closed).
    public var oversizedFrames = 0
    /// From this member's own name (a reflected or forged packet).
    public var fromSelf = 0
    /// Connections that ended in the middle of a frame.
    public var truncatedFrames = 0

    public init() {}
}

/// One member's gossip over real sockets.
public final class GossipServer: @unchecked Sendable {
    // @unchecked: every mutable field is touched only on `loop` (asserted in `onLoop`).
    /// The event loop everything runs on.
    public let loop: EventLoop
    private let engine: GossipEngine
    private var keyring: GossipKeyring?
    private var replayFilter = ReplayFilter()
    private var counter: UInt64 = 0
    private var drops = GossipDrops()
    private let frameDrops = FrameDropCounters()
    private var udp: Channel?
    private var tcp: Channel?
    private var timer: Scheduled<Void>?
    private var timerDeadline = Int.max
    private var eventLog: [(sequence: Int, event: GossipEvent)] = []
    private var eventSequence = 0
    private let logger: Logger
    private let group: EventLoopGroup
    private let stateFile: GossipStateFile?
    private var persistedVersion = 0
    /// Writes of the state file, in order, one at a time; only the newest pending one is written.
    private let persistQueue = DispatchQueue(label: "shoal.gossip.state")
    private let pendingState = PendingState()
    /// Largest stream frame accepted (a full state of thousands of members fits easily).
    public static let maximumFrameBytes = 16 << 20
    /// Events kept for `events(after:)`.
    public static let eventLogLimit = 100_000

    /// A server for `configuration` on `group`; `keyring` nil sends and accepts plaintext.
    /// With `stateDirectory`, the member's own networks and entries are kept there across
    /// restarts (see ``GossipStateFile``).
    public init(
        configuration: GossipConfiguration, keyring: GossipKeyring?, group: EventLoopGroup, logger: Logger,
        stateDirectory: String? = nil
    ) {
        self.group = group
        loop = group.next()
        engine = GossipEngine(configuration: configuration)
        self.keyring = keyring
        self.logger = logger
        stateFile = stateDirectory.map(GossipStateFile.init(directory:))
    }

    /// Binds UDP and TCP on `bindHost` at the configured port and starts the engine, then
    /// restores the state a previous life persisted, after `restoring` has chosen what of it
    /// still holds (everything by default). Throws when the state file cannot be read.
    public func start(
        bindHost: String, restoring: @escaping @Sendable (GossipPersistentState) -> GossipPersistentState = { $0 }
    ) throws {
        let persisted = try stateFile?.load()
        let port = Int(engine.configuration.address.port)
        udp = try DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramHandler(server: self))
                }
            }
            .bind(host: bindHost, port: port).wait()
        tcp = try ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try LengthPrefixedFraming.add(
                        to: channel.pipeline.syncOperations, limit: Self.maximumFrameBytes, counters: self.frameDrops)
                    try channel.pipeline.syncOperations.addHandler(StreamHandler(server: self))
                }
            }
            .bind(host: bindHost, port: port).wait()
        try loop.submit {
            let now = Self.monotonicNow()
            self.engine.start(now: now)
            if let persisted { try restoring(persisted).restore(into: self.engine, now: now) }
            self.flush()
        }.wait()
    }

    /// Waits until every state change made so far is on disk (a no-op without a state directory).
    public func flushState() -> EventLoopFuture<Void> {
        loop.submit { self.persistIfChanged() }.flatMap { _ in
            let promise = self.loop.makePromise(of: Void.self)
            self.persistQueue.async { promise.succeed(()) }
            return promise.futureResult
        }
    }

    /// Runs `body` with the engine on the loop and sends what it produced.
    public func run<T: Sendable>(_ body: @escaping @Sendable (GossipEngine, Int) throws -> T) -> EventLoopFuture<T> {
        loop.submit {
            defer { self.flush() }
            return try body(self.engine, Self.monotonicNow())
        }
    }

    /// Changes the keyring on the loop.
    public func updateKeyring(_ change: @escaping @Sendable (inout GossipKeyring) throws -> Void) -> EventLoopFuture<[UInt32]> {
        loop.submit {
            guard var ring = self.keyring else { throw KeyringError.invalidKey("this member runs without encryption") }
            try change(&ring)
            self.keyring = ring
            return ring.keyIDs
        }
    }

    /// Drop counters.
    public func dropCounters() -> EventLoopFuture<GossipDrops> {
        loop.submit {
            var drops = self.drops
            drops.oversizedFrames = self.frameDrops.oversized
            drops.truncatedFrames = self.frameDrops.truncated
            return drops
        }
    }

    /// Events with a sequence number above `sequence`, oldest first (an ordered change stream
    /// for pollers; the log keeps the last `eventLogLimit`).
    public func events(after sequence: Int) -> EventLoopFuture<[(sequence: Int, event: GossipEvent)]> {
        loop.submit { self.eventLog.filter { $0.sequence > sequence } }
    }

    /// Announces a leave, lets it spread for `linger`, then closes the sockets.
    public func leave(linger: TimeAmount = .seconds(1)) -> EventLoopFuture<Void> {
        run { engine, now in engine.leave(now: now) }.flatMap { _ in
            self.loop.scheduleTask(in: linger) {}.futureResult
        }.flatMap { self.close() }
    }

    /// Writes what state is pending, then closes the sockets.
    public func close() -> EventLoopFuture<Void> {
        flushState().flatMap {
            self.loop.flatSubmit {
                self.timer?.cancel()
                let closes = [self.udp, self.tcp].compactMap { $0?.close() }
                return EventLoopFuture.andAllComplete(closes, on: self.loop)
            }
        }
    }

    static func monotonicNow() -> Int { Int(NIODeadline.now().uptimeNanoseconds) }

    static func wallMicroseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1_000_000) }

    // MARK: - On the loop

    fileprivate func received(_ bytes: [UInt8], from source: SocketAddress?, overStream: Bool) {
        loop.preconditionInEventLoop()
        let opened: OpenedEnvelope
        do {
            opened = try GossipEnvelope.open(bytes, keyring: keyring)
        } catch {
            switch error {
            case .unknownKey: drops.unknownKey += 1
            case .authenticationFailed: drops.authenticationFailures += 1
            default: drops.malformedEnvelopes += 1
            }
            return
        }
        guard opened.sender != engine.configuration.name else {
            drops.fromSelf += 1
            return
        }
        guard replayFilter.accept(opened.counter, from: opened.sender) else {
            drops.replays += 1
            return
        }
        var address: GossipAddress? = nil
        if !overStream, let source, case .v4(let v4) = source {
            address = GossipAddress(ipv4: UInt32(bigEndian: v4.address.sin_addr.s_addr), port: UInt16(source.port ?? 0))
        }
        engine.receive(opened.packet, from: opened.sender, address: address, overStream: overStream, now: Self.monotonicNow())
        flush()
    }

    private func nextCounter() -> UInt64 {
        counter = max(counter + 1, Self.wallMicroseconds())
        return counter
    }

    /// Sends the engine's packets, records its events, and re-arms the timer.
    private func flush() {
        loop.preconditionInEventLoop()
        let output = engine.takeOutput()
        for packet in output.packets {
            let sealed = GossipEnvelope.seal(packet.bytes, sender: engine.configuration.name, counter: nextCounter(), keyring: keyring)
            let destination = try? SocketAddress(ipAddress: packet.destination.host, port: Int(packet.destination.port))
            guard let destination else { continue }
            if packet.overStream {
                sendOverStream(sealed, to: destination)
            } else if let udp {
                let envelope = AddressedEnvelope(remoteAddress: destination, data: ByteBuffer(bytes: sealed))
                udp.writeAndFlush(envelope, promise: nil)
            }
        }
        for event in output.events {
            eventSequence += 1
            eventLog.append((eventSequence, event))
            switch event {
            case .member(let info):
                logger.info("member \(info.name) \(info.status)", metadata: ["address": "\(info.address)", "incarnation": "\(info.incarnation)"])
            case .entry(let change):
                logger.debug("entry \(change.key) \(change.value == nil ? "deleted" : "set") by \(change.owner)")
            }
        }
        if eventLog.count > Self.eventLogLimit { eventLog.removeFirst(eventLog.count - Self.eventLogLimit) }
        persistIfChanged()
        armTimer()
    }

    /// Hands the member's own state to the writer when it changed since the last hand-over.
    private func persistIfChanged() {
        loop.preconditionInEventLoop()
        guard let stateFile, engine.ownStateVersion != persistedVersion else { return }
        persistedVersion = engine.ownStateVersion
        guard pendingState.replace(with: GossipPersistentState(of: engine)) else { return }
        let logger = logger
        persistQueue.async { [pendingState] in
            guard let state = pendingState.take() else { return }
            do {
                try stateFile.save(state)
            } catch {
                logger.error("cannot write the gossip state", metadata: ["path": "\(stateFile.path)", "error": "\(error)"])
            }
        }
    }

    private func armTimer() {
        let deadline = engine.nextDeadline
        guard deadline < timerDeadline || timer == nil else { return }
        timer?.cancel()
        timerDeadline = deadline
        let delay = max(0, deadline - Self.monotonicNow())
        timer = loop.scheduleTask(in: .nanoseconds(Int64(min(delay, 60 * GossipTime.second)))) {
            self.timer = nil
            self.timerDeadline = Int.max
            self.engine.advance(to: Self.monotonicNow())
            self.flush()
        }
    }

    /// One connection per stream message: connect, write one length-prefixed frame, close.
    /// Streams carry state exchanges and probe fallbacks, a few per second at most.
    private func sendOverStream(_ sealed: [UInt8], to destination: SocketAddress) {
        let frame = ByteBuffer(bytes: sealed)
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try LengthPrefixedFraming.add(to: channel.pipeline.syncOperations, limit: Self.maximumFrameBytes, counters: self.frameDrops)
                }
            }
            .connect(to: destination)
            .flatMap { channel in
                channel.writeAndFlush(frame).flatMap { channel.close() }
            }
            .whenFailure { error in
                self.logger.debug("stream to \(destination) failed: \(error)")
            }
    }
}

/// The newest state waiting for the writer: a burst of changes is one write.
private final class PendingState: @unchecked Sendable {
    // @unchecked: `state` is read and written under `lock` only.
    private let lock = NSLock()
    private var state: GossipPersistentState?

    /// Stores `newState`; true when nothing was pending (the caller schedules a write).
    func replace(with newState: GossipPersistentState) -> Bool {
        lock.withLock {
            defer { state = newState }
            return state == nil
        }
    }

    /// The pending state, leaving none.
    func take() -> GossipPersistentState? {
        lock.withLock {
            defer { state = nil }
            return state
        }
    }
}

/// Datagrams to the server.
private final class DatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let server: GossipServer

    init(server: GossipServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        server.received(Array(envelope.data.readableBytesView), from: envelope.remoteAddress, overStream: false)
    }
}

/// Frames from a stream to the server.
private final class StreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let server: GossipServer

    init(server: GossipServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        server.received(Array(unwrapInboundIn(data).readableBytesView), from: nil, overStream: true)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
