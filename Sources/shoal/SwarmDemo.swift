import ClusterAPI
import Foundation
import HostNet
import Lab

/// The swarm tutorial on a lab, as a user types it: a manager and two workers, an overlay
/// network, a replicated service, `service ps`, `exec … nslookup`, a request across the
/// overlay, scale, drain, a node's daemon killed and its tasks replaced, removal, and a
/// teardown that leaves nothing. Every step runs the real CLI against the lab's daemons.
enum SwarmDemo {
    static func run(nodes: Int) async throws {
        let lab = try Lab.up(nodes: nodes)
        var failed = false
        do {
            print("== lab \(lab.name): \(nodes) node namespaces on one bridge")
            print(LabReport.describe(lab))
            let started = ContinuousClock.now
            try await LabSwarm.form(lab, managers: 1)
            print("\n== swarm formed in \(milliseconds(ContinuousClock.now - started)) ms: `swarm init` on n1, `swarm join --token SWMTKN-1-…` on the others")
            setenv("SHOAL_HOST", "unix://\(LabSwarm.socket(lab, lab.nodes[0]))", 1)
            print("export SHOAL_HOST=unix://\(LabSwarm.socket(lab, lab.nodes[0]))")
            let shoal = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            /// Runs one CLI step, printing it as typed and what it printed.
            @discardableResult
            func step(_ arguments: [String], expectFailure: Bool = false, show: Bool = true) throws -> String {
                let result = try NamespacedProcess.run([shoal] + arguments, timeoutSeconds: 120)
                if show {
                    print("\n$ shoal \(arguments.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))")
                    print(result.output.trimmingCharacters(in: .newlines))
                }
                if (result.status == 0) == expectFailure {
                    failed = true
                    print("!! exit status \(result.status)")
                }
                return result.output
            }
            try step(["node", "ls"])
            try step(["network", "create", "-d", "overlay", "front"])
            try step(["service", "create", "--name", "my-web", "--replicas", "3", "--network", "front", "--", "python3", "-m", "http.server", "80"])
            try step(["service", "ls"])
            try step(["service", "ps", "my-web"])
            try step(["exec", "my-web.1", "--", "nslookup", "my-web"])
            try step(["exec", "my-web.1", "--", "nslookup", "tasks.my-web"])
            let address = try step(["exec", "my-web.3", "--", "hostname", "-i"], show: false).trimmingCharacters(in: .whitespacesAndNewlines)
            print("\n== from my-web.1 to my-web.3 (\(address)) across the overlay")
            try step(["exec", "my-web.1", "--", "curl", "-s", "-o", "/dev/null", "-w", "HTTP %{http_code} from \(address) in %{time_total} s\\n", "http://\(address)/"])
            try step(["service", "scale", "my-web=6"])
            try step(["node", "update", "--availability", "drain", lab.nodes[nodes - 1].name])
            try await Task.sleep(for: .seconds(3))
            try step(["service", "ps", "my-web"])

            let victim = lab.nodes[1]
            print("\n== kill -9 the daemon of \(victim.name)")
            kill(lab.record.processes[1].pid, SIGKILL)
            let killed = ContinuousClock.now
            var down = false
            for _ in 0..<300 where !down {  // Bounded: 30 s.
                let nodes = try step(["node", "ls"], show: false)
                down = nodes.split(separator: "\n").contains { $0.contains(" \(victim.name) ") && $0.contains("Down") }
                if !down { try await Task.sleep(for: .milliseconds(100)) }
            }
            print("\(victim.name) is Down \(milliseconds(ContinuousClock.now - killed)) ms after the kill (three missed heartbeats)")
            try await Task.sleep(for: .seconds(2))
            try step(["node", "ls"])
            try step(["service", "ps", "--filter", "desired-state=running", "my-web"])
            try step(["exec", "my-web.1", "--", "nslookup", "tasks.my-web"])

            try step(["service", "rm", "my-web"])
            try await Task.sleep(for: .seconds(3))
            try step(["network", "rm", "front"])
        } catch {
            try? lab.down()
            throw error
        }
        try lab.down()
        let left = NetworkNamespace.all().filter { $0.contains(lab.name) || $0.hasPrefix("shoal-t-") }
        print("\n== lab \(lab.name) torn down (daemons stopped); namespaces left: \(left.isEmpty ? "none" : left.joined(separator: ", "))")
        if !left.isEmpty { throw CLIFailure("namespaces left behind") }
        if failed { throw CLIFailure("a step of the tutorial failed (marked !! above)") }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
