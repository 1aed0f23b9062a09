import EngineKit
import Logging
import NIOCore
import NIOPosix
import Raft

/// A Raft member as a process: a ``RaftDriver`` over the write-ahead log and the key-value state
/// machine, and the TCP transport, on one event loop. Each turn of the loop feeds the core
/// whatever arrived, then handles the Readies: one fdatasync covers every proposal and message
/// that came in meanwhile (batching falls out of the loop), then clients are answered.
public final class RaftServer: @unchecked Sendable {
    /// How a member runs.
    public struct Configuration: Sendable {
        /// This member's ID.
        public var id: NodeID
        /// Where to listen ("host:port"); port 2377 by convention.
        public var listen: String
        /// Founding members and their addresses; the group is bootstrapped from these unless
        /// `join` is set. Members added later are learned from the membership change that
        /// adds them, which carries their address.
        public var peers: [NodeID: String]
        /// Where the WAL and snapshots live.
        public var dataDirectory: String
        /// Join an existing group (start empty, wait for the leader) instead of bootstrapping.
        public var join = false
        /// The core's clock: one tick per interval. 50 ms with 6 election ticks gives a
        /// 300–600 ms election timeout, for sub-second failover.
        public var tickInterval: TimeAmount = .milliseconds(50)
        public var electionTicks = 6
        /// Applied entries between snapshots of the state machine.
        public var snapshotInterval: LogIndex = 10_000

        /// A configuration with defaults.
        public init(id: NodeID, listen: String, peers: [NodeID: String], dataDirectory: String) {
            self.id = id
            self.listen = listen
            self.peers = peers
            self.dataDirectory = dataDirectory
        }
    }

    /// A client waiting on this member: how to answer it, and what it asked.
    struct PendingClient {
        var request: UInt64
        var respond: (ClientResponse) -> Void
        /// The key a read asked for; nil for writes.
        var readKey: String?
    }

    public let configuration: Configuration
    private let loop: EventLoop
    private let logger: Logger
    private let transport: PeerTransport
    private var driver: RaftDriver<KeyValueStore, WriteAheadLog, PendingClient>
    private var readyScheduled = false
    private var snapshotChunksReceived = 0
    private var ticker: RepeatedTask?
    /// The driver's member directory as of its last Ready: the transport reads it while the
    /// driver is busy sending (reading the driver itself then would overlap its own access).
    private var memberAddresses: [NodeID: String] = [:]
    /// The port actually bound.
    public private(set) var port = 0

    /// Opens the data directory (recovering or bootstrapping) and starts serving on `loop`.
    public init(configuration: Configuration, loop: EventLoop) throws {
        self.configuration = configuration
        self.loop = loop
        var logger = Logger(label: "shoal.raft")
        logger[metadataKey: "member"] = "\(configuration.id)"
        self.logger = logger
        let wal = try WriteAheadLog(directory: configuration.dataDirectory)
        if wal.log.lastIndex == 0 && wal.log.hardState == HardState() && !configuration.join {
            let bootstrap = RaftDriver<KeyValueStore, WriteAheadLog, PendingClient>.bootstrap(founders: configuration.peers)
            try wal.append(bootstrap.entries.map(PersistentLog.Record.entry) + [.hardState(bootstrap.hardState)], snapshotData: nil)
        }
        if wal.recovery.discardedTailBytes > 0 {
            logger.warning("cut a torn WAL tail", metadata: ["bytes": "\(wal.recovery.discardedTailBytes)"])
        }
        var raftConfiguration = RaftConfiguration(id: configuration.id, randomSeed: UInt64.random(in: 1...UInt64.max))
        raftConfiguration.electionTicks = configuration.electionTicks
        driver = try RaftDriver(configuration: raftConfiguration, storage: wal, snapshotInterval: configuration.snapshotInterval)
        memberAddresses = driver.memberAddresses
        transport = PeerTransport(loop: loop, logger: logger)
        try loop.submit { [self] in
            transport.addressOf = { [unowned self] id in self.address(of: id) }
            transport.onMessage = { [unowned self] message in
                if message.kind == .snapshot { self.snapshotChunksReceived += 1 }
                self.driver.step(message)
                self.scheduleReady()
            }
            transport.onRequest = { [unowned self] request, respond in self.handle(request, respond) }
        }.wait()
        let listen = try HostPort(parsing: configuration.listen, allowZero: true)
        self.port = try transport.listen(host: listen.host, port: Int(listen.port))
        try loop.submit { [self] in
            ticker = loop.scheduleRepeatedTask(initialDelay: configuration.tickInterval, delay: configuration.tickInterval) {
                [unowned self] _ in
                self.driver.tick()
                self.scheduleReady()
            }
            scheduleReady()
        }.wait()
        logger.info("raft member serving", metadata: ["listen": "\(configuration.listen)", "lastIndex": "\(wal.log.lastIndex)"])
    }

    /// Stops ticking and closes the sockets.
    public func stop() {
        try? loop.submit { [self] in ticker?.cancel() }.wait()
        transport.close()
    }

    /// A member's address: learned from the membership change that added it, or, for a
    /// founder this member has not yet seen in the log (it joined empty), from the flags.
    private func address(of id: NodeID) -> String? {
        memberAddresses[id] ?? configuration.peers[id]
    }

    // MARK: - The loop

    private func scheduleReady() {
        guard !readyScheduled else { return }
        readyScheduled = true
        // Runs after everything already queued on the loop (frames read in this turn), so a
        // Ready collects all of them and one fsync covers the lot.
        loop.execute { [self] in
            readyScheduled = false
            processReady()
        }
    }

    private func processReady() {
        while driver.hasReady {
            let events: [RaftDriver<KeyValueStore, WriteAheadLog, PendingClient>.Event]
            do throws(RaftDriverFailure) {
                events = try driver.handleReady { [transport] messages in
                    for message in messages { transport.send(message) }
                    transport.flush()
                }
            } catch {
                // What the core was about to promise is not durable, or the state is damaged:
                // stop rather than lie. The member restarts from its last durable state.
                logger.critical("cannot go on, stopping", metadata: ["error": "\(error)"])
                fatalError("raft member \(configuration.id): \(error)")
            }
            memberAddresses = driver.memberAddresses
            for event in events { handle(event) }
        }
    }

    private func handle(_ event: RaftDriver<KeyValueStore, WriteAheadLog, PendingClient>.Event) {
        switch event {
        case .committed(let client, (), let index):
            client.respond(ClientResponse(id: client.request, ok: true, leader: configuration.id, index: index))
        case .superseded(let client):
            client.respond(ClientResponse(id: client.request, ok: false, error: "lost to another leader's entry; retry", leader: driver.core.status.leader))
        case .outcomeUnknown(let client):
            client.respond(
                ClientResponse(id: client.request, ok: false, error: "outcome unknown (a snapshot covered it); read before retrying", leader: driver.core.status.leader))
        case .readable(let client):
            let value = client.readKey.flatMap { driver.machine.values[$0] }.map { String(decoding: $0, as: UTF8.self) }
            client.respond(ClientResponse(id: client.request, ok: true, leader: configuration.id, value: value))
        case .readAborted(let client):
            client.respond(notLeader(client.request))
        case .applied, .restored, .roleChanged:
            break
        }
    }

    // MARK: - Clients

    private func notLeader(_ request: UInt64) -> ClientResponse {
        let leader = driver.core.status.leader
        return ClientResponse(
            id: request, ok: false, error: RaftError.notLeader(leader: leader).description, leader: leader,
            leaderAddress: leader == 0 ? nil : address(of: leader))
    }

    /// The answer to a request the core refused: where the leader is, or why not.
    private func refusal(_ error: RaftError, _ request: UInt64) -> ClientResponse {
        if case .notLeader = error { return notLeader(request) }
        return ClientResponse(id: request, ok: false, error: error.description, leader: driver.core.status.leader)
    }

    private func handle(_ request: ClientRequest, _ respond: @escaping (ClientResponse) -> Void) {
        let client = PendingClient(request: request.id, respond: respond)
        // Proposals of both kinds: answered once their entry's fate is known, or refused now.
        func submit(_ proposal: () throws(RaftError) -> Void) {
            do throws(RaftError) { try proposal() } catch { respond(refusal(error, request.id)) }
        }
        func propose(_ command: KeyValueCommand) {
            submit { () throws(RaftError) in try driver.propose(command.encoded, token: client) }
        }
        func change(_ change: MembershipChange) {
            submit { () throws(RaftError) in try driver.proposeMembershipChange(change, token: client) }
        }
        switch request.operation {
        case .put(let key, let value):
            propose(.put(key: key, value: Array(value.utf8)))
        case .delete(let key):
            propose(.delete(key: key))
        case .get(let key):
            var reader = client
            reader.readKey = key
            submit { () throws(RaftError) in try driver.read(token: reader) }
        case .status:
            respond(ClientResponse(id: request.id, ok: true, leader: driver.core.status.leader, status: memberStatus))
        case .addLearner(let id, let address):
            // The address travels in the change itself: every member learns it from that entry.
            change(MembershipChange(.addLearner, node: id, context: Array(address.utf8)))
        case .promote(let id):
            change(MembershipChange(.addVoter, node: id))
        case .remove(let id):
            change(MembershipChange(.remove, node: id))
        case .putMany(let prefix, let count, let valueBytes):
            guard count > 0, count <= 10_000_000, valueBytes >= 0, valueBytes <= 1 << 20 else {
                respond(ClientResponse(id: request.id, ok: false, error: "count or value size out of range"))
                return
            }
            let value = [UInt8](repeating: UInt8(ascii: "v"), count: valueBytes)
            submit { () throws(RaftError) in
                for number in 0..<count {
                    let last = number == count - 1
                    try driver.propose(KeyValueCommand.put(key: prefix + "\(number)", value: value).encoded, token: last ? client : nil)
                }
            }
        case .transferLeadership(let target):
            do throws(RaftError) {
                try driver.transferLeadership(to: target)
                respond(ClientResponse(id: request.id, ok: true, leader: driver.core.status.leader))
            } catch {
                respond(refusal(error, request.id))
            }
        }
        scheduleReady()
    }

    private var memberStatus: RaftMemberStatus {
        let status = driver.core.status
        return RaftMemberStatus(
            id: status.id, role: status.role.rawValue, term: status.term, leader: status.leader, commit: status.commit,
            applied: status.applied, lastIndex: status.lastIndex, snapshotIndex: status.snapshotIndex,
            voters: status.membership.voters, learners: status.membership.learners,
            matched: Dictionary(uniqueKeysWithValues: status.matched.map { ("\($0.key)", $0.value) }),
            rejectedFrames: transport.rejectedFrames, snapshotChunksReceived: snapshotChunksReceived,
            snapshotsInstalled: driver.snapshotsInstalled)
    }
}
