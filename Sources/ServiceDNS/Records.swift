import Wire

/// How a service is published in DNS (DESIGN.md §2).
public enum EndpointMode: String, Codable, Sendable {
    /// `name` → the service's VIP on that network.
    case vip
    /// `name` → the task IPs, rotated per answer; no VIP.
    case dnsrr
}

/// One running task of a service on one network.
public struct TaskRecord: Codable, Hashable, Sendable {
    public var slot: Int
    public var id: String
    public var address: IPv4Address

    public init(slot: Int, id: String, address: IPv4Address) {
        self.slot = slot
        self.id = id
        self.address = address
    }
}

/// A published port, answered as SRV `_<name>._<protocol>.<service>`.
public struct PortRecord: Codable, Hashable, Sendable {
    public var name: String
    public var `protocol`: String
    public var port: UInt16

    public init(name: String, protocol: String, port: UInt16) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}

/// A service as one network sees it.
public struct ServiceRecord: Codable, Hashable, Sendable {
    public var name: String
    public var mode: EndpointMode
    /// The VIP on this network; required for `vip`, ignored for `dnsrr`.
    public var vip: IPv4Address?
    /// Running tasks only: a task that is not running is not in DNS.
    public var tasks: [TaskRecord]
    public var ports: [PortRecord]

    public init(name: String, mode: EndpointMode, vip: IPv4Address? = nil, tasks: [TaskRecord] = [], ports: [PortRecord] = []) {
        self.name = name
        self.mode = mode
        self.vip = vip
        self.tasks = tasks
        self.ports = ports
    }

    enum CodingKeys: String, CodingKey { case name, mode, vip, tasks, ports }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        mode = try container.decodeIfPresent(EndpointMode.self, forKey: .mode) ?? .vip
        vip = try container.decodeIfPresent(IPv4Address.self, forKey: .vip)
        tasks = try container.decodeIfPresent([TaskRecord].self, forKey: .tasks) ?? []
        ports = try container.decodeIfPresent([PortRecord].self, forKey: .ports) ?? []
    }
}

/// What the agent hands ServiceDNS (DESIGN.md §7): services per network and which networks
/// each sandbox is attached to. Immutable; a change is a new snapshot.
public struct DNSRecords: Codable, Sendable, Equatable {
    /// Network name → its services.
    public var networks: [String: [ServiceRecord]]
    /// Sandbox (task) → the networks it is attached to.
    public var sandboxes: [String: [String]]

    public init(networks: [String: [ServiceRecord]] = [:], sandboxes: [String: [String]] = [:]) {
        self.networks = networks
        self.sandboxes = sandboxes
    }

    /// Checks what the index relies on; the first problem is thrown.
    public func validate() throws(DNSRecordsError) {
        for (network, services) in networks {
            var names = Set<String>()
            for service in services {
                let name = DNSName(service.name).text
                guard !name.isEmpty, DNSName(name).wire != nil, !name.hasPrefix("tasks.") else {
                    throw .invalid("network \(network): '\(service.name)' is not a usable service name")
                }
                guard names.insert(name).inserted else { throw .invalid("network \(network): service \(name) is listed twice") }
                if service.mode == .vip, service.vip == nil {
                    throw .invalid("network \(network): service \(name) is in vip mode but has no VIP")
                }
            }
        }
        for (sandbox, attached) in sandboxes {
            for network in attached where networks[network] == nil {
                throw .invalid("sandbox \(sandbox) is attached to unknown network \(network)")
            }
        }
    }
}

/// Records that cannot be served.
public enum DNSRecordsError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let reason): "invalid DNS records: \(reason)"
        }
    }
}

/// What a name resolves to on one network.
enum Entry: Sendable {
    /// A addresses (a VIP, a service's tasks, one task).
    case addresses([UInt32])
    /// SRV targets: (port, target name wire form).
    case services([(port: UInt16, target: [UInt8])])
    /// A PTR target.
    case pointer([UInt8])
}

/// The index built from ``DNSRecords``: network → lowercase name → entries, and sandbox →
/// network indexes. Built once per snapshot, read by any number of queries at once.
final class RecordIndex: Sendable {
    let names: [[String: Entry]]
    let sandboxes: [String: [Int]]
    let records: DNSRecords

    init(_ records: DNSRecords) {
        self.records = records
        let networkNames = records.networks.keys.sorted()
        let position = Dictionary(uniqueKeysWithValues: networkNames.enumerated().map { ($1, $0) })
        names = networkNames.map { network in
            var table: [String: Entry] = [:]
            for service in records.networks[network]! {
                let name = DNSName(service.name).text
                let taskAddresses = service.tasks.map(\.address.rawValue)
                switch service.mode {
                case .vip: table[name] = .addresses([service.vip!.rawValue])
                case .dnsrr: table[name] = .addresses(taskAddresses)
                }
                table["tasks.\(name)"] = .addresses(taskAddresses)
                for task in service.tasks {
                    let short = "\(name).\(task.slot)"
                    let full = "\(short).\(task.id.lowercased())"
                    table[short] = .addresses([task.address.rawValue])
                    table[full] = .addresses([task.address.rawValue])
                    if let target = DNSName("\(full).\(network)").wire {
                        table[Self.reverseName(task.address)] = .pointer(target)
                    }
                }
                if service.mode == .vip, let vip = service.vip, let target = DNSName(name).wire {
                    table[Self.reverseName(vip)] = .pointer(target)
                }
                for port in service.ports {
                    if let target = DNSName(name).wire {
                        table["_\(port.name)._\(port.protocol).\(name)".lowercased()] = .services([(port.port, target)])
                    }
                }
            }
            return table
        }
        sandboxes = records.sandboxes.mapValues { $0.compactMap { position[$0] } }
    }

    /// `d.c.b.a.in-addr.arpa` for a.b.c.d.
    static func reverseName(_ address: IPv4Address) -> String {
        address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa"
    }

    /// The entry for `name` on the first of the sandbox's networks that has it.
    func lookup(_ name: String, sandbox: String) -> Entry? {
        for network in sandboxes[sandbox] ?? [] {
            if let entry = names[network][name] { return entry }
        }
        return nil
    }
}
