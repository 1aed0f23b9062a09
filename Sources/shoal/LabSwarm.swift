import ClusterAPI
import Foundation
import HostNet
import Lab

/// Makes a lab a swarm: `shoal daemon` in every node's namespace (named n1…nN, advertising
/// its underlay address), `swarm init` on n1, managers n2…nM and workers after them joined
/// with the tokens, then waits until every node is Ready.
enum LabSwarm {
    /// A node's daemon socket.
    static func socket(_ lab: Lab, _ node: Lab.Node) -> String { "\(lab.record.fileDirectory)/\(node.name).sock" }

    /// Starts the daemons, forms the swarm, and returns once `node ls` shows every node Ready
    /// (at most 60 s).
    /// `daemonArguments` are added to every node's `shoal daemon` command line.
    static func form(
        _ lab: Lab, managers: Int, heartbeat: String = "1s", certificateExpiry: String? = nil, dataRoot: String? = nil,
        daemonArguments: [String] = []
    ) async throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        for node in lab.nodes { try startDaemon(lab, node, executable: executable, dataRoot: dataRoot, arguments: daemonArguments) }
        for node in lab.nodes { try await waitForSocket(socket(lab, node)) }
        let first = lab.nodes[0]
        let (workerToken, managerToken) = try await call(lab, first) { connection in
            var request = Shoal_Api_SwarmInitRequest()
            request.dispatcherHeartbeat = try durationFlag("--dispatcher-heartbeat", heartbeat)
            if let certificateExpiry { request.certExpiry = try durationFlag("--cert-expiry", certificateExpiry) }
            _ = try await connection.swarm.initialize(request, options: cliCallOptions)
            let cluster = try await connection.control.getCluster(.init(), options: cliCallOptions).cluster
            return (cluster.rootCa.joinTokens.worker, cluster.rootCa.joinTokens.manager)
        }
        for (index, node) in lab.nodes.enumerated().dropFirst() {
            _ = try await call(lab, node) { connection in
                var request = Shoal_Api_SwarmJoinRequest()
                request.token = index < managers ? managerToken : workerToken
                request.remoteAddr = "\(first.underlayAddress):2377"
                return try await connection.swarm.join(request, options: cliCallOptions)
            }
        }
        try await waitUntilReady(lab, count: lab.nodes.count)
    }

    /// A node's data directory: under `dataRoot` when given (a disk, for benchmarks that fsync),
    /// else beside the lab's record.
    static func dataDirectory(_ lab: Lab, _ node: Lab.Node, root dataRoot: String? = nil) -> String {
        "\(dataRoot ?? lab.record.fileDirectory)/\(node.name)-data"
    }

    private static func startDaemon(_ lab: Lab, _ node: Lab.Node, executable: String, dataRoot: String?, arguments: [String]) throws {
        let data = dataDirectory(lab, node, root: dataRoot)
        try lab.startProcess(
            on: node,
            [
                executable, "daemon", "--node-name", node.name, "--advertise-addr", "\(node.underlayAddress):2377",
                "--listen-addr", "\(node.underlayAddress):2377", "--data-dir", data, "--socket", socket(lab, node),
            ] + arguments,
            log: "\(node.name)-daemon.log")
    }

    private static func waitForSocket(_ path: String) async throws {
        // Bounded: 100 attempts, 100 ms apart.
        for _ in 0..<100 {
            if let connection = try? APIConnection(to: .unixSocket(path: path)) {
                defer { connection.close() }
                if (try? await connection.swarm.info(.init(), options: callOptions(timeout: .seconds(1)))) != nil { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIFailure("the daemon at \(path) did not answer within 10 s; see its log beside it")
    }

    /// Waits until the nodes' list through n1 has `count` nodes, all Ready, every manager a
    /// voting member (Leader or Reachable) (at most 60 s).
    static func waitUntilReady(_ lab: Lab, count: Int) async throws {
        var last = ""
        for _ in 0..<300 {
            if let nodes = try? await call(lab, lab.nodes[0], { try await $0.control.listNodes(.init(), options: cliCallOptions).nodes }) {
                last = nodes.map { "\($0.nodeDescription.hostname):\($0.status.state)" }.joined(separator: " ")
                let managersVoting = nodes.filter { $0.role == .manager }.allSatisfy { $0.managerStatus.leader || $0.managerStatus.reachability == .reachable }
                if nodes.count == count, managersVoting, nodes.allSatisfy({ $0.status.state == .ready }) { return }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLIFailure("the swarm did not have \(count) Ready nodes within 60 s (last: \(last))")
    }

    /// Runs `body` on a connection to `node`'s daemon.
    static func call<T: Sendable>(_ lab: Lab, _ node: Lab.Node, _ body: (APIConnection) async throws -> T) async throws -> T {
        var address = DaemonAddress()
        address.host = "unix://\(socket(lab, node))"
        return try await address.call(body)
    }
}
