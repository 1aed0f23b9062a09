import ArgumentParser
import Foundation
import Gossip
import GossipSimulation

/// `shoal gossip simulate`: the scripted simulation runs of issue #6, seeded and replayable.
struct GossipSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a seeded gossip simulation (virtual time) and print its figures.",
        discussion: """
            Scenarios: detection (form, run without failures, kill members one by one), propagation \
            (one network, entries put at random members), partition (split in two, write on both \
            sides, heal, check every view equals the owners' state). Fails (exit 1) on a false dead \
            declaration, a missed detection, an entry that never reached everyone, or divergence.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case detection, propagation, partition }

    @Argument(help: "detection | propagation | partition") var scenario: Scenario
    @Option(help: "Members in the simulated cluster.") var members = 200
    @Option(help: "Seed of the run.") var seed: UInt64 = 1
    @Option(help: "Datagram loss, 0…1.") var loss = 0.05
    @Option(help: "detection: seconds of steady state before the kills (false positives are counted over it).")
    var steady = 60
    @Option(help: "detection: members killed, one every 20 s.") var kills = 3
    @Option(help: "propagation: entries put.") var entries = 20
    @Option(help: "partition: seconds the cluster stays split.") var partitionSeconds = 60
    @Flag(help: "Print progress (partition: the differences left each second after healing).") var trace = false

    func run() throws {
        var network = SimulatedNetwork()
        network.loss = loss
        let started = Date()
        let report: ScenarioReport
        switch scenario {
        case .detection:
            report = GossipScenarios.failureDetection(
                seed: seed, members: members, steady: steady * GossipTime.second, kills: kills, network: network,
                trace: trace ? { print($0) } : nil)
        case .propagation:
            report = GossipScenarios.entryPropagation(seed: seed, members: members, entries: entries, network: network)
        case .partition:
            report = GossipScenarios.partitionAndHeal(
                seed: seed, members: members, partitionFor: partitionSeconds * GossipTime.second,
                healWithin: 300 * GossipTime.second, network: network, trace: trace ? { print($0) } : nil)
        }
        print("scenario \(scenario.rawValue), seed \(seed), \(Int(loss * 100)) % loss")
        print(report)
        print(String(format: "(simulated in %.1f s of real time)", Date().timeIntervalSince(started)))
        let failed =
            report.formation == nil || report.falseDeaths > 0 || report.missedDetections > 0
            || (scenario == .propagation && report.propagation100.count < entries)
            || (scenario == .partition && report.convergence == nil)
        if failed { throw ExitCode(1) }
    }
}
