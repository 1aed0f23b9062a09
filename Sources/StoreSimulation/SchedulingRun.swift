// A synthetic cluster scheduled by the leader's real reconciliation pass, every pass committed
// to the real store state machine (as Raft would apply it, without the I/O): how long a
// service of T replicas on N nodes takes from its creation to every task's assignment
// committed — the figure swarmkit's own scheduler benchmark gives (ANCHORS.md). Used by
// `shoal scheduler-bench` (bench/scheduler.sh) and, small, by the tests.

import ClusterAPI
import ControlPlane
import Foundation
import Raft
import SwiftProtobuf

/// One scheduling run and what it produced.
public struct SchedulingRun: Sendable {
    /// What was asked.
    public var nodes: Int
    public var tasks: Int
    /// Half the nodes carry `zone=a`; a constrained service asks for `node.labels.zone==a`.
    public var constrained: Bool
    /// Seconds from the service's creation to the last assignment committed.
    public var seconds: Double = 0
    /// Reconciliation passes (store transactions) it took.
    public var passes = 0
    /// Tasks assigned, and tasks per node (fewest and most, over the nodes that may run them).
    public var assigned = 0
    public var fewestPerNode = 0
    public var mostPerNode = 0
    /// Tasks placed on a node the constraint excludes (must be 0).
    public var misplaced = 0

    /// Runs it.
    public static func run(nodes: Int, tasks: Int, constrained: Bool) -> SchedulingRun {
        var run = SchedulingRun(nodes: nodes, tasks: tasks, constrained: constrained)
        var store = ClusterStore()
        var nextID = 0
        let now = Date()
        func commit(_ actions: [Shoal_Api_StoreAction]) {
            var transaction = Shoal_Api_StoreTransaction()
            transaction.actions = actions
            transaction.proposedAt = Google_Protobuf_Timestamp(date: now)
            let entry = Entry(term: 1, index: store.appliedIndex + 1, kind: .normal, data: try! transaction.serializedBytes())
            guard case .committed = store.apply(entry) else { preconditionFailure("the store refused a pass") }
        }
        var cluster = Shoal_Api_Cluster()
        cluster.id = "cluster"
        cluster.spec = ClusterDefaults.spec(certificateExpiry: nil, heartbeatPeriod: nil)
        var actions = [Shoal_Api_StoreAction(.create, cluster)]
        for index in 0..<nodes {
            var node = Shoal_Api_Node()
            node.id = String(format: "node%06d", index)
            node.spec.annotations.name = node.id
            node.spec.annotations.labels["zone"] = index % 2 == 0 ? "a" : "b"
            node.spec.availability = .active
            node.role = index < 3 ? .manager : .worker
            node.status.state = .ready
            node.status.addr = "10.\(index / 65536 % 256).\(index / 256 % 256).\(index % 256):2377"
            node.nodeDescription.hostname = node.id
            node.nodeDescription.resources.nanoCpus = 64_000_000_000
            node.nodeDescription.resources.memoryBytes = 256 << 30
            actions.append(Shoal_Api_StoreAction(.create, node))
        }
        commit(actions)
        // The ingress network, made before the clock starts (as at swarm init).
        while case let result = ClusterReconciler.reconcile(store, now: now, newID: { nextID += 1; return "init\(nextID)" }), !result.actions.isEmpty {
            commit(result.actions)
        }

        let started = ContinuousClock.now
        var service = Shoal_Api_Service()
        service.id = "service"
        service.spec.annotations.name = "bench"
        service.spec.task.process.command = ["true"]
        service.spec.task.resources.reservations.memoryBytes = 1 << 20
        if constrained { service.spec.task.placement.constraints = ["node.labels.zone==a"] }
        service.spec.replicated.replicas = UInt64(tasks)
        service.specVersion.index = 1
        commit([Shoal_Api_StoreAction(.create, service)])
        // Passes until every task's assignment is committed (bounded: 100 passes).
        var elapsed = Duration.zero
        for _ in 0..<100 {
            let result = ClusterReconciler.reconcile(store, now: now) {
                nextID += 1
                return String(nextID, radix: 36)
            }
            if result.actions.isEmpty { break }
            commit(result.actions)
            run.passes += 1
            elapsed = ContinuousClock.now - started
            let assigned = store.tasks.byID.values.lazy.filter { $0.serviceID == service.id && $0.status.state == .assigned }.count
            if assigned == tasks { break }
        }
        run.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

        var perNode: [String: Int] = [:]
        for task in store.tasks.byID.values where task.serviceID == service.id && task.status.state == .assigned {
            run.assigned += 1
            perNode[task.nodeID, default: 0] += 1
            if constrained, store.nodes[task.nodeID]?.spec.annotations.labels["zone"] != "a" { run.misplaced += 1 }
        }
        let eligible = store.nodes.byID.values.filter { !constrained || $0.spec.annotations.labels["zone"] == "a" }.map(\.id)
        let counts = eligible.map { perNode[$0] ?? 0 }
        run.fewestPerNode = counts.min() ?? 0
        run.mostPerNode = counts.max() ?? 0
        return run
    }
}
