// The allocator's part of a reconciliation pass, in swarmkit's order: networks first (the
// `ingress` network the first time a swarm has none), then services' VIPs, then new tasks'
// addresses, which makes them PENDING for the scheduler.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// Allocation over one pass.
enum AllocationPass {
    /// Allocates what `pass` holds unallocated; `newID` names the ingress network.
    static func run(_ pass: inout ReconcilePass, newID: () -> String) {
        var allocator = NetworkAllocator(
            networks: Array(pass.networks.values), services: Array(pass.services.values), tasks: Array(pass.tasks.values),
            nodes: Array(pass.nodes.values))
        allocateNetworks(&pass, &allocator, newID: newID)
        allocateNodes(&pass, &allocator)
        allocateServices(&pass, &allocator)
        allocateTasks(&pass, &allocator)
    }

    /// Gives every node an address on the ingress network, for its ingress sandbox: the
    /// routing mesh's connections to tasks come from there.
    private static func allocateNodes(_ pass: inout ReconcilePass, _ allocator: inout NetworkAllocator) {
        guard let ingress = pass.networks.values.first(where: { $0.spec.ingress }), ingress.vni != 0 else { return }
        for var node in pass.nodes.values.sorted(by: { $0.id < $1.id }) where !node.attachments.contains(where: { $0.network.id == ingress.id }) {
            guard let address = try? allocator.address(on: ingress) else { return }
            var attachment = Shoal_Api_NetworkAttachment()
            attachment.network = ingress
            attachment.addresses = [address]
            node.attachments.append(attachment)
            pass.update(node)
        }
    }

    /// Whether a service publishes a port through the routing mesh.
    static func publishesIngress(_ endpoint: Shoal_Api_EndpointSpec) -> Bool {
        endpoint.mode == .vip && endpoint.ports.contains { $0.publishMode == .ingress }
    }

    private static func allocateNetworks(_ pass: inout ReconcilePass, _ allocator: inout NetworkAllocator, newID: () -> String) {
        if pass.cluster != nil, !pass.networks.values.contains(where: { $0.spec.ingress }) {
            var ingress = Shoal_Api_Network()
            ingress.id = newID()
            ingress.spec.annotations.name = NetworkAllocator.ingressName
            ingress.spec.driver = "overlay"
            ingress.spec.ingress = true
            do throws(APIError) {
                try allocator.allocate(&ingress)
                pass.create(ingress)
            } catch {
                // Leaves the swarm without a routing mesh rather than stopping every other
                // allocation; the next pass tries again.
            }
        }
        for var network in pass.networks.values.sorted(by: { $0.id < $1.id }) where network.vni == 0 {
            do throws(APIError) {
                try allocator.allocate(&network)
                pass.update(network)
            } catch {
                continue
            }
        }
    }

    /// Gives every vip-mode service one VIP on each of its networks, and none to a dnsrr one;
    /// an endpoint that changed mode or networks is allocated anew.
    private static func allocateServices(_ pass: inout ReconcilePass, _ allocator: inout NetworkAllocator) {
        for var service in pass.services.values.sorted(by: { $0.id < $1.id }) {
            var wanted = service.spec.endpoint.mode == .vip ? service.spec.task.networks.map(\.target) : []
            if publishesIngress(service.spec.endpoint) {
                // The routing mesh reaches the tasks on the ingress network, through a VIP there.
                guard let ingress = pass.networks.values.first(where: { $0.spec.ingress }) else { continue }
                wanted.append(ingress.id)
            }
            let current = service.endpoint.virtualIps.map(\.networkID)
            guard !service.hasEndpoint || service.endpoint.spec != service.spec.endpoint || current != wanted else { continue }
            var endpoint = Shoal_Api_Endpoint()
            endpoint.spec = service.spec.endpoint
            guard let ports = try? allocator.publish(service.spec.endpoint.ports, holding: service.endpoint.ports) else { continue }
            endpoint.ports = ports
            var complete = true
            for networkID in wanted {
                // Keep a VIP the service holds already on that network.
                if let held = service.endpoint.virtualIps.first(where: { $0.networkID == networkID }) {
                    endpoint.virtualIps.append(held)
                    continue
                }
                guard let network = pass.networks[networkID], network.vni != 0,
                    let address = try? allocator.address(on: network)
                else {
                    complete = false
                    break
                }
                var vip = Shoal_Api_Endpoint.VirtualIP()
                vip.networkID = networkID
                vip.addr = address
                endpoint.virtualIps.append(vip)
            }
            guard complete else { continue }
            service.endpoint = endpoint
            pass.update(service)
        }
    }

    /// Gives each NEW task an address on each of its networks; it becomes PENDING. One that
    /// cannot get them stays NEW with the reason.
    private static func allocateTasks(_ pass: inout ReconcilePass, _ allocator: inout NetworkAllocator) {
        for var task in pass.sortedTasks where task.status.state == .new {
            guard task.desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue else { continue }
            var attachments: [Shoal_Api_NetworkAttachment] = []
            var failure: String?
            var configs = task.spec.networks
            // A task of a service published through the routing mesh is on the ingress network
            // too, after its own networks (its eth0 stays its first network).
            if let service = pass.services[task.serviceID], publishesIngress(service.spec.endpoint),
                let ingress = pass.networks.values.first(where: { $0.spec.ingress })
            {
                var config = Shoal_Api_NetworkAttachmentConfig()
                config.target = ingress.id
                configs.append(config)
            }
            for config in configs {
                guard let network = pass.networks[config.target], network.vni != 0 else {
                    failure = "network \(config.target) is not allocated yet"
                    break
                }
                do throws(APIError) {
                    var attachment = Shoal_Api_NetworkAttachment()
                    attachment.network = network
                    attachment.addresses = [try allocator.address(on: network)]
                    attachment.aliases = config.aliases
                    attachments.append(attachment)
                } catch {
                    failure = error.message
                    break
                }
            }
            if let failure {
                // Whatever it took is not stored, so it is free again at the next pass.
                if task.status.err != failure {
                    task.status.err = failure
                    pass.update(task)
                }
                continue
            }
            if let service = pass.services[task.serviceID] { task.endpoint = service.endpoint }
            task.networks = attachments
            task.status.state = .pending
            task.status.message = "pending task scheduling"
            task.status.err = ""
            task.status.timestamp = Google_Protobuf_Timestamp(date: pass.now)
            pass.update(task)
        }
    }
}
