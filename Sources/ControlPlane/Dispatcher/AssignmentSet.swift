// What one node must know to do its work, as swarmkit's dispatcher hands it down: the tasks
// placed on it (whatever their desired state, until they are deleted), the networks those
// tasks attach to plus `ingress`, and their services (VIPs and modes, for DNS and the load
// balancer). The stream sends the complete set first, then only what changed between two
// sets, so an agent's view is the store's without a gap.

import ClusterAPI

/// One node's assignments at one store version.
struct AssignmentSet: Equatable {
    /// Each assignment by object ID, with the store version it was written at.
    private(set) var items: [String: (version: UInt64, assignment: Shoal_Api_Assignment)] = [:]

    static func == (lhs: AssignmentSet, rhs: AssignmentSet) -> Bool {
        lhs.items.count == rhs.items.count && lhs.items.allSatisfy { rhs.items[$0.key]?.version == $0.value.version }
    }

    /// The set of `nodeID` in `store`.
    init(for nodeID: String, in store: ClusterStore) {
        var networkIDs: Set<String> = []
        var serviceIDs: Set<String> = []
        for task in store.tasks.byID.values
        where task.nodeID == nodeID && task.status.state.rawValue >= Shoal_Api_TaskState.assigned.rawValue {
            add(.task(task), id: task.id, version: task.meta.version.index)
            networkIDs.formUnion(task.networks.map(\.network.id))
            serviceIDs.insert(task.serviceID)
        }
        for network in store.networks.byID.values where network.vni != 0 && (network.spec.ingress || networkIDs.contains(network.id)) {
            add(.network(network), id: network.id, version: network.meta.version.index)
        }
        for id in serviceIDs {
            guard let service = store.services[id] else { continue }
            add(.service(service), id: id, version: service.meta.version.index)
        }
    }

    private mutating func add(_ item: Shoal_Api_Assignment.OneOf_Item, id: String, version: UInt64) {
        var assignment = Shoal_Api_Assignment()
        assignment.item = item
        items[id] = (version, assignment)
    }

    /// Every assignment, as the changes of a COMPLETE message (networks first, then services,
    /// then tasks, each in ID order, so an agent meets a network before its tasks).
    var complete: [Shoal_Api_AssignmentChange] {
        ordered(items.keys).map { Self.change(.update, items[$0]!.assignment) }
    }

    /// What turns `self` into `next`: updates for what is new or newer, removals for what went.
    func changes(to next: AssignmentSet) -> [Shoal_Api_AssignmentChange] {
        let updated = next.items.filter { items[$0.key]?.version != $0.value.version }
        let removed = items.filter { next.items[$0.key] == nil }
        return Self.ordered(updated.keys, in: next).map { Self.change(.update, next.items[$0]!.assignment) }
            + Self.ordered(removed.keys, in: self).reversed().map { Self.change(.remove, items[$0]!.assignment) }
    }

    private func rank(_ id: String) -> Int {
        switch items[id]?.assignment.item {
        case .network: 0
        case .service: 1
        default: 2
        }
    }

    private func ordered(_ ids: some Sequence<String>) -> [String] { ids.sorted { (rank($0), $0) < (rank($1), $1) } }
    private static func ordered(_ ids: some Sequence<String>, in set: AssignmentSet) -> [String] { set.ordered(ids) }

    private static func change(_ action: Shoal_Api_AssignmentAction, _ assignment: Shoal_Api_Assignment) -> Shoal_Api_AssignmentChange {
        var change = Shoal_Api_AssignmentChange()
        change.action = action
        change.assignment = assignment
        return change
    }
}
