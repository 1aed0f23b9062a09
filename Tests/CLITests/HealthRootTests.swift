import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// Health checks and draining on a 2-node lab, with real processes: a task enters its
/// service's names and VIP only once its check passes, one whose check starts failing leaves
/// them within interval × retries and is replaced, and scaling down under load through the
/// VIP fails no request, from Python clients and from wrk (each stopping task leaves the
/// rotation, keeps its open connections for the drain, then gets SIGTERM).
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct HealthRootTests {
    /// An HTTP/1.1 server on port 80 answering with its hostname. On SIGTERM it does what a
    /// well-behaved server does: it answers what it is asked with `Connection: close` for a
    /// moment, then exits.
    static let server = """
        import http.server, signal, socket, threading, time
        name = socket.gethostname().encode()
        stopping = threading.Event()
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle and the client's
            # delayed ACK hold every response 40 ms.
            disable_nagle_algorithm = True
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(name)))
                if stopping.is_set():
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(name)
            def log_message(self, *arguments):
                pass
        server = http.server.ThreadingHTTPServer(("", 80), Handler)
        server.daemon_threads = True
        def stop(*arguments):
            stopping.set()
            threading.Thread(target=lambda: (time.sleep(1.5), server.shutdown())).start()
        signal.signal(signal.SIGTERM, stop)
        server.serve_forever()
        """

    /// For `seconds`: 4 threads on keep-alive connections and one opening a connection per
    /// request, all to http://VIP/; prints the requests answered and the failures, as JSON.
    static let load = """
        import http.client, json, sys, threading, time
        vip, seconds = sys.argv[1], float(sys.argv[2])
        lock = threading.Lock()
        counts = {"answered": 0, "failed": 0, "errors": []}
        def work(keep):
            end = time.time() + seconds
            connection = http.client.HTTPConnection(vip, 80, timeout=5)
            while time.time() < end:
                try:
                    if not keep:
                        connection = http.client.HTTPConnection(vip, 80, timeout=5)
                    connection.request("GET", "/")
                    connection.getresponse().read()
                    with lock: counts["answered"] += 1
                except Exception as error:
                    connection.close()
                    with lock:
                        counts["failed"] += 1
                        counts["errors"].append(type(error).__name__)
                if not keep:
                    connection.close()
                time.sleep(0.005)
        threads = [threading.Thread(target=work, args=(index < 4,)) for index in range(5)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        counts["errors"] = counts["errors"][:10]
        print(json.dumps(counts))
        """

    /// The IDs of `service`'s tasks whose current state starts with `state`.
    func tasks(_ socket: String, _ service: String, _ state: String) throws -> [String] {
        let result = try shoalAt(socket, ["service", "ps", "--no-trunc", "--filter", "desired-state=running", service], timeout: 10)
        // The CURRENT STATE column ("Running 5 seconds ago"), not DESIRED (padded with spaces).
        return result.output.split(separator: "\n").dropFirst().filter { $0.range(of: "\(state) [a-z0-9]", options: .regularExpression) != nil }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// The addresses `name` resolves to inside the client task (none: the name is unknown).
    func resolve(_ socket: String, _ name: String) throws -> Set<String> {
        let script = "import socket\ntry: print(' '.join(socket.gethostbyname_ex('\(name)')[2]))\nexcept Exception: print('')"
        let result = try shoalAt(socket, ["exec", "client.1", "--", "python3", "-c", script], timeout: 10)
        return Set(result.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty })
    }

    /// Brings up the 2-node lab `name` (500 ms heartbeats) with an overlay network `front` and
    /// a `client` task on it; returns n1's socket. The caller takes the lab down.
    func labWithClient(_ name: String) throws -> String {
        let up = try shoal(["lab", "up", "--nodes", "2", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        try #require(up.status == 0, "\(up.output)")
        let n1 = "\(try Lab.attach(named: name).record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        let client = try shoalAt(n1, ["service", "create", "--name", "client", "--network", "front", "--", "sleep", "100000"], timeout: 60)
        try #require(client.status == 0, "\(client.output)")
        return n1
    }

    /// Polls `condition` every 200 ms for at most `seconds`; whether it held.
    func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        // Bounded by the deadline.
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }

    /// wrk's summary line for errors, when it has one ("Socket errors: connect 0, read 1, …"
    /// or "Non-2xx or 3xx responses: N").
    static func failures(inWrkOutput output: String) -> [String] {
        output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("Socket errors") || $0.hasPrefix("Non-2xx") }
    }

    /// Scale 6 → 3 while wrk keeps 8 connections busy through the VIP for 20 s (swarm's own
    /// test of draining): no request fails, and the three that stay take all the load after.
    @Test func scalingSixToThreeUnderWrkFailsNoRequest() throws {
        Lab.removeStale()
        let name = "wrk\(getpid() % 100_000)"
        defer { _ = try? shoal(["lab", "down", name]) }
        let n1 = try labWithClient(name)
        let created = try shoalAt(n1, ["service", "create", "--name", "web", "--replicas", "6", "--network", "front", "--", "python3", "-c", Self.server], timeout: 60)
        try #require(created.status == 0, "\(created.output)")
        #expect(try eventually(20) { try resolve(n1, "tasks.web").count == 6 })
        let vip = try #require(try resolve(n1, "web").first)
        let clientTask = try #require(try tasks(n1, "client", "Running").first)
        let wrk = try NamespacedProcess(
            ["wrk", "-t", "2", "-c", "8", "-d", "20s", "--timeout", "5s", "http://\(vip)/"],
            in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"))
        usleep(5_000_000)
        #expect(try shoalAt(n1, ["service", "scale", "web=3"], timeout: 60).status == 0)
        let finished = wrk.wait(timeoutSeconds: 60)
        print("wrk through the VIP while scaling 6 → 3:\n\(finished.output)")
        #expect(finished.status == 0, "\(finished.output)")
        #expect(finished.output.contains("requests in"), "\(finished.output)")
        #expect(Self.failures(inWrkOutput: finished.output).isEmpty, "\(finished.output)")
        #expect(try eventually(10) { try resolve(n1, "tasks.web").count == 3 })
    }

    @Test func healthGatesTheRotationUnhealthyTasksAreReplacedAndScalingDownFailsNoRequest() throws {
        Lab.removeStale()
        let name = "hlt\(getpid() % 100_000)"
        let flags = "/tmp/shoal-health-\(name)"
        try FileManager.default.createDirectory(atPath: flags, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: flags) }
        defer { _ = try? shoal(["lab", "down", name]) }
        let n1 = try labWithClient(name)
        let created = try shoalAt(n1, [
            "service", "create", "--name", "web", "--replicas", "4", "--network", "front", "--detach",
            "--health-cmd", "test -e \(flags)/ready && test ! -e \(flags)/sick-$(hostname)",
            "--health-interval", "500ms", "--health-retries", "2", "--restart-delay", "1s",
            "--", "python3", "-c", Self.server,
        ])
        try #require(created.status == 0, "\(created.output)")

        // Not healthy yet: STARTING, in no name.
        #expect(try eventually(20) { try tasks(n1, "web", "Starting").count == 4 })
        usleep(1_500_000)
        #expect(try tasks(n1, "web", "Running").isEmpty)
        #expect(try resolve(n1, "tasks.web").isEmpty)
        let inspect = try shoalAt(n1, ["service", "inspect", "--pretty", "web"]).output
        #expect(inspect.contains("Healthcheck:") && inspect.contains("Retries:\t2"), "\(inspect)")

        // Healthy: RUNNING, in the names, behind the VIP.
        FileManager.default.createFile(atPath: "\(flags)/ready", contents: nil)
        #expect(try eventually(20) { try tasks(n1, "web", "Running").count == 4 })
        #expect(try eventually(10) { try resolve(n1, "tasks.web").count == 4 })
        let vip = try #require(try resolve(n1, "web").first)

        // Scale 4 → 2 under load through the VIP: no request fails.
        let clientTask = try #require(try tasks(n1, "client", "Running").first)
        let load = try NamespacedProcess(
            ["python3", "-c", Self.load, vip, "14"], in: NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))"))
        usleep(3_000_000)
        #expect(try shoalAt(n1, ["service", "scale", "web=2"], timeout: 60).status == 0)
        let finished = load.wait(timeoutSeconds: 60)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(finished.output.utf8)) as? [String: Any], "\(finished.output)")
        #expect((report["failed"] as? Int) == 0, "\(report)")
        #expect((report["answered"] as? Int ?? 0) > 200, "\(report)")
        #expect(try eventually(10) { try resolve(n1, "tasks.web").count == 2 })

        // A check that starts failing: out of the names within interval × retries (+ the
        // name's way through gossip), then FAILED and replaced.
        let sick = try #require(try tasks(n1, "web", "Running").first)
        let shown = try shoalAt(n1, ["exec", sick, "--", "ip", "-o", "-4", "addr", "show", "eth0"]).output
        let address = try #require(shown.range(of: #"10\.0\.\d+\.\d+"#, options: .regularExpression).map { String(shown[$0]) })
        #expect(try resolve(n1, "tasks.web").contains(address))
        let began = Date()
        FileManager.default.createFile(atPath: "\(flags)/sick-\(sick.prefix(12))", contents: nil)
        let gone = try eventually(10) {
            let addresses = try resolve(n1, "tasks.web")
            return !addresses.contains(address)
        }
        #expect(gone)
        let left = Date().timeIntervalSince(began)
        print("an unhealthy task left DNS after \(String(format: "%.2f", left)) s (interval 0.5 s × retries 2)")
        #expect(left < 3.5, "left DNS after \(left) s")
        let replaced = try eventually(30) {
            let all = try shoalAt(n1, ["service", "ps", "--no-trunc", "web"], timeout: 10).output
            let running = try tasks(n1, "web", "Running")
            return all.contains("unhealthy") && running.count == 2 && !running.contains(sick)
        }
        #expect(replaced)
    }
}
