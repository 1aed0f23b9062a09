// A Raft member as a process, for any replicated state machine: the shared driver over the
// write-ahead log, a transport on 2377 (TCP frames, or the managers' gRPC), ticking, and one event loop that owns it all.
// `shoal raft serve` runs it over the key-value store (RaftServer.swift adds its client
// protocol); the managers run it over the cluster store. Each turn of the loop feeds the core
// whatever arrived, then handles the Readies: one fdatasync covers every proposal and message
// that came in meanwhile (batching falls out of the loop), then waiting callers are answered.

import EngineKit
import Logging
import NIOCore
import NIOPosix
import Raft

/// How a member runs.
public struct RaftMemberConfiguration: Sendable {
    /// This member's ID.
    public var id: NodeID
    /// Where to listen ("host:port"); port 2377 by convention.
    public var listen: String
    /// Founding members and their addresses; the group is bootstrapped from these unless
    /// `join` is set. Members added later are learned from the membership change that adds
    /// them, which carries their address.
    public var peers: [NodeID: String]
    /// Where the WAL and snapshots live.
    public var dataDirectory: String
    /// Join an existing group (start empty, wait for the leader) instead of bootstrapping.
    public var join = false
    /// The core's clock: one tick per interval. 50 ms with 6 election ticks gives a 300–600 ms
    /// election timeout, for sub-second failover.
    public var tickInterval: TimeAmount = .milliseconds(50)
    public var electionTicks = 6
    /// Applied entries between snapshots of the state machine.
    public var snapshotInterval: LogIndex = 10_000
    /// How messages travel: nil for ``PeerTransport`` (TCP frames on `listen`, with the
    /// key-value client protocol beside them), or a factory for another carrier (the
    /// managers' gRPC on 2377), in which case `listen` is only this member's own address.
    public var transport: RaftTransportFactory?

    /// A configuration with defaults.
    public init(id: NodeID, listen: String, peers: [NodeID: String], dataDirectory: String) {
        self.id = id
        self.listen = listen
        self.peers = peers
        self.dataDirectory = dataDirectory
    }
}

/// Why a proposal or read through a ``RaftMember`` did not complete.
public enum RaftMemberError: Error, Sendable, CustomStringConvertible {
    /// The core refused it (not the leader — with the leader's ID and address when known —,
    /// a change already pending, a transfer in progress).
    case refused(RaftError, leaderAddress: String?)
    /// Another leader's entry took the proposal's index: it did not happen; retry.
    case superseded
    /// A snapshot from the leader covered the proposal's index: it may or may not have
    /// happened; read before retrying.
    case outcomeUnknown
    /// Leadership was lost before the read was confirmed; ask again (here or at the leader).
    case readAborted
    /// The member is stopping.
    case stopped

    public var description: String {
        switch self {
        case .refused(let error, _): error.description
        case .superseded: "lost to another leader's entry; retry"
        case .outcomeUnknown: "outcome unknown (a snapshot covered it); read before retrying"
        case .readAborted: "leadership changed before the read was confirmed; retry"
        case .stopped: "the member is stopping"
        }
    }
}

/// One Raft member over the write-ahead log and TCP, replicating `Machine`.
///
/// Thread-safe: every entry point hops to the member's event loop; results come back as
/// futures completed on that loop.
public final class RaftMember<Machine: ReplicatedStateMachine>: @unchecked Sendable {
    // @unchecked: every mutable field is touched only on `loop` (each entry point hops there).

    /// What a waiting caller gets back.
    public struct Committed: Sendable {
        /// The machine's output for the entry.
        public var output: Machine.Output
        /// The entry's log index.
        public var index: LogIndex
    }

    /// A caller waiting on this member.
    enum Waiter {
        case proposal(EventLoopPromise<Committed>)
        case read(EventLoopPromise<Void>)
    }

    private typealias Driver = RaftDriver<Machine, WriteAheadLog, Waiter>

    public let configuration: RaftMemberConfiguration
    /// The loop that owns the member.
    public let loop: EventLoop
    let logger: Logger
    /// The TCP transport when the member runs its own (no ``RaftMemberConfiguration/transport``).
    let peerTransport: PeerTransport?
    private var transport: (any RaftMessageTransport)!
    private var driver: Driver
    private var readyScheduled = false
    private var ticker: RepeatedTask?
    private var stopped = false
    /// Snapshot chunks received from leaders.
    private(set) var snapshotChunksReceived = 0
    /// The driver's member directory as of its last Ready: the transport reads it while the
    /// driver is busy sending (reading the driver itself then would overlap its own access).
    private var memberAddresses: [NodeID: String] = [:]
    /// The port actually bound.
    public private(set) var port = 0
    /// Called on the loop with the machine after every Ready that applied entries or restored
    /// a snapshot (watches follow the machine through it). Set it on the loop.
    public var onApply: ((Machine) -> Void)?

    /// Opens the data directory (recovering or bootstrapping) and starts serving on `loop`.
    public init(configuration: RaftMemberConfiguration, loop: EventLoop, label: String = "shoal.raft") throws {
        self.configuration = configuration
        self.loop = loop
        var logger = Logger(label: label)
        logger[metadataKey: "member"] = "\(configuration.id)"
        self.logger = logger
        let wal = try WriteAheadLog(directory: configuration.dataDirectory)
        if wal.log.lastIndex == 0 && wal.log.hardState == HardState() && !configuration.join {
            let bootstrap = Driver.bootstrap(founders: configuration.peers)
            try wal.append(bootstrap.entries.map(PersistentLog.Record.entry) + [.hardState(bootstrap.hardState)], snapshotData: nil)
        }
        if wal.recovery.discardedTailBytes > 0 {
            logger.warning("cut a torn WAL tail", metadata: ["bytes": "\(wal.recovery.discardedTailBytes)"])
        }
        var raftConfiguration = RaftConfiguration(id: configuration.id, randomSeed: UInt64.random(in: 1...UInt64.max))
        raftConfiguration.electionTicks = configuration.electionTicks
        driver = try Driver(configuration: raftConfiguration, storage: wal, snapshotInterval: configuration.snapshotInterval)
        memberAddresses = driver.memberAddresses
        if let factory = configuration.transport {
            peerTransport = nil
            let hooks = RaftTransportHooks(
                loop: loop, logger: logger, addressOf: { [weak self] id in self?.address(of: id) },
                deliver: { [weak self] message in self?.receive(message) })
            transport = try factory(hooks)
        } else {
            let tcp = PeerTransport(loop: loop, logger: logger)
            peerTransport = tcp
            transport = tcp
            try loop.submit { [self] in
                tcp.addressOf = { [weak self] id in self?.address(of: id) }
                tcp.onMessage = { [weak self] message in self?.step(message) }
            }.wait()
            let listen = try HostPort(parsing: configuration.listen, allowZero: true)
            port = try tcp.listen(host: listen.host, port: Int(listen.port))
        }
        try loop.submit { [self] in
            ticker = loop.scheduleRepeatedTask(initialDelay: configuration.tickInterval, delay: configuration.tickInterval) {
                [weak self] _ in
                guard let self, !self.stopped else { return }
                self.driver.tick()
                self.scheduleReady()
            }
            scheduleReady()
        }.wait()
        logger.info("raft member serving", metadata: ["listen": "\(configuration.listen)", "lastIndex": "\(wal.log.lastIndex)"])
    }

    /// Stops ticking, fails every waiting caller with ``RaftMemberError/stopped``, closes the sockets.
    public func stop() {
        try? loop.submit { [self] in
            ticker?.cancel()
            stopped = true
            for waiter in driver.abandonAll() { fail(waiter, .stopped) }
        }.wait()
        transport.close()
    }

    /// Hands `message`, from another member, to the core (from any thread).
    public func receive(_ message: Message) {
        loop.execute { [self] in step(message) }
    }

    private func step(_ message: Message) {
        loop.preconditionInEventLoop()
        guard !stopped else { return }
        if message.kind == .snapshot { snapshotChunksReceived += 1 }
        driver.step(message)
        scheduleReady()
    }

    /// A member's address: learned from the membership change that added it, or, for a
    /// founder this member has not yet seen in the log (it joined empty), from the flags.
    func address(of id: NodeID) -> String? {
        memberAddresses[id] ?? configuration.peers[id]
    }

    // MARK: - Asking

    /// Proposes `data`; completes once its entry is applied here, with the machine's output.
    public func propose(_ data: [UInt8]) -> EventLoopFuture<Committed> {
        onLoop { [self] promise in
            do throws(RaftError) { try driver.propose(data, token: .proposal(promise)) } catch { promise.fail(refusal(error)) }
        }
    }

    /// Proposes several entries in one turn of the loop (one fsync); completes with the last.
    /// Only the last entry is tracked: a superseded last entry says nothing of the others.
    public func propose(batch: [[UInt8]]) -> EventLoopFuture<Committed> {
        guard !batch.isEmpty else { return loop.makeFailedFuture(RaftMemberError.refused(.unavailable(0), leaderAddress: nil)) }
        return onLoop { [self] promise in
            do throws(RaftError) {
                for (position, data) in batch.enumerated() {
                    try driver.propose(data, token: position == batch.count - 1 ? .proposal(promise) : nil)
                }
            } catch {
                promise.fail(refusal(error))
            }
        }
    }

    /// Proposes a membership change (with the member's address as context when adding).
    public func proposeMembershipChange(_ change: MembershipChange) -> EventLoopFuture<Committed> {
        onLoop { [self] promise in
            do throws(RaftError) { try driver.proposeMembershipChange(change, token: .proposal(promise)) } catch {
                promise.fail(refusal(error))
            }
        }
    }

    /// Runs `body` on the machine once a linearizable read is confirmed (ReadIndex): whatever
    /// it sees includes every write acknowledged before the read began.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Machine) -> T) -> EventLoopFuture<T> {
        let confirmed: EventLoopFuture<Void> = onLoop { [self] promise in
            do throws(RaftError) { try driver.read(token: .read(promise)) } catch { promise.fail(refusal(error)) }
        }
        return confirmed.map { [unowned self] in body(driver.machine) }
    }

    /// Runs `body` on the machine as this member has applied it, without confirming leadership
    /// (a follower may be behind): for status and for serving watches from history.
    public func local<T: Sendable>(_ body: @escaping @Sendable (Machine, RaftStatus) -> T) -> EventLoopFuture<T> {
        loop.submit { [self] in body(driver.machine, driver.core.status) }
    }

    /// Hands leadership to `target`.
    public func transferLeadership(to target: NodeID) -> EventLoopFuture<Void> {
        loop.submit { [self] in
            do throws(RaftError) { try driver.transferLeadership(to: target) } catch { throw refusal(error) }
            scheduleReady()
        }
    }

    /// The member's state, its transport's and its driver's counters.
    public func status() -> EventLoopFuture<RaftMemberStatus> {
        loop.submit { [self] in
            let status = driver.core.status
            return RaftMemberStatus(
                id: status.id, role: status.role.rawValue, term: status.term, leader: status.leader, commit: status.commit,
                applied: status.applied, lastIndex: status.lastIndex, snapshotIndex: status.snapshotIndex,
                voters: status.membership.voters, learners: status.membership.learners,
                matched: Dictionary(uniqueKeysWithValues: status.matched.map { ("\($0.key)", $0.value) }),
                rejectedFrames: peerTransport?.rejectedFrames ?? 0, snapshotChunksReceived: snapshotChunksReceived,
                snapshotsInstalled: driver.snapshotsInstalled)
        }
    }

    /// The leader's ID and address as this member knows them (0 and nil when none is known).
    public func leader() -> EventLoopFuture<(id: NodeID, address: String?)> {
        loop.submit { [self] in
            let leader = driver.core.status.leader
            return (leader, leader == 0 ? nil : address(of: leader))
        }
    }

    /// The member's status and the address of every member it knows (the directory carried by
    /// membership changes, and the founders' flags).
    public func directory() -> EventLoopFuture<(status: RaftStatus, addresses: [NodeID: String])> {
        loop.submit { [self] in
            let status = driver.core.status
            var addresses: [NodeID: String] = [:]
            for member in status.membership.all { addresses[member] = address(of: member) }
            addresses[configuration.id] = configuration.listen
            return (status, addresses)
        }
    }

    /// Runs `start` on the loop with a fresh promise, then handles the Readies it caused.
    private func onLoop<T>(_ start: @escaping (EventLoopPromise<T>) -> Void) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        // `start` touches the driver, so it runs on the loop only: handed over here, called
        // there, never shared.
        nonisolated(unsafe) let onTheLoop = start
        loop.execute { [self] in
            loop.preconditionInEventLoop()
            guard !stopped else { return promise.fail(RaftMemberError.stopped) }
            onTheLoop(promise)
            scheduleReady()
        }
        return promise.futureResult
    }

    private func refusal(_ error: RaftError) -> RaftMemberError {
        if case .notLeader(let leader) = error { return .refused(error, leaderAddress: leader == 0 ? nil : address(of: leader)) }
        return .refused(error, leaderAddress: nil)
    }

    // MARK: - The loop

    private func scheduleReady() {
        guard !readyScheduled else { return }
        readyScheduled = true
        // Runs after everything already queued on the loop (frames read in this turn), so a
        // Ready collects all of them and one fsync covers the lot.
        loop.execute { [self] in
            readyScheduled = false
            guard !stopped else { return }
            processReady()
        }
    }

    private func processReady() {
        while driver.hasReady {
            let events: [Driver.Event]
            do throws(RaftDriverFailure) {
                events = try driver.handleReady { [transport] messages in transport!.send(messages) }
            } catch {
                // What the core was about to promise is not durable, or the state is damaged:
                // stop rather than lie. The member restarts from its last durable state.
                logger.critical("cannot go on, stopping", metadata: ["error": "\(error)"])
                fatalError("raft member \(configuration.id): \(error)")
            }
            memberAddresses = driver.memberAddresses
            for event in events { handle(event) }
            if let onApply, events.contains(where: { if case .applied = $0 { true } else if case .restored = $0 { true } else { false } }) {
                onApply(driver.machine)
            }
        }
    }

    private func handle(_ event: Driver.Event) {
        switch event {
        case .committed(.proposal(let promise), let output, let index):
            promise.succeed(Committed(output: output, index: index))
        case .committed(let waiter, _, _):
            fail(waiter, .superseded)  // A read's token never names a proposal.
        case .superseded(let waiter):
            fail(waiter, .superseded)
        case .outcomeUnknown(let waiter):
            fail(waiter, .outcomeUnknown)
        case .readable(.read(let promise)):
            promise.succeed(())
        case .readable(let waiter), .readAborted(let waiter):
            fail(waiter, .readAborted)
        case .applied, .restored, .roleChanged:
            break
        }
    }

    private func fail(_ waiter: Waiter, _ error: RaftMemberError) {
        switch waiter {
        case .proposal(let promise): promise.fail(error)
        case .read(let promise): promise.fail(error)
        }
    }
}
