import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// Service VIPs balanced in the switch, with real processes on a 3-node lab: `curl my-web`
/// from a task, thousands of new connections spread round robin over the backends, a
/// keep-alive connection that stays on its backend, a UDP service behind its VIP, and the
/// backends seeing the client's own address.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct VIPRootTests {
    /// An HTTP/1.1 server on port 80 that answers with its hostname (the task's ID prefix)
    /// and logs each client's address.
    static let server = """
        import http.server, socket, sys
        name = socket.gethostname().encode()
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(name)))
                self.end_headers()
                self.wfile.write(name)
            def log_message(self, *arguments):
                print("client", self.client_address[0], flush=True)
        http.server.ThreadingHTTPServer(("", 80), Handler).serve_forever()
        """

    /// A UDP server on 5353 that answers every datagram with its hostname.
    static let datagramServer = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("", 5353))
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(socket.gethostname().encode(), peer)
        """

    /// `count` new connections to http://VIP/, then 20 requests on one keep-alive connection,
    /// then one datagram from each of 12 sockets to VIP2:5353; prints what answered, as JSON.
    static let client = """
        import http.client, collections, json, socket, sys
        vip, count, udp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        spread = collections.Counter()
        for _ in range(count):
            connection = http.client.HTTPConnection(vip, 80, timeout=5)
            connection.request("GET", "/")
            spread[connection.getresponse().read().decode()] += 1
            connection.close()
        connection = http.client.HTTPConnection(vip, 80, timeout=5)
        kept = set()
        for _ in range(20):
            connection.request("GET", "/")
            kept.add(connection.getresponse().read().decode())
        datagrams = collections.Counter()
        for _ in range(12):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(b"who", (udp, 5353))
            datagrams[s.recvfrom(2048)[0].decode()] += 1
            s.close()
        print(json.dumps({"spread": spread, "kept": sorted(kept), "datagrams": datagrams}))
        """

    /// The IDs of `service`'s running tasks (the first column: the IMAGE column holds a script).
    func runningTasks(_ socket: String, _ service: String) throws -> [String] {
        let result = try shoalAt(socket, ["service", "ps", "--no-trunc", "--filter", "desired-state=running", service], timeout: 10)
        return result.output.split(separator: "\n").dropFirst().filter { $0.contains("   Running ") }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// The values of `shoal_vip_backends` for `service` on network `front`, on every node that
    /// reports one.
    func backendGauges(_ lab: Lab, _ service: String) throws -> [Double] {
        try lab.nodes.flatMap { node in
            let metrics = try NamespacedProcess.run(["curl", "-s", "http://127.0.0.1:9323/metrics"], in: node.namespace, timeoutSeconds: 10).output
            return metrics.split(separator: "\n").filter {
                $0.hasPrefix("shoal_vip_backends{") && $0.contains(#"service="\#(service)""#) && $0.contains(#"network="front""#)
            }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        }
    }

    func vip(of service: String, _ socket: String) throws -> String {
        let inspect = try shoalAt(socket, ["service", "inspect", service]).output
        return try #require(inspect.range(of: #"10\.0\.0\.\d+"#, options: .regularExpression).map { String(inspect[$0]) })
    }

    @Test func newConnectionsSpreadRoundRobinAndFlowsStayOnTheirBackend() throws {
        Lab.removeStale()
        let name = "vip\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        for (service, replicas, script) in [("my-web", "3", Self.server), ("echo", "2", Self.datagramServer)] {
            let created = try shoalAt(n1, ["service", "create", "--name", service, "--replicas", replicas, "--network", "front", "--",
                                           "python3", "-c", script], timeout: 60)
            #expect(created.status == 0 && created.output.contains("converged"), "\(created.output)")
        }
        let client = try shoalAt(n1, ["service", "create", "--name", "client", "--network", "front", "--", "sleep", "100000"], timeout: 60)
        #expect(client.status == 0, "\(client.output)")
        let web = try runningTasks(n1, "my-web"), echo = try runningTasks(n1, "echo")
        let clientTask = try #require(try runningTasks(n1, "client").first)
        let backends = Set(web.map { String($0.prefix(12)) })
        #expect(backends.count == 3, "\(web)")
        let webVIP = try vip(of: "my-web", n1), echoVIP = try vip(of: "echo", n1)

        // As a user does it: the name, through the task's own DNS, to the VIP, to a backend.
        let curl = try shoalAt(n1, ["exec", "client.1", "--", "curl", "-s", "--max-time", "5", "http://my-web/"])
        #expect(curl.status == 0 && backends.contains(curl.output), "\(curl.output)")

        // 3,000 new connections: round robin puts a third on each backend (±10 %).
        let run = try NamespacedProcess.run(
            ["python3", "-c", Self.client, webVIP, "3000", echoVIP],
            in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"), timeoutSeconds: 180)
        try #require(run.status == 0, "\(run.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
        let spread = try #require(report["spread"] as? [String: Int])
        #expect(Set(spread.keys) == backends, "\(spread)")
        #expect(spread.values.allSatisfy { (900...1100).contains($0) }, "\(spread)")
        // One keep-alive connection is one flow: one backend answers all of its requests.
        let kept = try #require(report["kept"] as? [String])
        #expect(kept.count == 1 && backends.contains(kept[0]), "\(kept)")
        // UDP behind its VIP: both backends answer, in turn.
        let datagrams = try #require(report["datagrams"] as? [String: Int])
        #expect(Set(datagrams.keys) == Set(echo.map { String($0.prefix(12)) }) && datagrams.values.allSatisfy { $0 == 6 }, "\(datagrams)")

        // Each node that has the network reports the VIPs' backends in /metrics (sampled every
        // second), and a removed service's gauge drops to 0.
        let webGauges = try backendGauges(lab, "my-web"), echoGauges = try backendGauges(lab, "echo")
        #expect(!webGauges.isEmpty && webGauges.allSatisfy { $0 == 3 }, "\(webGauges)")
        #expect(!echoGauges.isEmpty && echoGauges.allSatisfy { $0 == 2 }, "\(echoGauges)")
        #expect(try shoalAt(n1, ["service", "rm", "echo"]).status == 0)
        var zeroed = false
        // Bounded: 30 polls, 200 ms apart.
        for _ in 0..<30 where !zeroed {
            let values = try backendGauges(lab, "echo")
            zeroed = !values.isEmpty && values.allSatisfy { $0 == 0 }
            if !zeroed { usleep(200_000) }
        }
        #expect(zeroed, "shoal_vip_backends of a removed service: \((try? backendGauges(lab, "echo")) ?? [])")

        // The backends saw the client's own address, not the VIP's or a node's.
        let shown = try NamespacedProcess.run(
            ["ip", "-o", "-4", "addr", "show", "eth0"], in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"), timeoutSeconds: 10).output
        let clientAddress = try #require(shown.range(of: #"10\.0\.0\.\d+"#, options: .regularExpression).map { String(shown[$0]) })
        let logs = try shoalAt(n1, ["service", "logs", "--tail", "5", "my-web"]).output
        let clientLines = logs.split(separator: "\n").filter { $0.contains("| client ") }
        #expect(clientLines.count >= 3 && clientLines.allSatisfy { $0.hasSuffix("| client \(clientAddress)") }, "\(logs)")
    }

    /// One connection to `VIP`:80 (arguments: VIP, timeout in seconds, then pauses): after
    /// each pause idle, a request; prints what each got.
    static let idler = """
        import http.client, json, sys, time
        connection = http.client.HTTPConnection(sys.argv[1], 80, timeout=float(sys.argv[2]))
        answers = []
        for pause in map(float, sys.argv[3:]):
            time.sleep(pause)
            try:
                connection.request("GET", "/")
                answers.append(connection.getresponse().read().decode())
            except Exception as error:
                answers.append("failed: " + type(error).__name__)
        print(json.dumps(answers))
        """

    /// How long a connection sits idle through the VIP with the default timeouts: 20 s in
    /// `make test`, 20 minutes in `make e2e` (`SHOAL_IDLE_SECONDS=1200`), past IPVS's 900 s.
    static let idleSeconds = Int(ProcessInfo.processInfo.environment["SHOAL_IDLE_SECONDS"] ?? "") ?? 20

    /// With the default established timeout (5 days, as the kernel's conntrack), a keep-alive
    /// connection through the VIP that sat idle for `idleSeconds` still answers, from the
    /// same backend (swarm's IPVS forgets it after 900 s: moby#31208, #37822).
    @Test func aConnectionIdleLongerThanIPVSWouldKeepItStillWorks() throws {
        Lab.removeStale()
        let name = "vid\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "2", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        #expect(try shoalAt(n1, ["service", "create", "--name", "my-web", "--replicas", "2", "--network", "front", "--", "python3", "-c", Self.server],
                            timeout: 60).status == 0)
        #expect(try shoalAt(n1, ["service", "create", "--name", "client", "--network", "front", "--", "sleep", "100000"], timeout: 60).status == 0)
        let clientTask = try #require(try runningTasks(n1, "client").first)
        let run = try NamespacedProcess.run(
            ["python3", "-c", Self.idler, try vip(of: "my-web", n1), "10", "0", "\(Self.idleSeconds)"],
            in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"), timeoutSeconds: Double(Self.idleSeconds + 60))
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String], "\(run.output)")
        let backends = Set(try runningTasks(n1, "my-web").map { String($0.prefix(12)) })
        #expect(answers.count == 2 && backends.contains(answers[0]) && answers[1] == answers[0], "\(answers) after \(Self.idleSeconds) s idle")
        print("a connection idle for \(Self.idleSeconds) s through the VIP answered: \(answers)")
    }

    /// The daemons' `--conntrack-tcp-timeout-established 5s`: a connection idle for 3 s still
    /// works, one idle for 6 s has been forgotten — its next segment is dropped, counted in
    /// `/metrics`, and the client times out.
    @Test func anIdleFlowLivesUntilTheTimeoutAndIsReapedAfter() throws {
        Lab.removeStale()
        let name = "vit\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "2", "--conntrack-tcp-timeout-established", "5s", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        #expect(try shoalAt(n1, ["service", "create", "--name", "my-web", "--network", "front", "--", "python3", "-c", Self.server],
                            timeout: 60).status == 0)
        #expect(try shoalAt(n1, ["service", "create", "--name", "client", "--network", "front", "--", "sleep", "100000"], timeout: 60).status == 0)
        let clientTask = try #require(try runningTasks(n1, "client").first)
        let run = try NamespacedProcess.run(
            ["python3", "-c", Self.idler, try vip(of: "my-web", n1), "3", "0", "3", "6"], in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"),
            timeoutSeconds: 60)
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String], "\(run.output)")
        let backend = try #require(try runningTasks(n1, "my-web").first?.prefix(12)).description
        #expect(answers.count == 3 && answers[0] == backend && answers[1] == backend && answers[2] == "failed: TimeoutError", "\(answers)")

        // The client's node counted the forgotten flow (metrics are sampled every second).
        var dropped = false, expired = false
        for _ in 0..<30 where !(dropped && expired) {
            for node in lab.nodes {
                let metrics = try NamespacedProcess.run(["curl", "-s", "http://127.0.0.1:9323/metrics"], in: node.namespace, timeoutSeconds: 10).output
                for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
                    let value = Double(line.split(separator: " ").last ?? "") ?? 0
                    if line.hasPrefix("shoal_conntrack_drops_total{reason=\"untracked_flow\"}"), value >= 1 { dropped = true }
                    if line.hasPrefix("shoal_conntrack_expired_flows_total"), value >= 1 { expired = true }
                }
            }
            if !(dropped && expired) { usleep(200_000) }
        }
        #expect(dropped && expired, "no untracked-flow drop or expired flow in /metrics")
    }
}
