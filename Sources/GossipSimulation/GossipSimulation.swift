// Many gossip engines in one process on virtual time: a seeded network that loses, delays and
// reorders datagrams, streams that arrive (slower) unless a partition cuts them, members
// killed and restarted. Every engine is the real one; only time and the network are simulated,
// so a run is a pure function of its seed and its script.

import EngineKit
import Gossip

/// The simulated network's behaviour.
public struct SimulatedNetwork: Sendable {
    /// Fraction of datagrams lost (streams are never lost, only cut by partitions).
    public var loss = 0.05
    /// Datagram delay, uniform in this range (nanoseconds); the spread reorders.
    public var datagramDelay = 200_000...2_000_000
    /// Stream delivery delay (a connection and a frame).
    public var streamDelay = 1_000_000...5_000_000

    /// The defaults: 5 % loss, 0.2–2 ms datagrams, 1–5 ms streams.
    public init() {}
}

/// A simulated cluster.
public final class GossipSimulation {
    private enum Event {
        case deliver(from: MemberName, to: MemberName, bytes: [UInt8], overStream: Bool)
        case timer(MemberName)
    }

    private struct Node {
        var engine: GossipEngine
        var address: GossipAddress
        var isUp = true
        var scheduledTimer: Int?
        /// Bytes sent on the wire, envelopes included, and the time this life began.
        var datagramBytes = 0
        var datagramPayloadBytes = 0
        var datagrams = 0
        var streamBytes = 0
        /// What the member keeps on disk across a restart: its networks and its own entries.
        var persistedNetworks: [String] = []
        var persistedEntries: [(key: EntryKey, value: [UInt8])] = []
    }

    /// The network model.
    public var network: SimulatedNetwork
    /// Virtual now (nanoseconds).
    public private(set) var now = 0
    private var random: SplitMix64
    private var queue = EventQueue<Event>()
    private var nodes: [MemberName: Node] = [:]
    private var order: [MemberName] = []
    private var addresses: [GossipAddress: MemberName] = [:]
    private var partitionOf: [MemberName: Int] = [:]
    private let seed: UInt64
    private let baseWallMicroseconds: UInt64 = 1_800_000_000_000_000
    private var configure: (inout GossipConfiguration) -> Void

    /// Observers: every event of every member, with its time.
    public var onEvent: ((_ observer: MemberName, _ event: GossipEvent, _ time: Int) -> Void)?

    /// A simulation with no members yet.
    public init(seed: UInt64, network: SimulatedNetwork = SimulatedNetwork(), configure: @escaping (inout GossipConfiguration) -> Void = { _ in }) {
        self.seed = seed
        self.network = network
        self.configure = configure
        random = SplitMix64(seed: seed)
    }

    /// Member names in creation order.
    public var memberNames: [MemberName] { order }

    /// The engine of `member` (its current life).
    public func engine(_ member: MemberName) -> GossipEngine { nodes[member]!.engine }

    /// Whether `member` is running.
    public func isUp(_ member: MemberName) -> Bool { nodes[member]?.isUp ?? false }

    /// Adds and starts `count` members named `prefix0`, `prefix1`, …; each joins through
    /// `joinThrough` (names of running members) or, when empty, through the previous member.
    @discardableResult
    public func addMembers(_ count: Int, prefix: String = "m", joinThrough: [MemberName] = []) -> [MemberName] {
        var added: [MemberName] = []
        for _ in 0..<count {
            let index = order.count
            let name = "\(prefix)\(index)"
            let address = GossipAddress(ipv4: 0x0A00_0000 | UInt32(index + 1), port: 7946)
            let engine = makeEngine(name: name, address: address, life: 0)
            nodes[name] = Node(engine: engine, address: address)
            order.append(name)
            addresses[address] = name
            engine.start(now: now)
            let seeds = (joinThrough.isEmpty ? (index > 0 ? [order[index - 1]] : []) : joinThrough).compactMap { nodes[$0]?.address }
            engine.join(seeds, now: now)
            flush(name)
            added.append(name)
        }
        return added
    }

    private func makeEngine(name: MemberName, address: GossipAddress, life: UInt64) -> GossipEngine {
        var configuration = GossipConfiguration(
            name: name, address: address, randomSeed: seed ^ (UInt64(address.ipv4) &* 0x9E37_79B9_7F4A_7C15) ^ life,
            startWallMicroseconds: baseWallMicroseconds + UInt64(now / 1_000))
        configure(&configuration)
        return GossipEngine(configuration: configuration)
    }

    /// Runs the simulation until virtual time `end`.
    public func run(until end: Int) {
        while let (time, event) = queue.popNext() {
            if time > end {
                queue.schedule(event, at: time)
                break
            }
            now = time
            switch event {
            case .deliver(let from, let to, let bytes, let overStream):
                guard nodes[to]?.isUp == true, connected(from, to) else { continue }
                nodes[to]!.engine.receive(bytes, from: from, address: nodes[from]?.address, overStream: overStream, now: now)
                flush(to)
            case .timer(let member):
                guard var node = nodes[member], node.isUp, node.scheduledTimer == time else { continue }
                node.scheduledTimer = nil
                nodes[member] = node
                node.engine.advance(to: now)
                flush(member)
            }
        }
        now = max(now, end)
    }

    /// Runs for `duration` more.
    public func run(for duration: Int) { run(until: now + duration) }

    /// Applies `change` to `member`'s engine now, then sends what it produced.
    public func act(on member: MemberName, _ change: (GossipEngine, Int) throws -> Void) rethrows {
        try change(nodes[member]!.engine, now)
        flush(member)
    }

    /// Stops `member` abruptly (kill -9): it sends nothing more and drops what arrives.
    public func kill(_ member: MemberName) {
        let engine = nodes[member]!.engine
        nodes[member]!.persistedNetworks = engine.joinedNetworks
        nodes[member]!.persistedEntries = engine.ownEntries
        nodes[member]!.isUp = false
        nodes[member]!.scheduledTimer = nil
    }

    /// Restarts a killed member as a new process with its persisted networks and entries (or
    /// `entries` instead, when given: a disk that lost some); it joins through `joinThrough`.
    public func restart(
        _ member: MemberName, joinThrough: [MemberName], life: UInt64, entries: [(key: EntryKey, value: [UInt8])]? = nil
    ) {
        var node = nodes[member]!
        if let entries { node.persistedEntries = entries }
        precondition(!node.isUp, "restart a killed member")
        node.engine = makeEngine(name: member, address: node.address, life: life)
        node.isUp = true
        nodes[member] = node
        node.engine.start(now: now)
        for network in node.persistedNetworks { try? node.engine.joinNetwork(network, now: now) }
        for (key, value) in node.persistedEntries { try? node.engine.put(key, value: value, now: now) }
        node.engine.join(joinThrough.compactMap { nodes[$0]?.address }, now: now)
        flush(member)
    }

    /// Splits the network: members in different groups cannot reach each other.
    public func partition(_ groups: [[MemberName]]) {
        partitionOf = [:]
        for (index, group) in groups.enumerated() { for member in group { partitionOf[member] = index } }
    }

    /// Heals every partition.
    public func heal() { partitionOf = [:] }

    private func connected(_ a: MemberName, _ b: MemberName) -> Bool {
        partitionOf.isEmpty || partitionOf[a] == partitionOf[b]
    }

    /// Traffic per running member per second over `duration`: datagram bytes on the wire
    /// (sealed envelopes included) and without envelopes, datagrams, and stream bytes.
    public func bandwidthPerMember(over duration: Int) -> Traffic {
        let up = nodes.values.filter(\.isUp)
        let seconds = Double(duration) / Double(GossipTime.second) * Double(max(1, up.count))
        return Traffic(
            datagramBytes: Double(up.reduce(0) { $0 + $1.datagramBytes }) / seconds,
            payloadBytes: Double(up.reduce(0) { $0 + $1.datagramPayloadBytes }) / seconds,
            datagrams: Double(up.reduce(0) { $0 + $1.datagrams }) / seconds,
            streamBytes: Double(up.reduce(0) { $0 + $1.streamBytes }) / seconds)
    }

    /// Traffic per member per second.
    public struct Traffic: Sendable {
        public var datagramBytes: Double
        public var payloadBytes: Double
        public var datagrams: Double
        public var streamBytes: Double
    }

    /// Zeroes the traffic counters (to measure a steady state only).
    public func resetTraffic() {
        for name in order {
            nodes[name]!.datagramBytes = 0
            nodes[name]!.datagramPayloadBytes = 0
            nodes[name]!.datagrams = 0
            nodes[name]!.streamBytes = 0
        }
    }

    /// Sends what `member` produced and schedules its next timer.
    private func flush(_ member: MemberName) {
        guard var node = nodes[member], node.isUp else { return }
        let output = node.engine.takeOutput()
        let overhead = GossipEnvelope.overhead(senderName: member, sealed: true)
        for packet in output.packets {
            if packet.overStream {
                node.streamBytes += packet.bytes.count + overhead + 4
            } else {
                node.datagramBytes += packet.bytes.count + overhead
                node.datagramPayloadBytes += packet.bytes.count
                node.datagrams += 1
            }
            guard let destination = addresses[packet.destination] else { continue }
            if packet.overStream {
                queue.schedule(
                    .deliver(from: member, to: destination, bytes: packet.bytes, overStream: true),
                    at: now + Int.random(in: network.streamDelay, using: &random))
            } else if Double.random(in: 0..<1, using: &random) >= network.loss {
                queue.schedule(
                    .deliver(from: member, to: destination, bytes: packet.bytes, overStream: false),
                    at: now + Int.random(in: network.datagramDelay, using: &random))
            }
        }
        let deadline = max(now, node.engine.nextDeadline)
        if deadline != Int.max && (node.scheduledTimer.map { deadline < $0 } ?? true) {
            node.scheduledTimer = deadline
            queue.schedule(.timer(member), at: deadline)
        }
        nodes[member] = node
        if let onEvent { for event in output.events { onEvent(member, event, now) } }
    }
}
