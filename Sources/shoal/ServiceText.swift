import ClusterAPI
import Foundation
import SwiftProtobuf

/// How `service ls`, `service inspect --pretty` write a service, in docker's words.
enum ServiceText {
    /// The IMAGE column: the command the tasks run (Shoal runs processes, not images), on one
    /// line: a newline or tab inside an argument (a `python3 -c` script) is written escaped, so
    /// that a table row stays one line.
    static func image(_ spec: Shoal_Api_TaskSpec) -> String {
        (spec.process.command + spec.process.args).joined(separator: " ")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: "\\t")
    }

    /// The PORTS column: `*:8080->80/tcp`.
    static func ports(_ service: Shoal_Api_Service) -> String {
        let ports = service.endpoint.ports.isEmpty ? service.spec.endpoint.ports : service.endpoint.ports
        return ports.map { port in
            "*:\(port.publishedPort)->\(port.targetPort)/\(port.protocol == .udp ? "udp" : "tcp")"
        }.joined(separator: ", ")
    }

    /// `service inspect --pretty`.
    static func pretty(_ service: Shoal_Api_Service, networks: [Shoal_Api_Network]) -> String {
        let spec = service.spec
        var lines = ["ID:\t\t\(service.id)", "Name:\t\t\(spec.annotations.name)"]
        if !spec.annotations.labels.isEmpty {
            lines.append("Labels:")
            lines += spec.annotations.labels.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }
        }
        if spec.isGlobal {
            lines.append("Service Mode:\tGlobal")
        } else {
            lines += ["Service Mode:\tReplicated", " Replicas:\t\(spec.replicated.replicas)"]
        }
        if !spec.task.placement.constraints.isEmpty {
            lines.append("Placement:")
            lines.append(" Constraints:\t[\(spec.task.placement.constraints.joined(separator: " "))]")
        }
        let restart = spec.task.restart
        lines += [
            "RestartPolicy:",
            " Condition:\t\(restart.condition == .onFailure ? "on-failure" : restart.condition == .none ? "none" : "any")",
            " Delay:\t\t\(DurationWords.of(restart.delay.timeInterval))",
            " Max Attempts:\t\(restart.maxAttempts)",
        ]
        lines += ["ContainerSpec:", " Command:\t\(image(spec.task))"]
        if !spec.task.process.env.isEmpty { lines.append(" Env:\t\t\(spec.task.process.env.joined(separator: " "))") }
        if !spec.task.process.hostname.isEmpty { lines.append(" Hostname:\t\(spec.task.process.hostname)") }
        if spec.task.process.pidNamespace { lines.append(" Init:\t\ttrue") }
        let health = spec.task.process.healthcheck
        if let kind = health.test.first {
            lines.append("Healthcheck:")
            lines.append(" Test:\t\t[\(health.test.map { "\"\($0)\"" }.joined(separator: " "))]")
            if kind != "NONE" {
                let seconds = { (duration: Google_Protobuf_Duration, present: Bool, fallback: Double) in
                    DurationWords.of(present ? duration.timeInterval : fallback)
                }
                lines.append(" Interval:\t\(seconds(health.interval, health.hasInterval, 30))")
                lines.append(" Timeout:\t\(seconds(health.timeout, health.hasTimeout, 30))")
                lines.append(" Retries:\t\(health.retries > 0 ? health.retries : 3)")
                lines.append(" Start Period:\t\(seconds(health.startPeriod, health.hasStartPeriod, 0))")
            }
        }
        let resources = spec.task.resources
        if resources.hasLimits || resources.hasReservations {
            lines.append("Resources:")
            if resources.hasReservations {
                lines.append(" Reservations:")
                if resources.reservations.nanoCpus > 0 { lines.append("  CPU:\t\t\(SizeText.cpus(resources.reservations.nanoCpus))") }
                if resources.reservations.memoryBytes > 0 { lines.append("  Memory:\t\(SizeText.memory(resources.reservations.memoryBytes))") }
            }
            if resources.hasLimits {
                lines.append(" Limits:")
                if resources.limits.nanoCpus > 0 { lines.append("  CPU:\t\t\(SizeText.cpus(resources.limits.nanoCpus))") }
                if resources.limits.memoryBytes > 0 { lines.append("  Memory:\t\(SizeText.memory(resources.limits.memoryBytes))") }
            }
        }
        if !spec.task.networks.isEmpty {
            let names = spec.task.networks.map { attachment in
                networks.first { $0.id == attachment.target }?.spec.annotations.name ?? attachment.target
            }
            lines.append("Networks:\t\(names.joined(separator: " "))")
        }
        lines.append("Endpoint Mode:\t\(spec.endpoint.mode == .dnsrr ? "dnsrr" : "vip")")
        if !service.endpoint.virtualIps.isEmpty {
            lines.append("Virtual IPs:")
            for vip in service.endpoint.virtualIps {
                let name = networks.first { $0.id == vip.networkID }?.spec.annotations.name ?? vip.networkID
                lines.append(" \(name):\t\(vip.addr)")
            }
        }
        if !service.endpoint.ports.isEmpty {
            lines.append("Ports:")
            for port in service.endpoint.ports {
                lines += [
                    " PublishedPort = \(port.publishedPort)", "  Protocol = \(port.protocol == .udp ? "udp" : "tcp")",
                    "  TargetPort = \(port.targetPort)", "  PublishMode = \(port.publishMode == .host ? "host" : "ingress")",
                ]
                if port.proxyProtocol { lines.append("  ProxyProtocol = v2") }
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// How `service ps` writes a task, in docker's words.
enum TaskText {
    /// A state as docker names it: "Running", "Shutdown".
    static func state(_ state: Shoal_Api_TaskState) -> String {
        switch state {
        case .new: "New"
        case .pending: "Pending"
        case .assigned: "Assigned"
        case .accepted: "Accepted"
        case .preparing: "Preparing"
        case .ready: "Ready"
        case .starting: "Starting"
        case .running: "Running"
        case .complete: "Complete"
        case .shutdown: "Shutdown"
        case .failed: "Failed"
        case .rejected: "Rejected"
        case .remove: "Remove"
        case .orphaned: "Orphaned"
        case .UNRECOGNIZED(let value): "State \(value)"
        }
    }

    /// CURRENT STATE: "Running 5 seconds ago".
    static func current(_ status: Shoal_Api_TaskStatus, now: Date) -> String {
        "\(state(status.state)) \(DurationWords.of(now.timeIntervalSince(status.timestamp.date))) ago"
    }

    /// ERROR: quoted, cut to 30 characters unless asked not to, as docker does.
    static func error(_ text: String, truncate: Bool) -> String {
        guard !text.isEmpty else { return "" }
        let shown = truncate && text.count > 30 ? text.prefix(29) + "…" : Substring(text)
        return "\"\(shown)\""
    }
}

/// `service ps`'s order: by slot (or node, for global services), the newest task of a slot
/// first and its older ones after it, marked.
enum TaskRows {
    static func ordered(_ tasks: [Shoal_Api_Task], services: [Shoal_Api_Service]) -> [(task: Shoal_Api_Task, older: Bool)] {
        let names = Dictionary(services.map { ($0.id, $0.spec.annotations.name) }, uniquingKeysWith: { a, _ in a })
        let groups = Dictionary(grouping: tasks) { task in "\(names[task.serviceID] ?? task.serviceID)\u{0}\(task.slot == 0 ? task.nodeID : String(format: "%020llu", task.slot))" }
        var rows: [(Shoal_Api_Task, Bool)] = []
        for key in groups.keys.sorted() {
            let slot = groups[key]!.sorted { ($0.meta.createdAt.date, $0.id) > ($1.meta.createdAt.date, $1.id) }
            for (index, task) in slot.enumerated() { rows.append((task, index > 0)) }
        }
        return rows
    }
}

/// Docker's human durations (go-units HumanDuration): "5 seconds", "About a minute".
enum DurationWords {
    static func of(_ interval: TimeInterval) -> String {
        let seconds = Int(interval)
        if seconds < 1 { return "Less than a second" }
        if seconds == 1 { return "1 second" }
        if seconds < 60 { return "\(seconds) seconds" }
        let minutes = Int(interval / 60)
        if minutes == 1 { return "About a minute" }
        if minutes < 60 { return "\(minutes) minutes" }
        let hours = Int(interval / 3600 + 0.5)
        if hours == 1 { return "About an hour" }
        if hours < 48 { return "\(hours) hours" }
        if hours < 24 * 7 * 2 { return "\(hours / 24) days" }
        if hours < 24 * 30 * 2 { return "\(hours / 24 / 7) weeks" }
        if hours < 24 * 365 * 2 { return "\(hours / 24 / 30) months" }
        return "\(Int(interval / (3600 * 24 * 365))) years"
    }
}

/// Sizes and CPU amounts as docker's flags take them: `512M`, `1g`, `0.5`.
enum SizeText {
    /// Bytes in `text` (binary units b, k, m, g, t; an optional trailing "b").
    static func bytes(_ text: String, flag: String) throws -> Int64 {
        var rest = text.lowercased()
        if rest.hasSuffix("b") { rest.removeLast() }
        let units: [Character: Double] = ["k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024, "t": 1024 * 1024 * 1024 * 1024]
        var factor = 1.0
        if let last = rest.last, let unit = units[last] {
            factor = unit
            rest.removeLast()
        }
        guard let value = Double(rest), value >= 0, value * factor < Double(Int64.max) else {
            throw CLIFailure("invalid \(flag) \(text): give a size such as 512M or 1G")
        }
        return Int64(value * factor)
    }

    /// Billionths of a CPU in `text` (`0.5` → 500000000).
    static func nanoCPUs(_ text: String, flag: String) throws -> Int64 {
        guard let value = Double(text), value >= 0, value < 1e6 else {
            throw CLIFailure("invalid \(flag) \(text): give a number of CPUs such as 0.5 or 2")
        }
        return Int64((value * 1e9).rounded())
    }

    static func cpus(_ nano: Int64) -> String {
        let value = Double(nano) / 1e9
        return value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)
    }

    static func memory(_ bytes: Int64) -> String {
        for (unit, size) in [("GiB", Int64(1) << 30), ("MiB", Int64(1) << 20), ("KiB", Int64(1) << 10)] where bytes >= size {
            let value = Double(bytes) / Double(size)
            return value == value.rounded() ? "\(Int(value))\(unit)" : String(format: "%.2f%@", value, unit)
        }
        return "\(bytes)B"
    }
}
