// The addresses of one network's subnet: which are taken, and which one comes next. Serial
// allocation, as swarm's IPAM does: the next free address after the last one handed out,
// wrapping at the end, so an address just released is the last to be reused — a stale ARP
// entry or DNS answer elsewhere rarely points at a new owner.

import Wire

/// The host addresses of one subnet, minus its gateway, with the ones in use.
struct AddressPool: Sendable {
    /// The subnet (host bits cleared).
    let subnet: IPv4Prefix
    /// The gateway: never handed out.
    let gateway: IPv4Address
    /// Addresses in use (task addresses and VIPs).
    private(set) var used: Set<IPv4Address> = []
    /// The address handed out or reserved last; the search for the next starts after it.
    private var cursor: IPv4Address

    /// A pool over `subnet` with `gateway` kept out of it.
    init(subnet: IPv4Prefix, gateway: IPv4Address) {
        self.subnet = IPv4Prefix(subnet.network, length: subnet.length)
        self.gateway = gateway
        cursor = gateway
    }

    /// The first and last host address (the network and broadcast addresses are never hosts).
    private var hosts: ClosedRange<UInt32> { (subnet.network.rawValue + 1)...(subnet.broadcast.rawValue - 1) }

    /// How many addresses can be handed out at most.
    var capacity: Int { subnet.length >= 31 ? 0 : hosts.count - (hosts.contains(gateway.rawValue) ? 1 : 0) }

    /// Marks `address` taken (an allocation found in the store). False when it lies outside
    /// the pool's hosts, is the gateway, or was taken already: a second holder of one address.
    @discardableResult
    mutating func reserve(_ address: IPv4Address) -> Bool {
        guard subnet.length < 31, hosts.contains(address.rawValue), address != gateway else { return false }
        guard used.insert(address).inserted else { return false }
        if address > cursor { cursor = address }
        return true
    }

    /// Hands out the next free address after the cursor, wrapping; nil when every one is taken.
    mutating func next() -> IPv4Address? {
        guard used.count < capacity else { return nil }
        let range = hosts
        var candidate = cursor.rawValue
        for _ in 0..<range.count {
            candidate = candidate >= range.upperBound || candidate < range.lowerBound ? range.lowerBound : candidate + 1
            let address = IPv4Address(rawValue: candidate)
            if address != gateway, !used.contains(address) {
                used.insert(address)
                cursor = address
                return address
            }
        }
        return nil
    }

    /// `address` with the subnet's prefix length, as attachments and VIPs store it.
    func cidr(_ address: IPv4Address) -> String { "\(address)/\(subnet.length)" }
}
