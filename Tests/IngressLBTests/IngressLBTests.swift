@testable import Overlay
import Testing
import Wire

@testable import IngressLB

/// Frames built for the tests: Ethernet + IPv4 + TCP or UDP with complete checksums (or a
/// partial one, as a TAP hands `NEEDS_CSUM` frames over).
enum Frames {
    static func tcp(
        from source: IPv4Address, _ sourcePort: UInt16, to destination: IPv4Address, _ destinationPort: UInt16,
        flags: TCPFlags, payload: Int = 32, partial: Bool = false
    ) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + 20 + payload)
        bytes.withUnsafeMutableBytes { buffer in
            let frame = try! EthernetFrame.build(
                in: buffer, destination: .derived(from: destination), source: .derived(from: source), etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: frame.payload, totalLength: 40 + payload, protocol: .tcp, source: source, destination: destination)
            let transport = ip.payload
            for index in 0..<payload { transport[20 + index] = UInt8(truncatingIfNeeded: index &* 7 &+ 3) }
            transport.storeBigEndian16(sourcePort, at: 0)
            transport.storeBigEndian16(destinationPort, at: 2)
            transport.storeBigEndian32(1000, at: 4)
            transport[12] = 5 << 4
            transport[13] = flags.rawValue
            transport.storeBigEndian16(65535, at: 14)
            let segment = try! TCPSegment(validating: transport)
            if partial {
                segment.checksum = ~ip.pseudoHeaderChecksum.value
            } else {
                segment.updateChecksum(source: source, destination: destination)
            }
        }
        return bytes
    }

    static func udp(
        from source: IPv4Address, _ sourcePort: UInt16, to destination: IPv4Address, _ destinationPort: UInt16,
        payload: Int = 24, checksum: Bool = true
    ) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + 8 + payload)
        bytes.withUnsafeMutableBytes { buffer in
            let frame = try! EthernetFrame.build(
                in: buffer, destination: .derived(from: destination), source: .derived(from: source), etherType: .ipv4)
            let ip = try! IPv4Packet.build(in: frame.payload, totalLength: 28 + payload, protocol: .udp, source: source, destination: destination)
            let datagram = try! UDPDatagram.build(in: ip.payload, sourcePort: sourcePort, destinationPort: destinationPort, payloadLength: payload)
            for index in 0..<payload { datagram.payload[index] = UInt8(truncatingIfNeeded: index &* 5 &+ 1) }
            if checksum { datagram.updateChecksum(source: source, destination: destination) }
        }
        return bytes
    }

    /// Runs `body` on the IPv4 packet inside `frame`.
    static func withPacket<T>(_ frame: inout [UInt8], _ body: (IPv4Packet) throws -> T) throws -> T {
        try frame.withUnsafeMutableBytes { buffer in
            let ethernet = try EthernetFrame(validating: buffer)
            return try body(try IPv4Packet(validating: ethernet.payload))
        }
    }

    /// Whether the packet's checksums are right; a partial transport sum is completed first.
    static func checksumsAreValid(_ frame: [UInt8], partial: Bool = false) throws -> Bool {
        var copy = frame
        return try withPacket(&copy) { packet in
            guard packet.isHeaderChecksumValid else { return false }
            if packet.protocol == .tcp {
                let segment = try TCPSegment(validating: packet.payload)
                if partial {
                    var sum = InternetChecksum()
                    sum.add(UnsafeRawBufferPointer(packet.payload))
                    segment.checksum = sum.value
                }
                return segment.isChecksumValid(source: packet.source, destination: packet.destination)
            }
            let datagram = try UDPDatagram(validating: packet.payload)
            return datagram.checksum == 0 || datagram.isChecksumValid(source: packet.source, destination: packet.destination)
        }
    }
}

@Suite struct AddressTranslationTests {
    let client = IPv4Address(10, 0, 0, 5), vip = IPv4Address(10, 0, 0, 2), backend = IPv4Address(10, 0, 0, 201)

    @Test func rewritingAnAddressKeepsEveryChecksumRight() throws {
        for (field, partial) in [(AddressTranslation.Field.destination, false), (.source, false), (.destination, true), (.source, true)] {
            var frame = Frames.tcp(from: client, 40000, to: vip, 80, flags: .syn, payload: 301, partial: partial)
            try Frames.withPacket(&frame) { AddressTranslation.rewrite(field, of: $0, to: backend, partialChecksum: partial) }
            #expect(try Frames.checksumsAreValid(frame, partial: partial), "\(field) partial \(partial)")
            try Frames.withPacket(&frame) { packet in
                #expect((field == .source ? packet.source : packet.destination) == backend)
            }
        }
        var datagram = Frames.udp(from: client, 5000, to: vip, 53)
        try Frames.withPacket(&datagram) { AddressTranslation.rewrite(.destination, of: $0, to: backend, partialChecksum: false) }
        #expect(try Frames.checksumsAreValid(datagram))
    }

    @Test func aDatagramWithoutChecksumStaysWithout() throws {
        var datagram = Frames.udp(from: client, 5000, to: vip, 53, checksum: false)
        try Frames.withPacket(&datagram) { packet throws in
            AddressTranslation.rewrite(.destination, of: packet, to: backend, partialChecksum: false)
            #expect(try UDPDatagram(validating: packet.payload).checksum == 0)
            #expect(packet.isHeaderChecksumValid)
        }
    }

    @Test func everyAddressPairKeepsChecksumsRight() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let from = IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &generator))
            let to = IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &generator))
            let new = IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &generator))
            let partial = Bool.random(using: &generator)
            var frame = Bool.random(using: &generator)
                ? Frames.tcp(from: from, 1, to: to, 2, flags: .ack, payload: Int.random(in: 0...200, using: &generator), partial: partial)
                : Frames.udp(from: from, 1, to: to, 2, payload: Int.random(in: 0...200, using: &generator))
            let isTCP = frame[23] == 6
            try Frames.withPacket(&frame) { AddressTranslation.rewrite(.destination, of: $0, to: new, partialChecksum: partial && isTCP) }
            #expect(try Frames.checksumsAreValid(frame, partial: partial && isTCP), "\(from) \(to) → \(new)")
        }
    }
}

@Suite struct ConnectionTrackerTests {
    static let vni = VNI(4097)!
    let vip = IPv4Address(10, 0, 0, 2), client = IPv4Address(10, 0, 0, 5)
    let backends = [IPv4Address(10, 0, 0, 11), IPv4Address(10, 0, 0, 12), IPv4Address(10, 0, 0, 13)]

    /// Sends `frame` (client → VIP) through `balance`; the backend or the drop reason.
    func balance(_ tracker: ConnectionTracker, _ frame: inout [UInt8], now: UInt32 = 100, backends: [IPv4Address]? = nil) throws -> BalanceDecision {
        let client = self.client, vip = self.vip
        return try (backends ?? self.backends).withUnsafeBufferPointer { list in
            try Frames.withPacket(&frame) { packet in
                tracker.balance(packet, network: Self.vni, client: client, service: BalancedService(address: vip, backends: list),
                                partialChecksum: false, now: now)
            }
        }
    }

    func reverse(_ tracker: ConnectionTracker, _ frame: inout [UInt8], now: UInt32 = 100) throws -> IPv4Address? {
        try Frames.withPacket(&frame) { tracker.reverse($0, network: Self.vni, partialChecksum: false, now: now) }
    }

    @Test func newFlowsGoRoundRobinAndAFlowStaysOnItsBackend() throws {
        let tracker = ConnectionTracker()
        var picked: [IPv4Address: Int] = [:]
        for port in UInt16(30000)..<30300 {
            var syn = Frames.tcp(from: client, port, to: vip, 80, flags: .syn)
            guard case .backend(let backend) = try balance(tracker, &syn) else { Issue.record("dropped"); return }
            picked[backend, default: 0] += 1
            try Frames.withPacket(&syn) { #expect($0.destination == backend) }
            #expect(try Frames.checksumsAreValid(syn))
            // Later segments of the flow: the same backend, however the rotation moved.
            var data = Frames.tcp(from: client, port, to: vip, 80, flags: [.ack, .psh])
            #expect(try balance(tracker, &data) == .backend(backend))
        }
        #expect(picked == [backends[0]: 100, backends[1]: 100, backends[2]: 100])
        #expect(tracker.statistics().newFlows == 300 && tracker.statistics().flows == 300)
    }

    @Test func repliesGetTheVIPBackAndOtherTrafficIsLeftAlone() throws {
        let tracker = ConnectionTracker()
        var syn = Frames.tcp(from: client, 41000, to: vip, 80, flags: .syn)
        guard case .backend(let backend) = try balance(tracker, &syn) else { Issue.record("dropped"); return }
        var answer = Frames.tcp(from: backend, 80, to: client, 41000, flags: [.syn, .ack])
        #expect(try reverse(tracker, &answer) == vip)
        try Frames.withPacket(&answer) { #expect($0.source == vip && $0.destination == client) }
        #expect(try Frames.checksumsAreValid(answer))
        // The backend talking to the client on other ports is not a reply of the flow.
        var unrelated = Frames.tcp(from: backend, 80, to: client, 41001, flags: [.syn, .ack])
        let before = unrelated
        #expect(try reverse(tracker, &unrelated) == nil)
        #expect(unrelated == before)
        // Nor is a packet in the flow's own direction.
        var sameWay = Frames.tcp(from: client, 41000, to: vip, 80, flags: .ack)
        #expect(try reverse(tracker, &sameWay) == nil)
    }

    @Test func aSegmentOfNoKnownFlowIsDroppedNotSentToABackend() throws {
        let tracker = ConnectionTracker()
        var stray = Frames.tcp(from: client, 42000, to: vip, 80, flags: .ack)
        #expect(try balance(tracker, &stray) == .drop(.untrackedFlow))
        var ping = Frames.udp(from: client, 42000, to: vip, 80)
        ping[23] = 1  // ICMP: no ports to track a flow by
        #expect(try balance(tracker, &ping) == .drop(.virtualAddressUnsupported))
        #expect(tracker.statistics().untrackedDrops == 1 && tracker.statistics().flows == 0)
    }

    @Test func aBackendThatLeftKeepsItsConnectionsAndGetsNoNewFlow() throws {
        let tracker = ConnectionTracker()
        // A connection and a UDP flow on the first backend.
        var syn = Frames.tcp(from: client, 43000, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &syn) == .backend(backends[0]))
        var datagram = Frames.udp(from: client, 43001, to: vip, 53)
        #expect(try balance(tracker, &datagram) == .backend(backends[1]))
        var opened = Frames.udp(from: client, 43002, to: vip, 53)
        #expect(try balance(tracker, &opened) == .backend(backends[2]))
        // Both leave the service (they are stopping): the connection's segments still reach
        // its backend, until it ends; the datagrams of a flow go to a backend still there.
        let remaining = [backends[2]]
        var data = Frames.tcp(from: client, 43000, to: vip, 80, flags: [.ack, .psh])
        #expect(try balance(tracker, &data, backends: remaining) == .backend(backends[0]))
        var again = Frames.udp(from: client, 43001, to: vip, 53)
        #expect(try balance(tracker, &again, backends: remaining) == .backend(backends[2]))
        // A SYN that reuses the ended connection's ports is a new connection: it goes to a
        // backend of the service, not to the one that left.
        var fin = Frames.tcp(from: client, 43000, to: vip, 80, flags: [.fin, .ack])
        #expect(try balance(tracker, &fin, backends: remaining) == .backend(backends[0]))
        var reused = Frames.tcp(from: client, 43000, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &reused, backends: remaining) == .backend(backends[2]))
        // So does a retransmitted SYN whose backend left before it answered.
        var pending = Frames.tcp(from: client, 43003, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &pending, backends: [backends[0]]) == .backend(backends[0]))
        var retransmitted = Frames.tcp(from: client, 43003, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &retransmitted, backends: remaining) == .backend(backends[2]))
        // A backend still in the service keeps a reused connection's SYN retransmits.
        var kept = Frames.tcp(from: client, 43003, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &kept, backends: remaining) == .backend(backends[2]))
    }

    @Test func aFullTableRefusesNewFlowsAndKeepsTheOnesItHas() throws {
        let tracker = ConnectionTracker(configuration: .init(capacity: 4))
        var kept: [UInt16: IPv4Address] = [:]
        for port in UInt16(1)...4 {
            var syn = Frames.tcp(from: client, port, to: vip, 80, flags: .syn)
            guard case .backend(let backend) = try balance(tracker, &syn) else { Issue.record("dropped"); return }
            kept[port] = backend
        }
        var fifth = Frames.tcp(from: client, 5, to: vip, 80, flags: .syn)
        #expect(try balance(tracker, &fifth) == .drop(.flowTableFull))
        for (port, backend) in kept {
            var data = Frames.tcp(from: client, port, to: vip, 80, flags: .ack)
            #expect(try balance(tracker, &data) == .backend(backend))
        }
        #expect(tracker.statistics().tableFullDrops == 1 && tracker.statistics().flows == 4)
    }

    @Test func anIdleFlowLivesUntilItsTimeoutAndIsReapedAfter() throws {
        let tracker = ConnectionTracker(configuration: .init(establishedTimeout: 5))
        var syn = Frames.tcp(from: client, 43000, to: vip, 80, flags: .syn)
        guard case .backend(let backend) = try balance(tracker, &syn, now: 100) else { Issue.record("dropped"); return }
        var answer = Frames.tcp(from: backend, 80, to: client, 43000, flags: [.syn, .ack])
        #expect(try reverse(tracker, &answer, now: 100) == vip)
        // Idle 3 s: still there, on the same backend.
        var later = Frames.tcp(from: client, 43000, to: vip, 80, flags: .ack)
        #expect(try balance(tracker, &later, now: 103) == .backend(backend))
        // Idle 6 s: gone; its next segment is refused, and so is the backend's.
        var reply = Frames.tcp(from: backend, 80, to: client, 43000, flags: .ack)
        #expect(try reverse(tracker, &reply, now: 109) == nil)
        var tooLate = Frames.tcp(from: client, 43000, to: vip, 80, flags: .ack)
        #expect(try balance(tracker, &tooLate, now: 109) == .drop(.untrackedFlow))
        #expect(tracker.statistics().expiredFlows == 1 && tracker.statistics().flows == 0)
        // The default keeps an established flow for days.
        let patient = ConnectionTracker()
        var open = Frames.tcp(from: client, 43001, to: vip, 80, flags: .syn)
        guard case .backend(let chosen) = try balance(patient, &open, now: 100) else { Issue.record("dropped"); return }
        var established = Frames.tcp(from: chosen, 80, to: client, 43001, flags: [.syn, .ack])
        _ = try reverse(patient, &established, now: 100)
        var dayLater = Frames.tcp(from: client, 43001, to: vip, 80, flags: .ack)
        #expect(try balance(patient, &dayLater, now: 100 + 4 * 24 * 3600) == .backend(chosen))
    }

    @Test func aFlowTouchedASecondLaterByTheOtherThreadStaysLive() throws {
        // The wire thread read the clock at 101, the ports thread's batch still says 100.
        let tracker = ConnectionTracker(configuration: .init(establishedTimeout: 5))
        var syn = Frames.tcp(from: client, 44000, to: vip, 80, flags: .syn)
        guard case .backend(let backend) = try balance(tracker, &syn, now: 100) else { Issue.record("dropped"); return }
        var answer = Frames.tcp(from: backend, 80, to: client, 44000, flags: [.syn, .ack])
        #expect(try reverse(tracker, &answer, now: 101) == vip)
        var data = Frames.tcp(from: client, 44000, to: vip, 80, flags: .ack)
        #expect(try balance(tracker, &data, now: 100) == .backend(backend))
        var more = Frames.tcp(from: backend, 80, to: client, 44000, flags: .ack)
        #expect(try reverse(tracker, &more, now: 100) == vip)
    }

    @Test func expiredFlowsAreReapedAsNewOnesArrive() throws {
        let tracker = ConnectionTracker(configuration: .init(capacity: 64, datagramTimeout: 2))
        for port in UInt16(1)...64 {
            var datagram = Frames.udp(from: client, port, to: vip, 53)
            #expect(try balance(tracker, &datagram, now: 10) != .drop(.flowTableFull))
        }
        // Much later the table is full of expired flows: new ones reclaim their room.
        for port in UInt16(100)..<164 {
            var datagram = Frames.udp(from: client, port, to: vip, 53)
            #expect(try balance(tracker, &datagram, now: 20) != .drop(.flowTableFull), "port \(port)")
        }
    }

    @Test func aClientThatIsABackendGetsAnotherBackend() throws {
        let tracker = ConnectionTracker()
        let selfish = backends[0]
        for port in UInt16(1)...30 {
            var syn = Frames.tcp(from: selfish, port, to: vip, 80, flags: .syn)
            let decision = try backends.withUnsafeBufferPointer { list in
                try Frames.withPacket(&syn) { packet in
                    tracker.balance(packet, network: Self.vni, client: selfish, service: BalancedService(address: vip, backends: list),
                                    partialChecksum: false, now: 1)
                }
            }
            #expect(decision != .backend(selfish))
        }
    }
}

/// The flow table against a dictionary model: random inserts and removals, every key found
/// where the model says, none found after removal (backward-shift deletion keeps probe runs whole).
@Suite struct FlowTableTests {
    @Test func insertsAndRemovalsMatchAModel() {
        var table = FlowTable(capacity: 256)
        var model: [Int: Flow] = [:]  // flow index → flow
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        for _ in 0..<20_000 {
            if model.count < 256, next() % 3 != 0 {
                let source = IPv4Address(rawValue: 0x0A00_0000 | UInt32(truncatingIfNeeded: next() % 64))
                let key = FlowKey(network: VNI(4097)!, protocol: .tcp, source: source, sourcePort: UInt16(truncatingIfNeeded: next() % 512),
                                  destination: IPv4Address(10, 0, 0, 2), destinationPort: 80)
                var reply = key.reversed
                reply.addresses = UInt64(0x0A00_00C8) << 32 | UInt64(source.rawValue)
                guard table.find(key) == nil, table.find(reply) == nil else { continue }
                let flow = Flow(forward: key, reply: reply, virtualAddress: IPv4Address(10, 0, 0, 2), backend: IPv4Address(10, 0, 0, 200),
                                lastSeen: 1, state: .opening)
                let inserted = table.insert(flow)
                #expect(inserted)
                let index = table.find(key)!
                let byReply = table.find(reply)
                #expect(byReply == index)
                model[index] = flow
            } else if !model.isEmpty {
                let index = model.keys.sorted()[Int(next() % UInt64(model.count))]
                let flow = model.removeValue(forKey: index)!
                table.remove(index)
                let gone = table.find(flow.forward) == nil && table.find(flow.reply) == nil
                #expect(gone)
            }
            let count = table.count
            #expect(count == model.count)
        }
        for (index, flow) in model {
            let found = table.find(flow.forward) == index && table.find(flow.reply) == index
            #expect(found)
        }
    }

    @Test func aReversedKeyIsTheOtherEnd() {
        let key = FlowKey(network: VNI(7)!, protocol: .udp, source: IPv4Address(1, 2, 3, 4), sourcePort: 1000,
                          destination: IPv4Address(5, 6, 7, 8), destinationPort: 53)
        #expect(key.reversed == FlowKey(network: VNI(7)!, protocol: .udp, source: IPv4Address(5, 6, 7, 8), sourcePort: 53,
                                        destination: IPv4Address(1, 2, 3, 4), destinationPort: 1000))
        #expect(key.reversed.reversed == key)
    }
}

/// The switch and the tracker together, as the engine runs them: a task's frame to a VIP leaves
/// for a backend's node rewritten, the backend's reply comes back from the wire with the VIP as
/// its source; a local backend is delivered to directly.
@Suite struct BalancedSwitchTests {
    static let front = OverlayNetwork(name: "front", vni: VNI(4097)!, subnet: IPv4Prefix("10.0.0.0/24")!, gateway: IPv4Address(10, 0, 0, 1))
    static let client = LocalEndpoint(network: "front", address: IPv4Address(10, 0, 0, 5), namespace: "c")
    static let localBackend = LocalEndpoint(network: "front", address: IPv4Address(10, 0, 0, 11), namespace: "b")
    static let remoteBackend = RemoteEndpoint(network: "front", address: IPv4Address(10, 0, 0, 12), vtep: IPv4Address(192, 0, 2, 22))
    static let vip = IPv4Address(10, 0, 0, 2)

    let tracker = ConnectionTracker()
    let tables: ForwardingTables

    init() throws {
        let topology = Topology(
            networks: [Self.front], localEndpoints: [Self.client, Self.localBackend], remoteEndpoints: [Self.remoteBackend],
            services: [VirtualService(network: "front", address: Self.vip, backends: [Self.remoteBackend.address, Self.localBackend.address])])
        try topology.validate()
        tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
    }

    @Test func aFlowToTheVIPReachesABackendAndItsRepliesComeFromTheVIP() throws {
        var verdicts: [Verdict] = []
        for port in UInt16(50000)...50001 {
            var syn = Frames.tcp(from: Self.client.address, port, to: Self.vip, 80, flags: .syn)
            let verdict = syn.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0, now: 1) }
            verdicts.append(verdict)
            #expect(try Frames.checksumsAreValid(syn))
            try syn.withUnsafeMutableBytes { buffer in
                let frame = try EthernetFrame(validating: buffer)
                let packet = try IPv4Packet(validating: frame.payload)
                #expect(frame.destination == .derived(from: packet.destination) && packet.destination != Self.vip)
            }
        }
        // Round robin over the sorted backends: the local one (.11), then the remote one (.12).
        #expect(verdicts == [.deliver(port: 1), .encapsulate(vtep: Self.remoteBackend.vtep, vni: Self.front.vni)])

        // The remote backend answers over the wire: the client sees the VIP.
        let answer = Frames.tcp(from: Self.remoteBackend.address, 80, to: Self.client.address, 50001, flags: [.syn, .ack])
        var datagram = [0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0] + answer
        var network = -1
        let fromWire = datagram.withUnsafeMutableBytes {
            tables.view.fromWire(vtep: Self.remoteBackend.vtep, datagram: $0, networkIndex: &network, now: 1)
        }
        #expect(fromWire == .deliver(port: 0))
        let inner = Array(datagram[8...])
        #expect(try Frames.checksumsAreValid(inner))
        try withFrame(inner) { frame, packet in
            #expect(packet.source == Self.vip && frame.source == .derived(from: Self.vip))
        }
        // The local backend answers through its port.
        var local = Frames.tcp(from: Self.localBackend.address, 80, to: Self.client.address, 50000, flags: [.syn, .ack], partial: true)
        #expect(local.withUnsafeMutableBytes { tables.view.fromPort(1, frame: $0, partialChecksum: true, now: 1) } == .deliver(port: 0))
        #expect(try Frames.checksumsAreValid(local, partial: true))
        try withFrame(local) { frame, packet in #expect(packet.source == Self.vip && frame.source == .derived(from: Self.vip)) }
    }

    /// A task out of the rotation (stopping, unhealthy) keeps its flows: the client's segments
    /// still reach it and its replies still come from the VIP, even once it is the VIP's only
    /// backend left; new flows go elsewhere, or are dropped when no backend takes them.
    @Test func aDrainingBackendKeepsItsFlowsAndItsRepliesComeFromTheVIP() throws {
        var syn = Frames.tcp(from: Self.client.address, 52000, to: Self.vip, 80, flags: .syn)
        #expect(syn.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0, now: 1) } == .deliver(port: 1))
        let endpoints = Topology(networks: [Self.front], localEndpoints: [Self.client, Self.localBackend], remoteEndpoints: [Self.remoteBackend])
        for backends in [[Self.remoteBackend.address], []] {
            var topology = endpoints
            topology.services = [VirtualService(network: "front", address: Self.vip, backends: backends, draining: [Self.localBackend.address])]
            try topology.validate()
            let draining = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
            var data = Frames.tcp(from: Self.client.address, 52000, to: Self.vip, 80, flags: .ack)
            #expect(data.withUnsafeMutableBytes { draining.view.fromPort(0, frame: $0, now: 2) } == .deliver(port: 1))
            var reply = Frames.tcp(from: Self.localBackend.address, 80, to: Self.client.address, 52000, flags: .ack)
            #expect(reply.withUnsafeMutableBytes { draining.view.fromPort(1, frame: $0, now: 2) } == .deliver(port: 0))
            try withFrame(reply) { frame, packet in #expect(packet.source == Self.vip && frame.source == .derived(from: Self.vip)) }
            var fresh = Frames.tcp(from: Self.client.address, 52001 + UInt16(backends.count), to: Self.vip, 80, flags: .syn)
            let verdict = fresh.withUnsafeMutableBytes { draining.view.fromPort(0, frame: $0, now: 2) }
            #expect(verdict == (backends.isEmpty ? .drop(.noBackend) : .encapsulate(vtep: Self.remoteBackend.vtep, vni: Self.front.vni)))
        }
        #expect(tracker.statistics().noBackendDrops == 1)
        var both = endpoints
        both.services = [VirtualService(network: "front", address: Self.vip, backends: [Self.localBackend.address], draining: [Self.localBackend.address])]
        #expect(throws: TopologyError.self) { try both.validate() }
    }

    /// A flow whose backend vanished from the network (its node died): the client's next
    /// segment is answered at once with a RST from the VIP that its kernel accepts (sequence
    /// number = the segment's acknowledgment, checksums valid), the flow is forgotten, and the
    /// client's next SYN goes to a backend that is there.
    @Test func aFlowWhoseBackendIsGoneIsResetAndItsClientReconnectsElsewhere() throws {
        for port in UInt16(53000)...53001 {
            var syn = Frames.tcp(from: Self.client.address, port, to: Self.vip, 80, flags: .syn)
            _ = syn.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0, now: 1) }
        }
        // .53001 went to the remote backend; its node is declared dead.
        let survivors = Topology(
            networks: [Self.front], localEndpoints: [Self.client, Self.localBackend],
            services: [VirtualService(network: "front", address: Self.vip, backends: [Self.localBackend.address])])
        try survivors.validate()
        let after = ForwardingTables(topology: survivors, ports: survivors.localEndpoints, maximumFrameLength: 1464, balancer: tracker)
        let flows = tracker.statistics().flows
        var data = Frames.tcp(from: Self.client.address, 53001, to: Self.vip, 80, flags: [.ack, .psh], payload: 100)
        try data.withUnsafeMutableBytes { buffer in
            let segment = try TCPSegment(validating: try IPv4Packet(validating: try EthernetFrame(validating: buffer).payload).payload)
            segment.acknowledgmentNumber = 0xDEAD_BEEF
            segment.updateChecksum(source: Self.client.address, destination: Self.vip)
        }
        let verdict = data.withUnsafeMutableBytes { after.view.fromPort(0, frame: $0, now: 2) }
        #expect(verdict == .resetToPort(length: 54))
        let reset = Array(data[..<54])
        #expect(try Frames.checksumsAreValid(reset))
        try withFrame(reset) { frame, packet in
            #expect(frame.destination == .derived(from: Self.client.address) && frame.source == .derived(from: Self.vip))
            #expect(packet.source == Self.vip && packet.destination == Self.client.address && packet.totalLength == 40)
            let segment = try TCPSegment(validating: packet.payload)
            #expect(segment.sourcePort == 80 && segment.destinationPort == 53001)
            #expect(segment.sequenceNumber == 0xDEAD_BEEF && segment.flags == .rst)
        }
        #expect(tracker.statistics().goneBackendFlows == 1 && tracker.statistics().flows == flows - 1)
        // A RST from the client is not answered; the local backend's flow is untouched.
        var rst = Frames.tcp(from: Self.client.address, 53001, to: Self.vip, 80, flags: .rst)
        #expect(rst.withUnsafeMutableBytes { after.view.fromPort(0, frame: $0, now: 2) } == .drop(.untrackedFlow))
        var kept = Frames.tcp(from: Self.client.address, 53000, to: Self.vip, 80, flags: .ack)
        #expect(kept.withUnsafeMutableBytes { after.view.fromPort(0, frame: $0, now: 2) } == .deliver(port: 1))
        var again = Frames.tcp(from: Self.client.address, 53001, to: Self.vip, 80, flags: .syn)
        #expect(again.withUnsafeMutableBytes { after.view.fromPort(0, frame: $0, now: 2) } == .deliver(port: 1))
    }

    /// A SYN without ACK gets RST+ACK acknowledging the SYN (RFC 793's second reset form).
    @Test func aResetAnswersASegmentWithoutAckByAcknowledgingIt() throws {
        var syn = Frames.tcp(from: Self.client.address, 1234, to: IPv4Address(10, 0, 0, 99), 80, flags: .syn, payload: 0)
        let length = try syn.withUnsafeMutableBytes { buffer -> Int? in
            let frame = try EthernetFrame(validating: buffer)
            return TCPReset.answer(try IPv4Packet(validating: frame.payload), in: frame, from: IPv4Address(10, 0, 0, 99))
        }
        #expect(length == 54)
        try withFrame(Array(syn[..<54])) { _, packet in
            let segment = try TCPSegment(validating: packet.payload)
            #expect(segment.flags == [.rst, .ack] && segment.sequenceNumber == 0 && segment.acknowledgmentNumber == 1001)
        }
    }

    @Test func aDirectConnectionFromAPortOnceUsedForTheVIPIsNotRewritten() throws {
        var syn = Frames.tcp(from: Self.client.address, 51000, to: Self.vip, 80, flags: .syn)
        #expect(syn.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0, now: 1) } == .deliver(port: 1))
        // Later the client opens a connection from the same port straight to that backend.
        var direct = Frames.tcp(from: Self.client.address, 51000, to: Self.localBackend.address, 80, flags: .syn)
        #expect(direct.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0, now: 2) } == .deliver(port: 1))
        var answer = Frames.tcp(from: Self.localBackend.address, 80, to: Self.client.address, 51000, flags: [.syn, .ack])
        #expect(answer.withUnsafeMutableBytes { tables.view.fromPort(1, frame: $0, now: 2) } == .deliver(port: 0))
        try withFrame(answer) { _, packet in #expect(packet.source == Self.localBackend.address) }
        #expect(tracker.statistics().supersededFlows == 1 && tracker.statistics().flows == 0)
    }

    @Test func theVIPAnswersARPAndAnEngineWithoutBalancerDropsItsTraffic() throws {
        var request = [UInt8](repeating: 0, count: 42)
        request.withUnsafeMutableBytes { buffer in
            let frame = try! EthernetFrame.build(in: buffer, destination: .broadcast, source: .derived(from: Self.client.address), etherType: .arp)
            _ = try! ARPPacket.build(in: frame.payload, operation: .request, senderMAC: .derived(from: Self.client.address),
                                     senderIP: Self.client.address, targetMAC: .zero, targetIP: Self.vip)
        }
        #expect(request.withUnsafeMutableBytes { tables.view.fromPort(0, frame: $0) } == .replyToPort)
        let bare = ForwardingTables(
            topology: Topology(networks: [Self.front], localEndpoints: [Self.client, Self.localBackend],
                               services: [VirtualService(network: "front", address: Self.vip, backends: [Self.localBackend.address])]),
            ports: [Self.client, Self.localBackend], maximumFrameLength: 1464)
        var syn = Frames.tcp(from: Self.client.address, 1, to: Self.vip, 80, flags: .syn)
        #expect(syn.withUnsafeMutableBytes { bare.view.fromPort(0, frame: $0) } == .drop(.noBalancer))
    }

    func withFrame(_ bytes: [UInt8], _ body: (EthernetFrame, IPv4Packet) throws -> Void) throws {
        var copy = bytes
        try copy.withUnsafeMutableBytes { buffer in
            let frame = try EthernetFrame(validating: buffer)
            try body(frame, try IPv4Packet(validating: frame.payload))
        }
    }
}
