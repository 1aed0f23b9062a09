import Raft
import RaftSimulation
import Testing

/// Targeted cases of the core that random simulation reaches rarely (found in review).
@Suite struct CoreTests {
    /// A lone voter must not count an entry it has not persisted: its append may already be on
    /// the way to a learner, and a crash before its fsync would otherwise lose a committed entry.
    @Test func aLoneLeaderCommitsOnlyWhatItPersisted() throws {
        let bootstrap = RaftNode.bootstrap(voters: [1])
        var node = RaftNode(configuration: RaftConfiguration(id: 1, randomSeed: 1), hardState: bootstrap.hardState, entries: bootstrap.entries)
        node.campaign()
        while node.hasReady { node.advance(node.ready()) }
        #expect(node.status.role == .leader)
        let position = try node.propose([1, 2, 3])
        #expect(node.status.commit < position.index, "committed before the host persisted it")
        let ready = node.ready()
        #expect(ready.entries.map(\.index).contains(position.index))
        #expect(!ready.committedEntries.map(\.index).contains(position.index))
        node.advance(ready)
        #expect(node.status.commit == position.index)
        #expect(node.ready().committedEntries.last?.index == position.index)
    }

    /// A member removed and added back under the same ID with an empty disk gets a fresh
    /// progress, so the leader probes from the start instead of assuming its old match.
    @Test func aMemberRemovedAndAddedBackWithAnEmptyDiskCatchesUp() throws {
        let cluster = ScriptedCluster(voters: 3)
        let everyone: Set<NodeID> = [1, 2, 3]
        #expect(cluster.elect(1, among: everyone))
        for value in 0..<20 { try cluster.put("k", "\(value)", on: 1) }
        cluster.exchange(among: everyone)
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.remove, node: 3), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        #expect(cluster.cores[1]!.status.membership.voters == [1, 2])
        // Node 3 comes back as a brand-new member: empty disk, joining.
        cluster.crash(3)
        cluster.disks[3] = SimulatedDisk()
        cluster.restart(3)
        try cluster.drivers[1]!.proposeMembershipChange(MembershipChange(.addLearner, node: 3), token: nil)
        cluster.process(1)
        cluster.exchange(among: everyone)
        // Heartbeats let the leader notice the empty log and back up to it.
        cluster.heartbeat(3, from: 1, among: everyone)
        let leader = cluster.cores[1]!.status
        #expect(cluster.cores[3]!.status.applied == leader.commit, "learner at \(cluster.cores[3]!.status.applied), leader commit \(leader.commit)")
        #expect(cluster.stores[3]!.values["k"] == Array("19".utf8))
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
    }
}
