import Logging
import NIOCore
import NIOPosix
import Raft

/// A Raft member as a process: the core, its write-ahead log, the key-value state machine and
/// the TCP transport, driven by one event loop. Each turn of the loop feeds the core whatever
/// arrived, then handles one `Ready`: one fdatasync covers every proposal and message that
/// came in meanwhile (batching falls out of the loop), then messages go out, then committed
/// entries are applied and clients answered.
public final class RaftServer: @unchecked Sendable {
    /// How a member runs.
    public struct Configuration: Sendable {
        /// This member's ID.
        public var id: NodeID
        /// Where to listen ("host:port"); port 2377 by convention.
        public var listen: String
        /// Founding members and their addresses; the group is bootstrapped from these unless
        /// `join` is set. Members added later are found through the replicated store.
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

    /// Key prefix under which members' addresses are replicated.
    static let memberAddressPrefix = "/_members/"

    public let configuration: Configuration
    private let loop: EventLoop
    private let logger: Logger
    private let transport: PeerTransport
    private var core: RaftNode
    private let wal: WriteAheadLog
    private var store: KeyValueStore
    private var readyScheduled = false
    private var snapshotChunksReceived = 0
    private var snapshotsInstalled = 0
    private var persistedTerm: Term = 0
    private var persistedVote: NodeID = 0
    private var ticker: RepeatedTask?
    private var nextReadID: UInt64 = 0
    private var pendingWrites: [LogIndex: (term: Term, respond: (ClientResponse) -> Void, request: UInt64)] = [:]
    private var pendingReads: [UInt64: (key: String, respond: (ClientResponse) -> Void, request: UInt64)] = [:]
    private var confirmedReads: [(index: LogIndex, key: String, respond: (ClientResponse) -> Void, request: UInt64)] = []
    /// The port actually bound.
    public private(set) var port = 0

    /// Opens the data directory (recovering or bootstrapping) and starts serving on `loop`.
    public init(configuration: Configuration, loop: EventLoop) throws {
        self.configuration = configuration
        self.loop = loop
        var logger = Logger(label: "shoal.raft")
        logger[metadataKey: "member"] = "\(configuration.id)"
        self.logger = logger
        wal = try WriteAheadLog(directory: configuration.dataDirectory)
        if wal.log.lastIndex == 0 && wal.log.hardState == HardState() && !configuration.join {
            let bootstrap = RaftNode.bootstrap(voters: configuration.peers.keys.sorted())
            try wal.append(bootstrap.entries.map(PersistentLog.Record.entry) + [.hardState(bootstrap.hardState)], snapshotData: nil)
        }
        var raftConfiguration = RaftConfiguration(id: configuration.id, randomSeed: UInt64.random(in: 1...UInt64.max))
        raftConfiguration.electionTicks = configuration.electionTicks
        let snapshot = wal.recovery.snapshot
        core = RaftNode(configuration: raftConfiguration, hardState: wal.log.hardState, snapshot: snapshot, entries: wal.log.entries)
        persistedTerm = wal.log.hardState.term
        persistedVote = wal.log.hardState.vote
        if let snapshot {
            guard let restored = KeyValueStore(snapshotData: snapshot.data) else {
                throw StorageError.corrupt("snapshot at \(snapshot.metadata.index) is not a key-value snapshot")
            }
            store = restored
        } else {
            store = KeyValueStore()
        }
        if wal.recovery.discardedTailBytes > 0 {
            logger.warning("cut a torn WAL tail", metadata: ["bytes": "\(wal.recovery.discardedTailBytes)"])
        }
        transport = PeerTransport(loop: loop, logger: logger)
        try loop.submit { [self] in
            transport.addressOf = { [unowned self] id in self.address(of: id) }
            transport.onMessage = { [unowned self] message in
                if message.kind == .snapshot { self.snapshotChunksReceived += 1 }
                self.core.step(message)
                self.scheduleReady()
            }
            transport.onRequest = { [unowned self] request, respond in self.handle(request, respond) }
        }.wait()
        guard let (host, port) = splitHostPort(configuration.listen) else {
            throw StorageError.corrupt("listen address \(configuration.listen) is not host:port")
        }
        self.port = try transport.listen(host: host, port: port)
        try loop.submit { [self] in
            ticker = loop.scheduleRepeatedTask(initialDelay: configuration.tickInterval, delay: configuration.tickInterval) {
                [unowned self] _ in
                self.core.tick()
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

    private func address(of id: NodeID) -> String? {
        configuration.peers[id] ?? store.values[Self.memberAddressPrefix + "\(id)"].map { String(decoding: $0, as: UTF8.self) }
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
        while core.hasReady {
            let ready = core.ready()
            // A leader's messages (appends, heartbeats) promise nothing about its own disk, so
            // they go out before its fsync and the followers' writes overlap the leader's
            // (dissertation §10.2.1; etcd does the same). A follower's acknowledgement and any
            // vote promise durability: those wait. A changed term or vote always waits.
            let sendFirst = core.status.role == .leader
                && (ready.hardState.map { $0.term == persistedTerm && $0.vote == persistedVote } ?? true)
            if sendFirst { send(ready.messages) }
            // A leader's snapshot that does not decode must not reach the disk, or this member
            // could never start again; stopping here restarts it from its last durable state.
            let restored = ready.snapshot.map { KeyValueStore(snapshotData: $0.data) }
            if let restored, restored == nil {
                fatalError("raft member \(configuration.id): leader sent a snapshot that does not decode")
            }
            do {
                try wal.save(ready)
            } catch {
                // What the core was about to promise is not durable: stop rather than lie.
                logger.critical("cannot persist, stopping", metadata: ["error": "\(error)"])
                fatalError("raft member \(configuration.id): \(error)")
            }
            if let hardState = ready.hardState {
                persistedTerm = hardState.term
                persistedVote = hardState.vote
            }
            if !sendFirst { send(ready.messages) }
            if let restored = restored ?? nil {
                store = restored
                snapshotsInstalled += 1
            }
            for entry in ready.committedEntries { apply(entry) }
            for read in ready.reads {
                if let pending = pendingReads.removeValue(forKey: read.requestID) {
                    confirmedReads.append((read.index, pending.key, pending.respond, pending.request))
                }
            }
            answerConfirmedReads()
            if let soft = ready.softState, soft.role != .leader {
                for (_, pending) in pendingReads {
                    pending.respond(notLeader(pending.request))
                }
                pendingReads = [:]
            }
            core.advance(ready)
            compactIfDue()
        }
    }

    private func send(_ messages: [Message]) {
        for message in messages { transport.send(message) }
        transport.flush()
    }

    private func apply(_ entry: Entry) {
        if entry.index <= store.appliedIndex { return }  // Covered by a snapshot just restored.
        store.apply(entry)
        guard let pending = pendingWrites.removeValue(forKey: entry.index) else { return }
        if pending.term == entry.term {
            pending.respond(ClientResponse(id: pending.request, ok: true, leader: configuration.id, index: entry.index))
        } else {
            pending.respond(ClientResponse(id: pending.request, ok: false, error: "lost to another leader's entry; retry", leader: core.status.leader))
        }
    }

    private func answerConfirmedReads() {
        var waiting: [(index: LogIndex, key: String, respond: (ClientResponse) -> Void, request: UInt64)] = []
        for read in confirmedReads {
            if read.index <= store.appliedIndex {
                let value = store.values[read.key].map { String(decoding: $0, as: UTF8.self) }
                read.respond(ClientResponse(id: read.request, ok: true, leader: configuration.id, value: value))
            } else {
                waiting.append(read)
            }
        }
        confirmedReads = waiting
    }

    private func compactIfDue() {
        let snapshotIndex = core.latestSnapshot?.metadata.index ?? 0
        guard store.appliedIndex >= snapshotIndex + configuration.snapshotInterval else { return }
        do {
            try core.compact(through: store.appliedIndex, snapshotData: store.snapshotData())
            if let snapshot = core.latestSnapshot { try wal.saveSnapshot(snapshot) }
        } catch {
            logger.error("snapshot failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Clients

    private func notLeader(_ request: UInt64) -> ClientResponse {
        let leader = core.status.leader
        return ClientResponse(
            id: request, ok: false, error: RaftError.notLeader(leader: leader).description, leader: leader,
            leaderAddress: leader == 0 ? nil : address(of: leader))
    }

    /// The answer to a request the core refused: where the leader is, or why not.
    private func refusal(_ error: RaftError, _ request: UInt64) -> ClientResponse {
        if case .notLeader = error { return notLeader(request) }
        return ClientResponse(id: request, ok: false, error: error.description, leader: core.status.leader)
    }

    private func handle(_ request: ClientRequest, _ respond: @escaping (ClientResponse) -> Void) {
        // Proposals of both kinds: remembered until their index is applied, or refused now.
        func submit(_ proposal: () throws(RaftError) -> LogPosition) {
            do throws(RaftError) {
                let position = try proposal()
                pendingWrites[position.index] = (position.term, respond, request.id)
            } catch {
                respond(refusal(error, request.id))
            }
        }
        func propose(_ command: KeyValueCommand) { submit { () throws(RaftError) in try core.propose(command.encoded) } }
        func change(_ change: MembershipChange) { submit { () throws(RaftError) in try core.proposeMembershipChange(change) } }
        switch request.operation {
        case .put(let key, let value):
            propose(.put(key: key, value: Array(value.utf8)))
        case .delete(let key):
            propose(.delete(key: key))
        case .get(let key):
            nextReadID += 1
            do throws(RaftError) {
                try core.readIndex(requestID: nextReadID)
                pendingReads[nextReadID] = (key, respond, request.id)
            } catch {
                respond(refusal(error, request.id))
            }
        case .status:
            respond(ClientResponse(id: request.id, ok: true, leader: core.status.leader, status: memberStatus))
        case .addLearner(let id, let address):
            // The address is replicated first, so every member can reach the learner.
            if store.values[Self.memberAddressPrefix + "\(id)"] != Array(address.utf8) {
                propose(.put(key: Self.memberAddressPrefix + "\(id)", value: Array(address.utf8)))
            } else {
                change(MembershipChange(.addLearner, node: id))
            }
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
                var last = try core.propose(KeyValueCommand.put(key: prefix + "0", value: value).encoded)
                for number in 1..<count {
                    last = try core.propose(KeyValueCommand.put(key: prefix + "\(number)", value: value).encoded)
                }
                return last
            }
        case .transferLeadership(let target):
            do throws(RaftError) {
                try core.transferLeadership(to: target)
                respond(ClientResponse(id: request.id, ok: true, leader: core.status.leader))
            } catch {
                respond(refusal(error, request.id))
            }
        }
        scheduleReady()
    }

    private var memberStatus: MemberStatus {
        let status = core.status
        return MemberStatus(
            id: status.id, role: status.role.rawValue, term: status.term, leader: status.leader, commit: status.commit,
            applied: status.applied, lastIndex: status.lastIndex, snapshotIndex: status.snapshotIndex,
            voters: status.membership.voters, learners: status.membership.learners,
            matched: Dictionary(uniqueKeysWithValues: status.matched.map { ("\($0.key)", $0.value) }),
            rejectedFrames: transport.rejectedFrames, snapshotChunksReceived: snapshotChunksReceived,
            snapshotsInstalled: snapshotsInstalled)
    }
}
