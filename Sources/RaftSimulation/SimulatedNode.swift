import Raft

/// One simulated member: its core (nil while crashed), its disk, its state machine, and the
/// client requests it is working on.
final class SimulatedNode {
    let id: NodeID
    let configuration: RaftConfiguration
    var core: RaftNode?
    var disk = SimulatedDisk()
    var store = KeyValueStore()
    /// Bumped at each crash, so ticks scheduled before it are ignored.
    var incarnation = 0
    /// The next write of records is torn: a prefix survives, then the member crashes.
    var crashDuringNextWrite = false
    var wasLeader = false

    /// Writes proposed here: index → the term it was proposed in, the client and its operation.
    var pendingWrites: [LogIndex: (term: Term, client: Int, operation: Int)] = [:]
    /// Reads asked here, by request ID (the operation's number) → client.
    var pendingReads: [UInt64: Int] = [:]
    /// Reads the leader confirmed, waiting for the state machine to reach their index.
    var confirmedReads: [(index: LogIndex, client: Int, operation: Int)] = []

    init(id: NodeID, configuration: RaftConfiguration) {
        self.id = id
        self.configuration = configuration
    }

    var isUp: Bool { core != nil }

    /// Starts (or restarts) the core from what is on disk.
    func start() {
        core = RaftNode(
            configuration: configuration, hardState: disk.log.hardState, snapshot: disk.snapshot, entries: disk.log.entries)
        if let snapshot = disk.snapshot {
            guard let restored = KeyValueStore(snapshotData: snapshot.data) else {
                preconditionFailure("node \(id): snapshot on disk does not decode")
            }
            store = restored
        } else {
            store = KeyValueStore()
        }
        wasLeader = false
    }

    func crash() {
        core = nil
        incarnation += 1
        crashDuringNextWrite = false
        pendingWrites = [:]
        pendingReads = [:]
        confirmedReads = []
    }
}
