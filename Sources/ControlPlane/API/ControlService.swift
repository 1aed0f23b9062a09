// The Control service: the objects' API for the CLI (through any manager's Unix socket) and
// for other managers (forwarded calls on 2377). Each call runs on the leader: a follower
// forwards it whole. Users' specs are validated and written here; what follows from them —
// addresses, tasks, placement — is the leader's control loops' work (Orchestrator/).

import ClusterAPI
import Foundation
import GRPCCore
import PKI
import Raft

struct ControlService: Shoal_Api_Control.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer
    private var manager: Manager { get throws(APIError) { try handle.require() } }

    /// Checks the caller, then runs `local` on the leader (or `forward` to it).
    private func call<T: Sendable>(
        _ context: ServerContext, _ local: () async throws(APIError) -> T, forward: @escaping @Sendable (APIConnection) async throws -> T
    ) async throws -> T {
        do {
            try authorizer.requireManager(context)
            return try await manager.onLeader({ () async throws -> T in try await local() }, forward: forward)
        } catch {
            throw APIError(error).rpcError
        }
    }

    // MARK: - Nodes

    func getNode(request: Shoal_Api_GetNodeRequest, context: ServerContext) async throws -> Shoal_Api_GetNodeResponse {
        try await call(context) { () async throws(APIError) in
            let nodes = try await liveNodes()
            guard let node = try resolve(request.nodeID, in: nodes, kind: "node", name: { $0.spec.annotations.name }) else {
                throw APIError(.notFound, "no such node: \(request.nodeID)", objectID: request.nodeID)
            }
            var response = Shoal_Api_GetNodeResponse()
            response.node = node
            return response
        } forward: { try await $0.control.getNode(request) }
    }

    func listNodes(request: Shoal_Api_ListNodesRequest, context: ServerContext) async throws -> Shoal_Api_ListNodesResponse {
        try await call(context) { () async throws(APIError) in
            let filters = request.filters
            var response = Shoal_Api_ListNodesResponse()
            response.nodes = try await liveNodes().filter { node in
                (filters.names.isEmpty || filters.names.contains(node.spec.annotations.name))
                    && (filters.idPrefixes.isEmpty || filters.idPrefixes.contains { node.id.hasPrefix($0) })
                    && (filters.namePrefixes.isEmpty || filters.namePrefixes.contains { node.spec.annotations.name.hasPrefix($0) })
                    && (filters.roles.isEmpty || filters.roles.contains(node.role))
                    && filters.labels.allSatisfy { node.spec.annotations.labels[$0.key] == $0.value || $0.value.isEmpty && node.spec.annotations.labels[$0.key] != nil }
            }
            return response
        } forward: { try await $0.control.listNodes(request) }
    }

    func updateNode(request: Shoal_Api_UpdateNodeRequest, context: ServerContext) async throws -> Shoal_Api_UpdateNodeResponse {
        try await call(context) { () async throws(APIError) in
            guard var node = try await manager.read({ $0.nodes[request.nodeID] }) else {
                throw APIError(.notFound, "no such node: \(request.nodeID)", objectID: request.nodeID)
            }
            guard request.hasSpec else { throw APIError(.invalidSpec, "UpdateNode needs a spec", field: "spec") }
            if request.spec.desiredRole == .worker && node.spec.desiredRole == .manager {
                let managers = try await manager.read { $0.nodes.sorted.filter { $0.role == .manager }.count }
                if let risk = await (try manager).demotionRisk(of: node, managers: managers) {
                    throw APIError(.failedPrecondition, "cannot demote \(node.spec.annotations.name): \(risk)", objectID: node.id, field: "spec.desired_role")
                }
            }
            node.meta.version = request.nodeVersion
            node.spec = request.spec
            let commit = try await manager.write([Shoal_Api_StoreAction(.update, node)])
            var response = Shoal_Api_UpdateNodeResponse()
            if case .node(let written) = commit.events.first?.object { response.node = written }
            return response
        } forward: { try await $0.control.updateNode(request) }
    }

    func removeNode(request: Shoal_Api_RemoveNodeRequest, context: ServerContext) async throws -> Shoal_Api_RemoveNodeResponse {
        try await call(context) { () async throws(APIError) in
            guard let node = try await manager.read({ $0.nodes[request.nodeID] }) else {
                throw APIError(.notFound, "no such node: \(request.nodeID)", objectID: request.nodeID)
            }
            if node.role == .manager {
                throw APIError(
                    .failedPrecondition,
                    "node \(node.spec.annotations.name) is a manager: demote it before removing it (`shoal node demote`)",
                    objectID: node.id)
            }
            if node.status.state != .down && !request.force {
                throw APIError(
                    .failedPrecondition,
                    "node \(node.spec.annotations.name) is not down and can't be removed: stop it or use --force",
                    objectID: node.id)
            }
            _ = try await manager.write([Shoal_Api_StoreAction(.remove, node)])
            return Shoal_Api_RemoveNodeResponse()
        } forward: { try await $0.control.removeNode(request) }
    }

    /// Every node, with the leader's live view of the managers (leader, reachability).
    private func liveNodes() async throws(APIError) -> [Shoal_Api_Node] {
        let nodes = try await manager.read { $0.nodes.sorted }
        let status: RaftStatus
        do { status = try await manager.store.member.directory().get().status } catch {
            throw APIError(.unavailable, "the manager is stopping")
        }
        return nodes.map { node in
            var node = node
            if node.role == .manager, node.managerStatus.raftID != 0 {
                let raftID = node.managerStatus.raftID
                node.managerStatus.leader = raftID == status.leader
                // A learner not yet promoted counts toward no quorum: not Reachable yet.
                let reachable = raftID == status.id || (status.reachable.contains(raftID) && status.membership.isVoter(raftID))
                node.managerStatus.reachability = reachable ? .reachable : .unreachable
            }
            return node
        }
    }

    // MARK: - Networks

    func getNetwork(request: Shoal_Api_GetNetworkRequest, context: ServerContext) async throws -> Shoal_Api_GetNetworkResponse {
        try await call(context) { () async throws(APIError) in
            var response = Shoal_Api_GetNetworkResponse()
            response.network = try await network(request.networkID)
            return response
        } forward: { try await $0.control.getNetwork(request) }
    }

    func listNetworks(request: Shoal_Api_ListNetworksRequest, context: ServerContext) async throws -> Shoal_Api_ListNetworksResponse {
        try await call(context) { () async throws(APIError) in
            let filters = request.filters
            var response = Shoal_Api_ListNetworksResponse()
            (response.networks, response.storeVersion.index) = try await manager.read { store in
                (store.networks.sorted, store.version)
            }
            response.networks = response.networks.filter { network in
                (filters.names.isEmpty || filters.names.contains(network.spec.annotations.name))
                    && (filters.idPrefixes.isEmpty || filters.idPrefixes.contains { network.id.hasPrefix($0) })
            }
            return response
        } forward: { try await $0.control.listNetworks(request) }
    }

    func createNetwork(request: Shoal_Api_CreateNetworkRequest, context: ServerContext) async throws -> Shoal_Api_CreateNetworkResponse {
        try await call(context) { () async throws(APIError) in
            var spec = request.spec
            try SpecValidation.validateNetworkName(spec.annotations.name)
            if spec.driver.isEmpty { spec.driver = "overlay" }
            let networks = try await manager.read { $0.networks.sorted }
            if spec.ingress, let ingress = networks.first(where: { $0.spec.ingress }) {
                throw APIError(
                    .inUse, "the swarm has an ingress network already (\(ingress.spec.annotations.name)): remove it first",
                    objectID: ingress.id)
            }
            if let refusal = NetworkAllocator(networks: networks, services: [], tasks: []).refusal(of: spec) { throw refusal }
            var network = Shoal_Api_Network()
            network.id = RandomID.make()
            network.spec = spec
            let commit: StoreCommit
            do throws(APIError) {
                commit = try await manager.write([Shoal_Api_StoreAction(.create, network)])
            } catch let error where error.reason == .nameConflict {
                throw APIError(.nameConflict, "network with name \(spec.annotations.name) already exists", field: "annotations.name")
            }
            var response = Shoal_Api_CreateNetworkResponse()
            if case .network(let written) = commit.events.first?.object { response.network = written }
            return response
        } forward: { try await $0.control.createNetwork(request) }
    }

    func updateNetwork(request: Shoal_Api_UpdateNetworkRequest, context: ServerContext) async throws -> Shoal_Api_UpdateNetworkResponse {
        try await call(context) { () async throws(APIError) in
            var network = try await network(request.networkID)
            var labelsOnly = network.spec
            labelsOnly.annotations.labels = request.spec.annotations.labels
            guard labelsOnly == request.spec else {
                throw APIError(.invalidSpec, "only a network's labels can change; remove and create it for anything else", field: "spec")
            }
            network.meta.version = request.networkVersion
            network.spec = request.spec
            let commit = try await manager.write([Shoal_Api_StoreAction(.update, network)])
            var response = Shoal_Api_UpdateNetworkResponse()
            if case .network(let written) = commit.events.first?.object { response.network = written }
            return response
        } forward: { try await $0.control.updateNetwork(request) }
    }

    /// Refused while a service names the network or a task still holds an address on it.
    func removeNetwork(request: Shoal_Api_RemoveNetworkRequest, context: ServerContext) async throws -> Shoal_Api_RemoveNetworkResponse {
        try await call(context) { () async throws(APIError) in
            let network = try await network(request.networkID)
            let (services, tasks) = try await manager.read { store in (store.services.sorted, store.tasks.sorted) }
            let users = services.filter { $0.spec.task.networks.contains { $0.target == network.id } }.map(\.spec.annotations.name)
            if !users.isEmpty {
                throw APIError(
                    .inUse,
                    "network \(network.spec.annotations.name) is in use by service\(users.count == 1 ? "" : "s") \(users.joined(separator: ", "))",
                    objectID: network.id)
            }
            if network.spec.ingress, services.contains(where: { !$0.spec.endpoint.ports.isEmpty }) {
                throw APIError(.inUse, "the ingress network is in use by services with published ports", objectID: network.id)
            }
            if tasks.contains(where: { $0.networks.contains { $0.network.id == network.id } }) {
                throw APIError(
                    .inUse, "network \(network.spec.annotations.name) still has tasks stopping on it: retry in a few seconds",
                    objectID: network.id)
            }
            var removal = network
            removal.meta.version = Shoal_Api_Version()
            _ = try await manager.write([Shoal_Api_StoreAction(.remove, removal)])
            return Shoal_Api_RemoveNetworkResponse()
        } forward: { try await $0.control.removeNetwork(request) }
    }

    private func network(_ reference: String) async throws(APIError) -> Shoal_Api_Network {
        let networks = try await manager.read { $0.networks.sorted }
        guard let network = try resolve(reference, in: networks, kind: "network", name: { $0.spec.annotations.name }) else {
            throw APIError(.notFound, "network \(reference) not found", objectID: reference)
        }
        return network
    }

    // MARK: - Services

    func getService(request: Shoal_Api_GetServiceRequest, context: ServerContext) async throws -> Shoal_Api_GetServiceResponse {
        try await call(context) { () async throws(APIError) in
            var response = Shoal_Api_GetServiceResponse()
            response.service = try await service(request.serviceID)
            return response
        } forward: { try await $0.control.getService(request) }
    }

    func listServices(request: Shoal_Api_ListServicesRequest, context: ServerContext) async throws -> Shoal_Api_ListServicesResponse {
        try await call(context) { () async throws(APIError) in
            let filters = request.filters
            var response = Shoal_Api_ListServicesResponse()
            (response.services, response.storeVersion.index) = try await manager.read { store in (store.services.sorted, store.version) }
            response.services = response.services.filter { service in
                (filters.names.isEmpty || filters.names.contains(service.spec.annotations.name))
                    && (filters.idPrefixes.isEmpty || filters.idPrefixes.contains { service.id.hasPrefix($0) })
                    && (filters.namePrefixes.isEmpty || filters.namePrefixes.contains { service.spec.annotations.name.hasPrefix($0) })
                    && filters.labels.allSatisfy { service.spec.annotations.labels[$0.key] == $0.value || $0.value.isEmpty && service.spec.annotations.labels[$0.key] != nil }
            }
            return response
        } forward: { try await $0.control.listServices(request) }
    }

    func createService(request: Shoal_Api_CreateServiceRequest, context: ServerContext) async throws -> Shoal_Api_CreateServiceResponse {
        try await call(context) { () async throws(APIError) in
            let (networks, services) = try await manager.read { ($0.networks.sorted, $0.services.sorted) }
            try SpecValidation.validate(request.spec, networks: networks, services: services)
            var service = Shoal_Api_Service()
            service.id = RandomID.make()
            service.spec = request.spec
            service.specVersion.index = 1
            let commit: StoreCommit
            do throws(APIError) {
                commit = try await manager.write([Shoal_Api_StoreAction(.create, service)])
            } catch let error where error.reason == .nameConflict {
                throw APIError(
                    .nameConflict, "service \(request.spec.annotations.name) already exists", field: "annotations.name")
            }
            var response = Shoal_Api_CreateServiceResponse()
            if case .service(let written) = commit.events.first?.object { response.service = written }
            return response
        } forward: { try await $0.control.createService(request) }
    }

    /// A new spec (update, scale) or the previous one back (rollback). The spec version moves
    /// only when the task template or the networks change, so scaling restarts nothing.
    func updateService(request: Shoal_Api_UpdateServiceRequest, context: ServerContext) async throws -> Shoal_Api_UpdateServiceResponse {
        try await call(context) { () async throws(APIError) in
            var service = try await service(request.serviceID)
            let (networks, services) = try await manager.read { ($0.networks.sorted, $0.services.sorted) }
            var spec = request.spec
            if request.rollback == .previous {
                guard service.hasPreviousSpec else {
                    throw APIError(.failedPrecondition, "service \(service.spec.annotations.name) has no previous spec to roll back to", objectID: service.id)
                }
                spec = service.previousSpec
            }
            try SpecValidation.validate(spec, networks: networks, services: services, serviceID: service.id)
            if spec.annotations.name != service.spec.annotations.name {
                throw APIError(.invalidSpec, "a service cannot be renamed", objectID: service.id, field: "annotations.name")
            }
            if service.isGlobal != spec.isGlobal {
                throw APIError(.invalidSpec, "a service's mode (replicated or global) cannot change", objectID: service.id, field: "mode")
            }
            if spec.task != service.spec.task || spec.endpoint != service.spec.endpoint {
                service.previousSpec = service.spec
                service.previousSpecVersion = service.specVersion
                service.specVersion.index += 1
            }
            service.meta.version = request.serviceVersion
            service.spec = spec
            let commit = try await manager.write([Shoal_Api_StoreAction(.update, service)])
            var response = Shoal_Api_UpdateServiceResponse()
            if case .service(let written) = commit.events.first?.object { response.service = written }
            return response
        } forward: { try await $0.control.updateService(request) }
    }

    /// Deletes the service and, in the same transaction, marks its tasks to be removed: they
    /// stop on their nodes and the reaper deletes them.
    func removeService(request: Shoal_Api_RemoveServiceRequest, context: ServerContext) async throws -> Shoal_Api_RemoveServiceResponse {
        try await call(context) { () async throws(APIError) in
            let service = try await service(request.serviceID)
            let tasks = try await manager.read { store in store.tasks.sorted.filter { $0.serviceID == service.id } }
            var actions = [Shoal_Api_StoreAction(.remove, service)]
            for var task in tasks where task.desiredState != .remove {
                task.desiredState = .remove
                actions.append(Shoal_Api_StoreAction(.update, task))
            }
            _ = try await manager.write(actions)
            return Shoal_Api_RemoveServiceResponse()
        } forward: { try await $0.control.removeService(request) }
    }

    private func service(_ reference: String) async throws(APIError) -> Shoal_Api_Service {
        let services = try await manager.read { $0.services.sorted }
        guard let service = try resolve(reference, in: services, kind: "service", name: { $0.spec.annotations.name }) else {
            throw APIError(.notFound, "service \(reference) not found", objectID: reference)
        }
        return service
    }

    // MARK: - Tasks

    func getTask(request: Shoal_Api_GetTaskRequest, context: ServerContext) async throws -> Shoal_Api_GetTaskResponse {
        try await call(context) { () async throws(APIError) in
            let tasks = try await manager.read { $0.tasks.sorted }
            guard let task = try resolve(request.taskID, in: tasks, kind: "task", name: { $0.annotations.name }) else {
                throw APIError(.notFound, "task \(request.taskID) not found", objectID: request.taskID)
            }
            var response = Shoal_Api_GetTaskResponse()
            response.task = task
            return response
        } forward: { try await $0.control.getTask(request) }
    }

    func listTasks(request: Shoal_Api_ListTasksRequest, context: ServerContext) async throws -> Shoal_Api_ListTasksResponse {
        try await call(context) { () async throws(APIError) in
            let filters = request.filters
            var response = Shoal_Api_ListTasksResponse()
            (response.tasks, response.storeVersion.index) = try await manager.read { store in (store.tasks.sorted, store.version) }
            response.tasks = response.tasks.filter { task in
                (filters.names.isEmpty || filters.names.contains(task.annotations.name))
                    && (filters.idPrefixes.isEmpty || filters.idPrefixes.contains { task.id.hasPrefix($0) })
                    && (filters.namePrefixes.isEmpty || filters.namePrefixes.contains { task.annotations.name.hasPrefix($0) })
                    && (filters.serviceIds.isEmpty || filters.serviceIds.contains(task.serviceID))
                    && (filters.nodeIds.isEmpty || filters.nodeIds.contains(task.nodeID))
                    && (filters.desiredStates.isEmpty || filters.desiredStates.contains(task.desiredState))
                    && (filters.slots.isEmpty || filters.slots.contains(task.slot))
                    && filters.labels.allSatisfy { task.annotations.labels[$0.key] == $0.value || $0.value.isEmpty && task.annotations.labels[$0.key] != nil }
            }
            return response
        } forward: { try await $0.control.listTasks(request) }
    }

    // MARK: - The cluster

    func getCluster(request: Shoal_Api_GetClusterRequest, context: ServerContext) async throws -> Shoal_Api_GetClusterResponse {
        try await call(context) { () async throws(APIError) in
            var response = Shoal_Api_GetClusterResponse()
            response.cluster = redacted(try await manager.cluster())
            return response
        } forward: { try await $0.control.getCluster(request) }
    }

    func listClusters(request: Shoal_Api_ListClustersRequest, context: ServerContext) async throws -> Shoal_Api_ListClustersResponse {
        try await call(context) { () async throws(APIError) in
            var response = Shoal_Api_ListClustersResponse()
            response.clusters = try await manager.read { $0.clusters.sorted }.map(redacted)
            return response
        } forward: { try await $0.control.listClusters(request) }
    }

    func updateCluster(request: Shoal_Api_UpdateClusterRequest, context: ServerContext) async throws -> Shoal_Api_UpdateClusterResponse {
        try await call(context) { () async throws(APIError) in
            var cluster = try await manager.cluster()
            guard request.clusterID.isEmpty || request.clusterID == cluster.id else {
                throw APIError(.notFound, "cluster \(request.clusterID) not found", objectID: request.clusterID)
            }
            cluster.meta.version = request.clusterVersion
            if request.hasSpec {
                try ClusterDefaults.validate(request.spec)
                cluster.spec = request.spec
            }
            if request.rotation.rootCa {
                throw APIError(.failedPrecondition, "root CA rotation is not served by this manager yet", field: "rotation.root_ca")
            }
            let root: RootCA
            do throws(PKIError) { root = try RootCA(certificateDER: [UInt8](cluster.rootCa.caCert)) } catch {
                throw APIError(.unavailable, "the cluster's root CA does not decode: \(error)")
            }
            if request.rotation.workerJoinToken { cluster.rootCa.joinTokens.worker = JoinToken.generate(for: root).description }
            if request.rotation.managerJoinToken { cluster.rootCa.joinTokens.manager = JoinToken.generate(for: root).description }
            let commit = try await manager.write([Shoal_Api_StoreAction(.update, cluster)])
            var response = Shoal_Api_UpdateClusterResponse()
            if case .cluster(let written) = commit.events.first?.object { response.cluster = redacted(written) }
            return response
        } forward: { try await $0.control.updateCluster(request) }
    }

    /// The cluster as callers see it: never the CA key, never the data-plane keys.
    private func redacted(_ cluster: Shoal_Api_Cluster) -> Shoal_Api_Cluster {
        var cluster = cluster
        cluster.networkBootstrapKeys = cluster.networkBootstrapKeys.map { key in
            var redacted = key
            redacted.key = Data()
            return redacted
        }
        cluster.rootCa.caKey = Data()
        cluster.rootCa.rootRotation.caKey = Data()
        return cluster
    }
}

/// The object named or identified by `reference`: an exact ID, an exact name, or a unique ID
/// prefix, as docker resolves them.
func resolve<Object>(_ reference: String, in objects: [Object], kind: String, name: (Object) -> String) throws(APIError) -> Object?
where Object: StoredObject {
    guard !reference.isEmpty else { throw APIError(.invalidSpec, "no \(kind) given") }
    if let exact = objects.first(where: { $0.id == reference }) { return exact }
    if let named = objects.first(where: { name($0) == reference }) { return named }
    let prefixed = objects.filter { $0.id.hasPrefix(reference) }
    if prefixed.count > 1 {
        throw APIError(.invalidSpec, "\(kind) \(reference) is ambiguous (\(prefixed.count) matches): give more of the ID")
    }
    return prefixed.first
}
