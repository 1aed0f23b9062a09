import Raft
import RaftSimulation
import Testing

/// The main test of the consensus core: many seeded runs of the simulator, each checking
/// election safety, log matching, leader completeness and state-machine safety after every
/// event, and linearizability of the clients' history at the end. `make soak` runs 10,000
/// seeds in a release build; this runs a slice of them so every `make test` stays honest.
@Suite struct SimulationTests {
    static let seedCount = 120

    @Test func seededRunsKeepEverySafetyProperty() async {
        var totals = SimulationTotals()
        for seed in 1...UInt64(Self.seedCount) {
            // A minute of seeds on one of two cooperative threads: let waiting tests of other
            // suites run between seeds.
            await Task.yield()
            let report = KeyValueSimulation(options: SimulationOptions(seed: seed)).run()
            #expect(report.violations.isEmpty, "\(report.summary)\n\(report.violations.joined(separator: "\n"))")
            #expect(!report.livenessFailure, "no write completed after the faults stopped: \(report.summary)")
            totals.add(report)
        }
        // The runs must actually exercise what they claim to: guard against a vacuous pass.
        #expect(totals.writes > Self.seedCount * 20)
        #expect(totals.reads > Self.seedCount * 10)
        #expect(totals.membershipChanges > Self.seedCount / 2)
        #expect(totals.transfers > Self.seedCount / 4)
        #expect(totals.termsWithLeader > Self.seedCount * 2)
        #expect(totals.crashes > Self.seedCount / 2)
        #expect(totals.snapshotsSent > Self.seedCount / 4)
    }

    @Test func aSeedReplaysExactly() {
        let first = KeyValueSimulation(options: SimulationOptions(seed: 4242)).run()
        let second = KeyValueSimulation(options: SimulationOptions(seed: 4242)).run()
        #expect(first.summary == second.summary)
    }
}
