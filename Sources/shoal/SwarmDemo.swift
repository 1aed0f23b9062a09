import ClusterAPI
import Foundation
import HostNet
import Lab

/// The swarm tutorial on a lab, as a user types it: three managers (on three nodes), an overlay
/// network, a replicated service with a published port, `service ps`, `exec … nslookup`, a
/// request across the overlay and one to the service's VIP, the published port on every
/// node, scale, drain, the leader's daemon killed (another manager elected, the node Down, its
/// tasks replaced), removal, and a teardown that leaves nothing. Every step runs the real CLI
/// against the lab's daemons.
enum SwarmDemo {
    static func run(nodes: Int) async throws {
        let lab = try Lab.up(nodes: nodes)
        var failed = false
        var nodeIDs: [String] = []
        do {
            print("== lab \(lab.name): \(nodes) node namespaces on one bridge")
            print(LabReport.describe(lab))
            let started = ContinuousClock.now
            let managers = min(3, nodes)
            try await LabSwarm.form(lab, managers: managers)
            print("\n== swarm formed in \(milliseconds(ContinuousClock.now - started)) ms: `swarm init` on n1, `swarm join --token SWMTKN-1-…` on the others (\(managers) managers)")
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
            /// A CLI call made while waiting for something (it may fail meanwhile): its output, or
            /// nothing after at most 3 s.
            func poll(_ arguments: [String]) -> String {
                guard let result = try? NamespacedProcess.run([shoal] + arguments, timeoutSeconds: 3), result.status == 0 else { return "" }
                return result.output
            }
            nodeIDs = try step(["node", "ls"]).split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) }
            try step(["network", "create", "-d", "overlay", "front"])
            try step(["service", "create", "--name", "my-web", "--replicas", "3", "--network", "front", "--publish", "8080:80", "--",
                      "python3", "-m", "http.server", "80"])
            try step(["service", "ls"])
            try step(["service", "ps", "my-web"])
            try step(["exec", "my-web.1", "--", "nslookup", "my-web"])
            try step(["exec", "my-web.1", "--", "nslookup", "tasks.my-web"])
            // The first address: a published service's task is on the ingress network too.
            let address = try step(["exec", "my-web.3", "--", "hostname", "-i"], show: false).split(separator: " ").first
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            print("\n== from my-web.1 to my-web.3 (\(address)) across the overlay")
            try step(["exec", "my-web.1", "--", "curl", "-s", "-o", "/dev/null", "-w", "HTTP %{http_code} from \(address) in %{time_total} s\\n", "http://\(address)/"])
            print("\n== from my-web.1 to the service's name: its VIP, balanced in the node's switch")
            try step(["exec", "my-web.1", "--", "curl", "-s", "-o", "/dev/null", "-w", "HTTP %{http_code} from my-web (%{remote_ip})\\n", "http://my-web/"])
            print("\n== the published port on every node (the routing mesh), from \(lab.nodes[0].name)")
            for node in lab.nodes {
                let result = try NamespacedProcess.run(
                    ["curl", "-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code}", "http://\(node.underlayAddress):8080/"],
                    in: lab.nodes[0].namespace, timeoutSeconds: 10)
                print("$ curl http://\(node.underlayAddress):8080/ → HTTP \(result.output)")
                if result.output != "200" {
                    failed = true
                    print("!! no answer on \(node.name)'s published port")
                }
            }
            try step(["service", "scale", "my-web=6"])
            try step(["node", "update", "--availability", "drain", lab.nodes[nodes - 1].name])
            try await Task.sleep(for: .seconds(3))
            try step(["service", "ps", "my-web"])

            // The leader's daemon: another manager takes over (when there are three), the node
            // goes Down and its tasks run elsewhere.
            /// `node ls --format json`'s objects.
            func nodeObjects(_ output: String) -> [[String: Any]] {
                output.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            }
            let leaderName = nodeObjects(try step(["node", "ls", "--format", "json"], show: false)).first { $0["ManagerStatus"] as? String == "Leader" }?["Hostname"] as? String ?? lab.nodes[0].name
            let victimIndex = lab.nodes.firstIndex { $0.name == leaderName } ?? 0
            let victim = lab.nodes[victimIndex]
            print("\n== kill -9 the daemon of \(victim.name), the leader")
            kill(lab.record.processes[victimIndex].pid, SIGKILL)
            let killed = ContinuousClock.now
            if managers >= 3 {
                let survivor = lab.nodes[(victimIndex + 1) % managers]
                setenv("SHOAL_HOST", "unix://\(LabSwarm.socket(lab, survivor))", 1)
                print("export SHOAL_HOST=unix://\(LabSwarm.socket(lab, survivor))")
                var elected: String?
                for _ in 0..<100 where elected == nil {  // Bounded: 100 reads, 50 ms apart at most.
                    let listed = nodeObjects(poll(["node", "ls", "--format", "json"]))
                    elected = listed.first { $0["ManagerStatus"] as? String == "Leader" && $0["Hostname"] as? String != victim.name }?["Hostname"] as? String
                    if elected == nil { try await Task.sleep(for: .milliseconds(50)) }
                }
                if let elected {
                    print("\(elected) leads \(milliseconds(ContinuousClock.now - killed)) ms after the kill")
                } else {
                    failed = true
                    print("!! no new leader")
                }
            }
            var down = false
            for _ in 0..<300 where !down {  // Bounded: 30 s.
                let nodes = poll(["node", "ls"])
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
        let ingress = Set(nodeIDs.map { "shoal-ingress-\($0.prefix(12))" })
        let left = NetworkNamespace.all().filter { $0.contains(lab.name) || $0.hasPrefix("shoal-t-") || ingress.contains($0) }
        print("\n== lab \(lab.name) torn down (daemons stopped); namespaces left: \(left.isEmpty ? "none" : left.joined(separator: ", "))")
        if !left.isEmpty { throw CLIFailure("namespaces left behind") }
        if failed { throw CLIFailure("a step of the tutorial failed (marked !! above)") }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
