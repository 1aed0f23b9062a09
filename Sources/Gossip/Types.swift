// The nouns of the gossip layer: who a member is, where it listens, what state it is in, and
// the versions that order updates (incarnations for members, a hybrid logical clock for
// table entries and network memberships).

import EngineKit

/// A member's name, unique in the cluster (the operator's `--node-name`), at most 255 bytes.
public typealias MemberName = String

/// Where a member listens for gossip: one IPv4 address and one port, for both UDP and TCP.
public struct GossipAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The IPv4 address in host order (192.0.2.1 is 0xC000_0201).
    public var ipv4: UInt32
    /// The UDP and TCP port (7946 by default).
    public var port: UInt16

    /// An address from its parts.
    public init(ipv4: UInt32, port: UInt16) {
        self.ipv4 = ipv4
        self.port = port
    }

    /// Parses `a.b.c.d` or `a.b.c.d:port`; a missing port means `defaultPort`.
    public init?(_ text: String, defaultPort: UInt16 = 7946) {
        guard let parsed = try? HostPort(parsing: text, defaultPort: defaultPort, allowZero: true) else { return nil }
        let octets = parsed.host.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 != nil }) else { return nil }
        ipv4 = octets.reduce(0) { $0 << 8 | UInt32($1!) }
        port = parsed.port
    }

    /// The dotted quad alone.
    public var host: String { "\(ipv4 >> 24).\(ipv4 >> 16 & 0xFF).\(ipv4 >> 8 & 0xFF).\(ipv4 & 0xFF)" }

    public var description: String { "\(host):\(port)" }

    public static func < (a: GossipAddress, b: GossipAddress) -> Bool { (a.ipv4, a.port) < (b.ipv4, b.port) }
}

/// What a member believes about another (SWIM's states, plus a graceful leave).
public enum MemberStatus: UInt8, Sendable, CustomStringConvertible, CaseIterable {
    /// Answering probes, directly or through others.
    case alive = 0
    /// Failed a probe; declared dead unless it refutes before the suspicion times out.
    case suspect = 1
    /// Declared failed: its table entries are hidden everywhere until it comes back.
    case dead = 2
    /// Said goodbye: its entries are withdrawn for good.
    case left = 3

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// One member as seen by one member.
public struct MemberInfo: Sendable, Equatable, Codable {
    /// The member's unique name.
    public var name: MemberName
    /// Where it listens.
    public var address: GossipAddress
    /// Its incarnation: only the member raises it, to refute a suspicion or after a restart.
    public var incarnation: UInt64
    /// What the observer believes.
    public var status: MemberStatus

    /// A member record.
    public init(name: MemberName, address: GossipAddress, incarnation: UInt64, status: MemberStatus) {
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.status = status
    }
}

extension MemberStatus: Codable {
    /// Encoded by name ("alive", …), as operators read it in JSON.
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let status = Self.allCases.first(where: { $0.description == text }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown status \(text)"))
        }
        self = status
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension GossipAddress: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = GossipAddress(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not ADDR:PORT: \(text)"))
        }
        self = address
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The position of a table entry: which network, which table, which key.
public struct EntryKey: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The overlay network the entry belongs to; only its members receive it.
    public var network: String
    /// The table within the network ("endpoints", "services", …).
    public var table: String
    /// The key within the table.
    public var key: String

    /// A key from its parts (each at most 255 bytes of UTF-8).
    public init(network: String, table: String, key: String) {
        self.network = network
        self.table = table
        self.key = key
    }

    public var description: String { "\(network)/\(table)/\(key)" }

    public static func < (a: EntryKey, b: EntryKey) -> Bool { (a.network, a.table, a.key) < (b.network, b.table, b.key) }
}

/// A change a watcher sees: a value became visible or replaced, or the key went away.
public struct EntryChange: Sendable, Equatable {
    /// Which entry.
    public var key: EntryKey
    /// The member that wrote the value now in force (or the one whose value went away).
    public var owner: MemberName
    /// The new value, or nil when the entry was deleted or withdrawn.
    public var value: [UInt8]?

    /// A change record.
    public init(key: EntryKey, owner: MemberName, value: [UInt8]?) {
        self.key = key
        self.owner = owner
        self.value = value
    }
}

/// What the engine tells its host, in the order it happened.
public enum GossipEvent: Sendable, Equatable {
    /// A member appeared or changed state.
    case member(MemberInfo)
    /// A visible table entry changed.
    case entry(EntryChange)
}
