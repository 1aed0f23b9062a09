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
struct BroadcastQueue {
    private struct Item {
        var bytes: [UInt8]
        var transmits: Int
        var order: UInt64
    }

    private var items: [BroadcastSubject: Item] = [:]
    private var order: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    /// Queues `bytes` (one encoded message) about `subject`, replacing what was queued about it.
    mutating func enqueue(_ subject: BroadcastSubject, _ bytes: [UInt8]) {
        order += 1
        items[subject] = Item(bytes: bytes, transmits: 0, order: order)
    }

    /// Whether `subject` is still being sent.
    func contains(_ subject: BroadcastSubject) -> Bool { items[subject] != nil }

    /// Appends to `packet` the broadcasts that fit in `budget` bytes, fewest transmits first
    /// and newest first among equals; counts the sends and drops what reached `limit`.
    mutating func take(budget: inout Int, limit: Int, into packet: inout [[UInt8]]) {
        guard !items.isEmpty, budget > 0 else { return }
        let candidates = items.sorted { a, b in
            a.value.transmits != b.value.transmits ? a.value.transmits < b.value.transmits : a.value.order > b.value.order
        }
        for (subject, item) in candidates where item.bytes.count <= budget {
            packet.append(item.bytes)
            budget -= item.bytes.count
            if item.transmits + 1 >= limit {
                items[subject] = nil
            } else {
                items[subject]!.transmits += 1
            }
            if budget < 8 { break }
        }
    }

    /// The queued broadcasts larger than `budget`: they cannot ride on a datagram, so they go
    /// over a stream (each counts one transmit per call).
    mutating func takeOversized(budget: Int, limit: Int) -> [[UInt8]] {
        var taken: [[UInt8]] = []
        for (subject, item) in items.sorted(by: { $0.value.order < $1.value.order }) where item.bytes.count > budget {
            taken.append(item.bytes)
            if item.transmits + 1 >= limit { items[subject] = nil } else { items[subject]!.transmits += 1 }
        }
        return taken
    }

    /// Drops every queued broadcast.
    mutating func removeAll() { items.removeAll() }
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
