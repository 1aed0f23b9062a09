// The working copy one reconciliation pass edits: the store's networks, services and tasks at
// one version, and which of them the pass created, changed or removed. The pass ends as one
// store transaction (many changes per Raft entry, as DESIGN §9 asks), every update carrying
// the version it read, so a pass that raced another writer is refused whole and redone.

import ClusterAPI
import Foundation

/// Objects of one pass, and its changes.
struct ReconcilePass {
    /// When the pass runs (the leader's clock), for status timestamps and restart delays.
    let now: Date
    /// The nodes; the allocator alone changes them (their ingress attachment).
    private(set) var nodes: [String: Shoal_Api_Node]
    /// The cluster object, if the swarm has one yet.
    let cluster: Shoal_Api_Cluster?
    private(set) var networks: [String: Shoal_Api_Network]
    private(set) var services: [String: Shoal_Api_Service]
    private(set) var tasks: [String: Shoal_Api_Task]
    /// The earliest time a later pass has something to do (a restart delay ending).
    private(set) var wake: Date?

    private var created: Set<String> = []
    private var changed: Set<String> = []
    private var removed: [String: Shoal_Api_StoreAction] = [:]
    /// Creation order, so that the transaction (and the IDs in it) is deterministic.
    private var order: [String] = []

    /// A pass over the objects of `store` at `now`.
    init(_ store: ClusterStore, now: Date) {
        self.now = now
        nodes = store.nodes.byID
        cluster = store.clusters.sorted.first
        networks = store.networks.byID
        services = store.services.byID
        tasks = store.tasks.byID
    }

    /// Tasks in ID order.
    var sortedTasks: [Shoal_Api_Task] { tasks.keys.sorted().map { tasks[$0]! } }

    // MARK: - Changes

    mutating func create(_ network: Shoal_Api_Network) {
        networks[network.id] = network
        record(created: network.id)
    }

    mutating func create(_ task: Shoal_Api_Task) {
        tasks[task.id] = task
        record(created: task.id)
    }

    mutating func update(_ node: Shoal_Api_Node) {
        nodes[node.id] = node
        record(changed: node.id)
    }

    mutating func update(_ network: Shoal_Api_Network) {
        networks[network.id] = network
        record(changed: network.id)
    }

    mutating func update(_ service: Shoal_Api_Service) {
        services[service.id] = service
        record(changed: service.id)
    }

    mutating func update(_ task: Shoal_Api_Task) {
        tasks[task.id] = task
        record(changed: task.id)
    }

    mutating func remove(task id: String) {
        guard let task = tasks.removeValue(forKey: id) else { return }
        if created.remove(id) != nil { return }
        changed.remove(id)
        removed[id] = Shoal_Api_StoreAction(.remove, task)
    }

    /// Asks for another pass no later than `date`.
    mutating func wake(at date: Date) { wake = min(wake ?? date, date) }

    private mutating func record(created id: String) {
        if created.insert(id).inserted { order.append(id) }
    }

    private mutating func record(changed id: String) {
        guard !created.contains(id), changed.insert(id).inserted else { return }
        order.append(id)
    }

    /// The pass's changes as store actions, in the order they were made.
    var actions: [Shoal_Api_StoreAction] {
        var actions: [Shoal_Api_StoreAction] = []
        for id in order {
            let kind: Shoal_Api_StoreActionKind = created.contains(id) ? .create : .update
            guard created.contains(id) || changed.contains(id) else { continue }
            if let network = networks[id] {
                actions.append(Shoal_Api_StoreAction(kind, network))
            } else if let service = services[id] {
                actions.append(Shoal_Api_StoreAction(kind, service))
            } else if let task = tasks[id] {
                actions.append(Shoal_Api_StoreAction(kind, task))
            } else if let node = nodes[id] {
                actions.append(Shoal_Api_StoreAction(kind, node))
            }
        }
        actions += removed.keys.sorted().map { removed[$0]! }
        return actions
    }
}
