// The task reaper, as swarmkit's: deletes tasks that are done with — those meant to be
// removed once they stopped (scale down, service rm), and history beyond the cluster's
// limit per slot (5 by default). A task is only deleted when no node can still be running it:
// it ended, never reached a node, or its node is Down or gone. Deleting a task frees its
// addresses (the allocator counts only what the store holds).

import ClusterAPI

/// Deleting finished tasks in a pass.
enum TaskReaper {
    /// Deletes from `pass` what is done with, keeping `historyLimit` tasks per slot.
    static func reap(_ pass: inout ReconcilePass, historyLimit: Int) {
        // Only tasks that are not meant to run can go; most passes have none.
        guard pass.tasks.values.contains(where: { $0.desiredState.rawValue > Shoal_Api_TaskState.running.rawValue }) else { return }
        var bySlot: [SlotKey: [Shoal_Api_Task]] = [:]
        for task in pass.sortedTasks {
            let global = pass.services[task.serviceID]?.isGlobal ?? (task.slot == 0)
            bySlot[SlotKey(task, global: global), default: []].append(task)
        }
        for (_, history) in bySlot.sorted(by: { ($0.key.serviceID, $0.key.slot, $0.key.node) < ($1.key.serviceID, $1.key.slot, $1.key.node) }) {
            var kept: [Shoal_Api_Task] = []
            for task in history {
                if task.desiredState == .remove && stopped(task, in: pass) {
                    pass.remove(task: task.id)
                } else {
                    kept.append(task)
                }
            }
            // History: the oldest stopped tasks beyond the limit (the running one never).
            let limit = max(historyLimit, maxAttempts(kept) + 1)
            let old = kept.filter { $0.desiredState.rawValue > Shoal_Api_TaskState.running.rawValue && stopped($0, in: pass) }
                .sorted { ($0.meta.createdAt.date, $0.id) < ($1.meta.createdAt.date, $1.id) }
            let excess = kept.count - max(limit, 1)
            for task in old.prefix(max(excess, 0)) { pass.remove(task: task.id) }
        }
    }

    /// True when no agent can still be running `task`.
    static func stopped(_ task: Shoal_Api_Task, in pass: ReconcilePass) -> Bool {
        if task.status.state.rawValue > Shoal_Api_TaskState.running.rawValue { return true }
        if task.status.state.rawValue < Shoal_Api_TaskState.assigned.rawValue || task.nodeID.isEmpty { return true }
        guard let node = pass.nodes[task.nodeID] else { return true }
        return node.status.state == .down
    }

    /// The restart limit of the slot's tasks: their history is kept long enough to count it.
    private static func maxAttempts(_ tasks: [Shoal_Api_Task]) -> Int {
        tasks.map { $0.spec.hasRestart ? Int(clamping: $0.spec.restart.maxAttempts) : 0 }.max() ?? 0
    }
}
