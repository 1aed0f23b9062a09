import Raft

/// What one simulated run does. Everything random in a run derives from `seed`.
public struct SimulationOptions: Sendable {
    /// The seed; the same options and seed give the same run, event for event.
    public var seed: UInt64
    /// Voters the group starts with (3 or 5 in the standard runs).
    public var initialVoters = 3
    /// Virtual milliseconds with faults, then `quietMilliseconds` without any.
    public var faultMilliseconds = 3_000
    /// The healing phase: partitions healed, crashed members restarted, no loss; a write
    /// must complete in it (liveness).
    public var quietMilliseconds = 2_000
    /// Concurrent clients, each with one operation outstanding at a time.
    public var clients = 4
    /// Keys the clients share (few keys, many conflicts).
    public var keys = 3
    /// Probability that a message is lost, duplicated.
    public var loss = 0.05
    public var duplication = 0.02
    /// Message delay in ms is uniform in 1...maxDelay, and 100 ms with probability `longDelay`
    /// (so messages overtake each other).
    public var maxDelay = 8
    public var longDelay = 0.01
    /// Faults injected each 100 ms with these probabilities.
    public var crashProbability = 0.15
    public var partitionProbability = 0.15
    /// Crashes may tear the write in progress (a prefix of its records survives).
    public var tornWrites = true
    /// Members are added (as learners first, then promoted) and removed during faults, and
    /// leadership is sometimes handed over.
    public var membershipChanges = true
    /// Each member snapshots its state machine after this many applied entries.
    public var compactionInterval = 40
    /// Small snapshot chunks, so that transfers take several messages; nil: the workload's
    /// ``SimulatedWorkload/snapshotChunkBytes``.
    public var snapshotChunkBytes: Int?
    /// Passed to every core: breaks safety on purpose, for the checker's own tests.
    public var unsafeCommitEarlierTerms = false
    /// Record a line per notable event (leaders, crashes, partitions, membership) in the report.
    public var trace = false

    /// Standard options for `seed`: 3 or 5 voters chosen by the seed.
    public init(seed: UInt64) {
        self.seed = seed
        initialVoters = seed % 2 == 0 ? 3 : 5
    }
}

/// What a run found and did.
public struct SimulationReport: Sendable {
    /// The seed, to replay the run.
    public var seed: UInt64
    /// Safety violations (election, log matching, leader completeness, state machine) and
    /// linearizability failures; empty when the run is correct.
    public var violations: [String]
    /// True when no write completed after faults stopped.
    public var livenessFailure: Bool
    /// Writes and reads acknowledged to clients; writes whose outcome stayed unknown.
    public var completedWrites = 0
    public var completedReads = 0
    public var unknownWrites = 0
    /// Writes the state machine refused (they took no effect).
    public var refusedWrites = 0
    /// Highest index applied anywhere, terms that had a leader, members added and removed.
    public var highestApplied: LogIndex = 0
    public var termsWithLeader = 0
    public var membershipChanges = 0
    public var transfers = 0
    public var crashes = 0
    public var snapshotsSent = 0
    public var messagesDelivered = 0
    /// Changes a simulated watch followed to the end (0 for machines without a history).
    public var watchedChanges = 0
    /// Notable events, when ``SimulationOptions/trace`` is on.
    public var trace: [String] = []

    /// A one-line summary.
    public var summary: String {
        "seed \(seed): \(violations.isEmpty && !livenessFailure ? "ok" : "FAILED") — \(completedWrites) writes, "
            + "\(completedReads) reads, \(unknownWrites) unknown, applied \(highestApplied), \(termsWithLeader) leaders, "
            + "\(crashes) crashes, \(membershipChanges) membership changes, \(transfers) transfers, \(snapshotsSent) snapshot chunks, "
            + "\(messagesDelivered) messages" + (watchedChanges > 0 ? ", \(watchedChanges) changes watched" : "")
            + (refusedWrites > 0 ? ", \(refusedWrites) writes refused" : "")
    }
}

/// What many runs did in all: tests check these so that a pass is never vacuous.
public struct SimulationTotals: Sendable {
    public var writes = 0
    public var reads = 0
    public var membershipChanges = 0
    public var transfers = 0
    public var crashes = 0
    public var snapshotsSent = 0
    public var termsWithLeader = 0
    public var watchedChanges = 0

    /// Nothing yet.
    public init() {}

    /// Adds one run.
    public mutating func add(_ report: SimulationReport) {
        writes += report.completedWrites
        reads += report.completedReads
        membershipChanges += report.membershipChanges
        transfers += report.transfers
        crashes += report.crashes
        snapshotsSent += report.snapshotsSent
        termsWithLeader += report.termsWithLeader
        watchedChanges += report.watchedChanges
    }
}
