// One reconciliation pass of the leader's control loops over a store snapshot: orchestrators
// (tasks created and retired), allocator (networks, VIPs, task addresses), scheduler (nodes
// for pending tasks), reaper (finished tasks deleted). A pure function of the snapshot, the
// clock and the ID source, so the simulator and the tests run the same code the leader does,
// and a pass over its own result finds nothing left to do.

import ClusterAPI
import Foundation

/// The control loops' decisions for one store version.
public struct Reconciliation: Sendable {
    /// Store actions to commit as one transaction; empty when the store is as it should be.
    public var actions: [Shoal_Api_StoreAction]
    /// When a pass must run again even if nothing changes (a restart delay ends).
    public var wake: Date?
}

/// Tasks that share a spec (a service at one spec version), placed together.
private struct GroupKey: Hashable {
    let service: String
    let specVersion: UInt64
}

/// The leader's control loops as one pure pass.
public enum ClusterReconciler {
    /// What should change in `store` at `now`; `newID` names new objects.
    public static func reconcile(_ store: ClusterStore, now: Date, newID: () -> String) -> Reconciliation {
        var pass = ReconcilePass(store, now: now)
        ServiceOrchestrator.reconcile(&pass, newID: newID)
        AllocationPass.run(&pass, newID: newID)
        let tasks = pass.sortedTasks
        var scheduler = Scheduler(nodes: pass.nodes.values.sorted { $0.id < $1.id }, tasks: tasks, now: now)
        // Tasks of one service spec are placed as a group; a global task (its node given) alone.
        var groups: [GroupKey: [Shoal_Api_Task]] = [:]
        var order: [GroupKey] = []
        for var task in tasks where task.status.state == .pending && task.desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue {
            if task.nodeID.isEmpty {
                let key = GroupKey(service: task.serviceID, specVersion: task.specVersion.index)
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(task)
                continue
            }
            let before = task
            _ = scheduler.schedule(&task, now: now)
            if task != before { pass.update(task) }
        }
        for key in order {
            let group = groups[key]!
            for (before, after) in zip(group, scheduler.schedule(group: group, now: now)) where after != before { pass.update(after) }
        }
        let limit = pass.cluster.map { Int(clamping: $0.spec.orchestration.taskHistoryRetentionLimit) } ?? Int(ClusterDefaults.taskHistory)
        TaskReaper.reap(&pass, historyLimit: limit)
        return Reconciliation(actions: pass.actions, wake: pass.wake)
    }
}
