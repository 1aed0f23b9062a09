import Foundation
import Glibc
import HostNet
import Testing

/// `shoal dns serve` from a record file, answering `dig` inside a task namespace.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"))
struct DNSCLIRootTests {
    @Test func serveFromARecordFile() throws {
        NetworkNamespace.removeOrphanedScratch()
        let task = try NetworkNamespace.create(named: NetworkNamespace.scratchName("dnscli"))
        defer { try? task.delete() }
        let config = NSTemporaryDirectory() + "shoal-dns-\(getpid()).json"
        defer { unlink(config) }
        try """
        { "networks": { "front": [ { "name": "my-web", "mode": "vip", "vip": "10.0.1.2",
                                     "tasks": [ { "slot": 1, "id": "abc", "address": "10.0.1.3" } ] } ] },
          "sandboxes": { "t1": ["front"] },
          "listeners": [ { "address": "127.0.0.11", "port": 53, "namespace": "\(task.name)", "sandbox": "t1" } ],
          "upstreams": [] }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let server = try NamespacedProcess([shoalExecutable, "dns", "serve", "--config", config])
        defer { server.signal(SIGTERM); _ = server.wait(timeoutSeconds: 5) }
        var answer = ""
        // Bounded: 50 tries, 100 ms apart, while the server starts.
        for _ in 0..<50 {
            answer = try NamespacedProcess.run(["dig", "+short", "+time=1", "+tries=1", "@127.0.0.11", "my-web"], in: task).output
            if answer.contains("10.0.1.2") { break }
            usleep(100_000)
        }
        #expect(answer.trimmingCharacters(in: .whitespacesAndNewlines) == "10.0.1.2")
        let tasks = try NamespacedProcess.run(["dig", "+short", "@127.0.0.11", "tasks.my-web"], in: task).output
        #expect(tasks.trimmingCharacters(in: .whitespacesAndNewlines) == "10.0.1.3")
        let outside = try NamespacedProcess.run(["dig", "@127.0.0.11", "example.org"], in: task).output
        #expect(outside.contains("status: SERVFAIL"), "no upstream configured: SERVFAIL, \(outside)")

        let bad = try NamespacedProcess.run([shoalExecutable, "dns", "serve", "--config", "/nonexistent.json"])
        #expect(bad.status != 0 && bad.output.contains("is not a valid DNS configuration"), "\(bad.output)")
    }
}
