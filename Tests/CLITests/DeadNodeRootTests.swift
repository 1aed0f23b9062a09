import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// A backend's node killed with SIGKILL under load through a VIP, on a 3-node lab with real
/// processes: new connections stop going to its tasks once gossip declares it dead (the time
/// is measured and printed; issue 18's goal is under 3 s) and none fails, and keep-alive
/// connections to its tasks are reset rather than left to time out.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct DeadNodeRootTests {
    /// For `seconds`: one thread opening a connection per request, two on keep-alive
    /// connections, all to http://VIP/ with a 5 s timeout. Prints, as JSON, every request
    /// as [start, duration, answering hostname or "!" + error type, keep-alive] (wall clock).
    static let load = """
        import http.client, json, sys, threading, time
        vip, seconds = sys.argv[1], float(sys.argv[2])
        lock = threading.Lock()
        requests = []
        def work(keep):
            end = time.time() + seconds
            connection = http.client.HTTPConnection(vip, 80, timeout=5)
            while time.time() < end:
                began = time.time()
                try:
                    if not keep:
                        connection = http.client.HTTPConnection(vip, 80, timeout=5)
                    connection.request("GET", "/")
                    outcome = connection.getresponse().read().decode()
                except Exception as error:
                    connection.close()
                    outcome = "!" + type(error).__name__
                if not keep:
                    connection.close()
                with lock: requests.append([began, time.time() - began, outcome, keep])
                time.sleep(0.02)
        threads = [threading.Thread(target=work, args=(index > 0,)) for index in range(3)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        print(json.dumps(requests))
        """

    @Test func aDeadBackendNodeLeavesTheVIPQuicklyAndItsConnectionsAreReset() throws {
        Lab.removeStale()
        let name = "dead\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 120)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        let client = try shoalAt(n1, [
            "service", "create", "--name", "client", "--network", "front", "--constraint", "node.hostname==n1", "--", "sleep", "100000",
        ], timeout: 60)
        try #require(client.status == 0, "\(client.output)")
        let web = try shoalAt(n1, [
            "service", "create", "--name", "web", "--replicas", "4", "--network", "front", "--constraint", "node.hostname!=n1",
            // The replacements of n3's tasks start on n2 while the load runs: a health check
            // keeps each out of the VIP until its server listens (without one, as in swarm, a
            // connection balanced to it in the ~200 ms before is refused).
            "--health-cmd", "ss -Htln 'sport = :80' | grep -q .", "--health-interval", "200ms",
            "--", "python3", "-c", HealthRootTests.server,
        ], timeout: 60)
        try #require(web.status == 0, "\(web.output)")
        var rows: [[String]] = []
        // Bounded: 100 polls, 200 ms apart.
        for _ in 0..<100 {
            rows = try shoalAt(n1, ["service", "ps", "--no-trunc", "web"]).output.split(separator: "\n").dropFirst()
                .filter { $0.range(of: "Running [a-z0-9]", options: .regularExpression) != nil }
                .map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            if rows.count == 4 { break }
            usleep(200_000)
        }
        usleep(1_000_000)  // the last task's entry on its way through gossip
        // The tasks' hostnames are their IDs' first 12 characters.
        let onN3 = Set(rows.filter { $0.contains("n3") }.map { String($0[0].prefix(12)) })
        try #require(onN3.count == 2, "\(rows)")
        let clientTask = try #require(
            try shoalAt(n1, ["service", "ps", "--no-trunc", "client"]).output.split(separator: "\n").dropFirst().first?
                .split(separator: " ").first.map(String.init))
        let namespace = NetworkNamespace(named: "shoal-t-\(clientTask.prefix(12))")
        let resolved = try shoalAt(n1, ["exec", "client.1", "--", "python3", "-c", "import socket; print(socket.gethostbyname('web'))"])
        let vip = resolved.output.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(resolved.status == 0 && !vip.isEmpty, "\(resolved.output)")

        let load = try NamespacedProcess(["python3", "-c", Self.load, vip, "14"], in: namespace)
        usleep(4_000_000)
        let killed = Date().timeIntervalSince1970
        kill(lab.record.processes[2].pid, SIGKILL)
        let finished = load.wait(timeoutSeconds: 60)
        let requests = try #require(try JSONSerialization.jsonObject(with: Data(finished.output.utf8)) as? [[Any]], "\(finished.output)")
        typealias Request = (start: Double, duration: Double, outcome: String, keep: Bool)
        let all: [Request] = requests.compactMap { row in
            guard row.count == 4, let start = row[0] as? Double, let duration = row[1] as? Double, let outcome = row[2] as? String,
                let keep = row[3] as? Bool
            else { return nil }
            return (start, duration, outcome, keep)
        }
        let before = all.filter { $0.start + $0.duration < killed }
        #expect(before.count > 50 && before.allSatisfy { !$0.outcome.hasPrefix("!") }, "\(before.filter { $0.outcome.hasPrefix("!") })")
        #expect(Set(before.map(\.outcome)).isSuperset(of: onN3), "n3's tasks answered before the kill")

        // New connections: the last one whose SYN still went to n3 began when its node was
        // declared dead, at the latest; every one succeeded (a lost SYN is sent again and the
        // retransmission is balanced anew).
        // A request in flight on one of n3's tasks when it died is lost with it: it may fail,
        // by a reset (below), never by a timeout. One begun after the kill never fails.
        let fresh = all.filter { !$0.keep && $0.start >= killed }
        #expect(fresh.allSatisfy { !$0.outcome.hasPrefix("!") }, "\(fresh.filter { $0.outcome.hasPrefix("!") })")
        let held = fresh.filter { $0.duration > 0.5 }
        let declared = (held.map { $0.start + $0.duration }.max() ?? killed) - killed
        print("new connections stopped going to the killed node's tasks \(String(format: "%.2f", declared)) s after kill -9 (\(held.count) waited for a SYN retransmission)")
        #expect(declared < 5, "new connections went to the dead node's tasks for \(declared) s")
        let afterwards = fresh.filter { $0.start > killed + declared }
        #expect(afterwards.count > 50 && afterwards.allSatisfy { $0.duration < 0.5 && !onN3.contains($0.outcome) }, "\(afterwards.prefix(5))")

        // Keep-alive connections on n3's tasks, and requests in flight there at the kill: reset
        // when the node is declared dead (their next segment is answered with a RST), never
        // left to time out.
        let kept = all.filter { $0.start + $0.duration >= killed && ($0.keep || $0.start < killed) }
        let failed = kept.filter { $0.outcome.hasPrefix("!") }
        #expect(failed.allSatisfy { $0.outcome != "!TimeoutError" && $0.outcome != "!timeout" }, "\(failed)")
        #expect(failed.allSatisfy { $0.start + $0.duration - killed < declared + 1.5 }, "\(failed) declared \(declared)")
        #expect(kept.filter { $0.start > killed + declared + 1.5 }.allSatisfy { !$0.outcome.hasPrefix("!") && !onN3.contains($0.outcome) })
        print("keep-alive connections reset by the dead node's flows: \(failed.map { "\($0.outcome) after \(String(format: "%.2f", $0.start + $0.duration - killed)) s" })")
    }
}
