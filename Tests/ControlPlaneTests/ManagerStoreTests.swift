import ClusterAPI
import ControlPlane
import Foundation
import NIOPosix
import Raft
import RaftHost
import Testing

/// Three managers' stores as real Raft members (write-ahead logs on disk, TCP on loopback
/// addresses): transactions through the leader, refusals typed, the leader stopped and the
/// store carried on by the survivors, the stopped member back from its own disk.
@Suite(.serialized) struct ManagerStoreTests {
    /// A group of three on 127.X.Y.1–3:2377, X.Y from the process ID so parallel runs differ.
    final class Group {
        /// On tmpfs where there is one: these tests are about the store over Raft members, not
        /// about the disk (durability is the write-ahead log suite's subject), and they should
        /// not wait on the other suites' fsyncs. (The failures that led here were starved
        /// awaits, not slow disks: see the seed loops' yields.)
        let directory =
            (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory())
            + "shoal-store-\(getpid())-\(UUID().uuidString)"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        var stores: [NodeID: ManagerStore] = [:]
        let peers: [NodeID: String]

        /// `block` picks the fourth octets, so each test has addresses of its own.
        init(block: Int) throws {
            let pid = Int(getpid())
            let prefix = "127.\(20 + pid % 200).\(pid / 200 % 250)"
            peers = Dictionary(uniqueKeysWithValues: (1...3).map { (NodeID($0), "\(prefix).\(block * 10 + $0):2377") })
            for id in 1...3 as ClosedRange<NodeID> { try start(id) }
        }

        func start(_ id: NodeID) throws {
            var configuration = RaftMemberConfiguration(
                id: id, listen: peers[id]!, peers: peers, dataDirectory: "\(directory)/\(id)")
            configuration.snapshotInterval = 50
            stores[id] = try ManagerStore(configuration: configuration, loop: group.next())
        }

        func stop(_ id: NodeID) {
            stores[id]?.stop()
            stores[id] = nil
        }

        struct NoLeader: Error, CustomStringConvertible {
            var description: String { "no leader known to every live member after 600 looks 50 ms apart" }
        }

        /// The leader once one is known to every live member.
        func leader() async throws -> NodeID {
            // Bounded by count as well as time: on a loaded machine this task may not run for
            // seconds, and a wall-clock deadline alone could pass between two looks.
            let deadline = Date() + 120
            for _ in 0..<600 where Date() < deadline {
                var seen: Set<NodeID> = []
                for store in stores.values { seen.insert(try await store.member.leader().get().id) }
                if seen.count == 1, let id = seen.first, id != 0, stores[id] != nil { return id }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw NoLeader()
        }

        /// Stops every member, the loops, and removes the data; also at deinit.
        func shutdown() {
            for store in stores.values { store.stop() }
            stores = [:]
            try? group.syncShutdownGracefully()
            try? FileManager.default.removeItem(atPath: directory)
        }

        deinit { shutdown() }
    }

    private static func create(_ network: String, id: String) -> Shoal_Api_StoreAction {
        var object = Shoal_Api_Network()
        object.id = id
        object.spec.annotations.name = network
        var action = Shoal_Api_StoreAction()
        action.kind = .create
        action.target = .network(object)
        return action
    }

    @Test func writesGoThroughTheLeaderAndSurviveItsLoss() async throws {
        let cluster = try Group(block: 1)
        defer { cluster.shutdown() }
        let leader = try await cluster.leader()
        let follower = cluster.stores.keys.sorted().first { $0 != leader }!

        let commit = try await cluster.stores[leader]!.update([Self.create("front", id: "net1")])
        #expect(commit.events.count == 1)
        let seen = try await cluster.stores[leader]!.read { $0.networks.id(named: "front") }
        #expect(seen == "net1")

        // A follower does not propose: it says who leads, with the address to go to.
        do {
            _ = try await cluster.stores[follower]!.update([Self.create("back", id: "net2")])
            Issue.record("a follower accepted a write")
        } catch {
            guard case .raft(.refused(.notLeader(let named), let address)) = error else { Issue.record("\(error)"); return }
            #expect(named == leader && address == cluster.peers[leader])
        }
        // A taken name and a stale version are refused whole, with their reasons.
        await #expect(throws: ManagerStoreError.self) { try await cluster.stores[leader]!.update([Self.create("FRONT", id: "net3")]) }
        var stale = Shoal_Api_Network()
        stale.id = "net1"
        stale.spec.annotations.name = "front"
        var update = Shoal_Api_StoreAction()
        update.kind = .update
        update.target = .network(stale)
        do {
            _ = try await cluster.stores[leader]!.update([update])
            Issue.record("a stale update was accepted")
        } catch {
            guard case .refused(let refusal) = error else { Issue.record("\(error)"); return }
            #expect(refusal.reason == .versionConflict)
        }

        // The leader goes; the two left elect another and go on writing.
        cluster.stop(leader)
        let next = try await cluster.leader()
        #expect(next != leader)
        for index in 0..<60 { _ = try await cluster.stores[next]!.update([Self.create("n\(index)", id: "id\(index)")]) }
        let count = try await cluster.stores[next]!.read { $0.networks.count }
        #expect(count == 61)

        // The stopped member comes back from its own disk and catches up (the log was
        // compacted meanwhile, so by snapshot), bounded by count and time.
        try cluster.start(leader)
        let deadline = Date() + 120
        var caughtUp = 0
        for _ in 0..<600 where Date() < deadline {
            caughtUp = try await cluster.stores[leader]!.readLocal { $0.networks.count }
            if caughtUp == 61 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(caughtUp == 61)
    }

    /// The first `count` versions `stream` yields, waiting at most `seconds`.
    private static func versions(
        of stream: AsyncThrowingStream<StoreCommit, Error>, count: Int, within seconds: Double
    ) async throws -> [UInt64] {
        try await withThrowingTaskGroup(of: [UInt64]?.self) { group in
            group.addTask {
                var seen: [UInt64] = []
                for try await commit in stream {
                    seen.append(commit.version)
                    if seen.count == count { break }
                }
                return seen
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            return first ?? []
        }
    }

    /// A watch on one manager sees every commit once, in order, across the loss of the leader;
    /// a watch opened on another manager after a version gets exactly the rest.
    @Test func watchesSeeEveryCommitOnceAcrossALeaderChange() async throws {
        let cluster = try Group(block: 2)
        defer { cluster.shutdown() }
        let leader = try await cluster.leader()
        let others = cluster.stores.keys.sorted().filter { $0 != leader }
        let watched = cluster.stores[others[0]]!.watch(after: 0)
        for index in 0..<5 { _ = try await cluster.stores[leader]!.update([Self.create("a\(index)", id: "a\(index)")]) }
        cluster.stop(leader)
        let next = try await cluster.leader()
        for index in 0..<5 { _ = try await cluster.stores[next]!.update([Self.create("b\(index)", id: "b\(index)")]) }
        let seen = try await Self.versions(of: watched, count: 10, within: 30)
        #expect(seen.count == 10, "\(seen)")
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "\(seen)")
        // Resumed elsewhere after the fifth: the last five, no more, no fewer.
        let resumed = cluster.stores[others[1]]!.watch(after: seen[4])
        let rest = try await Self.versions(of: resumed, count: 5, within: 30)
        #expect(rest == Array(seen[5...]))
    }
}
