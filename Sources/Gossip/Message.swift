// Everything members say to each other. A packet (one datagram, or one frame on a stream) is
// a list of messages: a probe and the broadcasts piggybacked on it travel together.

/// A member's claim about a member, disseminated by gossip (SWIM's alive / suspect / dead).
public struct MemberRecord: Sendable, Equatable {
    /// The member the claim is about.
    public var name: MemberName
    /// Its address (what an `alive` claim teaches; carried by all for simplicity).
    public var address: GossipAddress
    /// The incarnation the claim is about.
    public var incarnation: UInt64
    /// alive, suspect, dead, or left.
    public var status: MemberStatus
    /// Who makes a suspect or dead claim (the confirmer that Lifeguard counts). For `alive` and
    /// `left`, the member itself.
    public var from: MemberName

    /// A claim.
    public init(name: MemberName, address: GossipAddress, incarnation: UInt64, status: MemberStatus, from: MemberName) {
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.status = status
        self.from = from
    }
}

/// A member joined or left a network, at a clock of its own.
public struct NetworkRecord: Sendable, Equatable {
    /// The member.
    public var node: MemberName
    /// The network.
    public var network: String
    /// True for joined, false for left.
    public var joined: Bool
    /// The member's clock when it joined or left; the latest record wins.
    public var clock: UInt64

    /// A network record.
    public init(node: MemberName, network: String, joined: Bool, clock: UInt64) {
        self.node = node
        self.network = network
        self.joined = joined
        self.clock = clock
    }
}

/// One version of one table entry: a value, or a tombstone (`value == nil`).
public struct EntryRecord: Sendable, Equatable {
    /// Where it lives.
    public var key: EntryKey
    /// The member that wrote it.
    public var owner: MemberName
    /// The owner's clock when it wrote it; versions are ordered by (clock, owner).
    public var clock: UInt64
    /// The value, or nil for a deletion.
    public var value: [UInt8]?

    /// An entry version.
    public init(key: EntryKey, owner: MemberName, clock: UInt64, value: [UInt8]?) {
        self.key = key
        self.owner = owner
        self.clock = clock
        self.value = value
    }
}

/// A member's full state for push/pull anti-entropy, sent over a stream.
public struct StateExchange: Sendable, Equatable {
    /// True when this answers another member's state (no answer is sent back to an answer).
    public var isReply: Bool
    /// True when the state holds only the sender's own records (its member record, networks
    /// and entries) and asks for the same in reply: the cheap exchange after a member returns.
    public var ownerOnly: Bool = false
    /// The sender's clock when it took the state: its own entries at or below it that are
    /// missing here were deleted by it.
    public var senderClock: UInt64
    /// Every member the sender knows, the sender itself included.
    public var members: [MemberRecord]
    /// Every network membership the sender knows.
    public var networks: [NetworkRecord]
    /// The networks whose entries follow (those the sender believes the receiver has joined).
    public var coveredNetworks: [String]
    /// The entries, tombstones included, of the covered networks.
    public var entries: [EntryRecord]

    /// A state exchange.
    public init(
        isReply: Bool, ownerOnly: Bool = false, senderClock: UInt64, members: [MemberRecord], networks: [NetworkRecord],
        coveredNetworks: [String], entries: [EntryRecord]
    ) {
        self.isReply = isReply
        self.ownerOnly = ownerOnly
        self.senderClock = senderClock
        self.members = members
        self.networks = networks
        self.coveredNetworks = coveredNetworks
        self.entries = entries
    }
}

/// One message.
public enum GossipMessage: Sendable, Equatable {
    /// "Are you `target`?" Answered by an ack with the same sequence number.
    case ping(sequence: UInt32, target: MemberName)
    /// "Please ping `target` for me", with a nack if it does not answer in time (Lifeguard).
    case indirectPing(sequence: UInt32, target: MemberName, address: GossipAddress, wantsNack: Bool)
    /// The answer to a ping.
    case ack(sequence: UInt32)
    /// A helper of an indirect probe is alive but got no answer from the target.
    case nack(sequence: UInt32)
    /// A membership claim.
    case member(MemberRecord)
    /// A network membership.
    case network(NetworkRecord)
    /// A table entry version.
    case entry(EntryRecord)
    /// Full state (streams only).
    case state(StateExchange)
}
