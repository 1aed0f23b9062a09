// Whether, and when, a slot whose task ended (or whose node failed it) gets a new task: the
// service's restart policy — condition, delay, max attempts within a window — as swarm
// applies it. Attempts are counted from the slot's history in the store, not from memory,
// so a new leader counts exactly as the old one did.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// The restart decision for one slot.
enum RestartSupervisor {
    /// Swarm's default delay between the end of a task and the start of its replacement.
    static let defaultDelay: TimeInterval = 5

    /// What to do about a slot whose current task `task` is no longer running as it should.
    enum Decision: Equatable {
        /// Replace it now.
        case restart
        /// Replace it at this time (the restart delay has not passed).
        case wait(until: Date)
        /// Leave it as it is: the policy allows no (more) restarts.
        case giveUp
    }

    /// The decision for `task`, which ended at its status timestamp (or whose node failed it,
    /// `nodeFailed`), given the slot's `history` (every task of the slot, the current one
    /// included) at `now`.
    static func decide(_ task: Shoal_Api_Task, nodeFailed: Bool, history: [Shoal_Api_Task], now: Date) -> Decision {
        let policy = task.spec.restart
        let condition = task.spec.hasRestart ? policy.condition : .any
        switch condition {
        case .none: return .giveUp
        case .onFailure where !nodeFailed && task.status.state == .complete: return .giveUp
        default: break
        }
        if task.spec.hasRestart, policy.maxAttempts > 0 {
            let windowStart = policy.hasWindow && policy.window.timeInterval > 0 ? now.addingTimeInterval(-policy.window.timeInterval) : .distantPast
            // Every task of the slot after its first is one restart; within the window, those
            // created since its start.
            let created = history.map(\.meta.createdAt.date).sorted()
            let restarts = created.dropFirst().filter { $0 >= windowStart }.count
            if restarts >= Int(policy.maxAttempts) { return .giveUp }
        }
        if nodeFailed { return .restart }
        let delay = task.spec.hasRestart && policy.hasDelay ? policy.delay.timeInterval : defaultDelay
        let due = task.status.timestamp.date.addingTimeInterval(delay)
        return due <= now ? .restart : .wait(until: due)
    }
}
