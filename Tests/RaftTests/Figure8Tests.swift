import Raft
import RaftSimulation
import Testing

/// Figure 8 of the Raft paper, scripted: an entry of an earlier term that reached a majority
/// is not yet committed, because a later leader can still overwrite it. A core that commits it
/// by counting replicas loses a committed entry, and the safety checker must say so; the real
/// core, on the same schedule, keeps everything.
@Suite struct Figure8Tests {
    /// Runs the schedule; returns the cluster at the end and who won the elections of (c), (d).
    private func runFigure8(unsafe: Bool) throws -> (ScriptedCluster, s1WonAgain: Bool, s5WonAgain: Bool) {
        let cluster = ScriptedCluster(voters: 5, unsafeCommitEarlierTerms: unsafe)
        let everyone: Set<NodeID> = [1, 2, 3, 4, 5]
        // (a) S1 leads and replicates a first write everywhere; a second write reaches S2 only.
        #expect(cluster.elect(1, among: everyone))
        try cluster.put("k", "first", on: 1)
        cluster.exchange(among: everyone)
        try cluster.put("k", "from-s1", on: 1)
        cluster.exchange(among: [1, 2])
        // (b) S1 crashes; S5 leads with S3 and S4 and writes at the same index, alone.
        cluster.crash(1)
        #expect(cluster.elect(5, among: [3, 4, 5]))
        try cluster.put("k", "from-s5", on: 5)
        cluster.inFlight = []
        cluster.crash(5)
        // (c) S1 returns and leads again with S2 and S3, bringing its old entry to S3.
        cluster.restart(1)
        let s1WonAgain = cluster.elect(1, among: [1, 2, 3, 4])
        cluster.exchange(among: [1, 2, 3])
        // (d) S1 crashes before anything of its own term spreads; S5 returns and campaigns.
        cluster.inFlight = []
        cluster.crash(1)
        cluster.restart(5)
        let s5WonAgain = cluster.elect(5, among: [2, 3, 4, 5])
        cluster.exchange(among: [2, 3, 4, 5])
        return (cluster, s1WonAgain, s5WonAgain)
    }

    @Test func countingReplicasOfAnEarlierTermLosesACommittedEntryAndTheCheckerSeesIt() throws {
        let (cluster, s1WonAgain, s5WonAgain) = try runFigure8(unsafe: true)
        #expect(s1WonAgain && s5WonAgain, "the schedule should let S1, then S5 (lacking S1's entry) win")
        let violations = cluster.checker.violations
        #expect(violations.contains { $0.contains("state machine safety") }, "\(violations)")
        #expect(violations.contains { $0.contains("leader completeness") }, "\(violations)")
    }

    /// With the real rule the same moves play out differently, and safely: S5's term-3 no-op
    /// commits on S3 and S4 in (b), so S1's stale entry cannot win an election in (c); every
    /// member that applied index i applied S5's write.
    @Test func theRealCommitRuleStaysSafeOnTheSameMoves() throws {
        let (cluster, s1WonAgain, s5WonAgain) = try runFigure8(unsafe: false)
        #expect(s5WonAgain, "\(cluster.cores.mapValues { ($0.status.role, $0.status.term, $0.status.lastIndex, $0.status.commit) })")
        #expect(!s1WonAgain, "S1's log is behind S3's and S4's after S5's no-op committed")
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
        for id: NodeID in [2, 3, 4] {
            #expect(cluster.stores[id]!.values["k"].map { String(decoding: $0, as: UTF8.self) } == "from-s5", "node \(id): \(cluster.cores.values.map { ($0.status.id, $0.status.role, $0.status.term, $0.status.commit, $0.status.lastIndex, $0.status.matched) })")
        }
    }
}
