// The knobs of one member's engine, with the defaults the simulator and the daemon use.
// Times are nanoseconds of the host's monotonic clock; the engine never reads a clock itself.

/// How one member behaves.
public struct GossipConfiguration: Sendable {
    /// This member's name.
    public var name: MemberName
    /// Where it listens (and what it tells others).
    public var address: GossipAddress
    /// Seed of the engine's randomness (probe order, gossip targets); a simulation replays from it.
    public var randomSeed: UInt64

    /// One probe per interval (SWIM's protocol period), scaled by local health.
    public var probeInterval = 500 * millisecond
    /// How long a direct ping waits for its ack before asking others, scaled by local health.
    /// An indirect probe then has until 2.5 × this from the start of the probe.
    public var probeTimeout = 200 * millisecond
    /// Members asked to ping an unresponsive target (SWIM's k).
    public var indirectChecks = 3
    /// Broadcasts go out every interval to `gossipFanout` random members (and as many random
    /// members of each network that has something to say).
    public var gossipInterval = 100 * millisecond
    /// Members each gossip round reaches.
    public var gossipFanout = 3
    /// Each broadcast is sent `retransmitMultiplier × ⌈log10(n + 1)⌉` times.
    public var retransmitMultiplier = 5

    /// Lifeguard's dynamic suspicion timeout: from `maximum` down to `minimum` as independent
    /// confirmations arrive, where `minimum = suspicionMinimumMultiplier × max(1, log10 n) ×
    /// probeInterval` and `maximum = suspicionMaximumMultiplier × minimum`.
    public var suspicionMinimumMultiplier = 0.8
    /// See ``suspicionMinimumMultiplier``.
    public var suspicionMaximumMultiplier = 8.0
    /// Confirmations that bring the suspicion timeout down to its minimum (Lifeguard's K).
    public var suspicionConfirmations = 2
    /// How many members, in expectation, probe a member as soon as they hear it suspected, so a
    /// real failure gathers confirmations within one probe instead of waiting for the round
    /// robin (a false suspicion costs the suspect that many extra pings).
    public var suspicionProbers = 30.0
    /// Lifeguard's local health multiplier caps at this (timeouts and interval × score + 1).
    public var maximumHealthScore = 7

    /// A full-state exchange with one random member every interval, scaled up past 32 members
    /// as memberlist does (× ⌈log2 n − 5⌉ + 1).
    public var pushPullInterval = 30 * second
    /// A dead member is offered our state this often (it heals partitions).
    public var reconnectInterval = 10 * second
    /// Dead members and their hidden entries are forgotten after this.
    public var deadMemberRetention = 3_600 * second
    /// Tombstones (deleted entries, left members) are kept this long so that the deletion
    /// outlives every copy of what it deletes, then reaped.
    public var tombstoneRetention = 600 * second
    /// Dead members still get gossip this long, so they can learn they were declared dead.
    public var gossipToTheDead = 30 * second
    /// Largest datagram payload before sealing (the rest of 1,472 is the envelope).
    public var maximumDatagramBytes = 1_400

    /// Microseconds since the Unix epoch when the engine starts. Seeds the clock of table
    /// entries and the incarnation, so both keep growing across restarts.
    public var startWallMicroseconds: UInt64

    /// A configuration with defaults for everything but identity, seed and start time.
    public init(name: MemberName, address: GossipAddress, randomSeed: UInt64, startWallMicroseconds: UInt64) {
        precondition(!name.isEmpty && name.utf8.count <= 255, "a member name is 1 to 255 bytes")
        self.name = name
        self.address = address
        self.randomSeed = randomSeed
        self.startWallMicroseconds = startWallMicroseconds
    }
}

/// The engine's unit of time is the nanosecond; these name its multiples for hosts.
public enum GossipTime {
    /// One millisecond in nanoseconds.
    public static let millisecond = 1_000_000
    /// One second in nanoseconds.
    public static let second = 1_000_000_000
}

let millisecond = GossipTime.millisecond
let second = GossipTime.second
