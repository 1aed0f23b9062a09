import GossipSimulation
import Testing

/// The simulation figures at a size a debug build runs in seconds; `make soak` and
/// `bench/gossip.sh` run the same scenarios at 1,000 members and 10 minutes in release.
@Suite struct SimulationTests {
    static let second = 1_000_000_000

    @Test func killedMembersAreDeclaredDeadByEveryoneAndNoLiveOneEver() {
        let report = GossipScenarios.failureDetection(seed: 11, members: 100, steady: 30 * Self.second, kills: 2)
        #expect(report.formation != nil)
        #expect(report.falseDeaths == 0)
        #expect(report.missedDetections == 0)
        #expect(report.detections.count == 2 * 98)
        #expect(ScenarioReport.quantile(report.detections, 0.5)! < 3.0, "\(report)")
        // Steady state: two pings and two acks a second, a few indirect probes, little else.
        #expect(report.datagramsPerSecond < 8, "\(report)")
    }

    @Test func entriesReachEveryMemberOfTheNetwork() {
        let report = GossipScenarios.entryPropagation(seed: 12, members: 100, entries: 10)
        #expect(report.propagation100.count == 10, "\(report)")
        #expect(ScenarioReport.quantile(report.propagation99, 0.5)! < 1.0, "\(report)")
    }

    @Test func aHealedPartitionConvergesToTheOwnersState() {
        let report = GossipScenarios.partitionAndHeal(
            seed: 13, members: 60, partitionFor: 30 * Self.second, healWithin: 120 * Self.second)
        #expect(report.convergence != nil, "\(report)")
        #expect(report.divergence.isEmpty)
    }

    @Test func aSeedReplaysToTheSameRun() {
        let first = GossipScenarios.failureDetection(seed: 5, members: 30, steady: 10 * Self.second, kills: 1)
        let second = GossipScenarios.failureDetection(seed: 5, members: 30, steady: 10 * Self.second, kills: 1)
        #expect(first.detections == second.detections)
        #expect(first.datagramBytesPerSecond == second.datagramBytesPerSecond)
        #expect(first.formation == second.formation)
    }
}
