// One member's gossip protocol as a deterministic state machine: SWIM failure detection with
// Lifeguard's refinements, piggybacked dissemination, push/pull anti-entropy, and the
// network-scoped tables. Time and randomness come in from the host; packets and events go
// out through `takeOutput()`. The same engine runs in the simulator and behind real sockets.
//
// The engine is a class that one host confines to one thread (an event loop, or the
// simulator's loop); it does no locking and no I/O.

import EngineKit

/// A packet the host must deliver.
public struct OutgoingPacket: Sendable, Equatable {
    /// Where to.
    public var destination: GossipAddress
    /// The packet (a version byte, then messages), before the host seals it.
    public var bytes: [UInt8]
    /// True for a stream (TCP): state exchanges and broadcasts too large for a datagram.
    public var overStream: Bool
}

/// Counters of what one engine did and refused.
public struct GossipStatistics: Sendable, Equatable, Codable {
    /// Datagrams and stream frames handed to the host, and their bytes before sealing.
    public var sentDatagrams = 0
    public var sentDatagramBytes = 0
    public var sentStreamFrames = 0
    public var sentStreamBytes = 0
    /// Packets accepted and decoded.
    public var receivedPackets = 0
    /// Packets dropped because they did not decode.
    public var malformedPackets = 0
    /// Pings meant for another member (a stale address after a restart elsewhere).
    public var misaddressedPings = 0
    /// Entries for networks this member has not joined, dropped.
    public var entriesOutsideNetworks = 0
    /// Probes started, and those that failed directly and indirectly.
    public var probes = 0
    public var failedProbes = 0
    /// Suspicions this member started, members it declared dead, and refutations of claims about itself.
    public var suspicionsRaised = 0
    public var deathsDeclared = 0
    public var refutations = 0
    /// Lifeguard's local health score now (0 is healthy).
    public var healthScore = 0

    public init() {}
}

/// One member's gossip engine.
public final class GossipEngine {
    /// Its configuration.
    public let configuration: GossipConfiguration
    var name: MemberName { configuration.name }
    var random: SplitMix64
    /// The first time the host gave; wall time is measured from it.
    private(set) var startTime: Int?

    /// This member's incarnation (raised to refute).
    var incarnation: UInt64
    /// The clock of table entries and network records: a hybrid logical clock, so that it
    /// grows across restarts (it never falls below wall-clock microseconds).
    var clock: UInt64
    /// True after `leave()`: claims about this member are no longer refuted.
    var isLeaving = false

    var members: [MemberName: Member] = [:]
    /// Members currently alive or suspect (probe and gossip candidates).
    var liveMembers = IndexedSet<MemberName>()
    /// Members with a running suspicion timer.
    var suspects = Set<MemberName>() {
        didSet { earliestSuspicionDeadline = nil }
    }
    /// The earliest suspicion deadline, or nil when it must be recomputed: during a partition
    /// hundreds of suspicions run at once, and the host asks for the next deadline after every
    /// packet.
    var earliestSuspicionDeadline: Int?
    /// Dead (not left) members, offered our state now and then to heal partitions.
    var deadMembers = IndexedSet<MemberName>()
    var probeOrder: [MemberName] = []
    var probeIndex = 0
    var probes: [UInt32: Probe] = [:]
    var relays: [UInt32: Relay] = [:]
    var nextSequence: UInt32 = 0
    var health = 0

    var memberBroadcasts = BroadcastQueue()
    var networkBroadcasts: [String: BroadcastQueue] = [:]
    var tables = TableStore()
    /// Owners whose entries are hidden here awaiting their re-announcement, and when we last
    /// asked each for its state directly.
    var ownersAwaited: [MemberName: Int] = [:]

    var nextProbeAt = Int.max
    var nextGossipAt = Int.max
    var nextPushPullAt = Int.max
    var nextReconnectAt = Int.max
    var nextReapAt = Int.max

    var outbox: [OutgoingPacket] = []
    var events: [GossipEvent] = []
    /// What this engine did and refused.
    public internal(set) var statistics = GossipStatistics()
    /// Moves each time this member writes one of its own records (a network joined or left,
    /// an entry put or deleted): a host that persists ``GossipPersistentState`` writes when it moved.
    public internal(set) var ownStateVersion = 0

    /// An engine that has not started yet.
    public init(configuration: GossipConfiguration) {
        self.configuration = configuration
        random = SplitMix64(seed: configuration.randomSeed)
        incarnation = configuration.startWallMicroseconds / 1_000
        clock = configuration.startWallMicroseconds
    }

    // MARK: - What the host calls

    /// Starts the member at `now`: it announces itself and its timers begin (staggered at
    /// random, so that members started together do not probe in lockstep).
    public func start(now: Int) {
        precondition(startTime == nil, "start once")
        startTime = now
        let me = MemberInfo(name: name, address: configuration.address, incarnation: incarnation, status: .alive)
        members[name] = Member(info: me, statusSince: now)
        events.append(.member(me))
        broadcastSelf()
        nextProbeAt = now + Int.random(in: 0..<configuration.probeInterval, using: &random)
        nextGossipAt = now + Int.random(in: 0..<configuration.gossipInterval, using: &random)
        nextPushPullAt = now + pushPullInterval
        nextReconnectAt = now + configuration.reconnectInterval
        nextReapAt = now + second
    }

    /// Joins the cluster through members at `addresses` by exchanging full state with each.
    public func join(_ addresses: [GossipAddress], now: Int) {
        for address in addresses where address != configuration.address {
            sendState(to: nil, address: address, isReply: false)
        }
    }

    /// Announces a graceful leave; the host keeps the engine running a moment (about one
    /// second) so the news spreads, then stops it.
    public func leave(now: Int) {
        isLeaving = true
        members[name]?.info.status = .left
        broadcast(MemberRecord(name: name, address: configuration.address, incarnation: incarnation, status: .left, from: name))
        // Say it now to a few members rather than wait for the next round.
        gossip(now: now)
    }

    /// Takes what the engine produced since the last call: packets to send, events to deliver.
    public func takeOutput() -> (packets: [OutgoingPacket], events: [GossipEvent]) {
        defer {
            outbox.removeAll(keepingCapacity: true)
            events.removeAll(keepingCapacity: true)
        }
        return (outbox, events)
    }

    /// The earliest time at which `advance` has work to do.
    public var nextDeadline: Int {
        var deadline = min(nextProbeAt, nextGossipAt, nextPushPullAt, nextReconnectAt, nextReapAt)
        for probe in probes.values { deadline = min(deadline, probe.nextDeadline) }
        for relay in relays.values { deadline = min(deadline, relay.nextDeadline) }
        return min(deadline, earliestSuspicion())
    }

    /// The earliest suspicion deadline (cached until a suspicion starts, is confirmed or ends).
    func earliestSuspicion() -> Int {
        if let earliestSuspicionDeadline { return earliestSuspicionDeadline }
        let earliest = suspects.reduce(Int.max) { min($0, members[$1]?.suspicion?.deadline ?? Int.max) }
        earliestSuspicionDeadline = earliest
        return earliest
    }

    /// Runs every timer due at `now`.
    public func advance(to now: Int) {
        guard startTime != nil else { return }
        expireProbes(now: now)
        expireRelays(now: now)
        expireSuspicions(now: now)
        if now >= nextProbeAt {
            nextProbeAt = now + configuration.probeInterval * (health + 1)
            probeNext(now: now)
        }
        if now >= nextGossipAt {
            nextGossipAt = now + configuration.gossipInterval
            gossip(now: now)
        }
        if now >= nextPushPullAt {
            nextPushPullAt = now + pushPullInterval
            pushPull(now: now)
        }
        if now >= nextReconnectAt {
            nextReconnectAt = now + configuration.reconnectInterval
            reconnect(now: now)
        }
        if now >= nextReapAt {
            nextReapAt = now + second
            reap(now: now)
            requestAwaitedEntries(now: now)
        }
    }

    /// Handles one packet from `sender`. `address` is the datagram's source (where acks go);
    /// nil for a stream, whose replies go to the sender's advertised address.
    public func receive(_ bytes: [UInt8], from sender: MemberName, address: GossipAddress?, overStream: Bool, now: Int) {
        guard startTime != nil else { return }
        let messages: [GossipMessage]
        do {
            messages = try GossipCodec.decode(bytes, fromStream: overStream)
        } catch {
            statistics.malformedPackets += 1
            return
        }
        statistics.receivedPackets += 1
        let replyAddress = address ?? members[sender]?.info.address
        for message in messages {
            handle(message, from: sender, replyAddress: replyAddress, overStream: overStream, now: now)
        }
    }

    // MARK: - Queries

    /// Every member this one knows, itself included, by name.
    public var memberList: [MemberInfo] { members.values.map(\.info).sorted { $0.name < $1.name } }

    /// What this member believes about `name`.
    public func member(_ name: MemberName) -> MemberInfo? { members[name]?.info }

    /// The number of members alive or suspect, this one included.
    public var liveMemberCount: Int { liveMembers.count + 1 }

    /// This member's incarnation now.
    public var currentIncarnation: UInt64 { incarnation }

    // MARK: - Shared helpers

    /// Wall-clock microseconds at `now`, derived from the start time.
    func wallMicroseconds(at now: Int) -> UInt64 {
        configuration.startWallMicroseconds + UInt64(max(0, now - (startTime ?? now)) / 1_000)
    }

    /// The next clock value for a local write: above everything seen, never below wall time.
    func tickClock(now: Int) -> UInt64 {
        clock = max(clock + 1, wallMicroseconds(at: now))
        return clock
    }

    /// Lamport's rule on receipt.
    func witness(_ remoteClock: UInt64) { clock = max(clock, remoteClock) }

    func makeSequence() -> UInt32 {
        nextSequence &+= 1
        return nextSequence
    }

    /// Queues one packet: `primary` messages first, then as many broadcasts as fit, chosen
    /// for `destinationName` (the networks it shares with us, and what we believe of it).
    func send(_ primary: [GossipMessage], to address: GossipAddress, destinationName: MemberName?) {
        var parts = primary.map(GossipCodec.encode)
        var budget = configuration.maximumDatagramBytes - 1 - parts.reduce(0) { $0 + $1.count }
        piggyback(for: destinationName, budget: &budget, into: &parts)
        guard !parts.isEmpty else { return }
        emit(GossipCodec.packet(parts), to: address, overStream: false)
    }

    /// Sends `message` alone over a stream (state exchanges, probe fallbacks and their acks).
    func sendOverStream(_ message: GossipMessage, to address: GossipAddress) {
        emit(GossipCodec.packet([GossipCodec.encode(message)]), to: address, overStream: true)
    }

    /// Queues a membership claim for dissemination, replacing older news about the member.
    func broadcast(_ record: MemberRecord) {
        memberBroadcasts.enqueue(.member(record.name), GossipCodec.encode(.member(record)))
    }

    /// Queues a network record, cluster-wide (everyone must know who is in which network).
    func broadcast(_ record: NetworkRecord) {
        memberBroadcasts.enqueue(.network(node: record.node, network: record.network), GossipCodec.encode(.network(record)))
    }

    /// Queues an entry version, for the members of its network only.
    func broadcast(_ record: EntryRecord) {
        networkBroadcasts[record.key.network, default: BroadcastQueue()].enqueue(
            .entry(record.key), GossipCodec.encode(.entry(record)))
    }

    /// How often a broadcast to a group of `members` is sent: `multiplier × ⌈log10(n + 1)⌉`.
    func retransmitLimit(forGroupOf members: Int) -> Int {
        Gossip.retransmitLimit(multiplier: configuration.retransmitMultiplier, members: members)
    }

    func emit(_ bytes: [UInt8], to address: GossipAddress, overStream: Bool) {
        if overStream {
            statistics.sentStreamFrames += 1
            statistics.sentStreamBytes += bytes.count
        } else {
            statistics.sentDatagrams += 1
            statistics.sentDatagramBytes += bytes.count
        }
        outbox.append(OutgoingPacket(destination: address, bytes: bytes, overStream: overStream))
    }

    /// Push/pull every 30 s up to 32 members, then × ⌈log2 n − 5⌉ + 1 (memberlist's scaling):
    /// the full state grows with n, so exchanging it less often keeps its cost per second flat.
    var pushPullInterval: Int {
        let n = liveMemberCount
        guard n > 32 else { return configuration.pushPullInterval }
        var log2 = 0
        while (1 << log2) < n { log2 += 1 }
        return configuration.pushPullInterval * (log2 - 5 + 1)
    }

    private func handle(
        _ message: GossipMessage, from sender: MemberName, replyAddress: GossipAddress?, overStream: Bool, now: Int
    ) {
        switch message {
        case .ping(let sequence, let target):
            guard target == name else {
                statistics.misaddressedPings += 1
                return
            }
            guard let replyAddress else { return }
            if overStream {
                // The stream fallback of a probe: answer the same way, without piggybacking.
                sendOverStream(.ack(sequence: sequence), to: replyAddress)
            } else {
                send([.ack(sequence: sequence)], to: replyAddress, destinationName: sender)
            }
        case .indirectPing(let sequence, let target, let address, let wantsNack):
            guard let replyAddress else { return }
            relayProbe(sequence: sequence, target: target, address: address, requester: replyAddress, wantsNack: wantsNack, now: now)
        case .ack(let sequence):
            acknowledge(sequence, now: now)
        case .nack(let sequence):
            probes[sequence]?.nacks += 1
        case .member(let record):
            if apply(record, now: now) { broadcast(record) }
        case .network(let record):
            if apply(record, now: now) { broadcast(record) }
        case .entry(let record):
            if apply(record, now: now) { broadcast(record) }
        case .state(let state):
            merge(state, from: sender, now: now)
        }
    }
}

extension MemberInfo {
    /// A claim by `from` that this member is in `status` at `incarnation` (by default, as known).
    func claim(_ status: MemberStatus, incarnation: UInt64? = nil, from: MemberName) -> MemberRecord {
        MemberRecord(name: name, address: address, incarnation: incarnation ?? self.incarnation, status: status, from: from)
    }
}

/// One known member and the engine's bookkeeping about it.
struct Member {
    var info: MemberInfo
    var suspicion: Suspicion?
    /// When its current status began.
    var statusSince: Int
}
