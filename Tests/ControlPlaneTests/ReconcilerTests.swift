import ClusterAPI
@testable import ControlPlane
import Foundation
import Raft
import StoreSimulation
import SwiftProtobuf
import Testing
import Wire

/// The leader's control loops as a pure pass over the real store: allocation, orchestration,
/// scheduling and reaping, run to a fixed point the way the leader's loop runs them, with
/// agents' status reports written as the dispatcher would.
@Suite struct ReconcilerTests {
    /// A store driven by entries, as Raft would apply them, plus the clock and IDs of a pass.
    struct Harness {
        var store = ClusterStore()
        var now = Date(timeIntervalSince1970: 1_000_000)
        var nextID = 0
        var passes = 0

        init(nodes: [(String, Shoal_Api_NodeRole)] = [("n1", .manager), ("n2", .worker), ("n3", .worker)]) {
            var cluster = Shoal_Api_Cluster()
            cluster.id = "cluster"
            cluster.spec = ClusterDefaults.spec(certificateExpiry: nil, heartbeatPeriod: nil)
            var actions = [Shoal_Api_StoreAction(.create, cluster)]
            for (index, (id, role)) in nodes.enumerated() { actions.append(Shoal_Api_StoreAction(.create, Self.node(id, role: role, index: index))) }
            commit(actions)
        }

        static func node(_ id: String, role: Shoal_Api_NodeRole, index: Int) -> Shoal_Api_Node {
            var node = Shoal_Api_Node()
            node.id = id
            node.spec.annotations.name = id
            node.spec.availability = .active
            node.role = role
            node.status.state = .ready
            node.status.addr = "192.0.2.\(11 + index):2377"
            node.nodeDescription.hostname = id
            node.nodeDescription.resources.nanoCpus = 2_000_000_000
            node.nodeDescription.resources.memoryBytes = 1 << 30
            return node
        }

        mutating func commit(_ actions: [Shoal_Api_StoreAction]) {
            var transaction = Shoal_Api_StoreTransaction()
            transaction.actions = actions
            transaction.proposedAt = Google_Protobuf_Timestamp(date: now)
            let entry = Entry(term: 1, index: store.appliedIndex + 1, kind: .normal, data: try! transaction.serializedBytes())
            let outcome = store.apply(entry)
            guard case .committed = outcome else {
                Issue.record("refused: \(outcome)")
                return
            }
        }

        /// Runs passes until one has nothing to do; returns how many changed something.
        @discardableResult
        mutating func settle(maxPasses: Int = 20) -> Int {
            for pass in 0..<maxPasses {
                var next = nextID
                let result = ClusterReconciler.reconcile(store, now: now) {
                    next += 1
                    return "id\(String(next, radix: 10))"
                }
                nextID = next
                if result.actions.isEmpty { return pass }
                commit(result.actions)
                passes += 1
            }
            Issue.record("no fixed point after \(maxPasses) passes")
            return maxPasses
        }

        mutating func network(_ name: String, subnet: String = "") -> Shoal_Api_Network {
            var network = Shoal_Api_Network()
            network.id = "net-\(name)"
            network.spec.annotations.name = name
            network.spec.driver = "overlay"
            network.spec.subnet = subnet
            commit([Shoal_Api_StoreAction(.create, network)])
            settle()
            return store.networks[network.id]!
        }

        mutating func service(
            _ name: String, replicas: UInt64? = 3, networks: [String] = [], change: (inout Shoal_Api_ServiceSpec) -> Void = { _ in }
        ) -> String {
            var service = Shoal_Api_Service()
            service.id = "svc-\(name)"
            service.spec.annotations.name = name
            service.spec.task.process.command = ["sleep", "1000"]
            if let replicas { service.spec.replicated.replicas = replicas } else { service.spec.global = Shoal_Api_GlobalService() }
            service.spec.task.networks = networks.map { id in
                var config = Shoal_Api_NetworkAttachmentConfig()
                config.target = id
                return config
            }
            change(&service.spec)
            service.specVersion.index = 1
            commit([Shoal_Api_StoreAction(.create, service)])
            settle()
            return service.id
        }

        mutating func scale(_ id: String, to replicas: UInt64) {
            var service = store.services[id]!
            service.spec.replicated.replicas = replicas
            commit([Shoal_Api_StoreAction(.update, service)])
            settle()
        }

        /// An agent's report: the task moved to `state` (forward only, as the dispatcher allows).
        mutating func report(_ taskID: String, _ state: Shoal_Api_TaskState, exitCode: Int32 = 0) {
            var task = store.tasks[taskID]!
            task.status.state = state
            task.status.timestamp = Google_Protobuf_Timestamp(date: now)
            task.status.process.exitCode = exitCode
            if state == .failed { task.status.err = "task: non-zero exit (\(exitCode))" }
            commit([Shoal_Api_StoreAction(.update, task)])
        }

        /// Every agent runs what it was given and stops what it was told to.
        mutating func agentsConverge() {
            for task in store.tasks.sorted where !task.nodeID.isEmpty && task.status.state.rawValue >= Shoal_Api_TaskState.assigned.rawValue {
                if task.desiredState == .running && task.status.state.rawValue < Shoal_Api_TaskState.running.rawValue {
                    report(task.id, .running)
                } else if task.desiredState.rawValue > Shoal_Api_TaskState.running.rawValue
                    && task.status.state.rawValue <= Shoal_Api_TaskState.running.rawValue
                {
                    report(task.id, .shutdown)
                }
            }
            settle()
        }

        func tasks(of service: String) -> [Shoal_Api_Task] { store.tasks.sorted.filter { $0.serviceID == service } }
        func running(_ service: String) -> [Shoal_Api_Task] {
            tasks(of: service).filter { $0.desiredState == .running && $0.status.state.rawValue <= Shoal_Api_TaskState.running.rawValue }
        }
    }

    @Test func theSwarmGetsAnIngressNetworkAndNetworksGetSubnetsAndVNIs() throws {
        var lab = Harness()
        lab.settle()
        let ingress = try #require(lab.store.networks.sorted.first { $0.spec.ingress })
        #expect(ingress.spec.annotations.name == "ingress" && ingress.subnet == "10.255.0.0/16" && ingress.vni == 4096)
        let front = lab.network("front")
        let back = lab.network("back")
        #expect(front.subnet == "10.0.0.0/24" && front.gateway == "10.0.0.1" && front.vni == 4097)
        #expect(back.subnet == "10.0.1.0/24" && back.vni == 4098)
        let given = lab.network("given", subnet: "172.28.0.0/16")
        #expect(given.subnet == "172.28.0.0/16" && given.gateway == "172.28.0.1")
        // Overlapping subnets are refused before anything is written.
        let allocator = NetworkAllocator(networks: lab.store.networks.sorted, services: [], tasks: [])
        var overlapping = Shoal_Api_NetworkSpec()
        overlapping.subnet = "172.28.5.0/24"
        #expect(allocator.refusal(of: overlapping)?.reason == .inUse)
        overlapping.subnet = "172.29.0.1/24"
        #expect(allocator.refusal(of: overlapping)?.reason == .invalidSpec)
        overlapping.subnet = ""
        overlapping.encrypted = true
        #expect(allocator.refusal(of: overlapping)?.message.contains("not supported yet") == true)
    }

    @Test func aReplicatedServiceSpreadsOverTheNodesWithAnAddressEachAndAVIP() throws {
        var lab = Harness()
        let front = lab.network("front")
        let web = lab.service("my-web", networks: [front.id])
        let tasks = lab.tasks(of: web)
        #expect(tasks.count == 3)
        #expect(Set(tasks.map(\.nodeID)) == ["n1", "n2", "n3"])
        #expect(tasks.allSatisfy { $0.status.state == .assigned && $0.desiredState == .running })
        #expect(Set(tasks.map(\.slot)) == [1, 2, 3])
        #expect(Set(tasks.map(\.annotations.name)) == ["my-web.1", "my-web.2", "my-web.3"])
        let service = try #require(lab.store.services[web])
        let vip = try #require(service.endpoint.virtualIps.first)
        #expect(vip.networkID == front.id && vip.addr.hasPrefix("10.0.0.") && vip.addr.hasSuffix("/24"))
        let addresses = tasks.flatMap { $0.networks.flatMap(\.addresses) } + [vip.addr]
        #expect(Set(addresses).count == 4 && !addresses.contains("10.0.0.1/24"))
        #expect(tasks.allSatisfy { $0.networks.first?.network.vni == front.vni && $0.endpoint == service.endpoint })
        // A pass over its own result has nothing left to do.
        #expect(ClusterReconciler.reconcile(lab.store, now: lab.now, newID: { "x" }).actions.isEmpty)
    }

    @Test func scalingDownRemovesFromTheBusiestNodesAndScalingUpRefillsSlots() throws {
        var lab = Harness()
        let web = lab.service("web", replicas: 6)
        lab.agentsConverge()
        #expect(lab.running(web).count == 6)
        #expect(Dictionary(grouping: lab.running(web), by: \.nodeID).values.map(\.count).sorted() == [2, 2, 2])
        lab.scale(web, to: 3)
        lab.agentsConverge()
        let left = lab.running(web)
        #expect(left.count == 3 && Set(left.map(\.nodeID)).count == 3, "\(left.map { ($0.slot, $0.nodeID) })")
        // The removed slots' tasks are deleted once their agents stopped them.
        #expect(lab.tasks(of: web).count == 3)
        lab.scale(web, to: 5)
        lab.agentsConverge()
        #expect(lab.running(web).count == 5 && Set(lab.running(web).map(\.slot)).count == 5)
        #expect(Set(lab.running(web).map(\.slot)) == [1, 2, 3, 4, 5])
    }

    @Test func aFailingTaskIsRestartedAsItsPolicySaysThenLeftFailed() throws {
        var lab = Harness()
        let job = lab.service("job", replicas: 1) { spec in
            spec.task.restart.condition = .onFailure
            spec.task.restart.maxAttempts = 3
            spec.task.restart.delay = Google_Protobuf_Duration(timeInterval: 5)
        }
        for _ in 0..<10 {
            lab.agentsConverge()
            guard let current = lab.running(job).first ?? lab.tasks(of: job).first(where: { $0.desiredState == .running }) else { break }
            if current.status.state == .failed { lab.now += 6; lab.settle(); continue }
            lab.report(current.id, .failed, exitCode: 1)
            // Not before the delay.
            lab.settle()
            #expect(lab.tasks(of: job).filter { $0.desiredState == .running }.count == 1)
            lab.now += 6
            lab.settle()
        }
        let history = lab.tasks(of: job)
        // The first run and exactly three restarts, every one failed with its exit code.
        #expect(history.count == 4, "\(history.map { ($0.status.state, $0.desiredState) })")
        #expect(history.allSatisfy { $0.status.state == .failed && $0.status.err == "task: non-zero exit (1)" })
        #expect(history.filter { $0.desiredState == .running }.count == 1)
    }

    @Test func aCompletedTaskIsNotRestartedOnFailureOnly() throws {
        var lab = Harness()
        let job = lab.service("once", replicas: 1) { $0.task.restart.condition = .onFailure }
        lab.agentsConverge()
        lab.report(try #require(lab.running(job).first).id, .complete)
        lab.now += 60
        lab.settle()
        #expect(lab.tasks(of: job).count == 1)
    }

    @Test func placementHonoursConstraintsAndExplainsWhatCannotBePlaced() throws {
        var lab = Harness()
        let managers = lab.service("on-managers", replicas: 3) { $0.task.placement.constraints = ["node.role==manager"] }
        #expect(lab.tasks(of: managers).allSatisfy { $0.nodeID == "n1" && $0.status.state == .assigned })
        let big = lab.service("big", replicas: 1) { $0.task.resources.reservations.memoryBytes = 4 << 30 }
        let pending = try #require(lab.tasks(of: big).first)
        #expect(pending.status.state == .pending && pending.nodeID.isEmpty)
        #expect(pending.status.err == "no suitable node (insufficient resources on 3 nodes)")
        let mixed = lab.service("mixed", replicas: 1) { spec in
            spec.task.resources.reservations.memoryBytes = 768 << 20
            spec.task.placement.constraints = ["node.hostname!=n3", "node.labels.zone==a"]
        }
        _ = mixed
        lab.scale(big, to: 1)
        let other = try #require(lab.tasks(of: "svc-mixed").first)
        #expect(other.status.err == "no suitable node (scheduling constraints not satisfied on 3 nodes)")
        // Reservations add up: three tasks of 600 MiB fit one per 1 GiB node, a fourth nowhere.
        let heavy = lab.service("heavy", replicas: 4) { $0.task.resources.reservations.memoryBytes = 600 << 20 }
        let placed = lab.tasks(of: heavy).filter { $0.status.state == .assigned }
        #expect(placed.count == 3 && Set(placed.map(\.nodeID)).count == 3)
        #expect(lab.tasks(of: heavy).contains { $0.status.err == "no suitable node (insufficient resources on 3 nodes)" })
    }

    @Test func constraintsParseAsSwarmWritesThemAndRefuseAnythingElse() throws {
        #expect(try Constraint("node.role == manager") == Constraint("node.role==manager"))
        #expect(try Constraint("node.labels.zone!=east").key == .label("zone"))
        for bad in ["node.role=manager", "node.colour==red", "node.role==boss", "node.ip==300.1.1.1", "node.id==", "a==b==c"] {
            #expect(throws: APIError.self, "\(bad)") { try Constraint(bad) }
        }
        let node = Harness.node("n9", role: .worker, index: 0)
        #expect(try Constraint("node.ip==192.0.2.11").matches(node))
        #expect(try Constraint("node.ip==192.0.2.0/24").matches(node))
        #expect(try Constraint("node.hostname==N9").matches(node))
        #expect(try !Constraint("node.role==manager").matches(node))
    }

    @Test func aDownOrDrainedNodesTasksAreReplacedElsewhere() throws {
        var lab = Harness()
        let web = lab.service("web", replicas: 3)
        lab.agentsConverge()
        var n3 = lab.store.nodes["n3"]!
        n3.status.state = .down
        lab.commit([Shoal_Api_StoreAction(.update, n3)])
        lab.settle()
        lab.agentsConverge()
        let running = lab.running(web).filter { $0.status.state == .running }
        #expect(running.count == 3 && !running.contains { $0.nodeID == "n3" })
        var n2 = lab.store.nodes["n2"]!
        n2.spec.availability = .drain
        lab.commit([Shoal_Api_StoreAction(.update, n2)])
        lab.settle()
        lab.agentsConverge()
        let afterDrain = lab.running(web).filter { $0.status.state == .running }
        #expect(afterDrain.count == 3 && afterDrain.allSatisfy { $0.nodeID == "n1" })
        // The drained node's task shows in the history as shut down.
        #expect(lab.tasks(of: web).contains { $0.nodeID == "n2" && $0.status.state == .shutdown && $0.desiredState == .shutdown })
    }

    @Test func aGlobalServiceRunsOncePerNodeAndFollowsNodesJoining() throws {
        var lab = Harness()
        let agent = lab.service("agent", replicas: nil)
        #expect(Set(lab.tasks(of: agent).map(\.nodeID)) == ["n1", "n2", "n3"])
        #expect(lab.tasks(of: agent).allSatisfy { $0.slot == 0 && $0.annotations.name == "agent.\($0.nodeID)" })
        lab.commit([Shoal_Api_StoreAction(.create, Harness.node("n4", role: .worker, index: 3))])
        lab.settle()
        #expect(lab.tasks(of: agent).count == 4 && lab.tasks(of: agent).contains { $0.nodeID == "n4" && $0.status.state == .assigned })
    }

    @Test func removingAServiceStopsThenDeletesItsTasksAndFreesTheirAddresses() throws {
        var lab = Harness()
        let front = lab.network("front")
        let web = lab.service("web", networks: [front.id])
        lab.agentsConverge()
        let service = lab.store.services[web]!
        var actions = [Shoal_Api_StoreAction(.remove, service)]
        for var task in lab.tasks(of: web) {
            task.desiredState = .remove
            actions.append(Shoal_Api_StoreAction(.update, task))
        }
        lab.commit(actions)
        lab.settle()
        #expect(lab.tasks(of: web).count == 3)  // Still running until their agents stop them.
        lab.agentsConverge()
        #expect(lab.tasks(of: web).isEmpty)
        let allocator = NetworkAllocator(networks: lab.store.networks.sorted, services: lab.store.services.sorted, tasks: lab.store.tasks.sorted)
        #expect(allocator.pools[front.id]?.used.isEmpty == true)
    }

    @Test func theHistoryOfASlotIsKeptToTheClustersLimit() throws {
        var lab = Harness()
        let job = lab.service("flaky", replicas: 1) { spec in
            spec.task.restart.condition = .any
            spec.task.restart.delay = Google_Protobuf_Duration(timeInterval: 0)
        }
        for _ in 0..<8 {
            lab.agentsConverge()
            guard let current = lab.running(job).first else { break }
            lab.report(current.id, .failed, exitCode: 2)
            lab.settle()
        }
        #expect(lab.tasks(of: job).count == 5)
        #expect(lab.tasks(of: job).filter { $0.desiredState == .running }.count == 1)
    }

    @Test func addressPoolsHandOutEachAddressOnceSeriallyAndSayWhenFull() throws {
        var pool = AddressPool(subnet: try #require(IPv4Prefix("10.9.0.0/29")), gateway: try #require(IPv4Address("10.9.0.1")))
        #expect(pool.capacity == 5)
        var given: [String] = []
        while let address = pool.next() { given.append("\(address)") }
        #expect(given == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"])
        #expect(!pool.reserve(try #require(IPv4Address("10.9.0.3"))))
        #expect(!pool.reserve(try #require(IPv4Address("10.9.0.7"))))  // broadcast
    }
}

/// `bench/scheduler.sh`'s run, small: every task placed, evenly, only where the constraint
/// allows, in one pass committed to the store.
@Suite struct SchedulingRunTests {
    @Test func aLargeServiceIsPlacedEvenlyInOnePass() {
        for constrained in [false, true] {
            let run = SchedulingRun.run(nodes: 200, tasks: 3_000, constrained: constrained)
            #expect(run.assigned == 3_000 && run.misplaced == 0 && run.passes == 1, "\(run)")
            #expect(run.fewestPerNode == (constrained ? 30 : 15) && run.mostPerNode == run.fewestPerNode, "\(run)")
        }
    }
}

/// The leader's gossip keys: one at once, a new one each interval, three kept, the newest
/// primary (highest Lamport time).
@Suite struct KeyRotationTests {
    @Test func keysAreMadeRotatedAndKeptThree() throws {
        var cluster = Shoal_Api_Cluster()
        cluster.spec.networkEncryption.keyRotationInterval = Google_Protobuf_Duration(timeInterval: 3600)
        var now = Date(timeIntervalSince1970: 1_000_000)
        var made = 0
        let makeKey = { () -> [UInt8] in
            made += 1
            return [UInt8](repeating: UInt8(made), count: KeyRotation.keyBytes)
        }
        cluster = try #require(KeyRotation.rotated(cluster, now: now, makeKey: makeKey))
        #expect(KeyRotation.gossipKeys(of: cluster).count == 1 && cluster.encryptionKeyLamportClock == 1)
        #expect(KeyRotation.rotated(cluster, now: now.addingTimeInterval(3599), makeKey: makeKey) == nil)
        for _ in 0..<4 {
            now += 3600
            cluster = try #require(KeyRotation.rotated(cluster, now: now, makeKey: makeKey))
        }
        let keys = KeyRotation.gossipKeys(of: cluster)
        #expect(keys.map(\.lamportTime) == [3, 4, 5] && keys.last?.key == Data(repeating: 5, count: 32))
        #expect(keys.allSatisfy { $0.subsystem == .gossip && $0.key.count == 32 })
    }
}
