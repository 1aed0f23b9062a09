// The orchestrators, as swarmkit's: they compare each service's desired tasks with the tasks
// the store holds and create or retire tasks; they never run anything. A replicated service
// has slots 1…N, each with one task meant to run; a global service one task per eligible
// node. Within a slot, a task that ended, whose node went Down, was drained or stopped
// matching the constraints is retired and replaced (after the restart policy agrees); extra
// tasks of one slot — two leaders' work meeting after a leader change — are retired, the
// newest kept, so nothing is lost and nothing doubled.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// Creating and retiring tasks for every service.
enum ServiceOrchestrator {
    /// Runs both orchestrators over `pass`; `newID` names the tasks it creates.
    static func reconcile(_ pass: inout ReconcilePass, newID: () -> String) {
        var bySlot: [SlotKey: [Shoal_Api_Task]] = [:]
        for task in pass.sortedTasks {
            guard let service = pass.services[task.serviceID] else {
                // Its service was removed: stop it and let the reaper delete it.
                if task.desiredState.rawValue < Shoal_Api_TaskState.remove.rawValue {
                    var task = task
                    task.desiredState = .remove
                    pass.update(task)
                }
                continue
            }
            bySlot[SlotKey(task, global: service.isGlobal), default: []].append(task)
        }
        for service in pass.services.values.sorted(by: { $0.id < $1.id }) {
            let slots = bySlot.filter { $0.key.serviceID == service.id }
            if service.isGlobal {
                reconcileGlobal(service, slots: slots, in: &pass, newID: newID)
            } else {
                reconcileReplicated(service, slots: slots, in: &pass, newID: newID)
            }
        }
    }

    // MARK: - Replicated

    private static func reconcileReplicated(
        _ service: Shoal_Api_Service, slots: [SlotKey: [Shoal_Api_Task]], in pass: inout ReconcilePass, newID: () -> String
    ) {
        var occupied: [UInt64: Shoal_Api_Task] = [:]
        for (key, history) in slots {
            if let current = keepOne(history, in: &pass) { occupied[key.slot] = current }
        }
        let replicas = Int(service.spec.replicated.replicas)
        if occupied.count > replicas {
            // Scale down: leave the busiest nodes first, the highest slots first among equals.
            var perNode: [String: Int] = [:]
            for task in occupied.values { perNode[task.nodeID, default: 0] += 1 }
            let doomed = occupied.values.sorted { a, b in
                let (na, nb) = (perNode[a.nodeID] ?? 0, perNode[b.nodeID] ?? 0)
                return na != nb ? na > nb : a.slot > b.slot
            }.prefix(occupied.count - replicas)
            for var task in doomed {
                task.desiredState = .remove
                pass.update(task)
                occupied[task.slot] = nil
                perNode[task.nodeID, default: 1] -= 1
            }
        }
        for (slot, task) in occupied.sorted(by: { $0.key < $1.key }) {
            superviseSlot(task, history: slots[SlotKey(service: service.id, slot: slot, node: "")] ?? [], service: service, in: &pass, newID: newID)
        }
        var slot: UInt64 = 1
        var missing = replicas - occupied.count
        while missing > 0 {
            if occupied[slot] == nil {
                pass.create(newTask(for: service, slot: slot, node: "", id: newID(), now: pass.now))
                missing -= 1
            }
            slot += 1
        }
    }

    // MARK: - Global

    private static func reconcileGlobal(
        _ service: Shoal_Api_Service, slots: [SlotKey: [Shoal_Api_Task]], in pass: inout ReconcilePass, newID: () -> String
    ) {
        let constraints = (try? Constraint.all(service.spec.task.placement)) ?? []
        for node in pass.nodes.values.sorted(by: { $0.id < $1.id }) {
            let key = SlotKey(service: service.id, slot: 0, node: node.id)
            let current = keepOne(slots[key] ?? [], in: &pass)
            let eligible = node.status.state != .down && node.spec.availability == .active
                && constraints.allSatisfy { $0.matches(node) }
            if let current {
                superviseSlot(current, history: slots[key] ?? [], service: service, in: &pass, newID: newID)
            } else if eligible {
                pass.create(newTask(for: service, slot: 0, node: node.id, id: newID(), now: pass.now))
            }
        }
        // Tasks on nodes that left the swarm.
        for (key, history) in slots where pass.nodes[key.node] == nil {
            for var task in history where task.desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue {
                task.desiredState = .remove
                pass.update(task)
            }
        }
    }

    // MARK: - One slot

    /// The slot's one task meant to run, the others of it retired. Nil when none is.
    private static func keepOne(_ history: [Shoal_Api_Task], in pass: inout ReconcilePass) -> Shoal_Api_Task? {
        let runnable = history.filter { $0.desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue }
            .sorted { ($0.meta.createdAt.date, $0.id) > ($1.meta.createdAt.date, $1.id) }
        for var extra in runnable.dropFirst() {
            extra.desiredState = .shutdown
            pass.update(extra)
        }
        return runnable.first
    }

    /// Replaces the slot's task when it ended, its node failed it, or it no longer belongs
    /// where it is, as the restart policy allows.
    private static func superviseSlot(
        _ task: Shoal_Api_Task, history: [Shoal_Api_Task], service: Shoal_Api_Service, in pass: inout ReconcilePass,
        newID: () -> String
    ) {
        let ended = task.status.state.rawValue > Shoal_Api_TaskState.running.rawValue
        let nodeFailed: Bool
        if task.nodeID.isEmpty {
            nodeFailed = false
        } else if let node = pass.nodes[task.nodeID] {
            let constraints = (try? Constraint.all(task.spec.placement)) ?? []
            nodeFailed = node.status.state == .down || node.spec.availability != .active
                || !constraints.allSatisfy { $0.matches(node) }
        } else {
            nodeFailed = true
        }
        guard ended || nodeFailed else { return }
        switch RestartSupervisor.decide(task, nodeFailed: nodeFailed && !ended, history: history, now: pass.now) {
        case .giveUp:
            // A drained or mismatched node still gives up its task, replacement or not.
            if nodeFailed && !ended {
                var retired = task
                retired.desiredState = .shutdown
                pass.update(retired)
            }
        case .wait(let until):
            pass.wake(at: until)
        case .restart:
            var retired = task
            retired.desiredState = .shutdown
            pass.update(retired)
            // A global slot belongs to its node; a node that cannot run it gets none.
            if service.isGlobal && nodeFailed { return }
            pass.create(newTask(for: service, slot: task.slot, node: service.isGlobal ? task.nodeID : "", id: newID(), now: pass.now))
        }
    }

    /// A new task for `service` in `slot` (replicated) or on `node` (global).
    static func newTask(for service: Shoal_Api_Service, slot: UInt64, node: String, id: String, now: Date) -> Shoal_Api_Task {
        var task = Shoal_Api_Task()
        task.id = id
        task.spec = service.spec.task
        task.specVersion = service.specVersion
        task.serviceID = service.id
        task.slot = slot
        task.nodeID = node
        task.annotations.name = "\(service.spec.annotations.name).\(service.isGlobal ? node : String(slot))"
        task.serviceAnnotations = service.spec.annotations
        task.desiredState = .running
        task.status.state = .new
        task.status.message = "created"
        task.status.timestamp = Google_Protobuf_Timestamp(date: now)
        task.endpoint = service.endpoint
        return task
    }
}

/// A service's slot: (service, slot number) for replicated services, (service, node) for
/// global ones.
struct SlotKey: Hashable {
    let serviceID: String
    let slot: UInt64
    let node: String

    init(service: String, slot: UInt64, node: String) {
        serviceID = service
        self.slot = slot
        self.node = node
    }

    init(_ task: Shoal_Api_Task, global: Bool) {
        self.init(service: task.serviceID, slot: global ? 0 : task.slot, node: global ? task.nodeID : "")
    }
}
