import ArgumentParser
import RaftSimulation

/// `shoal raft …`: the consensus core's tools. `simulate` runs the deterministic simulator.
struct RaftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft", abstract: "Raft consensus: simulation and lab commands.",
        subcommands: [RaftSimulate.self])
}

struct RaftSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run seeded simulations of a Raft group with faults; exit non-zero on any violation.",
        discussion: "Each seed is one replayable run: `shoal raft simulate --first 71 --count 1 --trace`.")

    @Option(help: "First seed.") var first: UInt64 = 1
    @Option(help: "Number of seeds.") var count: UInt64 = 1_000
    @Flag(help: "Print the notable events of each run.") var trace = false
    @Flag(help: "Break the commit rule on purpose (commit earlier terms by counting), to see the checkers fire.")
    var unsafeCommitEarlierTerms = false

    func run() throws {
        var failures: [UInt64] = []
        var writes = 0
        var reads = 0
        let clock = ContinuousClock()
        let started = clock.now
        for seed in first..<(first + count) {
            var options = SimulationOptions(seed: seed)
            options.trace = trace
            options.unsafeCommitEarlierTerms = unsafeCommitEarlierTerms
            let report = Simulation(options: options).run()
            writes += report.completedWrites
            reads += report.completedReads
            if trace { report.trace.forEach { print("  \($0)") } }
            if !report.violations.isEmpty || report.livenessFailure || trace {
                print(report.summary)
                report.violations.forEach { print("  violation: \($0)") }
                if report.livenessFailure { print("  liveness: no write completed after the faults stopped") }
            }
            if !report.violations.isEmpty || report.livenessFailure { failures.append(seed) }
        }
        let elapsed = clock.now - started
        print("\(count) seeds from \(first): \(failures.count) failed, \(writes) writes and \(reads) reads checked, \(elapsed)")
        if !failures.isEmpty {
            print("failing seeds: \(failures.prefix(50).map(String.init).joined(separator: " "))")
            throw ExitCode.failure
        }
    }
}
