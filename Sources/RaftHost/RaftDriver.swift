// The one Raft host loop (DESIGN.md §7): a member's core, its storage and its state machine,
// and the rules for handling a `Ready` — persist, send, restore, apply, answer, advance,
// compact. The daemon's member (`RaftServer` over the write-ahead log and TCP), the
// deterministic simulator (over a simulated disk and network) and the scripted tests all run
// this same code, generic over what is replicated and where it is kept; none of them carries a
// Ready loop of its own.
//
// The driver also owns the member directory: each added member's address travels in the
// context of the membership change that adds it (etcd's ConfChange.Context), is learned when
// that entry is applied, and is kept in every snapshot beside the state machine's bytes.
// Founders' addresses come from the founders' own flags (see `bootstrap(founders:)`).

import EngineKit
import Raft

/// What a Raft group replicates: a deterministic state machine changed only by committed
/// entries, in index order, and restorable from its own snapshot bytes.
public protocol ReplicatedStateMachine: Sendable {
    /// What applying a committed entry gives back to the member that proposed it.
    associatedtype Output: Sendable
    /// A machine with nothing applied.
    init()
    /// Restores a machine from ``snapshotData()``; nil when the bytes are not such a snapshot.
    init?(snapshotData: [UInt8])
    /// The index of the last entry applied (a restored snapshot's index right after restoring).
    var appliedIndex: LogIndex { get }
    /// Applies the committed entry at `appliedIndex + 1`. Entries that are not commands
    /// (no-ops, membership changes) only advance the index.
    mutating func apply(_ entry: Entry) -> Output
    /// The machine's bytes; the same entries give the same bytes on every member.
    func snapshotData() -> [UInt8]
}

/// Where a member's log, hard state and snapshots are kept durably.
public protocol RaftStorage: AnyObject {
    /// What is durable now: the log to start the core from, and the live snapshot with its data.
    func recover() throws(StorageError) -> (log: PersistentLog, snapshot: Snapshot?)
    /// Makes what `ready` asks durable (its snapshot, entries and hard state, in that order).
    /// Returns false when the member stopped part-way (a simulated crash): nothing of `ready`
    /// may then be acted on. Throws when the write failed: the member must stop.
    func save(_ ready: Ready) throws(StorageError) -> Bool
    /// Records the host's own snapshot so that the entries it covers need not be kept.
    func saveSnapshot(_ snapshot: Snapshot) throws(StorageError)
}

/// Why a driver cannot go on; the member must stop (a real host exits, a simulator crashes it).
public enum RaftDriverFailure: Error, Sendable, CustomStringConvertible {
    /// Storage refused a write: what the core was about to promise is not durable.
    case storage(StorageError)
    /// The storage stopped in the middle of a write (simulated crash).
    case stoppedMidWrite
    /// A snapshot (from disk or from the leader) does not decode.
    case undecodableSnapshot(LogIndex)
    /// The core handed an entry past the next index: the log and the machine disagree.
    case gap(entry: LogIndex, applied: LogIndex)
    /// The core refused to compact at the machine's applied index: they disagree.
    case compaction(RaftError)

    public var description: String {
        switch self {
        case .storage(let error): "cannot persist: \(error)"
        case .stoppedMidWrite: "stopped in the middle of a write"
        case .undecodableSnapshot(let index): "the snapshot at \(index) does not decode"
        case .gap(let entry, let applied): "asked to apply entry \(entry) after \(applied)"
        case .compaction(let error): "cannot compact at the applied index: \(error)"
        }
    }
}

/// What happened while a ``RaftDriver`` handled a Ready, for the host to act on.
public enum RaftDriverEvent<Token, Output> {
    /// A proposal made here was applied at `index`; the machine's output for it.
    case committed(Token, Output, index: LogIndex)
    /// Another leader's entry took the proposal's index: it certainly did not happen.
    case superseded(Token)
    /// A snapshot from the leader covered the proposal's index: it may or may not have happened.
    case outcomeUnknown(Token)
    /// A read asked here is confirmed and the machine has caught up: serve it from ``RaftDriver/machine``.
    case readable(Token)
    /// Leadership was lost before the read was confirmed: it may be asked again elsewhere.
    case readAborted(Token)
    /// An entry was applied (or handed again below the applied index, and skipped): for observers.
    case applied(Entry)
    /// The machine and the member directory were replaced by a snapshot from the leader.
    case restored(SnapshotMetadata)
    /// This member's role or leader changed.
    case roleChanged(SoftState)
}

/// One member: the core, its storage and its state machine, stepped by one host loop.
///
/// Not thread-safe: one loop owns it. `Token` is the host's handle for a client waiting on a
/// proposal or a read (a reply closure, a simulated client's number).
public struct RaftDriver<Machine: ReplicatedStateMachine, Storage: RaftStorage, Token> {
    /// Events of one Ready, in the order they happened.
    public typealias Event = RaftDriverEvent<Token, Machine.Output>

    /// The consensus core (read it for status; feed it through the driver).
    public private(set) var core: RaftNode
    /// The replicated state, as applied so far.
    public private(set) var machine: Machine
    /// Each member's address, from the membership changes applied so far.
    public private(set) var memberAddresses: [NodeID: String]
    /// Where the member's durable state lives.
    public let storage: Storage
    /// Applied entries between the driver's own snapshots.
    public var snapshotInterval: LogIndex
    /// Snapshots received from the leader and installed.
    public private(set) var snapshotsInstalled = 0

    private var persistedTerm: Term
    private var persistedVote: NodeID
    private var pendingProposals: [LogIndex: (term: Term, token: Token)] = [:]
    private var pendingReads: [UInt64: Token] = [:]
    private var confirmedReads: [(index: LogIndex, token: Token)] = []
    private var nextReadID: UInt64 = 0

    /// A member started from what `storage` holds.
    public init(configuration: RaftConfiguration, storage: Storage, snapshotInterval: LogIndex = 10_000) throws(RaftDriverFailure) {
        let recovered: (log: PersistentLog, snapshot: Snapshot?)
        do throws(StorageError) { recovered = try storage.recover() } catch { throw .storage(error) }
        self.storage = storage
        self.snapshotInterval = snapshotInterval
        core = RaftNode(
            configuration: configuration, hardState: recovered.log.hardState, snapshot: recovered.snapshot,
            entries: recovered.log.entries)
        persistedTerm = recovered.log.hardState.term
        persistedVote = recovered.log.hardState.vote
        if let snapshot = recovered.snapshot {
            guard let (machine, members) = Self.decodeSnapshot(snapshot.data) else {
                throw .undecodableSnapshot(snapshot.metadata.index)
            }
            self.machine = machine
            memberAddresses = members
        } else {
            machine = Machine()
            memberAddresses = [:]
        }
    }

    /// The persisted state of a new group's founding member: one committed membership entry per
    /// founder. The entries carry no addresses: every founder writes them itself from its own
    /// flags, so they must be the same bytes everywhere whatever each was told (`localhost`
    /// here, `127.0.0.1` there). Founders' addresses come from those flags; members added
    /// later bring theirs in the change that adds them.
    public static func bootstrap(founders: [NodeID: String]) -> (hardState: HardState, entries: [Entry]) {
        RaftNode.bootstrap(voters: founders.keys.sorted())
    }

    // MARK: - Input

    /// One tick of the core's logical clock.
    public mutating func tick() { core.tick() }

    /// A message from another member.
    public mutating func step(_ message: Message) { core.step(message) }

    /// Proposes `data`; `token` (when given) gets ``RaftDriverEvent/committed(_:_:index:)`` or a
    /// refusal event once the entry's fate is known.
    @discardableResult
    public mutating func propose(_ data: [UInt8], token: Token?) throws(RaftError) -> LogPosition {
        let position = try core.propose(data)
        if let token { pendingProposals[position.index] = (position.term, token) }
        return position
    }

    /// Proposes a membership change (with the member's address as its context when adding).
    @discardableResult
    public mutating func proposeMembershipChange(_ change: MembershipChange, token: Token?) throws(RaftError) -> LogPosition {
        let position = try core.proposeMembershipChange(change)
        if let token { pendingProposals[position.index] = (position.term, token) }
        return position
    }

    /// Asks for a linearizable read (ReadIndex); `token` gets ``RaftDriverEvent/readable(_:)``
    /// once the machine may answer it, or ``RaftDriverEvent/readAborted(_:)``.
    public mutating func read(token: Token) throws(RaftError) {
        nextReadID += 1
        try core.readIndex(requestID: nextReadID)
        pendingReads[nextReadID] = token
    }

    /// Hands leadership to `target`.
    public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
        try core.transferLeadership(to: target)
    }

    /// Starts an election now (scripted tests).
    public mutating func campaign() { core.campaign() }

    // MARK: - The loop

    /// Whether ``handleReady(send:)`` has work.
    public var hasReady: Bool { core.hasReady }

    /// Handles one Ready: persists it, sends its messages through `send` (a leader's before its
    /// own write, everyone else's after), restores a received snapshot, applies committed
    /// entries, confirms reads, then advances the core and compacts when due. Returns what
    /// happened; throws when the member must stop (nothing of this Ready was acted on then,
    /// except a leader's messages, which promise nothing about its disk).
    public mutating func handleReady(send: ([Message]) -> Void) throws(RaftDriverFailure) -> [Event] {
        let ready = core.ready()
        // A leader's messages (appends, heartbeats) promise nothing about its own disk, so
        // they go out before its fsync and the followers' writes overlap the leader's
        // (dissertation §10.2.1; etcd does the same): the core counts the leader's own entries
        // towards commit only after `advance`. A follower's acknowledgement and any vote
        // promise durability: those wait. A changed term or vote always waits.
        let sendFirst = core.status.role == .leader
            && (ready.hardState.map { $0.term == persistedTerm && $0.vote == persistedVote } ?? true)
        if sendFirst { send(ready.messages) }
        // A snapshot that does not decode must not reach the disk, or this member could never
        // start again; stopping here restarts it from its last durable state.
        var restored: (machine: Machine, members: [NodeID: String])?
        if let snapshot = ready.snapshot {
            guard let decoded = Self.decodeSnapshot(snapshot.data) else { throw .undecodableSnapshot(snapshot.metadata.index) }
            restored = decoded
        }
        let complete: Bool
        do throws(StorageError) { complete = try storage.save(ready) } catch { throw .storage(error) }
        guard complete else { throw .stoppedMidWrite }
        if let hardState = ready.hardState {
            persistedTerm = hardState.term
            persistedVote = hardState.vote
        }
        if !sendFirst { send(ready.messages) }

        var events: [Event] = []
        if let restored, let snapshot = ready.snapshot {
            machine = restored.machine
            memberAddresses = restored.members
            snapshotsInstalled += 1
            for index in pendingProposals.keys.sorted() where index <= snapshot.metadata.index {
                events.append(.outcomeUnknown(pendingProposals.removeValue(forKey: index)!.token))
            }
            events.append(.restored(snapshot.metadata))
        }
        for entry in ready.committedEntries { try apply(entry, into: &events) }
        for read in ready.reads {
            if let token = pendingReads.removeValue(forKey: read.requestID) { confirmedReads.append((read.index, token)) }
        }
        serveConfirmedReads(into: &events)
        if let soft = ready.softState {
            if soft.role != .leader {
                for id in pendingReads.keys.sorted() { events.append(.readAborted(pendingReads[id]!)) }
                pendingReads = [:]
            }
            events.append(.roleChanged(soft))
        }
        core.advance(ready)
        try compactIfDue()
        return events
    }

    private mutating func apply(_ entry: Entry, into events: inout [Event]) throws(RaftDriverFailure) {
        events.append(.applied(entry))
        // A sound core never hands an index twice; a broken one (the simulator's deliberately
        // unsafe variant) may, after overwriting it. Observers have seen it; the machine only
        // takes the next index.
        guard entry.index > machine.appliedIndex else { return }
        guard entry.index == machine.appliedIndex + 1 else { throw .gap(entry: entry.index, applied: machine.appliedIndex) }
        if entry.kind == .membershipChange, let change = MembershipChange(encoded: entry.data) {
            switch change.action {
            case .addLearner, .addVoter:
                if !change.context.isEmpty { memberAddresses[change.node] = String(decoding: change.context, as: UTF8.self) }
            case .remove:
                memberAddresses[change.node] = nil
            }
        }
        let output = machine.apply(entry)
        guard let pending = pendingProposals.removeValue(forKey: entry.index) else { return }
        events.append(pending.term == entry.term ? .committed(pending.token, output, index: entry.index) : .superseded(pending.token))
    }

    private mutating func serveConfirmedReads(into events: inout [Event]) {
        guard !confirmedReads.isEmpty else { return }
        var waiting: [(index: LogIndex, token: Token)] = []
        for read in confirmedReads {
            if read.index <= machine.appliedIndex {
                events.append(.readable(read.token))
            } else {
                waiting.append(read)
            }
        }
        confirmedReads = waiting
    }

    private mutating func compactIfDue() throws(RaftDriverFailure) {
        let snapshotIndex = core.latestSnapshot?.metadata.index ?? 0
        guard machine.appliedIndex >= snapshotIndex + snapshotInterval else { return }
        do throws(RaftError) {
            try core.compact(through: machine.appliedIndex, snapshotData: Self.encodeSnapshot(machine, memberAddresses))
        } catch {
            // After advance the core has applied exactly what the machine has: refusing to
            // compact there means the two disagree.
            throw .compaction(error)
        }
        guard let snapshot = core.latestSnapshot else { return }
        do throws(StorageError) { try storage.saveSnapshot(snapshot) } catch { throw .storage(error) }
    }

    /// Forgets every waiting client without an answer (the host is stopping or crashed) and
    /// returns their tokens.
    public mutating func abandonAll() -> [Token] {
        let tokens = pendingProposals.keys.sorted().map { pendingProposals[$0]!.token }
            + pendingReads.keys.sorted().map { pendingReads[$0]! } + confirmedReads.map(\.token)
        pendingProposals = [:]
        pendingReads = [:]
        confirmedReads = []
        return tokens
    }

    // MARK: - Snapshot bytes

    private static var snapshotVersion: UInt8 { 1 }

    /// A snapshot's bytes: version, the member directory (sorted), then the machine's own bytes.
    static func encodeSnapshot(_ machine: Machine, _ members: [NodeID: String]) -> [UInt8] {
        let data = machine.snapshotData()
        var writer = ByteWriter(capacity: data.count + 16 + members.count * 32)
        writer.byte(snapshotVersion)
        writer.word32(UInt32(members.count))
        for id in members.keys.sorted() {
            writer.word64(id)
            writer.field(members[id]!.utf8)
        }
        writer.field(data)
        return writer.bytes
    }

    static func decodeSnapshot(_ bytes: [UInt8]) -> (machine: Machine, members: [NodeID: String])? {
        var reader = ByteReader(bytes)
        guard reader.byte() == snapshotVersion, let count = reader.word32(), Int(count) <= CodecLimits.maxMembers else { return nil }
        var members: [NodeID: String] = [:]
        for _ in 0..<count {
            guard let id = reader.word64(), let address = reader.field(limit: MembershipChange.maxContextBytes) else { return nil }
            members[id] = String(decoding: address, as: UTF8.self)
        }
        guard let data = reader.field(), reader.atEnd, let machine = Machine(snapshotData: data) else { return nil }
        return (machine, members)
    }
}

extension KeyValueStore: ReplicatedStateMachine {
    /// Nothing: a put or delete has no result beyond being applied.
    public typealias Output = Void
}
