import Foundation
import Glibc
import HostNet
@testable import Lab
import Testing
import Wire

let isRoot = getuid() == 0

/// Brings a lab up for `body` and tears it down afterwards, also when `body` throws.
func withLab<T>(nodes: Int, _ body: (Lab) throws -> T) throws -> T {
    _ = staleLabsRemoved
    let lab = try Lab.up(nodes: nodes)
    defer { try? lab.down() }
    return try body(lab)
}

private let staleLabsRemoved: Void = { Lab.removeStale() }()

/// The links of the root namespace, as iproute2 lists them: no test may leave one behind.
func rootLinks() throws -> [String] {
    let output = try NamespacedProcess.run(["ip", "-o", "link", "show"]).output
    return output.split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) } }.sorted()
}

/// The namespaces iproute2 lists whose name contains `text`.
func namespaces(containing text: String) throws -> [String] {
    try NamespacedProcess.run(["ip", "netns", "list"]).output.split(separator: "\n")
        .map { String($0.split(separator: " ")[0]) }.filter { $0.contains(text) }
}

@Suite(.enabled(if: isRoot, "needs root: creates network namespaces and links"), .serialized)
struct LabRootTests {
    @Test func nodesReachEachOtherOverTheUnderlay() throws {
        try withLab(nodes: 3) { lab in
            #expect(lab.nodes.map(\.name) == ["n1", "n2", "n3"])
            #expect(lab.nodes.map(\.underlayAddress.description) == ["192.0.2.11", "192.0.2.12", "192.0.2.13"])
            for from in lab.nodes {
                for to in lab.nodes where to != from {
                    let ping = try NamespacedProcess.run(
                        ["ping", "-c", "1", "-W", "2", "\(to.underlayAddress)"], in: from.namespace, timeoutSeconds: 5)
                    #expect(ping.status == 0, "\(from.name) → \(to.name): \(ping.output)")
                }
            }
        }
    }

    /// The foundation issue's proof: two lab nodes, a TAP in each; a frame written to a TAP fd
    /// reaches the kernel, a frame the kernel sends comes out of the fd; afterwards no
    /// namespace or link is left behind.
    @Test func tapFramesCrossBetweenFdAndKernelAndNothingIsLeft() throws {
        let linksBefore = try rootLinks()
        var labName = ""
        try withLab(nodes: 2) { lab in
            labName = lab.name
            #expect(try namespaces(containing: lab.name).count == 3)
            for (offset, node) in lab.nodes.enumerated() {
                let address = IPv4Prefix(IPv4Address(10, 10, 0, UInt8(2 + offset)), length: 24)
                let endpoint = try LabEndpoint(in: node, address: address)
                defer { endpoint.tap.close() }
                let peer = IPv4Address(10, 10, 0, 200)

                // fd → kernel: a captured copy proves the kernel received our frame, and its
                // ARP reply read back from the fd proves it understood it.
                let capture = try LiveCapture(interface: endpoint.tap.name, in: node.namespace, filter: "arp")
                let answer = try endpoint.resolve(address.address, asking: peer)
                #expect(answer == endpoint.mac)
                let seen = try capture.drain(idleMilliseconds: 200, limit: 10)
                #expect(seen.count >= 2, "request in and reply out on \(endpoint.tap.name)")

                // kernel → fd: a UDP datagram sent inside the node to a pinned neighbour leaves
                // through the TAP and is read whole from the fd.
                let links = try RouteNetlink(in: node.namespace)
                try links.addNeighbour(peer, mac: .derived(from: peer), device: try links.linkIndex(named: endpoint.tap.name))
                let payload = Array("shoal \(node.name)".utf8)
                try Probe.sendUDP(payload, to: peer, port: 4242, from: node.namespace)
                let datagram = try readUDP(from: endpoint.tap, port: 4242)
                #expect(datagram?.payload == payload)
                #expect(datagram?.source == address.address)
                #expect(datagram?.checksumValid == true)
            }
        }
        // Other suites bring labs up and down in parallel, so only this lab's names are checked.
        #expect(try namespaces(containing: labName).isEmpty)
        #expect(try rootLinks() == linksBefore)
    }

    @Test func labsInParallelDoNotCollide() throws {
        try withLab(nodes: 2) { first in
            try withLab(nodes: 2) { second in
                #expect(first.name != second.name)
                #expect(Set(first.record.namespaces).isDisjoint(with: second.record.namespaces))
                let ping = try NamespacedProcess.run(["ping", "-c", "1", "-W", "2", "192.0.2.12"], in: second.nodes[0].namespace)
                #expect(ping.status == 0)
            }
        }
    }

    @Test func recordDrivesTeardown() throws {
        let lab = try Lab.up(nodes: 2, name: "t\(getpid() % 100000)")
        defer { try? lab.down() }
        let record = try #require(LabRecord.all().first { $0.name == lab.name })
        #expect(record == lab.record)
        #expect(record.ownerIsAlive && !record.persistent)
        #expect(throws: LabError.exists(lab.name)) { try Lab.up(nodes: 1, name: lab.name) }
        #expect(lab.record.namespaces.allSatisfy { NetworkNamespace(named: $0).exists })

        // Another process (the CLI) tears it down from the record alone.
        try Lab.down(named: lab.name)
        #expect(lab.record.namespaces.allSatisfy { !NetworkNamespace(named: $0).exists })
        #expect(!FileManager.default.fileExists(atPath: record.path))
        #expect(throws: LabError.notFound(lab.name)) { try Lab.down(named: lab.name) }
    }

    /// A lab whose owner died (a crashed test) is removed by removeStale; a persistent lab and a
    /// lab whose owner lives are not.
    @Test func staleLabsAreRemoved() throws {
        let crashed = try Lab.up(nodes: 1)
        let persistent = try Lab.up(nodes: 1, persistent: true)
        let alive = try Lab.up(nodes: 1)
        defer { for lab in [crashed, persistent, alive] { try? lab.down() } }
        var record = crashed.record
        record.owner = ProcessIdentity(pid: record.owner.pid, startTime: record.owner.startTime + 1)
        try record.save()

        let removed = Lab.removeStale()
        #expect(removed == [crashed.name])
        #expect(!NetworkNamespace(named: crashed.record.namespaces[0]).exists)
        #expect(NetworkNamespace(named: persistent.record.namespaces[0]).exists)
        #expect(NetworkNamespace(named: alive.record.namespaces[0]).exists)
    }

    @Test func badRequestsFailCleanly() throws {
        #expect(throws: LabError.invalidNodeCount(0)) { try Lab.up(nodes: 0) }
        #expect(throws: LabError.invalidName("Bad_Name")) { try Lab.up(nodes: 1, name: "Bad_Name") }
        #expect(throws: LabError.notFound("no-such-lab")) { try Lab.attach(named: "no-such-lab") }
        #expect(try namespaces(containing: "Bad_Name").isEmpty)
    }
}

/// Reads frames from `tap` until a UDP datagram to `port` arrives (at most 64 frames, 2 s each).
func readUDP(from tap: TAPDevice, port: UInt16) throws -> (payload: [UInt8], source: IPv4Address, checksumValid: Bool)? {
    var buffer = [UInt8](repeating: 0, count: 65536)
    for _ in 0..<64 {
        guard try tap.waitReadable(timeoutMilliseconds: 2000) else { return nil }
        let found: ([UInt8], IPv4Address, Bool)? = try buffer.withUnsafeMutableBytes { raw in
            let count = try tap.read(into: raw)
            guard let ethernet = try? EthernetFrame(validating: raw.slice(0, count)), ethernet.etherType == .ipv4,
                let ip = try? IPv4Packet(validating: ethernet.payload), ip.protocol == .udp,
                let udp = try? UDPDatagram(validating: ip.payload), udp.destinationPort == port
            else { return nil }
            return (Array(UnsafeRawBufferPointer(udp.payload)), ip.source,
                    udp.isChecksumValid(source: ip.source, destination: ip.destination))
        }
        if let found { return (found.0, found.1, found.2) }
    }
    return nil
}
