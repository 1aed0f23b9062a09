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
                // One label, as swarm service names are: task names and `tasks.` are built on it.
                let name = DNSName(service.name).text
                guard !name.isEmpty, !name.contains("."), !name.hasPrefix("_"), name != "tasks", DNSName(name).wire != nil else {
                    throw .invalid("network \(network): '\(service.name)' is not a usable service name (one DNS label)")
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

/// Everything one service answers on one network, computed once and reused by every later
/// snapshot in which the service is unchanged — a cluster change usually touches one service,
/// so replacing a snapshot costs little more than the services that changed.
final class ServiceEntry: Sendable {
    let record: ServiceRecord
    /// `name` → VIP (vip mode) or the task addresses (dnsrr).
    let primary: [UInt32]
    /// `tasks.name` → every running task.
    let tasks: [UInt32]
    /// `name.slot` → that task.
    let bySlot: [Int: UInt32]
    /// `name.slot.id` (id lowercase) → that task.
    let byID: [String: (slot: Int, address: UInt32)]
    /// `_port._protocol` → SRV target.
    let ports: [String: (port: UInt16, target: [UInt8])]
    /// PTR answers this service owns: address → target name.
    let pointers: [(address: UInt32, target: [UInt8])]

    init(_ record: ServiceRecord, network: String) {
        self.record = record
        let name = DNSName(record.name).text
        let target = DNSName(name).wire ?? [0]
        tasks = record.tasks.map(\.address.rawValue)
        primary = record.mode == .vip ? [record.vip!.rawValue] : tasks
        var bySlot: [Int: UInt32] = [:], byID: [String: (Int, UInt32)] = [:], pointers: [(UInt32, [UInt8])] = []
        for task in record.tasks {
            if bySlot[task.slot] == nil { bySlot[task.slot] = task.address.rawValue }
            byID[task.id.lowercased()] = (task.slot, task.address.rawValue)
            if let wire = DNSName("\(name).\(task.slot).\(task.id).\(network)").wire { pointers.append((task.address.rawValue, wire)) }
        }
        if record.mode == .vip, let vip = record.vip { pointers.append((vip.rawValue, target)) }
        self.bySlot = bySlot
        self.byID = byID
        self.pointers = pointers
        ports = Dictionary(record.ports.map { ("_\($0.name)._\($0.protocol)".lowercased(), ($0.port, target)) }, uniquingKeysWith: { first, _ in first })
    }

    /// The entry for the labels after the service name (`[]`, `[slot]`, `[slot, id]`).
    func lookup(suffix labels: ArraySlice<Substring>) -> Entry? {
        switch labels.count {
        case 0:
            return .addresses(primary)
        case 1:
            return Int(labels.first!).flatMap { bySlot[$0] }.map { .addresses([$0]) }
        case 2:
            guard let slot = Int(labels.first!), let task = byID[String(labels.last!)], task.slot == slot else { return nil }
            return .addresses([task.address])
        default:
            return nil
        }
    }
}

/// One network's answers: its services by name and the PTR records of their addresses.
final class NetworkIndex: Sendable {
    let services: [String: ServiceEntry]
    let pointers: [UInt32: [UInt8]]

    init(network: String, records: [ServiceRecord], previous: NetworkIndex?) {
        var services: [String: ServiceEntry] = [:]
        var pointers: [UInt32: [UInt8]] = [:]
        for record in records {
            let name = DNSName(record.name).text
            let entry = previous?.services[name].flatMap { $0.record == record ? $0 : nil } ?? ServiceEntry(record, network: network)
            services[name] = entry
            for (address, target) in entry.pointers where pointers[address] == nil { pointers[address] = target }
        }
        self.services = services
        self.pointers = pointers
    }

    /// The entry for a lowercase name, parsed by shape: `name`, `name.slot`, `name.slot.id`,
    /// `tasks.name`, `_port._protocol.name`, `d.c.b.a.in-addr.arpa`.
    func lookup(_ name: String) -> Entry? {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard let first = labels.first else { return nil }
        if labels.count == 6, labels[4] == "in-addr", labels[5] == "arpa" {
            var address: UInt32 = 0
            for label in labels[0..<4].reversed() {
                guard let byte = UInt8(label) else { return nil }
                address = address << 8 | UInt32(byte)
            }
            return pointers[address].map { .pointer($0) }
        }
        if first == "tasks", labels.count == 2 {
            return services[String(labels[1])].map { .addresses($0.tasks) }
        }
        if first.hasPrefix("_"), labels.count == 3, let service = services[String(labels[2])] {
            return service.ports["\(first).\(labels[1])"].map { .services([$0]) }
        }
        return services[String(first)]?.lookup(suffix: labels.dropFirst())
    }
}

/// The index built from ``DNSRecords``: network → its answers, sandbox → its networks. Built
/// once per snapshot (reusing what did not change since the previous one), read by any number
/// of queries at once.
final class RecordIndex: Sendable {
    let networks: [String: NetworkIndex]
    let sandboxes: [String: [NetworkIndex]]
    let records: DNSRecords

    init(_ records: DNSRecords, previous: RecordIndex? = nil) {
        self.records = records
        var networks: [String: NetworkIndex] = [:]
        for (network, services) in records.networks {
            if let reused = previous?.networks[network], previous?.records.networks[network] == services {
                networks[network] = reused
            } else {
                networks[network] = NetworkIndex(network: network, records: services, previous: previous?.networks[network])
            }
        }
        self.networks = networks
        // Sorted by network name so that a name on two of a sandbox's networks resolves the same way every time.
        sandboxes = records.sandboxes.mapValues { $0.sorted().compactMap { networks[$0] } }
    }

    /// The entry for `name` on the first of the sandbox's networks that has it.
    func lookup(_ name: String, sandbox: String) -> Entry? {
        for network in sandboxes[sandbox] ?? [] {
            if let entry = network.lookup(name) { return entry }
        }
        return nil
    }
}
