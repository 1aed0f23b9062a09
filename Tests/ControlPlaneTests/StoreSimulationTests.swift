import ControlPlane
import RaftSimulation
import StoreSimulation
import Testing

/// The cluster store under the Raft simulator: seeded runs with crashes, torn writes,
/// partitions, membership changes and leader transfers; store transactions checked for
/// linearizability, members at one index holding the same bytes, and a watch that follows
/// whichever member it reaches seeing every commit once, in order. `make soak` runs 1,000
/// seeds in a release build.
@Suite struct StoreSimulationTests {
    static let seedCount = 100

    @Test func storeTransactionsStayLinearizableAndWatchesSeeEveryCommitOnce() async {
        var totals = SimulationTotals()
        for seed in 1...UInt64(Self.seedCount) {
            // A minute of seeds on one of two cooperative threads: let waiting tests of other
            // suites run between seeds.
            await Task.yield()
            let report = StoreSimulation(options: SimulationOptions(seed: seed)).run()
            #expect(report.violations.isEmpty, "\(report.summary)\n\(report.violations.joined(separator: "\n"))")
            #expect(!report.livenessFailure, "no write completed after the faults stopped: \(report.summary)")
            #expect(report.refusedWrites == 0, "the store refused a write that cannot conflict: \(report.summary)")
            totals.add(report)
        }
        // Not a vacuous pass: the runs wrote, read, watched, changed leaders, sent snapshots.
        #expect(totals.writes > Self.seedCount * 20)
        #expect(totals.reads > Self.seedCount * 10)
        #expect(totals.watchedChanges > Self.seedCount * 20)
        #expect(totals.termsWithLeader > Self.seedCount * 2)
        #expect(totals.snapshotsSent > Self.seedCount / 4)
    }

    @Test func aSeedReplaysExactly() {
        let first = StoreSimulation(options: SimulationOptions(seed: 77)).run()
        let second = StoreSimulation(options: SimulationOptions(seed: 77)).run()
        #expect(first.summary == second.summary)
    }
}

/// A store whose watch history loses one change whenever it is asked to resume: the
/// simulation's watch check must notice, or it proves nothing.
enum LossyHistoryWorkload: SimulatedWorkload {
    static func write(key: String, value: [UInt8], operation: Int) -> [UInt8] {
        StoreWorkload.write(key: key, value: value, operation: operation)
    }
    static func read(key: String, from machine: ClusterStore) -> [UInt8]? { StoreWorkload.read(key: key, from: machine) }
    static func tookEffect(_ output: StoreApplyOutcome) -> Bool { StoreWorkload.tookEffect(output) }
    static func changes(after version: UInt64, in machine: ClusterStore) -> [UInt64]? {
        guard let all = StoreWorkload.changes(after: version, in: machine) else { return nil }
        return version > 0 && all.count > 1 ? Array(all.dropFirst()) : all
    }
}

@Suite struct WatchCheckTests {
    @Test func aWatchThatSkipsAChangeIsCaught() {
        let report = Simulation<LossyHistoryWorkload>(options: SimulationOptions(seed: 5)).run()
        #expect(report.violations.contains { $0.contains("watch saw") }, "\(report.violations)")
    }
}
