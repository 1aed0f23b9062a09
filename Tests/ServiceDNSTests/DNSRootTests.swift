import Foundation
import Glibc
import HostNet
import Lab
import NIOPosix
import Testing
import Wire

@testable import ServiceDNS

let isRoot = getuid() == 0

/// Two task sandboxes (t1 on network front, t2 on network back) with resolv.conf pointing at
/// 127.0.0.11, a DNS server bound there inside each, and a stub upstream on the host's
/// loopback. Real clients: nslookup, dig, getent, run through `ip netns exec` so that
/// /etc/netns/NAME/resolv.conf is mounted over /etc/resolv.conf as in a task.
final class DNSLab {
    let sandboxes: [String: NetworkNamespace]
    let store: RecordStore
    let server: DNSServer
    let forwarder: DNSForwarder
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let upstream: NamespacedProcess
    let dns = IPv4Address(127, 0, 0, 11)

    init() throws {
        NetworkNamespace.removeOrphanedScratch()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/stub-upstream.py").path
        upstream = try NamespacedProcess(["python3", script, "60"])
        let port = try Self.readPort(from: upstream)
        var made: [String: NetworkNamespace] = [:]
        do {
            for sandbox in ["t1", "t2"] {
                let namespace = try NetworkNamespace.create(named: NetworkNamespace.scratchName("dns-\(sandbox)"))
                made[sandbox] = namespace
                try FileManager.default.createDirectory(atPath: "/etc/netns/\(namespace.name)", withIntermediateDirectories: true)
                try "nameserver 127.0.0.11\n".write(toFile: "/etc/netns/\(namespace.name)/resolv.conf", atomically: true, encoding: .utf8)
            }
            sandboxes = made
            store = try RecordStore(Fixture.records())
            // The first upstream never answers: every forwarded query shows the retry on the next.
            forwarder = try DNSForwarder(
                upstreams: [try .init(ipAddress: "127.0.0.1", port: Self.silentPort()), try .init(ipAddress: "127.0.0.1", port: port)],
                group: group, attemptTimeout: .milliseconds(500))
            server = DNSServer(resolver: DNSResolver(store: store), forwarder: forwarder, group: group)
            for (sandbox, namespace) in made {
                _ = try server.listen(on: dns, port: 53, namespace: namespace, sandbox: sandbox)
            }
        } catch {
            Self.remove(made)
            throw error
        }
    }

    func shutdown() {
        forwarder.close()
        try? group.syncShutdownGracefully()
        upstream.signal(SIGKILL)
        Self.remove(sandboxes)
    }

    private static func remove(_ namespaces: [String: NetworkNamespace]) {
        for namespace in namespaces.values {
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(namespace.name)")
            try? namespace.delete()
        }
    }

    /// A loopback UDP port with nothing behind it: bound, read, closed.
    private static func silentPort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(descriptor) }
        _ = IPv4SocketAddress(IPv4Address(127, 0, 0, 1), port: 0).withSockaddr { bind(descriptor, $0, $1) }
        return Int(IPv4SocketAddress.local(of: descriptor)?.port ?? 0)
    }

    private static func readPort(from process: NamespacedProcess) throws -> Int {
        // The stub prints its port first; read just that line without waiting for the exit.
        let line = try process.readLine(timeoutSeconds: 5)
        guard let port = line.flatMap({ Int($0) }) else { throw HostNetError("start", "stub upstream", errno: 0, detail: "no port") }
        return port
    }

    /// Runs a client inside sandbox `sandbox` as a task would.
    func client(_ sandbox: String, _ arguments: String...) throws -> String {
        let result = try NamespacedProcess.run(["ip", "netns", "exec", sandboxes[sandbox]!.name] + arguments, timeoutSeconds: 20)
        return result.output
    }

    /// `dig +short` answers, one per line.
    func short(_ sandbox: String, _ arguments: String...) throws -> [String] {
        let output = try NamespacedProcess.run(["ip", "netns", "exec", sandboxes[sandbox]!.name, "dig", "+short"] + arguments,
                                               timeoutSeconds: 20).output
        return output.split(separator: "\n").map(String.init)
    }
}

func withDNSLab(_ body: (DNSLab) throws -> Void) throws {
    let lab = try DNSLab()
    defer { lab.shutdown() }
    try body(lab)
}

@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct DNSRootTests {
    @Test func realClientsInsideATask() throws {
        try withDNSLab { lab throws in
            let nslookup = try lab.client("t1", "nslookup", "my-web")
            #expect(nslookup.contains("Address: 10.0.1.2"), "\(nslookup)")
            let tasks = try lab.client("t1", "nslookup", "tasks.my-web")
            for task in Fixture.webTasks { #expect(tasks.contains("Address: \(task.address)"), "\(tasks)") }

            var orders: [[String]] = []
            for _ in 0..<3 { orders.append(try lab.short("t1", "my-rr")) }
            #expect(orders.allSatisfy { Set($0) == Set(Fixture.rrTasks.map(\.address.description)) }, "\(orders)")
            #expect(Set(orders.map { $0.first ?? "" }).count == 3, "dnsrr rotates: \(orders)")

            let aaaa = try lab.client("t1", "dig", "AAAA", "my-web")
            #expect(aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"), "\(aaaa)")

            let forwarded = try lab.client("t1", "dig", "nonexistent.example")
            #expect(forwarded.contains("status: NOERROR") && forwarded.contains("198.51.100.77"), "\(forwarded)")
            #expect(lab.server.resolver.statistics[.forwardFailures] == 0, "the silent upstream was skipped, not fatal")
            let nxdomain = try lab.client("t1", "dig", "missing.example")
            #expect(nxdomain.contains("status: NXDOMAIN"), "the upstream's answer is relayed: \(nxdomain)")

            let udp = try lab.client("t1", "dig", "+ignore", "+notcp", "tasks.big")
            #expect(udp.contains(" tc") && udp.contains("ANSWER: 0"), "\(udp)")
            let tcp = try lab.client("t1", "dig", "+tcp", "tasks.big")
            #expect(tcp.contains("ANSWER: 200"), "\(tcp)")
            let fallback = try lab.short("t1", "tasks.big")
            #expect(fallback.count == 200, "dig retries over TCP after TC: \(fallback.count)")

            let getent = try lab.client("t1", "getent", "hosts", "my-web")
            #expect(getent.hasPrefix("10.0.1.2") && getent.contains("my-web"), "\(getent)")
            #expect(try lab.short("t1", "my-web.2") == ["10.0.1.4"])
            #expect(try lab.short("t1", "-x", "10.0.1.4") == ["my-web.2.t2abc.front."])
            #expect(try lab.short("t1", "SRV", "_http._tcp.my-web") == ["0 0 80 my-web."])
        }
    }

    @Test func aTaskSeesOnlyItsNetworks() throws {
        try withDNSLab { lab throws in
            #expect(try lab.short("t2", "only-back") == ["10.0.9.2"])
            #expect(try lab.client("t1", "dig", "only-back").contains("status: NXDOMAIN"))
            #expect(try lab.client("t2", "dig", "my-web").contains("status: NXDOMAIN"))
        }
    }

    /// moby#38575/#36988: after a mode switch no record of the old mode may remain.
    @Test func switchingEndpointModeLeavesNothingBehind() throws {
        try withDNSLab { lab throws in
            try lab.store.replace(with: Fixture.records(webMode: .dnsrr))
            #expect(Set(try lab.short("t1", "my-web")) == Set(Fixture.webTasks.map(\.address.description)))
            #expect(try lab.short("t1", "-x", "10.0.1.2").isEmpty, "the VIP's PTR is gone")
            try lab.store.replace(with: Fixture.records(webMode: .vip))
            #expect(try lab.short("t1", "my-web") == ["10.0.1.2"])
            #expect(try lab.short("t1", "-x", "10.0.1.2") == ["my-web."])
        }
    }

    @Test func badInputIsAnsweredOrDroppedAndServingGoesOn() throws {
        try withDNSLab { lab throws in
            let t1 = lab.sandboxes["t1"]!
            func udp(_ bytes: [UInt8]) throws -> [UInt8]? {
                try Probe.exchangeUDP(bytes, to: lab.dns, port: 53, from: t1, timeoutMilliseconds: 300)
            }
            #expect(try udp([1, 2, 3]) == nil, "no header: dropped")
            #expect(try udp(Fixture.query("my-web", flags: 0x8100)) == nil, "a response: dropped")
            let loop: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
            #expect(try udp(loop).map(Fixture.decode)?.code == 1)
            #expect(try udp(Fixture.query("my-web", flags: 0x1100)).map(Fixture.decode)?.code == 4)
            var noQuestion = Fixture.query("my-web")
            noQuestion[5] = 0
            #expect(try udp(noQuestion).map(Fixture.decode)?.code == 1)
            // A 64 KiB TCP frame of junk: FORMERR or a closed connection, never a dead server.
            let junk = [UInt8(0xFF), 0xFF] + (0..<65535).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            _ = try Probe.exchangeTCP(junk, to: lab.dns, port: 53, from: t1, timeoutMilliseconds: 500)
            let shortFrame: [UInt8] = [0x00, 0x05, 1, 2, 3, 4, 5]
            _ = try Probe.exchangeTCP(shortFrame, to: lab.dns, port: 53, from: t1, timeoutMilliseconds: 300)
            #expect(try lab.short("t1", "my-web") == ["10.0.1.2"], "still serving")
            let statistics = lab.server.resolver.statistics
            #expect(statistics[.tooShort] >= 2 && statistics[.notAQuery] == 1)
            #expect(statistics[.formatErrors] == 2, "pointer loop, no question")
            #expect(statistics[.notImplemented] == 2, "opcode 2, and the junk frame (its opcode bits read 7)")
        }
    }
}
