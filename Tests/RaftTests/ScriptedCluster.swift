import Raft
import RaftHost
import RaftSimulation

/// A Raft group driven step by step by a test: the test decides which members are up and
/// which messages arrive, to replay a precise schedule such as Figure 8 of the Raft paper.
/// Each member is the real host driver over a simulated disk.
final class ScriptedCluster {
    typealias Driver = RaftDriver<KeyValueStore, SimulatedDisk, Int>
    var drivers: [NodeID: Driver] = [:]
    var disks: [NodeID: SimulatedDisk] = [:]
    var inFlight: [Message] = []
    var checker = SafetyChecker()
    /// Told of every member's events as they happen.
    var onEvents: ((NodeID, [Driver.Event]) -> Void)?
    var configurations: [NodeID: RaftConfiguration]

    /// The members' cores, for status.
    var cores: [NodeID: RaftNode] { drivers.mapValues(\.core) }
    /// The members' state machines.
    var stores: [NodeID: KeyValueStore] { drivers.mapValues(\.machine) }

    /// Applied entries between each member's own snapshots.
    let snapshotInterval: LogIndex

    /// Founders 1…`voters` (their addresses, "m<id>:2377", are flags only: not in the log).
    init(voters: Int, unsafeCommitEarlierTerms: Bool = false, snapshotInterval: LogIndex = .max) {
        self.snapshotInterval = snapshotInterval
        var configurations: [NodeID: RaftConfiguration] = [:]
        let bootstrap = Driver.bootstrap(founders: Dictionary(uniqueKeysWithValues: (1...NodeID(voters)).map { ($0, "m\($0):2377") }))
        for id in 1...NodeID(voters) {
            var configuration = RaftConfiguration(id: id, randomSeed: id)
            // No ticks pass in a script, so no lease would ever expire: leave out the lease
            // and pre-votes, as the paper's basic algorithm does.
            configuration.checkQuorum = false
            configuration.preVote = false
            configuration.testingOnlyCommitEarlierTermsByCounting = unsafeCommitEarlierTerms
            configurations[id] = configuration
            let disk = SimulatedDisk()
            disk.write(.hardState(bootstrap.hardState), snapshotData: nil)
            for entry in bootstrap.entries { disk.write(.entry(entry), snapshotData: nil) }
            disks[id] = disk
        }
        self.configurations = configurations
        for id in configurations.keys.sorted() { restart(id) }
    }

    func crash(_ id: NodeID) {
        drivers[id] = nil
        inFlight.removeAll { $0.to == id || $0.from == id }
    }

    /// A new, empty member `id` that will join when the leader adds it.
    func addEmptyMember(_ id: NodeID) {
        var configuration = RaftConfiguration(id: id, randomSeed: id)
        configuration.checkQuorum = false
        configuration.preVote = false
        configurations[id] = configuration
        disks[id] = SimulatedDisk()
        restart(id)
    }

    func restart(_ id: NodeID) {
        let disk = disks[id]!
        disk.observePersisted = { [unowned self] entry, previousTerm in
            checker.observePersisted(entry, previousTerm: previousTerm, node: id, time: 0)
        }
        drivers[id] = try! Driver(configuration: configurations[id]!, storage: disk, snapshotInterval: snapshotInterval)
        process(id)
    }

    /// Handles every Ready of `id` through the driver, as a host does.
    func process(_ id: NodeID) {
        while drivers[id]?.hasReady == true {
            let events: [Driver.Event]
            do throws(RaftDriverFailure) {
                events = try drivers[id]!.handleReady { [unowned self] messages in inFlight += messages }
            } catch {
                checker.fail("node \(id): \(error)")
                crash(id)
                return
            }
            onEvents?(id, events)
            for event in events {
                switch event {
                case .applied(let entry):
                    checker.observeApplied(entry, node: id, time: 0)
                case .roleChanged(let soft) where soft.role == .leader:
                    let core = drivers[id]!.core
                    checker.observeLeader(id, term: core.status.term, time: 0)
                    checker.observeNewLeader(core, time: 0)
                default:
                    break
                }
            }
        }
    }

    /// Delivers messages between members of `group` until none are left; the rest are lost.
    func exchange(among group: Set<NodeID>) {
        for _ in 0..<1_000 {
            let batch = inFlight
            inFlight = []
            if batch.isEmpty { return }
            for message in batch where group.contains(message.from) && group.contains(message.to) {
                guard drivers[message.to] != nil else { continue }
                drivers[message.to]!.step(message)
                process(message.to)
            }
        }
    }

    /// `rounds` ticks of `leader`, each followed by an exchange among `group`: heartbeats let the
    /// leader notice what followers lack and send it.
    func heartbeat(_ rounds: Int, from leader: NodeID, among group: Set<NodeID>) {
        for _ in 0..<rounds {
            drivers[leader]!.tick()
            process(leader)
            exchange(among: group)
        }
    }

    /// `id` campaigns among `group` (up to three terms, as real timeouts would retry); true
    /// when it won.
    @discardableResult
    func elect(_ id: NodeID, among group: Set<NodeID>) -> Bool {
        for _ in 0..<3 {
            drivers[id]!.campaign()
            process(id)
            exchange(among: group)
            if drivers[id]?.core.status.role == .leader { return true }
        }
        return false
    }

    /// Proposes a put on `id` (its leader) and returns the entry's index.
    @discardableResult
    func put(_ key: String, _ value: String, on id: NodeID) throws -> LogIndex {
        let position = try drivers[id]!.propose(KeyValueCommand.put(key: key, value: Array(value.utf8)).encoded, token: nil)
        process(id)
        return position.index
    }
}
