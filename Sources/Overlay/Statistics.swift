/// Counters of one network, cumulative since the engine started.
public struct NetworkStatistics: Codable, Sendable, Equatable {
    public var name: String
    public var vni: UInt32
    /// Frames read from local endpoints.
    public var framesFromEndpoints: UInt64 = 0
    public var bytesFromEndpoints: UInt64 = 0
    /// Frames written to local endpoints (from other local endpoints or decapsulated).
    public var framesToEndpoints: UInt64 = 0
    public var bytesToEndpoints: UInt64 = 0
    /// VXLAN datagrams received for this network and sent for it.
    public var datagramsReceived: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var datagramsSent: UInt64 = 0
    public var bytesSent: UInt64 = 0
    /// ARP requests answered by the proxy.
    public var arpAnswered: UInt64 = 0
    /// TCP segments of balanced flows whose backend is gone (its node died, its task ended),
    /// answered with a RST from the VIP.
    public var connectionsReset: UInt64 = 0
    /// Drops by reason (``DropReason/description`` as key); reasons never seen are absent.
    public var drops: [String: UInt64] = [:]

    public var totalDrops: UInt64 { drops.values.reduce(0, +) }

    /// Adds every counter of `other` (the same network seen by another packet thread).
    mutating func add(_ other: NetworkStatistics) {
        for kind in Counters.Kind.allCases { self[keyPath: kind.field] &+= other[keyPath: kind.field] }
        drops.merge(other.drops, uniquingKeysWith: &+)
    }
}

/// A snapshot of the engine's counters.
public struct OverlayStatistics: Codable, Sendable, Equatable {
    public var networks: [NetworkStatistics]
    /// Drops before any network could be named (short datagrams, bad flags, unknown VNIs).
    public var unattributedDrops: [String: UInt64]

    public init(networks: [NetworkStatistics], unattributedDrops: [String: UInt64]) {
        self.networks = networks
        self.unattributedDrops = unattributedDrops
    }

    /// The sum of the snapshots of several packet threads, networks in the first one's order.
    init(summing parts: [OverlayStatistics]) {
        var networks: [NetworkStatistics] = []
        var unattributed: [String: UInt64] = [:]
        for part in parts {
            for network in part.networks {
                if let index = networks.firstIndex(where: { $0.name == network.name }) {
                    networks[index].add(network)
                } else {
                    networks.append(network)
                }
            }
            unattributed.merge(part.unattributedDrops, uniquingKeysWith: &+)
        }
        self.init(networks: networks, unattributedDrops: unattributed)
    }

    /// The statistics of network `name`, if it exists.
    public func network(_ name: String) -> NetworkStatistics? { networks.first { $0.name == name } }

    /// Drops of `reason` summed over every network and the unattributed ones.
    public func drops(_ reason: DropReason) -> UInt64 {
        networks.reduce(unattributedDrops[reason.description] ?? 0) { $0 + ($1.drops[reason.description] ?? 0) }
    }

    /// One counter family of the Prometheus exposition: its name, help, and a value per set
    /// of labels.
    public struct CounterFamily: Sendable {
        public var name: String
        public var help: String
        public var samples: [(labels: [(String, String)], value: UInt64)]
    }

    /// These counters as Prometheus counter families, labelled by network (and drop reason):
    /// the names `shoal overlay stats --prometheus` prints and the daemon's `/metrics` carries.
    public var counterFamilies: [CounterFamily] {
        let label = { (network: NetworkStatistics) in [("network", network.name), ("vni", "\(network.vni)")] }
        func family(_ name: String, _ help: String, _ field: KeyPath<NetworkStatistics, UInt64>) -> CounterFamily {
            CounterFamily(name: name, help: help, samples: networks.map { (label($0), $0[keyPath: field]) })
        }
        var drops: [(labels: [(String, String)], value: UInt64)] = []
        for network in networks {
            for (reason, count) in network.drops.sorted(by: { $0.key < $1.key }) { drops.append((label(network) + [("reason", reason)], count)) }
        }
        for (reason, count) in unattributedDrops.sorted(by: { $0.key < $1.key }) {
            drops.append(([("network", ""), ("vni", ""), ("reason", reason)], count))
        }
        return [
            family("shoal_overlay_endpoint_rx_frames_total", "Frames read from local endpoints.", \.framesFromEndpoints),
            family("shoal_overlay_endpoint_tx_frames_total", "Frames written to local endpoints.", \.framesToEndpoints),
            family("shoal_overlay_rx_datagrams_total", "VXLAN datagrams received.", \.datagramsReceived),
            family("shoal_overlay_tx_datagrams_total", "VXLAN datagrams sent.", \.datagramsSent),
            family("shoal_overlay_rx_bytes_total", "VXLAN payload bytes received.", \.bytesReceived),
            family("shoal_overlay_tx_bytes_total", "VXLAN payload bytes sent.", \.bytesSent),
            family("shoal_overlay_arp_answered_total", "ARP requests answered by the proxy.", \.arpAnswered),
            family("shoal_overlay_connections_reset_total", "Segments of flows whose backend is gone, answered with a RST.", \.connectionsReset),
            CounterFamily(name: "shoal_overlay_dropped_frames_total", help: "Frames dropped, by reason.", samples: drops),
        ]
    }

    /// The Prometheus text exposition of these counters.
    public var prometheusText: String {
        var lines: [String] = []
        for family in counterFamilies {
            lines.append("# HELP \(family.name) \(family.help)")
            lines.append("# TYPE \(family.name) counter")
            for (labels, value) in family.samples {
                lines.append("\(family.name){\(labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ","))} \(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// One packet thread's live counters: plain integers written only by that thread (no atomics
/// on the hot path); other threads get copies through its command queue.
struct Counters {
    enum Kind: Int, CaseIterable {
        case framesFromEndpoints, bytesFromEndpoints, framesToEndpoints, bytesToEndpoints
        case datagramsReceived, bytesReceived, datagramsSent, bytesSent, arpAnswered, connectionsReset

        /// The field of ``NetworkStatistics`` this counter adds up to.
        var field: WritableKeyPath<NetworkStatistics, UInt64> {
            switch self {
            case .framesFromEndpoints: \.framesFromEndpoints
            case .bytesFromEndpoints: \.bytesFromEndpoints
            case .framesToEndpoints: \.framesToEndpoints
            case .bytesToEndpoints: \.bytesToEndpoints
            case .datagramsReceived: \.datagramsReceived
            case .bytesReceived: \.bytesReceived
            case .datagramsSent: \.datagramsSent
            case .bytesSent: \.bytesSent
            case .arpAnswered: \.arpAnswered
            case .connectionsReset: \.connectionsReset
            }
        }
    }

    static let stride = Kind.allCases.count + DropReason.allCases.count
    /// One row per network plus a last row for drops that no network can be named for.
    let rows: Int
    private let values: UnsafeMutablePointer<UInt64>

    init(networks: Int) {
        rows = networks + 1
        values = .allocate(capacity: rows * Self.stride)
        values.initialize(repeating: 0, count: rows * Self.stride)
    }

    func deallocate() { values.deallocate() }

    /// The row of drops that belong to no network.
    var unattributed: Int { rows - 1 }

    @inline(__always)
    func add(_ kind: Kind, network: Int, _ amount: Int = 1) {
        values[network * Self.stride + kind.rawValue] &+= UInt64(truncatingIfNeeded: amount)
    }

    @inline(__always)
    func drop(_ reason: DropReason, network: Int) {
        values[network * Self.stride + Kind.allCases.count + reason.rawValue] &+= 1
    }

    func value(_ kind: Kind, network: Int) -> UInt64 { values[network * Self.stride + kind.rawValue] }
    func drops(_ reason: DropReason, network: Int) -> UInt64 {
        values[network * Self.stride + Kind.allCases.count + reason.rawValue]
    }

    /// Adds this row's counters to `statistics`.
    func accumulate(row: Int, into statistics: inout NetworkStatistics) {
        for kind in Kind.allCases { statistics[keyPath: kind.field] &+= value(kind, network: row) }
        accumulateDrops(row: row, into: &statistics.drops)
    }

    func accumulateDrops(row: Int, into drops: inout [String: UInt64]) {
        for reason in DropReason.allCases {
            let count = self.drops(reason, network: row)
            if count > 0 { drops[reason.description, default: 0] &+= count }
        }
    }
}
