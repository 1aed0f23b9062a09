import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// The swarm as an operator drives it, with the real binary: daemons in lab namespaces,
/// `swarm init`/`join` with tokens, `node ls` through every manager, the leader killed under
/// writes, join refusals, mutual TLS on 2377.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct SwarmCLIRootTests {
    /// `node ls --format json` through `socket`, decoded.
    func nodeList(_ socket: String) throws -> [[String: Any]] {
        let result = try shoalAt(socket, ["node", "ls", "--format", "json"], timeout: 10)
        guard result.status == 0 else { throw SwarmTestError.command("node ls: \(result.output)") }
        return try result.output.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
    }

    enum SwarmTestError: Error { case command(String) }

    /// Starts `node`'s daemon again with the flags the lab gave it (same data directory).
    func restartDaemon(_ lab: Lab, _ node: Lab.Node) throws -> NamespacedProcess {
        try NamespacedProcess(
            [
                shoalExecutable, "daemon", "--node-name", node.name, "--advertise-addr", "\(node.underlayAddress):2377",
                "--listen-addr", "\(node.underlayAddress):2377", "--data-dir", "\(lab.record.fileDirectory)/\(node.name)-data",
                "--socket", "\(lab.record.fileDirectory)/\(node.name).sock",
            ], in: node.namespace, captureOutput: false)
    }

    /// A node's certificate on disk: its serial and when it expires (openssl reads the DER).
    func certificate(_ lab: Lab, _ node: String) throws -> (serial: String, notAfter: Date)? {
        let path = "\(lab.record.fileDirectory)/\(node)-data/certificates/node.crt"
        let result = try NamespacedProcess.run(["openssl", "x509", "-inform", "DER", "-in", path, "-noout", "-serial", "-enddate"], timeoutSeconds: 10)
        guard result.status == 0 else { return nil }
        let fields = Dictionary(result.output.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }, uniquingKeysWith: { a, _ in a })
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "MMM d HH:mm:ss yyyy zzz"
        guard let serial = fields["serial"], let text = fields["notAfter"],
            let notAfter = format.date(from: text.replacingOccurrences(of: "  ", with: " "))
        else { return nil }
        return (serial, notAfter)
    }

    /// What the renewal test saw, gathered on a thread of its own.
    struct RenewalObservation: Sendable {
        var serials: [String: Set<String>] = [:]
        var expired: [String] = [], failedWrites: [String] = [], notReady: [String] = []
        var rounds = 0
    }

    @Test func certificatesAreRenewedBeforeTheyExpireAndTheSwarmStaysHealthy() async throws {
        Lab.removeStale()
        let name = "sc\(getpid() % 100_000)"
        let up = try shoal(
            ["lab", "up", "--nodes", "3", "--managers", "2", "--cert-expiry", "1m", "--dispatcher-heartbeat", "500ms", "--name", name],
            timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        let nodes = ["n1", "n2", "n3"]
        let seconds = Double(ProcessInfo.processInfo.environment["SHOAL_CERT_SECONDS"] ?? "") ?? 75
        let seen = try await onOwnThread { () throws -> RenewalObservation in
            var seen = RenewalObservation()
            let started = Date()
            // Bounded: one round a second for `seconds` (each command at most 10 s).
            while Date().timeIntervalSince(started) < seconds {
                seen.rounds += 1
                for node in nodes {
                    guard let current = try certificate(lab, node) else { continue }
                    seen.serials[node, default: []].insert(current.serial)
                    if current.notAfter < Date() { seen.expired.append("\(node) at \(Int(Date().timeIntervalSince(started))) s") }
                }
                // Writes through each manager in turn (followers forward over 2377 under mTLS).
                let manager = ["n1", "n2"][seen.rounds % 2]
                let write = try shoalAt(socket(manager), ["node", "update", "--label-add", "round\(seen.rounds)=1", "n3"], timeout: 10)
                if write.status != 0 { seen.failedWrites.append("round \(seen.rounds) via \(manager): \(write.output)") }
                let list = (try? nodeList(socket(manager))) ?? []
                let states = list.map { "\($0["Hostname"] as? String ?? "?"):\($0["Status"] as? String ?? "?")" }
                if list.count != 3 || states.contains(where: { $0.hasSuffix(":Down") }) {
                    seen.notReady.append("\(Int(Date().timeIntervalSince(started))) s: \(states)")
                }
                usleep(1_000_000)
            }
            return seen
        }
        // Swarm's schedule renews at 50–80 % of a certificate's life: within 75 s every node
        // replaced the one it joined with (which expired at 60 s) at least once.
        for node in nodes { #expect((seen.serials[node]?.count ?? 0) >= 2, "\(node) was never renewed: \(seen.serials[node] ?? [])") }
        #expect(seen.expired.isEmpty, "expired certificates on disk: \(seen.expired)")
        #expect(seen.failedWrites.isEmpty, "\(seen.failedWrites.count) of \(seen.rounds) writes failed: \(seen.failedWrites.prefix(3))")
        #expect(seen.notReady.isEmpty, "nodes missing or Down: \(seen.notReady.prefix(3))")
        print("certificates: \(seen.serials.mapValues(\.count)) per node in \(Int(seconds)) s, \(seen.rounds) writes")
    }

    @Test func promotionDemotionOfTheLeaderAndRemovalOfADownNode() throws {
        Lab.removeStale()
        let name = "sp\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "4", "--managers", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        func managerStatus(_ nodes: [[String: Any]], _ host: String) -> String? {
            nodes.first { $0["Hostname"] as? String == host }?["ManagerStatus"] as? String
        }
        /// `node ls` through the first manager that answers, until `condition` holds (bounded: 150 × 100 ms).
        func eventually(_ managers: [String], _ condition: ([[String: Any]]) -> Bool) -> [[String: Any]] {
            var last: [[String: Any]] = []
            for _ in 0..<150 {
                for manager in managers {
                    if let nodes = try? nodeList(socket(manager)), !nodes.isEmpty {
                        last = nodes
                        break
                    }
                }
                if condition(last) { return last }
                usleep(100_000)
            }
            return last
        }

        // Promote the worker: it gets a manager certificate, joins Raft, and is Reachable.
        let promoted = try shoalAt(socket("n1"), ["node", "promote", "n4"])
        #expect(promoted.status == 0 && promoted.output.contains("Node n4 promoted to a manager in the swarm."), "\(promoted.output)")
        var nodes = eventually(["n1", "n2", "n3"]) { managerStatus($0, "n4") == "Reachable" }
        #expect(managerStatus(nodes, "n4") == "Reachable", "\(nodes)")
        #expect(try shoalAt(socket("n4"), ["node", "ls"]).status == 0, "n4 serves the cluster's API now")

        // Demote the leader: it hands leadership over, leaves Raft, and is a worker.
        let leader = try #require(nodes.first { $0["ManagerStatus"] as? String == "Leader" }?["Hostname"] as? String)
        let others = ["n1", "n2", "n3", "n4"].filter { $0 != leader }
        let demoted = try shoalAt(socket(others[0]), ["node", "demote", leader])
        #expect(demoted.status == 0 && demoted.output.contains("Manager \(leader) demoted in the swarm."), "\(demoted.output)")
        nodes = eventually(others) { nodes in
            managerStatus(nodes, leader) == "" && nodes.filter { $0["ManagerStatus"] as? String == "Leader" }.count == 1
                && others.allSatisfy { ["Leader", "Reachable"].contains(managerStatus(nodes, $0)) }
                && nodes.allSatisfy { $0["Status"] as? String == "Ready" }  // Unknown while the new leader hears from them
        }
        #expect(managerStatus(nodes, leader) == "", "\(leader) is a worker: \(nodes)")
        #expect(others.allSatisfy { ["Leader", "Reachable"].contains(managerStatus(nodes, $0)) }, "\(nodes)")
        #expect(nodes.allSatisfy { $0["Status"] as? String == "Ready" }, "\(nodes)")
        var refused = try shoalAt(socket(leader), ["node", "ls"])
        for _ in 0..<50 where refused.status == 0 {  // Bounded: its manager stops once it has taken the role.
            usleep(100_000)
            refused = try shoalAt(socket(leader), ["node", "ls"])
        }
        #expect(refused.status != 0 && refused.output.contains("not a swarm manager"), "\(refused.output)")
        #expect(try shoalAt(socket(others[1]), ["node", "update", "--label-add", "after-demotion=1", others[2]]).status == 0)

        // With one of the three managers down, demoting another would leave no quorum: refused.
        let newLeader = try #require(nodes.first { $0["ManagerStatus"] as? String == "Leader" }?["Hostname"] as? String)
        let followers = others.filter { $0 != newLeader }
        let downIndex = try #require(lab.nodes.firstIndex { $0.name == followers[0] })
        kill(lab.record.processes[downIndex].pid, SIGKILL)
        nodes = eventually([newLeader]) { managerStatus($0, followers[0]) == "Unreachable" }
        let unsafe = try shoalAt(socket(newLeader), ["node", "demote", followers[1]])
        #expect(unsafe.status != 0 && unsafe.output.contains("quorum"), "\(unsafe.output)")
        #expect(managerStatus(try nodeList(socket(newLeader)), followers[1]) == "Reachable")

        // The demoted node's daemon killed: Down, then removed (a live node is refused without --force).
        let aliveRefused = try shoalAt(socket(newLeader), ["node", "rm", leader])
        #expect(aliveRefused.status != 0, "\(aliveRefused.output)")
        let leaderIndex = try #require(lab.nodes.firstIndex { $0.name == leader })
        kill(lab.record.processes[leaderIndex].pid, SIGKILL)
        nodes = eventually([newLeader]) { nodes in nodes.first { $0["Hostname"] as? String == leader }?["Status"] as? String == "Down" }
        let removed = try shoalAt(socket(newLeader), ["node", "rm", leader])
        #expect(removed.status == 0, "\(removed.output)")
        #expect(try nodeList(socket(newLeader)).allSatisfy { $0["Hostname"] as? String != leader })
    }

    @Test func quorumLossFailsFastAndForceNewClusterKeepsEveryObject() throws {
        Lab.removeStale()
        let name = "sq\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--managers", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        #expect(try shoalAt(socket("n1"), ["node", "update", "--label-add", "kept=yes", "n1"]).status == 0)

        // Two of three managers killed: a write fails within 2 s, saying quorum is lost.
        for index in [1, 2] { kill(lab.record.processes[index].pid, SIGKILL) }
        usleep(200_000)
        let started = Date()
        let lost = try shoalAt(socket("n1"), ["node", "update", "--label-add", "lost=1", "n1"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(lost.status != 0 && lost.output.contains("quorum"), "\(lost.output)")
        #expect(elapsed < 2.0, "the write failed after \(elapsed) s")

        // The survivor restarts the swarm alone, with every object.
        let forced = try shoalAt(socket("n1"), ["swarm", "init", "--force-new-cluster"])
        #expect(forced.status == 0, "\(forced.output)")
        let nodes = try nodeList(socket("n1"))
        #expect(nodes.count == 3, "\(nodes)")
        #expect(nodes.first { $0["Hostname"] as? String == "n1" }?["ManagerStatus"] as? String == "Leader", "\(nodes)")
        #expect(try shoalAt(socket("n1"), ["node", "inspect", "n1"]).output.contains("\"kept\""))
        #expect(try shoalAt(socket("n1"), ["node", "update", "--label-add", "after=1", "n1"]).status == 0)

        // A manager of the old group leaves and joins the new one.
        let n2 = try restartDaemon(lab, lab.nodes[1])
        defer {
            kill(n2.pid, SIGKILL)
            _ = n2.wait(timeoutSeconds: 5)
        }
        var left = false
        for _ in 0..<50 where !left {  // Bounded: 50 tries, 200 ms apart (the daemon starting).
            left = (try? shoalAt(socket("n2"), ["swarm", "leave", "--force"]))?.status == 0
            if !left { usleep(200_000) }
        }
        #expect(left)
        let token = try shoalAt(socket("n1"), ["swarm", "join-token", "-q", "manager"]).output.split(separator: "\n").last.map(String.init) ?? ""
        let joined = try shoalAt(socket("n2"), ["swarm", "join", "--token", token, "\(lab.nodes[0].underlayAddress):2377"])
        #expect(joined.status == 0, "\(joined.output)")
        var reachable = false
        for _ in 0..<50 where !reachable {  // Bounded: 50 checks, 100 ms apart.
            let list = (try? nodeList(socket("n1"))) ?? []
            reachable = list.contains { $0["Hostname"] as? String == "n2" && $0["ManagerStatus"] as? String == "Reachable" }
            if !reachable { usleep(100_000) }
        }
        #expect(reachable, "the rejoined manager is not Reachable")
    }

    @Test func fiveNodesFormThroughEveryManagerAndSurviveTheLeadersKill() throws {
        Lab.removeStale()
        let name = "sw\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "5", "--managers", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        #expect(up.output.contains("export SHOAL_HOST=unix://\(socket("n1"))"), "\(up.output)")

        // Every manager answers the same list: 5 Ready, one Leader, two Reachable, itself marked.
        for manager in ["n1", "n2", "n3"] {
            let nodes = try nodeList(socket(manager))
            #expect(nodes.count == 5, "\(manager): \(nodes)")
            #expect(nodes.allSatisfy { $0["Status"] as? String == "Ready" }, "\(manager): \(nodes)")
            #expect(nodes.filter { $0["ManagerStatus"] as? String == "Leader" }.count == 1, "\(manager): \(nodes)")
            #expect(nodes.filter { $0["ManagerStatus"] as? String == "Reachable" }.count == 2, "\(manager): \(nodes)")
            #expect(nodes.filter { $0["Self"] as? Bool == true }.map { $0["Hostname"] as? String } == [manager])
        }
        // Every node's gossip sees all five alive, however the managers' data planes raced at
        // start (bounded: 50 rounds, 200 ms apart).
        var gossipViews: [String] = []
        for _ in 0..<50 {
            gossipViews = lab.nodes.map { node in
                let metrics = (try? NamespacedProcess.run(
                    ["curl", "-s", "--max-time", "2", "http://127.0.0.1:9323/metrics"], in: node.namespace, timeoutSeconds: 5).output) ?? ""
                return metrics.split(separator: "\n").first { $0.hasPrefix("shoal_gossip_members{status=\"alive\"}") }.map(String.init) ?? "none"
            }
            if gossipViews.allSatisfy({ $0.hasSuffix(" 5.0") || $0.hasSuffix(" 5") }) { break }
            usleep(200_000)
        }
        #expect(gossipViews.allSatisfy { $0.hasSuffix(" 5.0") || $0.hasSuffix(" 5") }, "\(gossipViews)")
        let table = try shoalAt(socket("n2"), ["node", "ls"])
        #expect(table.output.hasPrefix("ID"), "\(table.output)")
        #expect(table.output.contains("HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ENGINE VERSION"), "\(table.output)")
        // A worker's socket serves no cluster state.
        let fromWorker = try shoalAt(socket("n4"), ["node", "ls"])
        #expect(fromWorker.status != 0 && fromWorker.output.contains("not a swarm manager"), "\(fromWorker.output)")

        // Writes through a manager that will survive, before and across the leader's kill.
        let nodes = try nodeList(socket("n1"))
        let leader = try #require(nodes.first { $0["ManagerStatus"] as? String == "Leader" }?["Hostname"] as? String)
        let survivor = ["n1", "n2", "n3"].first { $0 != leader }!
        var acknowledged: [Int] = []
        for write in 0..<5 {
            let result = try shoalAt(socket(survivor), ["node", "update", "--label-add", "w\(write)=1", "n5"])
            if result.status == 0 { acknowledged.append(write) }
        }
        #expect(acknowledged.count == 5)
        let leaderIndex = try #require(lab.nodes.firstIndex { $0.name == leader })
        let victim = lab.record.processes[leaderIndex]
        kill(victim.pid, SIGKILL)
        let killed = Date()
        // A new leader, as the survivor's `node ls` shows it, within a second (bounded: 60 reads).
        var electedAfter: TimeInterval?
        for _ in 0..<60 where electedAfter == nil {
            let list = (try? nodeList(socket(survivor))) ?? []
            if let elected = list.first(where: { $0["ManagerStatus"] as? String == "Leader" })?["Hostname"] as? String, elected != leader {
                electedAfter = Date().timeIntervalSince(killed)
            } else {
                usleep(20_000)
            }
        }
        let election = try #require(electedAfter, "no new leader shown after the kill")
        #expect(election < 1.0, "a new leader shown \(election) s after the kill")
        print("swarm: a new leader shown \(Int(election * 1000)) ms after kill -9 of the leader \(leader)")
        var firstWriteAfterKill: TimeInterval?
        for write in 5..<40 {  // Bounded: 35 writes, each at most 30 s, stops 3 s after the first success.
            let result = try shoalAt(socket(survivor), ["node", "update", "--label-add", "w\(write)=1", "n5"])
            if result.status == 0 {
                acknowledged.append(write)
                if firstWriteAfterKill == nil { firstWriteAfterKill = Date().timeIntervalSince(killed) }
            }
            if let first = firstWriteAfterKill, Date().timeIntervalSince(killed) > first + 3 { break }
        }
        let failover = try #require(firstWriteAfterKill, "no write was acknowledged after the leader's kill")
        #expect(failover < 2.0, "first acknowledged write \(failover) s after the kill")
        print("swarm: first acknowledged write \(Int(failover * 1000)) ms after kill -9 of the leader \(leader)")

        // The new leader writes Unknown the nodes it has not heard from yet (swarm's grace after a
        // leadership change), never Down; the workers' sessions reach it and they are Ready again.
        var after = try nodeList(socket(survivor))
        var workerStates: Set<String> = []
        for _ in 0..<50 {  // Bounded: 50 reads, 100 ms apart.
            let states = ["n4", "n5"].map { worker in after.first { $0["Hostname"] as? String == worker }?["Status"] as? String ?? "?" }
            workerStates.formUnion(states)
            if states.allSatisfy({ $0 == "Ready" }) { break }
            usleep(100_000)
            after = try nodeList(socket(survivor))
        }
        #expect(workerStates.isSubset(of: ["Ready", "Unknown"]), "worker states seen: \(workerStates)")
        #expect(after.filter { $0["ManagerStatus"] as? String == "Leader" }.count == 1, "\(after)")
        #expect(after.first { $0["Hostname"] as? String == leader }?["ManagerStatus"] as? String == "Unreachable", "\(after)")
        for worker in ["n4", "n5"] {
            #expect(after.first { $0["Hostname"] as? String == worker }?["Status"] as? String == "Ready", "\(worker): \(after)")
        }

        // The killed manager restarts from its data directory: same identity, Reachable again.
        let restarted = try restartDaemon(lab, lab.nodes[leaderIndex])
        defer {
            kill(restarted.pid, SIGKILL)
            _ = restarted.wait(timeoutSeconds: 5)
        }
        var rejoined = false
        for _ in 0..<100 where !rejoined {  // Bounded: 100 checks, 100 ms apart.
            let list = (try? nodeList(socket(survivor))) ?? []
            rejoined = list.count == 5 && list.first { $0["Hostname"] as? String == leader }?["ManagerStatus"] as? String == "Reachable"
            if !rejoined { usleep(100_000) }
        }
        #expect(rejoined, "\(leader) did not come back Reachable")

        // Every acknowledged write is still there, read through the restarted manager too.
        for reader in [survivor, leader] {
            let inspect = try shoalAt(socket(reader), ["node", "inspect", "n5"])
            for write in acknowledged { #expect(inspect.output.contains("\"w\(write)\""), "w\(write) missing through \(reader)") }
        }
    }

    @Test func joinRefusalsAndMutualTLSOn2377() throws {
        Lab.removeStale()
        let name = "sj\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--managers", "1", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        let manager = "\(lab.nodes[0].underlayAddress):2377"

        // n3 leaves (a worker needs no --force) and is unjoined again.
        let leave = try shoalAt(socket("n3"), ["swarm", "leave"])
        #expect(leave.status == 0, "\(leave.output)")
        let token = try shoalAt(socket("n1"), ["swarm", "join-token", "-q", "worker"]).output
            .split(separator: "\n").last.map(String.init) ?? ""
        try #require(token.hasPrefix("SWMTKN-1-"), "\(token)")
        let parts = token.split(separator: "-")
        let before = try nodeList(socket("n1")).count

        // A wrong secret: refused, no node created.
        let wrongSecret = "SWMTKN-1-\(parts[2])-\(String(repeating: "0", count: 25))"
        let refused = try shoalAt(socket("n3"), ["swarm", "join", "--token", wrongSecret, manager])
        #expect(refused.status != 0 && refused.output.contains("join token is not valid"), "\(refused.output)")
        #expect(try nodeList(socket("n1")).count == before)

        // Another swarm's CA digest: the joiner refuses before sending the secret.
        let wrongDigest = "SWMTKN-1-\(String(repeating: "1", count: 50))-\(parts[3])"
        let mismatch = try shoalAt(socket("n3"), ["swarm", "join", "--token", wrongDigest, manager])
        #expect(mismatch.status != 0 && mismatch.output.contains("does not match the token"), "\(mismatch.output)")
        #expect(try nodeList(socket("n1")).count == before)

        // Rotation: the old token is refused, n2 (joined with it) stays Ready; the new one works.
        let rotate = try shoalAt(socket("n1"), ["swarm", "join-token", "--rotate", "worker"])
        #expect(rotate.status == 0, "\(rotate.output)")
        let stale = try shoalAt(socket("n3"), ["swarm", "join", "--token", token, manager])
        #expect(stale.status != 0 && stale.output.contains("join token is not valid"), "\(stale.output)")
        let fresh = try shoalAt(socket("n1"), ["swarm", "join-token", "-q", "worker"]).output.split(separator: "\n").last.map(String.init) ?? ""
        let rejoin = try shoalAt(socket("n3"), ["swarm", "join", "--token", fresh, manager])
        #expect(rejoin.status == 0, "\(rejoin.output)")
        let nodes = try nodeList(socket("n1"))
        #expect(nodes.count == before + 1, "a rejoining worker gets a new ID: \(nodes)")
        #expect(nodes.first { $0["Hostname"] as? String == "n2" }?["Status"] as? String == "Ready")

        // A plain TCP client and a TLS client without a certificate: refused; 2377 serves on.
        let n2 = lab.nodes[1].namespace
        let plain = try NamespacedProcess.run(
            ["sh", "-c", "printf 'GET / HTTP/1.1\\r\\n\\r\\n' | timeout 3 nc -q 1 \(lab.nodes[0].underlayAddress) 2377 | od -c | head -3"],
            in: n2, timeoutSeconds: 10)
        #expect(!plain.output.contains("H   T   T   P"), "\(plain.output)")
        let anonymous = try NamespacedProcess.run(
            ["sh", "-c", "(printf 'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'; sleep 1) | timeout 5 openssl s_client -quiet -connect \(manager) -alpn h2 2>&1"],
            in: n2, timeoutSeconds: 10)
        #expect(anonymous.output.contains("alert certificate required"), "\(anonymous.output)")
        #expect(try nodeList(socket("n1")).count == before + 1)

        // curl as a gRPC client with a node's own certificate: a worker's calling a
        // manager-only RPC gets PERMISSION_DENIED (7); a manager's, the same call, OK (0).
        let scratch = NSTemporaryDirectory() + "shoal-swarm-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Data([0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: "\(scratch)/empty.grpc"))
        func grpcStatus(withCertificateOf node: String) throws -> String {
            let certificates = "\(lab.record.fileDirectory)/\(node)-data/certificates"
            let script = """
                openssl x509 -inform der -in \(certificates)/node.crt -out \(scratch)/\(node).pem && \
                openssl pkey -inform der -in \(certificates)/node.key -out \(scratch)/\(node).key && \
                timeout 10 curl -sk --http2 --cert \(scratch)/\(node).pem --key \(scratch)/\(node).key \
                  -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @\(scratch)/empty.grpc \
                  -D - -o /dev/null https://\(manager)/shoal.api.Control/ListNodes
                """
            return try NamespacedProcess.run(["sh", "-c", script], in: n2, timeoutSeconds: 20).output
        }
        let asWorker = try grpcStatus(withCertificateOf: "n2")
        #expect(asWorker.contains("grpc-status: 7") && asWorker.contains("holds a worker certificate"), "\(asWorker)")
        let asManager = try grpcStatus(withCertificateOf: "n1")
        #expect(asManager.contains("grpc-status: 0"), "\(asManager)")
    }

    /// Bytes no client should send, on the Unix socket and on 2377, and calls with bad
    /// content: each ends in a clear gRPC status or a closed connection, the store unchanged,
    /// the daemon serving on.
    @Test func badInputOnTheSocketAnd2377LeavesTheStoreAndDaemonAsTheyWere() throws {
        Lab.removeStale()
        let name = "sb\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "1", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = "\(lab.record.fileDirectory)/n1.sock"
        let before = try shoalAt(socket, ["node", "inspect", "self"]).output
        let nodeID = try #require(try nodeList(socket).first?["ID"] as? String)

        // Raw bytes: random, an HTTP/2 frame header claiming 16 MiB, a cut-off frame, a
        // gRPC message prefix claiming 1 GiB, a protobuf that does not parse.
        let script = """
            import os, socket, struct, sys
            path, host = sys.argv[1], sys.argv[2]
            preface = b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"
            settings = b"\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x00\\x00"
            def send(payload, family=socket.AF_UNIX, address=None):
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect(address or path)
                try:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536): pass
                except OSError:
                    pass
                s.close()
            send(os.urandom(65536))
            send(preface + settings + b"\\xff\\xff\\xff\\x00\\x00\\x00\\x00\\x00\\x01" + b"x" * 1000)
            send(preface + settings + b"\\x00\\x00")
            for _ in range(20): send(os.urandom(4096), socket.AF_INET, (host, 2377))
            send(b"\\x16\\x03\\x01\\xff\\xff" + os.urandom(100), socket.AF_INET, (host, 2377))
            print("sent")
            """
        let raw = try NamespacedProcess.run(
            ["python3", "-c", script, socket, "\(lab.nodes[0].underlayAddress)"], in: lab.nodes[0].namespace, timeoutSeconds: 60)
        #expect(raw.status == 0 && raw.output.contains("sent"), "\(raw.output)")

        // gRPC calls with bad content, through curl on the Unix socket: status codes, not crashes.
        let scratch = NSTemporaryDirectory() + "shoal-bad-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func call(_ method: String, _ body: [UInt8], verbose: Bool = false) throws -> String {
            let file = "\(scratch)/\(method).body"
            try Data(body).write(to: URL(fileURLWithPath: file))
            return try NamespacedProcess.run([
                "curl", verbose ? "-sv" : "-s", "--max-time", "10", "--unix-socket", socket, "--http2-prior-knowledge",
                "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@\(file)",
                "-D", "-", "-o", "/dev/null", "http://localhost/shoal.api.Control/\(method)",
            ], timeoutSeconds: 20).output
        }
        func framed(_ message: [UInt8]) -> [UInt8] { [0] + withUnsafeBytes(of: UInt32(message.count).bigEndian, Array.init) + message }
        func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] { [number << 3 | 2, UInt8(bytes.count)] + bytes }
        // A message declared at 1 GiB is refused at once (the stream reset), never buffered.
        let huge = try call("GetNode", [0, 0x40, 0, 0, 0] + Array("abc".utf8), verbose: true)
        #expect(huge.contains("grpc-status: 8") || huge.contains("was not closed cleanly: CANCEL"), "1 GiB prefix: \(huge)")
        let garbage = try call("GetNode", framed([0xff, 0xff, 0xff, 0xff, 0xff]))
        #expect(garbage.contains("grpc-status: 13") || garbage.contains("grpc-status: 3"), "malformed protobuf: \(garbage)")
        let unknown = try call("GetNode", framed(field(1, Array("no-such-node".utf8))))
        #expect(unknown.contains("grpc-status: 5") && unknown.contains("no such node"), "unknown ID: \(unknown)")
        let stale = try call("UpdateNode", framed(field(1, Array(nodeID.utf8)) + field(2, [0x08, 0x01]) + field(3, [0x10, 0x01, 0x18, 0x01])))
        #expect(stale.contains("grpc-status: 10"), "stale version: \(stale)")
        let empty = try call("GetNode", framed([]))
        #expect(empty.contains("grpc-status: 3"), "no ID: \(empty)")

        // The daemon serves on, the node as it was.
        let after = try shoalAt(socket, ["node", "inspect", "self"]).output
        #expect(after == before)
        #expect(try nodeList(socket).count == 1)

        // /metrics parses as Prometheus text and carries the Raft and API series, the
        // refusals above among the errors.
        // Gauges are sampled each second: read until a sample taken after the writes above is
        // in (bounded: 20 reads, 250 ms apart).
        var metrics = ""
        for _ in 0..<20 {
            metrics = try NamespacedProcess.run(
                ["curl", "-s", "--max-time", "5", "http://127.0.0.1:9323/metrics"], in: lab.nodes[0].namespace, timeoutSeconds: 10).output
            if metrics.contains("shoal_store_objects{kind=\"node\"} 1") { break }
            usleep(250_000)
        }
        let sample = #/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? -?([0-9.e+-]+|\+Inf|NaN)$/#
        let lines = metrics.split(separator: "\n").map(String.init)
        let malformed = lines.filter { !$0.hasPrefix("# ") && !$0.isEmpty && (try? sample.wholeMatch(in: $0)) == nil }
        #expect(malformed.isEmpty, "not Prometheus text: \(malformed.prefix(5))")
        for series in ["shoal_raft_term ", "shoal_raft_leader 1", "shoal_raft_commit_index ", "shoal_raft_fsync_seconds_count ",
                       "shoal_store_objects{kind=\"node\"} 1", "shoal_api_requests_total{", "shoal_dispatcher_heartbeats_total ",
                       "shoal_gossip_members{status=\"alive\"} 1", "shoal_gossip_sent_datagrams_total ", "shoal_gossip_drops_total{reason=",
                       "shoal_dns_queries_total{result=\"queries\"} "] {
            #expect(lines.contains { $0.hasPrefix(series) }, "no \(series) in /metrics")
        }
        #expect(lines.contains { $0.hasPrefix("shoal_api_errors_total{") && $0.contains("code=\"notFound\"") }, "\(lines.filter { $0.contains("errors") })")
    }
}
