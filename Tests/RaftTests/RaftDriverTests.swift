import Raft
import RaftHost
import RaftSimulation
import Testing

/// The host driver's own duties: the member directory carried by membership changes and kept
/// in snapshots, and the fate of every proposal told to its proposer exactly once.
@Suite struct RaftDriverTests {
    @Test func anAddedMemberIsKnownByAddressEverywhere() throws {
        let cluster = ScriptedCluster(voters: 3)
        let everyone: Set<NodeID> = [1, 2, 3, 4]
        // Founders' entries carry no address (each founder writes them from its own flags).
        for id: NodeID in 1...3 { #expect(cluster.drivers[id]!.memberAddresses.isEmpty, "member \(id)") }
        #expect(cluster.elect(1, among: everyone))
        cluster.addEmptyMember(4)
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.addLearner, node: 4, context: Array("m4:2377".utf8)), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        cluster.heartbeat(3, from: 1, among: everyone)
        for id: NodeID in 1...4 {
            #expect(cluster.drivers[id]!.memberAddresses[4] == "m4:2377", "member \(id): \(cluster.drivers[id]!.memberAddresses)")
        }
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.remove, node: 2), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        #expect(cluster.drivers[1]!.memberAddresses[2] == nil)
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
    }

    /// A member that joins after the log was compacted learns, from the snapshot, the address
    /// of a member added before the compaction.
    @Test func aMemberRestoredFromASnapshotKnowsEveryAddress() throws {
        let cluster = ScriptedCluster(voters: 3, snapshotInterval: 10)
        let everyone: Set<NodeID> = [1, 2, 3, 4, 5]
        #expect(cluster.elect(1, among: everyone))
        cluster.addEmptyMember(4)
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.addLearner, node: 4, context: Array("m4:2377".utf8)), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        for value in 0..<30 { try cluster.put("k\(value)", "v", on: 1) }
        cluster.exchange(among: everyone)
        #expect((cluster.cores[1]!.latestSnapshot?.metadata.index ?? 0) > 10, "the leader compacted")
        cluster.addEmptyMember(5)
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.addLearner, node: 5, context: Array("m5:2377".utf8)), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        cluster.heartbeat(5, from: 1, among: everyone)
        let learner = try #require(cluster.drivers[5])
        #expect(learner.snapshotsInstalled == 1)
        #expect(learner.memberAddresses == [4: "m4:2377", 5: "m5:2377"])
        #expect(learner.machine.values["k29"] == Array("v".utf8))
        // Restarted from its own disk (snapshot + log), it still knows them.
        cluster.crash(5)
        cluster.restart(5)
        #expect(cluster.drivers[5]!.memberAddresses == [4: "m4:2377", 5: "m5:2377"])
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
    }

    /// Each proposal's fate reaches its token once: committed with its index, or superseded
    /// when another leader's entry took the index.
    @Test func aProposalLostToAnotherLeaderIsToldSo() throws {
        let cluster = ScriptedCluster(voters: 3)
        let everyone: Set<NodeID> = [1, 2, 3]
        var committed: [Int] = []
        var superseded: [Int] = []
        cluster.onEvents = { id, events in
            guard id == 1 else { return }
            for event in events {
                if case .committed(let token, (), _) = event { committed.append(token) }
                if case .superseded(let token) = event { superseded.append(token) }
            }
        }
        #expect(cluster.elect(1, among: everyone))
        try cluster.drivers[1]!.propose(KeyValueCommand.put(key: "a", value: [1]).encoded, token: 7)
        cluster.process(1)
        cluster.exchange(among: everyone)
        // Node 1 proposes again but is cut off before anyone hears of it; node 2 takes over and
        // writes its own entries over that index.
        try cluster.drivers[1]!.propose(KeyValueCommand.put(key: "b", value: [2]).encoded, token: 8)
        cluster.process(1)
        cluster.inFlight = []
        #expect(cluster.elect(2, among: [2, 3]))
        try cluster.put("c", "3", on: 2)
        cluster.exchange(among: [2, 3])
        cluster.heartbeat(3, from: 2, among: everyone)
        #expect(committed == [7])
        #expect(superseded == [8])
        #expect(cluster.stores[1]!.values["b"] == nil)
        #expect(cluster.stores[1]!.values["c"] == Array("3".utf8))
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
    }
}
