// Piggybacked dissemination (SWIM §4): every update waits here and rides on outgoing packets,
// the least-sent first, until it has gone out its retransmit limit. A newer update about the
// same thing replaces the older one, so the queue never carries stale news.

/// What a broadcast is about; a new broadcast about the same subject replaces the queued one.
enum BroadcastSubject: Hashable {
    case member(MemberName)
    case network(node: MemberName, network: String)
    case entry(EntryKey)
}

/// Updates waiting to be piggybacked, each with how often it has been sent.
///
/// Broadcasts sit in buckets by transmit count, oldest first within a bucket, so a packet is
/// filled by walking buckets upward and each bucket from its newest end — no sort per packet
/// (a partition queues hundreds of updates, and every packet draws from them). A sent or
/// replaced broadcast leaves a stale slot behind, skipped when met and compacted away in bulk.
struct BroadcastQueue {
    private struct Item {
        var bytes: [UInt8]
        var transmits: Int
        var order: UInt64
    }

    private var items: [BroadcastSubject: Item] = [:]
    private var buckets: [[(subject: BroadcastSubject, order: UInt64)]] = [[]]
    private var slots = 0
    private var order: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    /// Queues `bytes` (one encoded message) about `subject`, replacing what was queued about it.
    mutating func enqueue(_ subject: BroadcastSubject, _ bytes: [UInt8]) {
        order += 1
        items[subject] = Item(bytes: bytes, transmits: 0, order: order)
        buckets[0].append((subject, order))
        slots += 1
        compactIfStale()
    }

    /// Whether `subject` is still being sent.
    func contains(_ subject: BroadcastSubject) -> Bool { items[subject] != nil }

    /// Appends to `packet` the broadcasts that fit in `budget` bytes, fewest transmits first
    /// and newest first among equals; counts the sends and drops what reached `limit`.
    mutating func take(budget: inout Int, limit: Int, into packet: inout [[UInt8]]) {
        guard !items.isEmpty, budget > 0 else { return }
        var promoted: [(subject: BroadcastSubject, order: UInt64, transmits: Int)] = []
        // A nearly full packet stops the walk after a few broadcasts that do not fit, rather
        // than walk hundreds of them (a partition queues that many) for every packet.
        var misfits = 0
        for transmits in buckets.indices where budget >= 8 && misfits < 8 {
            // Walk from the newest end; what is walked past is rewritten without the slots
            // taken or found stale, so neither is ever walked again.
            var kept: [(subject: BroadcastSubject, order: UInt64)] = []
            var index = buckets[transmits].count - 1
            while index >= 0 && budget >= 8 && misfits < 8 {
                let slot = buckets[transmits][index]
                index -= 1
                guard let item = items[slot.subject], item.order == slot.order, item.transmits == transmits else {
                    slots -= 1
                    continue
                }
                guard item.bytes.count <= budget else {
                    kept.append(slot)
                    misfits += 1
                    continue
                }
                packet.append(item.bytes)
                budget -= item.bytes.count
                slots -= 1
                if transmits + 1 >= limit {
                    items[slot.subject] = nil
                } else {
                    items[slot.subject]!.transmits += 1
                    promoted.append((slot.subject, slot.order, transmits + 1))
                }
            }
            buckets[transmits].replaceSubrange((index + 1)..., with: kept.reversed())
        }
        for entry in promoted {
            while buckets.count <= entry.transmits { buckets.append([]) }
            buckets[entry.transmits].append((entry.subject, entry.order))
            slots += 1
        }
        compactIfStale()
    }

    /// The queued broadcasts larger than `budget`: they cannot ride on a datagram, so they go
    /// over a stream (each counts one transmit per call).
    mutating func takeOversized(budget: Int, limit: Int) -> [[UInt8]] {
        var taken: [[UInt8]] = []
        for (subject, item) in items.sorted(by: { $0.value.order < $1.value.order }) where item.bytes.count > budget {
            taken.append(item.bytes)
            if item.transmits + 1 >= limit {
                items[subject] = nil
            } else {
                items[subject]!.transmits += 1
                while buckets.count <= item.transmits + 1 { buckets.append([]) }
                buckets[item.transmits + 1].append((subject, item.order))
                slots += 1
            }
        }
        return taken
    }

    /// Drops every queued broadcast.
    mutating func removeAll() {
        items.removeAll()
        buckets = [[]]
        slots = 0
    }

    /// Rebuilds the buckets from the live items once stale slots outnumber them.
    private mutating func compactIfStale() {
        guard slots > 2 * items.count + 64 else { return }
        buckets = [[]]
        for (subject, item) in items.sorted(by: { $0.value.order < $1.value.order }) {
            while buckets.count <= item.transmits { buckets.append([]) }
            buckets[item.transmits].append((subject, item.order))
        }
        slots = items.count
    }
}

/// The retransmit limit for a group of `members`: `multiplier × ⌈log10(members + 1)⌉`.
func retransmitLimit(multiplier: Int, members: Int) -> Int {
    var digits = 0
    var scale = 1
    while scale <= members {  // ⌈log10(members + 1)⌉ is the number of decimal digits of `members`
        digits += 1
        scale *= 10
    }
    return multiplier * max(1, digits)
}
