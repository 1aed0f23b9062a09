import EngineKit
import Raft
import RaftHost

/// A deterministic simulation of a Raft group running the real core: a seeded scheduler
/// delivers messages with loss, duplication, delay and reordering, partitions the network,
/// crashes members (tearing their last write) and restarts them from their simulated disks,
/// adds and removes members, while clients write and read keys. Safety is checked after every
/// event and the clients' history is checked for linearizability at the end.
public final class Simulation<Workload: SimulatedWorkload> {
    private typealias Node = SimulatedNode<Workload.Machine>
    private typealias Event = RaftDriver<Workload.Machine, SimulatedDisk, ClientTicket>.Event

    private enum Scheduled {
        case deliver(Message)
        case tick(NodeID, incarnation: Int)
        case client(Int)
        case fault
        case heal
        case restart(NodeID)
        case changeMembership
        case quiet
        case watch
    }

    private struct Client {
        var operation: Int?
        var key = ""
        var isWrite = false
        var value: [UInt8] = []
        var target: NodeID = 0
        var submitted = false
        var deadline = 0
        var written = 0
    }

    private let options: SimulationOptions
    private var random: SplitMix64
    private var queue = EventQueue<Scheduled>()
    private var now = 0
    private var nodes: [NodeID: Node] = [:]
    private var nextNodeID: NodeID
    private var blocked = Set<Route>()
    private var partitioned = false
    private var quiet = false
    private var checker = SafetyChecker()
    private var history: [KeyValueOperation] = []
    /// Operations that certainly took no effect (never submitted, or overwritten): not history.
    private var discarded = Set<Int>()
    private var clients: [Client]
    private var report: SimulationReport
    /// The versions a simulated watch saw, following whichever member it reached each time.
    private var watched: [UInt64] = []

    private struct Route: Hashable {
        var from: NodeID
        var to: NodeID
    }

    private static var tickMilliseconds: Int { 10 }
    private static var operationTimeout: Int { 1_000 }

    /// Prepares a run; nothing happens until ``run()``.
    public init(options: SimulationOptions) {
        self.options = options
        random = SplitMix64(seed: options.seed)
        clients = Array(repeating: Client(), count: options.clients)
        report = SimulationReport(seed: options.seed, violations: [], livenessFailure: false)
        let founders = (1...NodeID(options.initialVoters)).map { $0 }
        nextNodeID = NodeID(options.initialVoters) + 1
        let bootstrap = RaftNode.bootstrap(voters: founders)
        for id in founders {
            let node = makeNode(id)
            node.disk.write(.hardState(bootstrap.hardState), snapshotData: nil)
            for entry in bootstrap.entries { node.disk.write(.entry(entry), snapshotData: nil) }
        }
    }

    /// Runs to the end and reports; the same options give the same report.
    public func run() -> SimulationReport {
        for id in nodes.keys.sorted() { start(id) }
        for client in clients.indices { queue.schedule(.client(client), at: 1 + client) }
        queue.schedule(.fault, at: 100)
        if options.membershipChanges { queue.schedule(.changeMembership, at: 250) }
        queue.schedule(.quiet, at: options.faultMilliseconds)
        if Workload.changes(after: 0, in: Workload.Machine()) != nil { queue.schedule(.watch, at: 5) }
        let end = options.faultMilliseconds + options.quietMilliseconds
        while let (time, event) = queue.popNext(), time <= end {
            now = time
            handle(event)
        }
        finish()
        return report
    }

    private func note(_ line: @autoclosure () -> String) {
        if options.trace { report.trace.append("t=\(now)ms \(line())") }
    }

    // MARK: - Events

    private func handle(_ event: Scheduled) {
        switch event {
        case .deliver(let message):
            deliver(message)
        case .tick(let id, let incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.isUp else { return }
            node.driver!.tick()
            drain(node)
            queue.schedule(.tick(id, incarnation: incarnation), at: now + Self.tickMilliseconds)
        case .client(let client):
            runClient(client)
        case .fault:
            injectFault()
            if now + 100 < options.faultMilliseconds { queue.schedule(.fault, at: now + 100) }
        case .heal:
            note("partition healed")
            blocked = []
            partitioned = false
        case .restart(let id):
            if let node = nodes[id], !node.isUp { start(id) }
        case .watch:
            watch()
            queue.schedule(.watch, at: now + 25)
        case .changeMembership:
            changeMembership()
            if now + 250 < options.faultMilliseconds { queue.schedule(.changeMembership, at: now + 250) }
        case .quiet:
            note("faults stop")
            quiet = true
            blocked = []
            partitioned = false
            for id in nodes.keys.sorted() {
                guard let node = nodes[id] else { continue }
                node.disk.tearNextWrite = nil
                if !node.isUp { start(id) }
            }
        }
    }

    private func makeNode(_ id: NodeID) -> Node {
        var configuration = RaftConfiguration(id: id, randomSeed: options.seed &* 31 &+ id)
        configuration.maxInflightAppends = 8
        configuration.maxAppendBytes = 512
        configuration.snapshotChunkBytes = options.snapshotChunkBytes ?? Workload.snapshotChunkBytes
        configuration.testingOnlyCommitEarlierTermsByCounting = options.unsafeCommitEarlierTerms
        let node = Node(id: id, configuration: configuration, compactionInterval: LogIndex(options.compactionInterval))
        node.disk.observePersisted = { [unowned self] entry, previousTerm in
            checker.observePersisted(entry, previousTerm: previousTerm, node: id, time: now)
        }
        nodes[id] = node
        return node
    }

    private func start(_ id: NodeID) {
        guard let node = nodes[id] else { return }
        note("node \(id) starts")
        node.start()
        let phase = Int(random.next() % UInt64(Self.tickMilliseconds))
        queue.schedule(.tick(id, incarnation: node.incarnation), at: now + 1 + phase)
        drain(node)
    }

    private func crash(_ node: Node) {
        note("node \(node.id) crashes")
        node.crash()
        report.crashes += 1
        if !quiet { queue.schedule(.restart(node.id), at: now + 50 + Int(random.next() % 450)) }
    }

    // MARK: - Network

    private func chance(_ probability: Double) -> Bool {
        Double(random.next() >> 11) / Double(1 << 53) < probability
    }

    private func send(_ message: Message) {
        if blocked.contains(Route(from: message.from, to: message.to)) { return }
        if !quiet && chance(options.loss) { return }
        let copies = !quiet && chance(options.duplication) ? 2 : 1
        for _ in 0..<copies {
            var delay = 1 + Int(random.next() % UInt64(options.maxDelay))
            if !quiet && chance(options.longDelay) { delay = 100 }
            queue.schedule(.deliver(message), at: now + delay)
        }
    }

    private func deliver(_ message: Message) {
        guard !blocked.contains(Route(from: message.from, to: message.to)),
            let node = nodes[message.to], node.isUp
        else { return }
        report.messagesDelivered += 1
        if message.kind == .snapshot { report.snapshotsSent += 1 }
        node.driver!.step(message)
        drain(node)
    }

    // MARK: - The host loop of one member

    /// Runs the member's Readies through the real host driver, then does what its events ask.
    private func drain(_ node: Node) {
        while node.driver?.hasReady == true {
            let events: [Event]
            do throws(RaftDriverFailure) {
                events = try node.driver!.handleReady { [unowned self] messages in
                    for message in messages { send(message) }
                }
            } catch {
                if case .stoppedMidWrite = error {
                    crash(node)
                } else {
                    checker.fail("node \(node.id): \(error)")
                    crash(node)
                }
                return
            }
            for event in events { handle(event, on: node) }
        }
    }

    private func handle(_ event: Event, on node: Node) {
        switch event {
        case .applied(let entry):
            checker.observeApplied(entry, node: node.id, time: now)
        case .committed(let ticket, let output, _):
            guard clients[ticket.client].operation == ticket.operation else { return }
            if Workload.tookEffect(output) {
                complete(ticket.client, result: nil)
            } else {
                refused(ticket.client)
            }
        case .superseded(let ticket):
            // Another leader's entry took that index: this attempt certainly failed; try again.
            if clients[ticket.client].operation == ticket.operation { retry(ticket.client) }
        case .outcomeUnknown:
            break  // The client times out and leaves the write in the history as maybe-done.
        case .readable(let ticket):
            if clients[ticket.client].operation == ticket.operation {
                complete(ticket.client, result: Workload.read(key: clients[ticket.client].key, from: node.driver!.machine))
            }
        case .readAborted(let ticket):
            // Reads have no effect: unconfirmed ones may simply be asked again elsewhere.
            if clients[ticket.client].operation == ticket.operation { retry(ticket.client) }
        case .restored:
            break
        case .roleChanged(let soft):
            guard let core = node.core else { return }
            note("node \(node.id) is \(soft.role.rawValue) in term \(core.status.term), leader \(soft.leader)")
            if soft.role == .leader {
                checker.observeLeader(node.id, term: core.status.term, time: now)
                checker.observeNewLeader(core, time: now)
            }
        }
    }

    // MARK: - Clients

    private func runClient(_ index: Int) {
        let end = options.faultMilliseconds + options.quietMilliseconds - Self.operationTimeout / 2
        if clients[index].operation == nil {
            guard now < end else { return }
            beginOperation(index)
        }
        var client = clients[index]
        guard let operation = client.operation else { return }
        if now >= client.deadline {
            abandon(index)
            queue.schedule(.client(index), at: now + 1)
            return
        }
        if client.submitted {
            queue.schedule(.client(index), at: client.deadline)
            return
        }
        let liveNodes = nodes.keys.sorted().filter { nodes[$0]!.isUp }
        if client.target == 0 || nodes[client.target]?.isUp != true, !liveNodes.isEmpty {
            client.target = liveNodes[Int(random.next() % UInt64(liveNodes.count))]
        }
        guard let node = nodes[client.target], node.isUp else {
            clients[index] = client
            queue.schedule(.client(index), at: now + 5)
            return
        }
        do throws(RaftError) {
            let ticket = ClientTicket(client: index, operation: operation)
            if client.isWrite {
                try node.driver!.propose(Workload.write(key: client.key, value: client.value, operation: operation), token: ticket)
            } else {
                try node.driver!.read(token: ticket)
            }
            client.submitted = true
            clients[index] = client
            drain(node)
            if now >= options.faultMilliseconds, let status = node.core?.status {
                note("client \(index) op \(operation) \(client.isWrite ? "write" : "read") at node \(node.id): last \(status.lastIndex) commit \(status.commit)")
            }
            queue.schedule(.client(index), at: client.deadline)
        } catch {
            if now >= options.faultMilliseconds { note("client \(index) op \(operation) refused by node \(node.id): \(error)") }
            if case .notLeader(let leader) = error, leader != 0 {
                client.target = leader
            } else {
                client.target = liveNodes.isEmpty ? 0 : liveNodes[Int(random.next() % UInt64(liveNodes.count))]
            }
            clients[index] = client
            queue.schedule(.client(index), at: now + 3)
        }
    }

    private func beginOperation(_ index: Int) {
        var client = clients[index]
        client.key = "k\(random.next() % UInt64(options.keys))"
        client.isWrite = random.next() % 5 < 3
        client.submitted = false
        client.deadline = now + Self.operationTimeout
        if client.isWrite {
            client.written += 1
            client.value = Array("c\(index)-\(client.written)".utf8)
        }
        client.operation = history.count
        history.append(KeyValueOperation(
            key: client.key, action: client.isWrite ? .write(client.value) : .read(result: nil), call: now, response: nil))
        clients[index] = client
    }

    private func complete(_ index: Int, result: [UInt8]?) {
        guard let operation = clients[index].operation else { return }
        history[operation].response = now
        if clients[index].isWrite {
            report.completedWrites += 1
        } else {
            history[operation].action = .read(result: result)
            report.completedReads += 1
        }
        clients[index].operation = nil
        queue.schedule(.client(index), at: now + 1 + Int(random.next() % 5))
    }

    /// The current attempt certainly had no effect: submit the same operation again.
    private func retry(_ index: Int) {
        guard clients[index].operation != nil else { return }
        clients[index].submitted = false
        clients[index].target = 0
        queue.schedule(.client(index), at: now + 1)
    }

    /// The machine refused the write: it certainly took no effect, so it is no part of the history.
    private func refused(_ index: Int) {
        guard let operation = clients[index].operation else { return }
        discarded.insert(operation)
        report.refusedWrites += 1
        clients[index].operation = nil
        queue.schedule(.client(index), at: now + 1)
    }

    private func abandon(_ index: Int) {
        guard let operation = clients[index].operation else { return }
        if clients[index].isWrite && clients[index].submitted {
            report.unknownWrites += 1  // Stays in the history without a response: it may have happened.
        } else {
            discarded.insert(operation)
        }
        clients[index].operation = nil
    }

    // MARK: - Faults

    private func injectFault() {
        let members = nodes.keys.sorted()
        if chance(options.crashProbability) {
            let live = members.filter { nodes[$0]!.isUp }
            let leader = live.first { nodes[$0]!.core?.status.role == .leader }
            if !live.isEmpty {
                // Half the crashes hit the leader: that is where elections and log conflicts come from.
                let id = leader.flatMap { random.next() % 2 == 0 ? $0 : nil } ?? live[Int(random.next() % UInt64(live.count))]
                let victim = nodes[id]!
                if options.tornWrites && random.next() % 2 == 0 {
                    victim.disk.tearNextWrite = { [unowned self] count in Int(random.next() % UInt64(count)) }
                } else {
                    crash(victim)
                }
            }
        }
        if !partitioned && chance(options.partitionProbability) {
            partitioned = true
            switch random.next() % 3 {
            case 0:  // Symmetric: two sides that cannot talk.
                let shuffled = members.shuffled(using: &random)
                let cut = 1 + Int(random.next() % UInt64(max(1, shuffled.count - 1)))
                block(Array(shuffled[..<cut]), Array(shuffled[cut...]), bothWays: true)
            case 1:  // Asymmetric: one side hears the other but not the reverse.
                let shuffled = members.shuffled(using: &random)
                let cut = 1 + Int(random.next() % UInt64(max(1, shuffled.count - 1)))
                block(Array(shuffled[..<cut]), Array(shuffled[cut...]), bothWays: false)
            default:  // The leader alone.
                if let leader = members.first(where: { nodes[$0]!.core?.status.role == .leader }) {
                    block([leader], members.filter { $0 != leader }, bothWays: true)
                }
            }
            queue.schedule(.heal, at: now + 100 + Int(random.next() % 900))
        }
    }

    private func block(_ side: [NodeID], _ other: [NodeID], bothWays: Bool) {
        note("partition \(side) \(bothWays ? "<-/->" : "-/->") \(other)")
        for a in side {
            for b in other {
                blocked.insert(Route(from: a, to: b))
                if bothWays { blocked.insert(Route(from: b, to: a)) }
            }
        }
    }

    /// An operator adding a learner, promoting it once it caught up, or removing a voter.
    private func changeMembership() {
        let leaders = nodes.keys.sorted().compactMap { id -> Node? in
            guard let node = nodes[id], node.core?.status.role == .leader else { return nil }
            return node
        }
        guard let node = leaders.max(by: { $0.core!.status.term < $1.core!.status.term }), let status = node.core?.status
        else { return }
        if random.next() % 4 == 0, let target = status.membership.voters.filter({ $0 != node.id }).randomElement(using: &random) {
            // Sometimes the operator hands leadership over instead.
            do throws(RaftError) {
                try node.driver!.transferLeadership(to: target)
                note("leader \(node.id) transfers leadership to \(target)")
                report.transfers += 1
            } catch {
                return
            }
            drain(node)
            return
        }
        let change: MembershipChange?
        if let learner = status.membership.learners.first {
            change = (status.matched[learner] ?? 0) >= status.commit ? MembershipChange(.addVoter, node: learner) : nil
        } else if status.membership.voters.count < 5 && random.next() % 2 == 0 {
            let id = nextNodeID
            nextNodeID += 1
            _ = makeNode(id)
            start(id)
            change = MembershipChange(.addLearner, node: id, context: Array("sim-\(id):2377".utf8))
        } else if status.membership.voters.count > 3 && random.next() % 2 == 0 {
            let voters = status.membership.voters
            change = MembershipChange(.remove, node: voters[Int(random.next() % UInt64(voters.count))])
        } else {
            change = nil
        }
        guard let change else { return }
        do throws(RaftError) {
            try node.driver!.proposeMembershipChange(change, token: nil)
            note("leader \(node.id) proposes \(change.action) \(change.node)")
            report.membershipChanges += 1
        } catch {
            return  // Pending change or a transfer: the operator tries again later.
        }
        drain(node)
    }

    // MARK: - Watches

    /// One poll of a watch: a member picked at random gives the changes after the last version
    /// seen; a member whose history no longer reaches that far is skipped, as a real watcher
    /// would go to another manager.
    private func watch() {
        let live = nodes.keys.sorted().filter { nodes[$0]!.isUp }
        guard !live.isEmpty else { return }
        let node = nodes[live[Int(random.next() % UInt64(live.count))]]!
        let last = watched.last ?? 0
        guard let changes = Workload.changes(after: last, in: node.driver!.machine) else { return }
        for version in changes {
            if version <= (watched.last ?? 0) {
                checker.fail("watch on node \(node.id) gave version \(version) after \(watched.last ?? 0)")
                return
            }
            watched.append(version)
        }
    }

    /// What the watch saw must be exactly what the most advanced member committed: no gap, no
    /// duplicate, across every leader change and member it followed.
    private func checkWatch() {
        guard !watched.isEmpty else { return }
        let reference = nodes.values.compactMap(\.driver).max { $0.machine.appliedIndex < $1.machine.appliedIndex }
        guard let machine = reference?.machine else { return }
        // From the oldest point the reference still holds, the rest must match one for one.
        for start in [0] + watched.indices.map({ $0 + 1 }) {
            let after = start == 0 ? 0 : watched[start - 1]
            guard let expected = Workload.changes(after: after, in: machine) else { continue }
            let seen = Array(watched[start...])
            if Array(expected.prefix(seen.count)) != seen {
                checker.fail("watch saw \(seen.prefix(8))… after \(after), the log committed \(expected.prefix(8))…")
            }
            report.watchedChanges = watched.count
            return
        }
    }

    /// Members at the same applied index hold the same state, byte for byte.
    private func checkSameState() {
        var byIndex: [LogIndex: (NodeID, [UInt8])] = [:]
        for id in nodes.keys.sorted() {
            guard let machine = nodes[id]?.driver?.machine else { continue }
            let bytes = machine.snapshotData()
            if let (other, reference) = byIndex[machine.appliedIndex] {
                if reference != bytes { checker.fail("nodes \(other) and \(id) applied \(machine.appliedIndex) entries but hold different states") }
            } else {
                byIndex[machine.appliedIndex] = (id, bytes)
            }
        }
    }

    // MARK: - Verdict

    private func finish() {
        for id in nodes.keys.sorted() {
            guard let status = nodes[id]?.core?.status else { note("node \(id) down"); continue }
            note("node \(id): \(status.role.rawValue) term \(status.term) leader \(status.leader) commit \(status.commit) "
                + "applied \(status.applied) last \(status.lastIndex) voters \(status.membership.voters) "
                + "learners \(status.membership.learners) matched \(status.matched.sorted { $0.key < $1.key })")
        }
        checkWatch()
        checkSameState()
        let checked = history.enumerated().filter { !discarded.contains($0.offset) }.map(\.element)
        for key in LinearizabilityChecker.violations(in: checked) {
            checker.fail("history of key \(key) is not linearizable")
        }
        report.violations = checker.violations
        report.livenessFailure = !history.contains { operation in
            if case .write = operation.action, let response = operation.response { return response > options.faultMilliseconds }
            return false
        }
        report.highestApplied = checker.highestApplied
        report.termsWithLeader = checker.termsWithLeader
    }

    /// The history of client operations so far (for tests that inspect it).
    public var clientHistory: [KeyValueOperation] { history }
}
