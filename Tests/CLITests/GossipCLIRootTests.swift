import Foundation
import Glibc
import Gossip
import HostNet
import Lab
import Testing

/// Gossip as real processes: five `shoal gossip serve` members in five lab namespaces on
/// 192.0.2.0/24, port 7946, sealed with AES-GCM. Members join, entries spread, a member killed
/// with SIGKILL has its entries withdrawn and restored when it restarts, a network leave and
/// rejoin race leaves no stale tombstone, junk on 7946 is counted and dropped, and the key is
/// rotated with no loss of membership.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct GossipCLIRootTests {
    static let firstKey = Data((0..<32).map { UInt8($0) }).base64EncodedString()
    static let secondKey = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()

    private struct Cluster {
        let lab: Lab
        var members: [Int: ProcessIdentity] = [:]

        func name(_ index: Int) -> String { "n\(index + 1)" }
        func control(_ index: Int) -> String { "\(lab.record.fileDirectory)/\(name(index)).sock" }
        func address(_ index: Int) -> String { lab.nodes[index].underlayAddress.description }

        mutating func start(_ index: Int) throws {
            var arguments = [
                shoalExecutable, "gossip", "serve", "--name", name(index), "--address", address(index), "--keys", GossipCLIRootTests.firstKey,
                "--data-dir", "\(lab.record.fileDirectory)/\(name(index))", "--control", control(index), "--networks", "ov",
            ]
            if index != 0 { arguments += ["--join", "\(address(0)),\(address((index + 1) % lab.nodes.count))"] }
            members[index] = try lab.startProcess(on: lab.nodes[index], arguments, log: "\(name(index)).log")
            try waitUntil("\(name(index)) answers", timeout: 10) { (try? self.cli(index, ["stats"]))?.status == 0 }
        }

        func kill9(_ index: Int) {
            guard let member = members[index], member.isAlive else { return }
            kill(member.pid, SIGKILL)
            for _ in 0..<100 where member.isAlive { usleep(20_000) }
        }

        /// Runs `shoal gossip ARGS --control SOCKET` for member `index` (the socket is a file:
        /// no namespace needed).
        func cli(_ index: Int, _ arguments: [String]) throws -> NamespacedProcess.Result {
            try NamespacedProcess.run([shoalExecutable, "gossip"] + arguments + ["--control", control(index)], timeoutSeconds: 20)
        }

        func members(seenBy index: Int) -> [String: String] {
            guard let output = try? cli(index, ["members", "--json"]).output,
                let list = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]
            else { return [:] }
            var result: [String: String] = [:]
            for member in list { result[member["name"] as? String ?? "?"] = member["status"] as? String }
            return result
        }

        func entries(seenBy index: Int) -> [String: String] {
            guard let output = try? cli(index, ["entries", "--network", "ov", "--json"]).output,
                let list = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]
            else { return [:] }
            var result: [String: String] = [:]
            for entry in list { result[entry["key"] as? String ?? "?"] = entry["value"] as? String }
            return result
        }

        func stats(_ index: Int) -> [String: [String: Any]] {
            guard let output = try? cli(index, ["stats"]).output,
                let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            else { return [:] }
            return [
                "statistics": object["statistics"] as? [String: Any] ?? [:], "drops": object["drops"] as? [String: Any] ?? [:],
            ]
        }

        func running() -> [Int] { members.keys.sorted().filter { members[$0]!.isAlive } }
    }

    private func withCluster(_ body: (inout Cluster) throws -> Void) throws {
        Lab.removeStale()
        let lab = try Lab.up(nodes: 5, name: "gossip\(getpid() % 100_000)")
        defer { try? lab.down() }
        var cluster = Cluster(lab: lab)
        for index in 0..<5 { try cluster.start(index) }
        let all = Dictionary(uniqueKeysWithValues: (0..<5).map { (cluster.name($0), "alive") })
        try waitUntil("five members see five alive", timeout: 20) { (0..<5).allSatisfy { cluster.members(seenBy: $0) == all } }
        try body(&cluster)
    }

    @Test func entriesSpreadAKilledMembersAreWithdrawnAndComeBackWhenItRestarts() throws {
        try withCluster { cluster in
            for index in 0..<5 {
                #expect(try cluster.cli(index, ["put", "--network", "ov", "--table", "endpoints", "--key", "task-\(index + 1)",
                    "--value", "10.0.9.\(index + 2)"]).status == 0)
            }
            let all = Dictionary(uniqueKeysWithValues: (0..<5).map { ("task-\($0 + 1)", "10.0.9.\($0 + 2)") })
            try waitUntil("every member sees five entries", timeout: 10) { (0..<5).allSatisfy { cluster.entries(seenBy: $0) == all } }

            cluster.kill9(2)
            var withoutN3 = all
            withoutN3["task-3"] = nil
            let others = [0, 1, 3, 4]
            try waitUntil("the others declare n3 dead and withdraw its entry", timeout: 15) {
                others.allSatisfy { cluster.members(seenBy: $0)["n3"] == "dead" && cluster.entries(seenBy: $0) == withoutN3 }
            }
            // Watchers saw the withdrawal as a delete in the ordered stream.
            let events = try cluster.cli(0, ["events", "--network", "ov", "--table", "endpoints"]).output
                .split(separator: "\n").filter { $0.contains("task-3") }
            #expect(events.first?.contains("\"deleted\":false") == true && events.last?.contains("\"deleted\":true") == true, "\(events)")

            try cluster.start(2)  // same data directory: its entry comes back from its own state
            try waitUntil("n3 is alive again and its entry is back everywhere", timeout: 15) {
                (0..<5).allSatisfy { cluster.members(seenBy: $0)["n3"] == "alive" && cluster.entries(seenBy: $0) == all }
            }
        }
    }

    @Test func aNetworkLeaveAndQuickRejoinLeaveNoStaleTombstone() throws {
        try withCluster { cluster in
            #expect(try cluster.cli(1, ["put", "--network", "ov", "--table", "endpoints", "--key", "kept", "--value", "1"]).status == 0)
            #expect(try cluster.cli(1, ["put", "--network", "ov", "--table", "endpoints", "--key", "dropped", "--value", "2"]).status == 0)
            try waitUntil("both entries everywhere", timeout: 10) { (0..<5).allSatisfy { cluster.entries(seenBy: $0).count == 2 } }
            for _ in 0..<3 {
                #expect(try cluster.cli(1, ["leave-network", "ov"]).status == 0)
                #expect(try cluster.cli(1, ["join-network", "ov"]).status == 0)
                #expect(try cluster.cli(1, ["put", "--network", "ov", "--table", "endpoints", "--key", "kept", "--value", "1"]).status == 0)
            }
            try waitUntil("only the rewritten entry, everywhere", timeout: 10) {
                (0..<5).allSatisfy { cluster.entries(seenBy: $0) == ["kept": "1"] }
            }
            Thread.sleep(forTimeInterval: 2)  // and it stays so
            #expect((0..<5).allSatisfy { cluster.entries(seenBy: $0) == ["kept": "1"] })
        }
    }

    @Test func junkOnPort7946IsCountedAndDroppedWhileMembershipHolds() throws {
        try withCluster { cluster in
            let target = cluster.address(0)
            let ring = try GossipKeyring(base64Keys: [Self.firstKey])
            let wrongRing = try GossipKeyring(base64Keys: [Self.secondKey])
            let ping = GossipCodec.packet([GossipCodec.encode(.ping(sequence: 1, target: "n1"))])
            let genuine = GossipEnvelope.seal(ping, sender: "n9", counter: UInt64(Date().timeIntervalSince1970 * 1e6), keyring: ring)
            let wrongKey = GossipEnvelope.seal(ping, sender: "n9", counter: 1, keyring: wrongRing)
            let garbage = GossipEnvelope.seal([7, 7, 7], sender: "n9", counter: UInt64(Date().timeIntervalSince1970 * 1e6) + 5, keyring: ring)
            let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
            let script = """
                import socket, os, struct, time
                t = ("\(target)", 7946)
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(50): u.sendto(os.urandom(int.from_bytes(os.urandom(1), "big") + 1), t)
                u.sendto(bytes.fromhex("\(hex(genuine))"), t); time.sleep(0.05)
                u.sendto(bytes.fromhex("\(hex(genuine))"), t)
                u.sendto(bytes.fromhex("\(hex(wrongKey))"), t)
                u.sendto(bytes.fromhex("\(hex(garbage))"), t)
                u.sendto(bytes.fromhex("\(hex(Array(genuine.prefix(20))))"), t)
                u.sendto(os.urandom(65000), t)
                for payload in [os.urandom(300), struct.pack(">I", 1 << 30) + os.urandom(64), struct.pack(">I", 500) + os.urandom(100)]:
                    s = socket.create_connection(t, timeout=2); s.sendall(payload); time.sleep(0.1); s.close()
                s = socket.create_connection(t, timeout=2)
                s.sendall(struct.pack(">I", len(bytes.fromhex("\(hex(wrongKey))"))) + bytes.fromhex("\(hex(wrongKey))")); time.sleep(0.1); s.close()
                """
            let sent = try NamespacedProcess.run(["python3", "-c", script], in: cluster.lab.nodes[1].namespace, timeoutSeconds: 30)
            #expect(sent.status == 0, "\(sent.output)")
            Thread.sleep(forTimeInterval: 0.5)
            let drops = cluster.stats(0)["drops"] ?? [:]
            let statistics = cluster.stats(0)["statistics"] ?? [:]
            func count(_ key: String, _ table: [String: Any]) -> Int { (table[key] as? NSNumber)?.intValue ?? 0 }
            #expect(count("replays", drops) >= 1, "\(drops)")
            #expect(count("unknownKey", drops) >= 2, "\(drops)")  // once by datagram, once by stream
            #expect(count("malformedEnvelopes", drops) + count("unknownKey", drops) + count("authenticationFailures", drops) >= 50, "\(drops)")
            #expect(count("oversizedFrames", drops) >= 1, "\(drops)")
            #expect(count("truncatedFrames", drops) >= 1, "\(drops)")
            #expect(count("malformedPackets", statistics) >= 1, "\(statistics)")  // the sealed garbage
            let all = Dictionary(uniqueKeysWithValues: (0..<5).map { (cluster.name($0), "alive") })
            for index in 0..<5 { #expect(cluster.members(seenBy: index) == all) }
        }
    }

    @Test func theKeyIsRotatedWithNoLossOfMembership() throws {
        try withCluster { cluster in
            let newID = GossipKeyring.format(GossipKeyring.id(of: try GossipKeyring.decode(Self.secondKey)))
            let oldID = GossipKeyring.format(GossipKeyring.id(of: try GossipKeyring.decode(Self.firstKey)))
            for step in [["key", "add", Self.secondKey], ["key", "use", newID], ["key", "remove", oldID]] {
                for index in 0..<5 { #expect(try cluster.cli(index, step).status == 0, "\(step) on n\(index + 1)") }
                Thread.sleep(forTimeInterval: 1.5)
            }
            #expect(try cluster.cli(0, ["key", "list"]).output.contains("\(newID) (primary)"))
            #expect(try cluster.cli(0, ["key", "remove", newID]).status != 0)  // the primary stays
            let all = Dictionary(uniqueKeysWithValues: (0..<5).map { (cluster.name($0), "alive") })
            try waitUntil("everyone still alive under the new key", timeout: 5) { (0..<5).allSatisfy { cluster.members(seenBy: $0) == all } }
            for index in 0..<5 {
                let stats = cluster.stats(index)
                #expect((stats["statistics"]?["deathsDeclared"] as? NSNumber)?.intValue == 0)
                #expect((stats["drops"]?["unknownKey"] as? NSNumber)?.intValue == 0, "n\(index + 1): \(stats)")
            }
        }
    }
}

/// Polls `condition` every 200 ms for at most `timeout` seconds; throws with `what` otherwise.
private func waitUntil(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.2)
    }
    struct TimedOut: Error, CustomStringConvertible { let description: String }
    throw TimedOut(description: "timed out after \(Int(timeout)) s waiting until \(what)")
}
