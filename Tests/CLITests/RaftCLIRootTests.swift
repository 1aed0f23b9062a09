import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// Raft as real processes: three `shoal raft serve` members in three lab namespaces on
/// 192.0.2.0/24, port 2377, killed with SIGKILL under write load, restarted, and caught up —
/// from the log, and by a chunked snapshot when far behind.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct RaftCLIRootTests {
    private struct Group {
        let lab: Lab
        let peers: String
        let endpoints: String
        var members: [UInt64: ProcessIdentity] = [:]

        init(lab: Lab) {
            self.lab = lab
            peers = lab.nodes.enumerated().map { "\($0.offset + 1)=\($0.element.underlayAddress):2377" }.joined(separator: ",")
            endpoints = lab.nodes.map { "\($0.underlayAddress):2377" }.joined(separator: ",")
        }

        mutating func start(_ id: UInt64, snapshotInterval: Int = 10_000) throws {
            let node = lab.nodes[Int(id) - 1]
            members[id] = try lab.startProcess(on: node, [
                shoalExecutable, "raft", "serve", "--id", "\(id)", "--listen", "\(node.underlayAddress):2377",
                "--peers", peers, "--data-dir", "\(lab.record.fileDirectory)/member\(id)",
                "--snapshot-interval", "\(snapshotInterval)",
            ], log: "member\(id).log")
        }

        /// The last lines member `id` logged (for failure messages).
        func logTail(_ id: UInt64) -> String {
            let text = (try? String(contentsOfFile: "\(lab.record.fileDirectory)/member\(id).log", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").suffix(15).joined(separator: "\n")
        }

        func kill9(_ id: UInt64) {
            guard let member = members[id], member.isAlive else { return }
            kill(member.pid, SIGKILL)
        }

        /// Runs a `shoal raft` client command inside n1's namespace (the lab's hosts are only
        /// reachable from its namespaces).
        func client(_ arguments: [String], timeout: Double = 60) throws -> NamespacedProcess.Result {
            try NamespacedProcess.run(
                [shoalExecutable, "raft"] + arguments + ["--endpoints", endpoints], in: lab.nodes[0].namespace,
                timeoutSeconds: timeout)
        }

        func statuses(timeout: Double = 60) throws -> [[String: Any]] {
            let output = try client(["status", "--json"], timeout: timeout).output
            return output.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }

        func leader() throws -> (id: UInt64, term: UInt64)? {
            for status in try statuses() where status["role"] as? String == "leader" {
                return ((status["id"] as? NSNumber)?.uint64Value ?? 0, (status["term"] as? NSNumber)?.uint64Value ?? 0)
            }
            return nil
        }

        /// Waits (bounded) until member `id` has applied what the leader has committed.
        func waitCaughtUp(_ id: UInt64, timeout: Double) throws -> [String: Any]? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                // Short: one stuck request must not take the whole wait.
                let all = try statuses(timeout: 5)
                let commit = all.compactMap { $0["role"] as? String == "leader" ? ($0["commit"] as? NSNumber)?.uint64Value : nil }.first
                if let commit, let member = all.first(where: { ($0["id"] as? NSNumber)?.uint64Value == id }),
                    let applied = (member["applied"] as? NSNumber)?.uint64Value, applied >= commit
                {
                    return member
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
            return nil
        }
    }

    private func withGroup(_ body: (inout Group) throws -> Void) throws {
        Lab.removeStale()
        let lab = try Lab.up(nodes: 3, name: "raft\(getpid() % 100_000)")
        defer { try? lab.down() }
        var group = Group(lab: lab)
        try body(&group)
    }

    @Test func killingTheLeaderUnderLoadElectsAnotherWithinASecondAndLosesNoAcknowledgedWrite() throws {
        try withGroup { group in
            for id: UInt64 in 1...3 { try group.start(id) }
            Thread.sleep(forTimeInterval: 1.5)
            var failovers: [Int] = []
            for round in 1...3 {
                let load = try NamespacedProcess(
                    [shoalExecutable, "raft", "load", "--seconds", "4", "--prefix", "round\(round)-", "--endpoints", group.endpoints],
                    in: group.lab.nodes[0].namespace)
                Thread.sleep(forTimeInterval: 1.5)
                let old = try #require(try group.leader(), "no leader before round \(round)")
                let watcher = try NamespacedProcess(
                    [shoalExecutable, "raft", "wait-leader", "--above-term", "\(old.term)", "--not", "\(old.id)",
                     "--endpoints", group.endpoints],
                    in: group.lab.nodes[0].namespace)
                group.kill9(old.id)
                let elected = watcher.wait(timeoutSeconds: 15)
                #expect(elected.status == 0, "round \(round): \(elected.output)")
                if let ms = elected.output.split(separator: " ").dropLast().last.flatMap({ Int($0) }) { failovers.append(ms) }
                let verified = load.wait(timeoutSeconds: 120)
                #expect(verified.status == 0 && verified.output.contains("missing 0"), "round \(round): \(verified.output)")
                // The killed member comes back from its own disk and catches up from the log.
                try group.start(old.id)
                let caughtUp = try group.waitCaughtUp(old.id, timeout: 60)  // 30 s was short with the swarm suites beside it.
                #expect(caughtUp != nil, "member \(old.id) did not catch up after restart; its log ends:\n\(group.logTail(old.id))")
            }
            print("raft failover after kill -9 of the leader, ms per round: \(failovers)")
            #expect(failovers.count == 3)
            #expect(failovers.allSatisfy { $0 < 1_000 }, "failover over 1 s: \(failovers)")
        }
    }

    /// A member down while the group moves far ahead returns to a log that no longer has what
    /// it misses: it catches up by snapshot, in chunks. (`make soak` does this 1,000,000 entries
    /// behind; this keeps `make test` quick.)
    @Test func aMemberFarBehindCatchesUpByAChunkedSnapshot() throws {
        try withGroup { group in
            for id: UInt64 in 1...3 { try group.start(id, snapshotInterval: 5_000) }
            Thread.sleep(forTimeInterval: 1.5)
            let behind: UInt64 = try group.leader()?.id == 3 ? 2 : 3
            group.kill9(behind)
            Thread.sleep(forTimeInterval: 0.5)
            let filled = try group.client(["put-many", "--count", "60000", "--value-bytes", "64"], timeout: 300)
            #expect(filled.status == 0, "\(filled.output)")
            try group.start(behind, snapshotInterval: 5_000)
            let member = try #require(try group.waitCaughtUp(behind, timeout: 120), "member \(behind) did not catch up")
            let chunks = (member["snapshotChunksReceived"] as? NSNumber)?.intValue ?? 0
            #expect((member["snapshotsInstalled"] as? NSNumber)?.intValue == 1, "\(member)")
            #expect(chunks > 1, "the snapshot should arrive in several chunks: \(member)")
            let read = try group.client(["get", "fill-59999"])
            #expect(read.output.contains(String(repeating: "v", count: 64)), "\(read.output)")
        }
    }

    /// Junk on 2377 — random bytes, a frame that is cut short, a frame claiming 1 GiB, a raft
    /// frame whose message does not decode, an unknown channel — is dropped and counted, and
    /// the group goes on committing and answering.
    @Test func junkFramesOnPort2377AreDroppedAndCountedWhileTheGroupServes() throws {
        try withGroup { group in
            for id: UInt64 in 1...3 { try group.start(id) }
            Thread.sleep(forTimeInterval: 1.5)
            let before = try group.client(["put", "before", "junk"])
            #expect(before.status == 0, "\(before.output)")
            let target = group.lab.nodes[1].underlayAddress
            let script = """
                import os, socket, struct, random
                random.seed(7)
                def send(payload, close_early=False):
                    s = socket.create_connection(("\(target)", 2377), timeout=0.5)
                    s.sendall(payload)
                    if not close_early:
                        try: s.recv(16)
                        except Exception: pass
                    s.close()
                for _ in range(20):
                    send(os.urandom(random.randint(1, 300)))
                send(struct.pack(">I", 1 << 30) + b"x" * 100)
                send(struct.pack(">I", 50) + b"\\x01" + b"\\x00" * 10, close_early=True)
                send(struct.pack(">I", 12) + b"\\x01" + b"\\x01" + b"\\xff" * 10)
                send(struct.pack(">I", 5) + b"\\x09" + b"abcd")
                send(struct.pack(">I", 3) + b"\\x02{}")
                """
            let junk = try NamespacedProcess.run(["python3", "-c", script], in: group.lab.nodes[0].namespace, timeoutSeconds: 60)
            #expect(junk.status == 0, "\(junk.output)")
            let status = try group.statuses().first { ($0["id"] as? NSNumber)?.uint64Value == 2 }
            let rejected = (status?["rejectedFrames"] as? NSNumber)?.intValue ?? 0
            #expect(rejected >= 4, "member 2 should count the junk frames it dropped: \(String(describing: status))")
            let after = try group.client(["put", "after", "junk"])
            #expect(after.status == 0, "\(after.output)")
            let read = try group.client(["get", "before"])
            #expect(read.output.contains("junk"), "\(read.output)")
            #expect(try group.statuses().count == 3, "every member still answers")
        }
    }
}
