import ArgumentParser
import Foundation
import StoreSimulation

/// `shoal scheduler-bench`: a service of T replicas on N synthetic nodes, scheduled by the
/// leader's real pass with every pass committed to the real store state machine; prints the
/// time from creation to the last assignment committed, as swarmkit's benchmark measures it.
struct SchedulerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler-bench", abstract: "Time placing T tasks on N nodes (bench/scheduler.sh).", shouldDisplay: false)

    @Option(help: "Nodes.") var nodes = 1_000
    @Option(help: "Tasks (the service's replicas).") var tasks = 10_000
    @Flag(help: "Constrain the service to half the nodes (node.labels.zone==a).") var constrained = false
    @Flag(help: "Print one JSON line instead of text.") var json = false

    func run() throws {
        let run = SchedulingRun.run(nodes: nodes, tasks: tasks, constrained: constrained)
        if json {
            print(#"{"nodes":\#(run.nodes),"tasks":\#(run.tasks),"constrained":\#(run.constrained),"seconds":\#(run.seconds),"passes":\#(run.passes),"assigned":\#(run.assigned),"fewest":\#(run.fewestPerNode),"most":\#(run.mostPerNode),"misplaced":\#(run.misplaced)}"#)
        } else {
            print(String(format: "%d tasks on %d nodes%@: %.3f s, %d passes, %d assigned, %d–%d per node, %d misplaced",
                         run.tasks, run.nodes, run.constrained ? " (constrained)" : "", run.seconds, run.passes, run.assigned,
                         run.fewestPerNode, run.mostPerNode, run.misplaced))
        }
        guard run.assigned == run.tasks, run.misplaced == 0, run.mostPerNode - run.fewestPerNode <= 1 else { throw ExitCode.failure }
    }
}
