import Foundation
import Glibc
import HostNet
import Testing
import Wire

@Suite(.enabled(if: isRoot, needsRoot), .serialized)
struct NamespaceRootTests {
    @Test func createRunAndDelete() throws {
        let name = uniqueNamespaceName("life")
        let namespace = try NetworkNamespace.create(named: name)
        #expect(namespace.exists)
        #expect(NetworkNamespace.all().contains(name))
        #expect(try ip("netns list").contains(name), "iproute2 sees it too")

        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
        let inside = try namespace.run { try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") }
        #expect(inside != own)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") == own, "thread came back")

        let links = try RouteNetlink(in: namespace).links()
        #expect(links.map(\.name) == ["lo"])
        #expect(links.first?.isUp == true, "loopback is brought up")

        try namespace.delete()
        #expect(!namespace.exists)
        #expect(!NetworkNamespace.all().contains(name))
    }

    @Test func errorsNameTheObjectAndErrno() throws {
        try withTestNamespace("dup") { namespace in
            do {
                try NetworkNamespace.create(named: namespace.name)
                Issue.record("creating a namespace twice succeeded")
            } catch let error as HostNetError {
                #expect(error.errno == EEXIST)
                #expect(error.description.contains(namespace.name))
            }
            let links = try RouteNetlink(in: namespace)
            do {
                try links.setLinkUp(4242)
                Issue.record("setting up a missing link succeeded")
            } catch let error as HostNetError {
                #expect(error.errno == ENODEV)
                #expect(error.description.contains("#4242 in \(namespace.name)"))
            }
            #expect(throws: HostNetError.self) { try links.linkIndex(named: "nope0") }
        }
    }

    @Test func runRethrowsAndStillReturns() throws {
        struct Marker: Error {}
        try withTestNamespace("throw") { namespace in
            let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
            #expect(throws: Marker.self) { try namespace.run { throw Marker() } }
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") == own)
        }
    }

    @Test func processesRunInsideAndTimeOut() throws {
        try withTestNamespace("proc") { namespace in
            let result = try NamespacedProcess.run(["ip", "-o", "link"], in: namespace)
            #expect(result.status == 0)
            #expect(result.output.contains("lo:"))
            #expect(!result.output.contains("eth0"), "the host's links are not visible inside")

            let slow = try NamespacedProcess.run(["sleep", "10"], in: namespace, timeoutSeconds: 0.3)
            #expect(slow.timedOut)
            #expect(slow.status == 128 + SIGKILL)

            let failing = try NamespacedProcess.run(["sh", "-c", "echo oops >&2; exit 3"], in: namespace)
            #expect(failing.status == 3 && failing.output == "oops\n")
            #expect(throws: HostNetError.self) { try NamespacedProcess(["/nonexistent/binary"]) }
        }
    }
}

@Suite(.enabled(if: isRoot, needsRoot), .serialized)
struct LinkRootTests {
    /// veth between two namespaces, addresses, routes and neighbours, checked by iproute2 and
    /// by traffic.
    @Test func vethAddressesRoutesNeighbours() throws {
        try withTestNamespace("a") { a in
            try withTestNamespace("b") { b in
                let linksA = try RouteNetlink(in: a)
                try linksA.createVeth(named: "va", peer: "vb", peerNamespace: b)
                let linksB = try RouteNetlink(in: b)
                let va = try linksA.linkIndex(named: "va"), vb = try linksB.linkIndex(named: "vb")
                try linksA.setMTU(va, 1400)
                try linksA.setMAC(va, MACAddress("02:42:c0:00:02:01")!)
                try linksA.addAddress(IPv4Prefix("198.51.100.1/24")!, to: va)
                try linksB.addAddress(IPv4Prefix("198.51.100.2/24")!, to: vb)
                try linksA.setLinkUp(va)
                try linksB.setLinkUp(vb)
                try linksB.addRoute(to: IPv4Prefix("0.0.0.0/0")!, via: IPv4Address(198, 51, 100, 1), device: vb)
                try linksB.addRoute(to: IPv4Prefix("203.0.113.0/24")!, via: nil, device: vb)
                try linksA.addNeighbour(IPv4Address(198, 51, 100, 2), mac: MACAddress("02:42:c0:00:02:02")!, device: va)

                let infoA = try #require(try linksA.links().first { $0.name == "va" })
                #expect(infoA.mtu == 1400 && infoA.mac == MACAddress("02:42:c0:00:02:01") && infoA.isUp)
                #expect(infoA.kind == "veth")
                #expect(try ip("-4 addr show dev va", in: a).contains("198.51.100.1/24"))
                let routes = try ip("route", in: b)
                #expect(routes.contains("default via 198.51.100.1 dev vb"))
                #expect(routes.contains("203.0.113.0/24 dev vb"))
                let neighbours = try ip("neigh show dev va", in: a)
                #expect(neighbours.contains("198.51.100.2 lladdr 02:42:c0:00:02:02 PERMANENT"))

                // The pinned neighbour is wrong on purpose for b's real MAC; fix it and ping.
                let macB = try #require(try linksB.links().first { $0.name == "vb" }?.mac)
                try linksA.addNeighbour(IPv4Address(198, 51, 100, 2), mac: macB, device: va)
                let ping = try NamespacedProcess.run(["ping", "-c", "1", "-W", "2", "198.51.100.2"], in: a, timeoutSeconds: 5)
                #expect(ping.status == 0, "\(ping.output)")

                try linksA.deleteLink(va)
                #expect(try linksB.links().map(\.name) == ["lo"], "deleting one end removes the pair")
            }
        }
    }

    @Test func bridgeAndMove() throws {
        try withTestNamespace("br") { hub in
            try withTestNamespace("leaf") { leaf in
                let links = try RouteNetlink(in: hub)
                try links.createBridge(named: "br0")
                try links.createVeth(named: "p1", peer: "x1")
                let bridge = try links.linkIndex(named: "br0")
                try links.setMaster(try links.linkIndex(named: "p1"), master: bridge)
                try links.moveLink(try links.linkIndex(named: "x1"), to: leaf)
                let leafLinks = try RouteNetlink(in: leaf)
                let moved = try leafLinks.linkIndex(named: "x1")
                try leafLinks.rename(moved, to: "eth0")
                #expect(try leafLinks.links().map(\.name).sorted() == ["eth0", "lo"])
                #expect(try ip("link show master br0", in: hub).contains("p1"))
                #expect(try links.links().first { $0.name == "br0" }?.kind == "bridge")
            }
        }
    }

    @Test func kernelVXLANDeviceAndForwardingEntries() throws {
        try withTestNamespace("vx") { namespace in
            let links = try RouteNetlink(in: namespace)
            try links.createVXLAN(named: "vx0", vni: VNI(42)!, local: IPv4Address(192, 0, 2, 11))
            let index = try links.linkIndex(named: "vx0")
            try links.addForwardingEntry(mac: .zero, remote: IPv4Address(192, 0, 2, 12), device: index)
            try links.addForwardingEntry(mac: .zero, remote: IPv4Address(192, 0, 2, 13), device: index)
            let details = try ip("-d link show vx0", in: namespace)
            #expect(details.contains("vxlan id 42"))
            #expect(details.contains("local 192.0.2.11"))
            #expect(details.contains("dstport 4789"))
            #expect(details.contains("nolearning"))
            let fdb = try NamespacedProcess.run(["bridge", "fdb", "show", "dev", "vx0"], in: namespace).output
            #expect(fdb.contains("00:00:00:00:00:00 dst 192.0.2.12"))
            #expect(fdb.contains("00:00:00:00:00:00 dst 192.0.2.13"))
        }
    }

    @Test func tapDeviceLifetime() throws {
        try withTestNamespace("tap") { namespace in
            let tap = try TAPDevice(named: "tap9", in: namespace, virtioNetHeader: true)
            #expect(tap.hasVirtioNetHeader)
            let info = try #require(try RouteNetlink(in: namespace).links().first { $0.name == "tap9" })
            #expect(info.kind == "tun")
            tap.close()
            #expect(try RouteNetlink(in: namespace).links().allSatisfy { $0.name != "tap9" }, "the TAP goes with its fd")
        }
    }
}

@Suite(.enabled(if: isRoot, needsRoot))
struct OrphanRootTests {
    /// A scratch namespace whose creator is gone is removed; a live one and a foreign one stay.
    @Test func orphanedScratchNamespacesAreRemoved() throws {
        let me = ProcessIdentity.current
        // Same pid, another start time: a process that has died and whose pid we now hold.
        let orphan = "\(NetworkNamespace.scratchPrefix)\(me.pid)-\(me.startTime + 1)-orphan-1"
        let live = uniqueNamespaceName("live")
        let foreign = "shoalx-foreign-\(me.pid)-\(UInt16.random(in: 0...UInt16.max))"
        for name in [orphan, live, foreign] { try NetworkNamespace.create(named: name) }
        defer { for name in [orphan, live, foreign] { try? NetworkNamespace(named: name).delete() } }

        // Other suites sweep orphans in parallel and may remove this one first: check the
        // effect, not which call had it.
        let removed = NetworkNamespace.removeOrphanedScratch()
        #expect(!removed.contains(live) && !removed.contains(foreign))
        #expect(!NetworkNamespace(named: orphan).exists)
        #expect(NetworkNamespace(named: live).exists && NetworkNamespace(named: foreign).exists)
    }
}
