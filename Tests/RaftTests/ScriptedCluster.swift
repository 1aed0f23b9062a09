import Raft
import RaftSimulation

/// A Raft group driven step by step by a test: the test decides which members are up and
/// which messages arrive, to replay a precise schedule such as Figure 8 of the Raft paper.
/// Hosts behave as the real one: persist, then send, then apply, then advance.
final class ScriptedCluster {
    var cores: [NodeID: RaftNode] = [:]
    var disks: [NodeID: PersistentLog] = [:]
    var stores: [NodeID: KeyValueStore] = [:]
    var inFlight: [Message] = []
    var checker = SafetyChecker()
    let configurations: [NodeID: RaftConfiguration]

    init(voters: Int, unsafeCommitEarlierTerms: Bool = false) {
        var configurations: [NodeID: RaftConfiguration] = [:]
        let bootstrap = RaftNode.bootstrap(voters: (1...NodeID(voters)).map { $0 })
        for id in 1...NodeID(voters) {
            var configuration = RaftConfiguration(id: id, randomSeed: id)
            // No ticks pass in a script, so no lease would ever expire: leave out the lease
            // and pre-votes, as the paper's basic algorithm does.
            configuration.checkQuorum = false
            configuration.preVote = false
            configuration.testingOnlyCommitEarlierTermsByCounting = unsafeCommitEarlierTerms
            configurations[id] = configuration
            var disk = PersistentLog()
            try! disk.apply(.hardState(bootstrap.hardState))
            for entry in bootstrap.entries { try! disk.apply(.entry(entry)) }
            disks[id] = disk
        }
        self.configurations = configurations
        for id in configurations.keys.sorted() { restart(id) }
    }

    func crash(_ id: NodeID) {
        cores[id] = nil
        inFlight.removeAll { $0.to == id || $0.from == id }
    }

    func restart(_ id: NodeID) {
        let disk = disks[id]!
        cores[id] = RaftNode(configuration: configurations[id]!, hardState: disk.hardState, entries: disk.entries)
        stores[id] = KeyValueStore()
        process(id)
    }

    /// Handles every Ready of `id` the way a host does.
    func process(_ id: NodeID) {
        while var core = cores[id], core.hasReady {
            let ready = core.ready()
            for record in PersistentLog.records(of: ready) {
                if case .entry(let entry) = record {
                    checker.observePersisted(entry, previousTerm: disks[id]!.term(at: entry.index - 1) ?? 0, node: id, time: 0)
                }
                try! disks[id]!.apply(record)
            }
            inFlight += ready.messages
            for entry in ready.committedEntries {
                checker.observeApplied(entry, node: id, time: 0)
                // A broken core may hand an index again after overwriting it: the checker has
                // recorded that; the store only takes the next index.
                if entry.index == stores[id]!.appliedIndex + 1 { stores[id]!.apply(entry) }
            }
            if ready.softState?.role == .leader {
                checker.observeLeader(id, term: core.status.term, time: 0)
                checker.observeNewLeader(core, time: 0)
            }
            core.advance(ready)
            cores[id] = core
        }
    }

    /// Delivers messages between members of `group` until none are left; the rest are lost.
    func exchange(among group: Set<NodeID>) {
        for _ in 0..<1_000 {
            let batch = inFlight
            inFlight = []
            if batch.isEmpty { return }
            for message in batch where group.contains(message.from) && group.contains(message.to) {
                guard cores[message.to] != nil else { continue }
                cores[message.to]!.step(message)
                process(message.to)
            }
        }
    }

    /// `id` campaigns among `group` (up to three terms, as real timeouts would retry); true
    /// when it won.
    @discardableResult
    func elect(_ id: NodeID, among group: Set<NodeID>) -> Bool {
        for _ in 0..<3 {
            cores[id]!.campaign()
            process(id)
            exchange(among: group)
            if cores[id]?.status.role == .leader { return true }
        }
        return false
    }

    /// Proposes a put on `id` (its leader) and returns the entry's index.
    @discardableResult
    func put(_ key: String, _ value: String, on id: NodeID) throws -> LogIndex {
        let position = try cores[id]!.propose(KeyValueCommand.put(key: key, value: Array(value.utf8)).encoded)
        process(id)
        return position.index
    }
}
