// What the Control service refuses before anything is written: names that break docker's
// rules, services that name unknown networks or malformed constraints, resources and
// durations below zero. Each refusal is one clear line with the field it concerns; nothing is
// changed in the store.

import ClusterAPI
import Foundation

/// Checks of specs sent to the Control service.
enum SpecValidation {
    /// Docker's rule for service (and stack) names: a DNS label, at most 63 characters.
    static func validateServiceName(_ name: String) throws(APIError) {
        guard !name.isEmpty else { throw APIError(.invalidSpec, "a service needs a name (--name)", field: "annotations.name") }
        let characters = Array(name.utf8)
        let valid = characters.count <= 63 && characters.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") }
            && characters.first!.isASCIIAlphanumeric && characters.last!.isASCIIAlphanumeric
        guard valid else {
            throw APIError(
                .invalidSpec,
                "invalid service name \"\(name)\": use at most 63 letters, digits and '-', starting and ending with a letter or digit",
                field: "annotations.name")
        }
    }

    /// Published ports (`--publish`): valid numbers, each published port once per protocol,
    /// ingress ports only with a VIP, and none that another service publishes in ingress mode
    /// (host-mode ports may repeat: the scheduler keeps two of them off one node).
    static func validatePorts(_ spec: Shoal_Api_ServiceSpec, services: [Shoal_Api_Service], serviceID: String) throws(APIError) {
        var seen = Set<String>()
        for port in spec.endpoint.ports {
            let name = "\(port.publishedPort)/\(port.protocol == .udp ? "udp" : "tcp")"
            guard (1...65535).contains(port.targetPort) else {
                throw APIError(.invalidSpec, "invalid target port \(port.targetPort): 1 to 65535", field: "endpoint.ports")
            }
            guard port.publishedPort <= 65535 else {
                throw APIError(.invalidSpec, "invalid published port \(port.publishedPort): 1 to 65535", field: "endpoint.ports")
            }
            // The header is the relay's: a host-mode port reaches the task directly, and
            // version 2 over UDP has no relay here to prefix datagrams.
            if port.proxyProtocol, port.publishMode == .host || port.protocol == .udp {
                throw APIError(
                    .invalidSpec, "port \(port.targetPort): the PROXY protocol is for TCP ports published with ingress mode",
                    field: "endpoint.ports")
            }
            if port.publishMode == .host {
                throw APIError(.invalidSpec, "publishing in host mode (mode=host) is not supported yet", field: "endpoint.ports")
            }
            if port.protocol == .udp {
                throw APIError(.invalidSpec, "publishing UDP ports through the routing mesh is not supported yet", field: "endpoint.ports")
            }
            if port.publishMode == .ingress, spec.endpoint.mode == .dnsrr {
                throw APIError(
                    .invalidSpec, "port \(port.targetPort) published with ingress mode can't be used with dnsrr mode", field: "endpoint.ports")
            }
            guard port.publishedPort != 0 else { continue }
            guard seen.insert(name).inserted else {
                throw APIError(.invalidSpec, "port \(name) is published twice", field: "endpoint.ports")
            }
            guard port.publishMode == .ingress else { continue }
            for other in services where other.id != serviceID {
                let held = other.endpoint.ports + other.spec.endpoint.ports
                if held.contains(where: { $0.publishMode == .ingress && $0.publishedPort == port.publishedPort && $0.protocol == port.protocol }) {
                    throw APIError(
                        .inUse, "port \(name) is already published by service \(other.spec.annotations.name)", objectID: other.id,
                        field: "endpoint.ports")
                }
            }
        }
    }

    /// Docker's rule for network names: a letter or digit, then letters, digits, '_', '.', '-'.
    static func validateNetworkName(_ name: String) throws(APIError) {
        let characters = Array(name.utf8)
        let valid = !characters.isEmpty && characters.count <= 255 && characters.first!.isASCIIAlphanumeric
            && characters.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        guard valid else {
            throw APIError(
                .invalidSpec, "invalid network name \"\(name)\": use letters, digits, '_', '.' and '-', starting with a letter or digit",
                field: "annotations.name")
        }
    }

    /// Refuses a service spec that could not run; `networks` and `services` are the store's
    /// (`serviceID`: the service being updated, whose own ports are no conflict).
    static func validate(
        _ spec: Shoal_Api_ServiceSpec, networks: [Shoal_Api_Network], services: [Shoal_Api_Service] = [], serviceID: String = ""
    ) throws(APIError) {
        try validateServiceName(spec.annotations.name)
        try validatePorts(spec, services: services, serviceID: serviceID)
        let task = spec.task
        guard !task.process.command.isEmpty, !task.process.command[0].isEmpty else {
            throw APIError(.invalidSpec, "a service needs a command to run (after --)", field: "task.process.command")
        }
        guard spec.mode != nil else { throw APIError(.invalidSpec, "a service is replicated or global", field: "mode") }
        for attachment in task.networks {
            guard let network = networks.first(where: { $0.id == attachment.target }) else {
                throw APIError(.notFound, "network \(attachment.target) not found", objectID: attachment.target, field: "task.networks")
            }
            if network.spec.ingress {
                throw APIError(
                    .invalidSpec, "a service cannot be attached to the ingress network: publish a port (--publish) instead",
                    field: "task.networks")
            }
        }
        if Set(task.networks.map(\.target)).count != task.networks.count {
            throw APIError(.invalidSpec, "a network is given twice (--network)", field: "task.networks")
        }
        _ = try Constraint.all(task.placement)
        for (name, value) in [
            ("--reserve-cpu", task.resources.reservations.nanoCpus), ("--reserve-memory", task.resources.reservations.memoryBytes),
            ("--limit-cpu", task.resources.limits.nanoCpus), ("--limit-memory", task.resources.limits.memoryBytes),
        ] where value < 0 {
            throw APIError(.invalidSpec, "\(name) cannot be negative", field: "task.resources")
        }
        let limits = task.resources.limits, reservations = task.resources.reservations
        if limits.memoryBytes > 0 && reservations.memoryBytes > limits.memoryBytes {
            throw APIError(.invalidSpec, "--reserve-memory is above --limit-memory", field: "task.resources")
        }
        if limits.nanoCpus > 0 && reservations.nanoCpus > limits.nanoCpus {
            throw APIError(.invalidSpec, "--reserve-cpu is above --limit-cpu", field: "task.resources")
        }
        for (name, duration) in [
            ("--restart-delay", task.restart.delay), ("--restart-window", task.restart.window),
            ("--stop-grace-period", task.process.stopGracePeriod),
        ] where duration.seconds < 0 || duration.nanos < 0 {
            throw APIError(.invalidSpec, "\(name) cannot be negative", field: "task")
        }
        try validateHealthCheck(task.process.healthcheck)
        if !task.process.hostname.isEmpty, task.process.hostname.utf8.count > 63 {
            throw APIError(.invalidSpec, "--hostname is longer than 63 characters", field: "task.process.hostname")
        }
        for entry in task.process.env where !entry.contains("=") || entry.hasPrefix("=") {
            throw APIError(.invalidSpec, "invalid --env \"\(entry)\": give it as KEY=VALUE", field: "task.process.env")
        }
    }
}

extension SpecValidation {
    /// Docker's rules for a health check: `NONE`, `CMD argv…` or `CMD-SHELL line`; interval and
    /// timeout, when given, at least 1 ms; start period and retries not negative.
    static func validateHealthCheck(_ check: Shoal_Api_HealthConfig) throws(APIError) {
        let field = "task.process.healthcheck"
        if let kind = check.test.first {
            switch kind {
            case "NONE":
                guard check.test.count == 1 else { throw APIError(.invalidSpec, "a NONE health check takes no command", field: field) }
            case "CMD", "CMD-SHELL":
                guard check.test.count > 1, !check.test[1].isEmpty else {
                    throw APIError(.invalidSpec, "a health check needs a command (--health-cmd)", field: field)
                }
            default:
                throw APIError(.invalidSpec, "invalid health check \"\(kind)\": NONE, CMD or CMD-SHELL", field: field)
            }
        }
        for (name, present, duration) in [
            ("--health-interval", check.hasInterval, check.interval), ("--health-timeout", check.hasTimeout, check.timeout),
        ] where present && duration.timeInterval < 0.001 {
            throw APIError(.invalidSpec, "\(name) must be at least 1ms", field: field)
        }
        if check.startPeriod.seconds < 0 || check.startPeriod.nanos < 0 {
            throw APIError(.invalidSpec, "--health-start-period cannot be negative", field: field)
        }
        if check.retries < 0 { throw APIError(.invalidSpec, "--health-retries cannot be negative", field: field) }
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
