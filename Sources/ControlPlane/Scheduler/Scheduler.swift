// The scheduler: picks a node for every allocated task (PENDING, no node yet), as swarmkit's
// does. Nodes are filtered in swarm's order — ready and active, then resources, then
// constraints, then the service's max replicas per node — and the survivors ordered for
// spread: nodes where the service failed recently last, then fewest tasks of this service,
// then fewest tasks in all, then node ID (so a pass is deterministic). A task with no
// suitable node stays PENDING with swarm's explanation of why.

import ClusterAPI
import Foundation
import HeapModule
import SwiftProtobuf

/// One scheduling pass over a store snapshot.
struct Scheduler {
    /// What the scheduler tracks per node while it places tasks.
    struct Candidate {
        var node: Shoal_Api_Node
        /// CPU and memory not reserved by the node's tasks.
        var freeCPU: Int64
        var freeMemory: Int64
        /// Whether the node reports capacity at all (one that does not takes no reservation).
        var hasCapacity: Bool
        /// Active tasks on the node, by service ID, and in all.
        var tasksByService: [String: Int] = [:]
        var tasks = 0
        /// Services with a task that failed on this node within ``failureMemory``.
        var recentFailures: Set<String> = []
    }

    /// How long a failure keeps a node at the end of a service's order.
    static let failureMemory: TimeInterval = 5 * 60

    private(set) var candidates: [String: Candidate] = [:]
    /// Node IDs in ID order: the order ties are broken in.
    private let order: [String]

    /// The nodes and what the store's tasks already take of them at `now`.
    init(nodes: [Shoal_Api_Node], tasks: [Shoal_Api_Task], now: Date) {
        for node in nodes {
            let resources = node.nodeDescription.resources
            candidates[node.id] = Candidate(
                node: node, freeCPU: resources.nanoCpus, freeMemory: resources.memoryBytes,
                hasCapacity: resources.nanoCpus > 0 || resources.memoryBytes > 0)
        }
        order = candidates.keys.sorted()
        for task in tasks where !task.nodeID.isEmpty {
            guard var candidate = candidates[task.nodeID] else { continue }
            if task.holdsItsNode {
                // Only tasks placed already: one waiting to be placed is counted when it is.
                if task.status.state.rawValue >= Shoal_Api_TaskState.assigned.rawValue { candidate.take(task) }
            } else if task.status.state == .failed, now.timeIntervalSince(task.status.timestamp.date) < Self.failureMemory {
                candidate.recentFailures.insert(task.serviceID)
            }
            candidates[task.nodeID] = candidate
        }
    }

    /// Places `task` (PENDING): sets its node and ASSIGNED, or leaves it PENDING with the
    /// reason. Returns whether it was placed.
    mutating func schedule(_ task: inout Shoal_Api_Task, now: Date) -> Bool {
        let constraints = (try? Constraint.all(task.spec.placement)) ?? []
        let maxReplicas = task.spec.placement.maxReplicas
        var notReady = 0, noResources = 0, unsatisfied = 0, full = 0
        var best: String?
        var bestKey: (Int, Int, Int) = (.max, .max, .max)
        let considered = task.nodeID.isEmpty ? order : [task.nodeID]
        for id in considered {
            guard let candidate = candidates[id] else { notReady += 1; continue }
            let node = candidate.node
            guard node.status.state == .ready, node.spec.availability == .active else { notReady += 1; continue }
            guard candidate.fits(task.spec.resources.reservations) else { noResources += 1; continue }
            guard constraints.allSatisfy({ $0.matches(node) }) else { unsatisfied += 1; continue }
            let ofService = candidate.tasksByService[task.serviceID] ?? 0
            guard maxReplicas == 0 || ofService < maxReplicas else { full += 1; continue }
            let key = (candidate.recentFailures.contains(task.serviceID) ? 1 : 0, ofService, candidate.tasks)
            if best == nil || key < bestKey {
                best = id
                bestKey = key
            }
        }
        guard let chosen = best else {
            explain(&task, Self.reason(notReady: notReady, noResources: noResources, unsatisfied: unsatisfied, full: full), now: now)
            return false
        }
        assign(&task, to: chosen, now: now)
        return true
    }

    /// Marks `task` ASSIGNED to `node` and counts it there.
    private mutating func assign(_ task: inout Shoal_Api_Task, to node: String, now: Date) {
        task.nodeID = node
        task.status.state = .assigned
        task.status.message = "scheduler assigned task to node"
        task.status.err = ""
        task.status.timestamp = Google_Protobuf_Timestamp(date: now)
        candidates[node]!.take(task)
    }

    /// Leaves `task` PENDING with `explanation` (its timestamp moves only when the reason does).
    private func explain(_ task: inout Shoal_Api_Task, _ explanation: String, now: Date) {
        guard task.status.err != explanation else { return }
        task.status.err = explanation
        task.status.message = "pending task scheduling"
        task.status.timestamp = Google_Protobuf_Timestamp(date: now)
    }

    /// Swarm's words for why no node was suitable, filter by filter.
    private static func reason(notReady: Int, noResources: Int, unsatisfied: Int, full: Int) -> String {
        var reasons: [String] = []
        if notReady > 0 { reasons.append("\(notReady) node\(notReady == 1 ? "" : "s") not available for new tasks") }
        if noResources > 0 { reasons.append("insufficient resources on \(nodes(noResources))") }
        if unsatisfied > 0 { reasons.append("scheduling constraints not satisfied on \(nodes(unsatisfied))") }
        if full > 0 { reasons.append("max replicas per node limit exceed on \(nodes(full))") }
        return reasons.isEmpty ? "no suitable node" : "no suitable node (\(reasons.joined(separator: "; ")))"
    }

    // MARK: - Many tasks of one service

    /// Places a group of PENDING tasks that share one spec (a service's new tasks): the nodes
    /// are filtered by readiness and constraints once for the group, then each task takes the
    /// best node from a heap ordered as ``schedule(_:now:)`` orders them, so a group of T tasks
    /// on N nodes costs O(N + T log N) instead of O(T × N). Tasks that fit nowhere stay
    /// PENDING with swarm's reason. Returns the tasks, placed or explained.
    mutating func schedule(group tasks: [Shoal_Api_Task], now: Date) -> [Shoal_Api_Task] {
        guard let first = tasks.first else { return [] }
        let service = first.serviceID
        let constraints = (try? Constraint.all(first.spec.placement)) ?? []
        let reservations = first.spec.resources.reservations
        let maxReplicas = first.spec.placement.maxReplicas
        var notReady = 0, unsatisfied = 0, noResources = 0, full = 0
        var heap = Heap<Ranked>()
        for id in order {
            let candidate = candidates[id]!
            let node = candidate.node
            guard node.status.state == .ready, node.spec.availability == .active else { notReady += 1; continue }
            guard constraints.allSatisfy({ $0.matches(node) }) else { unsatisfied += 1; continue }
            heap.insert(Ranked(candidate, service: service, id: id))
        }
        var placed: [Shoal_Api_Task] = []
        placed.reserveCapacity(tasks.count)
        for var task in tasks {
            var chosen: String?
            while chosen == nil, let best = heap.popMin() {
                let candidate = candidates[best.id]!
                if !candidate.fits(reservations) {
                    noResources += 1  // Reservations only grow within a pass: it stays out.
                } else if maxReplicas > 0 && (candidate.tasksByService[service] ?? 0) >= maxReplicas {
                    full += 1
                } else {
                    chosen = best.id
                }
            }
            guard let id = chosen else {
                explain(&task, Self.reason(notReady: notReady, noResources: noResources, unsatisfied: unsatisfied, full: full), now: now)
                placed.append(task)
                continue
            }
            assign(&task, to: id, now: now)
            heap.insert(Ranked(candidates[id]!, service: service, id: id))
            placed.append(task)
        }
        return placed
    }

    /// A node's place in a group's order: recent failures of the service last, then fewest
    /// tasks of the service, then fewest tasks, then node ID.
    struct Ranked: Comparable {
        let failed: Int
        let ofService: Int
        let total: Int
        let id: String

        init(_ candidate: Candidate, service: String, id: String) {
            failed = candidate.recentFailures.contains(service) ? 1 : 0
            ofService = candidate.tasksByService[service] ?? 0
            total = candidate.tasks
            self.id = id
        }

        static func < (a: Ranked, b: Ranked) -> Bool { (a.failed, a.ofService, a.total, a.id) < (b.failed, b.ofService, b.total, b.id) }
    }

    private static func nodes(_ count: Int) -> String { count == 1 ? "1 node" : "\(count) nodes" }
}

extension Scheduler.Candidate {
    /// Whether the node has `reservations` left.
    func fits(_ reservations: Shoal_Api_Resources) -> Bool {
        if reservations.nanoCpus == 0 && reservations.memoryBytes == 0 { return true }
        return hasCapacity && reservations.nanoCpus <= freeCPU && reservations.memoryBytes <= freeMemory
    }

    /// Counts `task` on the node and takes its reservations.
    mutating func take(_ task: Shoal_Api_Task) {
        freeCPU -= task.spec.resources.reservations.nanoCpus
        freeMemory -= task.spec.resources.reservations.memoryBytes
        tasksByService[task.serviceID, default: 0] += 1
        tasks += 1
    }
}

extension Shoal_Api_Task {
    /// True while the task occupies its node: meant to run and not ended.
    var holdsItsNode: Bool {
        desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue && status.state.rawValue <= Shoal_Api_TaskState.running.rawValue
    }
}
