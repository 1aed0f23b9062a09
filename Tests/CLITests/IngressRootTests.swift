import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// The routing mesh with real processes on a 3-node lab: a published port answers on every
/// node — those without a task too, and each node from itself — a port without a number gets
/// one in 30000-32767, a taken one is refused naming its service, and a removed service's port
/// closes everywhere.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct IngressRootTests {
    /// What `curl http://ADDRESS:PORT/` from `node`'s namespace answered (body, or "" on failure).
    func get(_ address: String, _ port: Int, from node: Lab.Node) throws -> String {
        let result = try NamespacedProcess.run(
            ["curl", "-s", "--max-time", "5", "http://\(address):\(port)/"], in: node.namespace, timeoutSeconds: 10)
        return result.status == 0 ? result.output : ""
    }

    /// An HTTP server on 80 that expects a PROXY v2 header first on each connection and
    /// answers the client address it carries ("no header" without one).
    static let proxyAwareServer = #"""
        import socket, struct, threading
        def serve(c):
            with c:
                f = c.makefile("rb")
                head, body = f.read(16), b"no header"
                if head[:12] == b"\r\n\r\n\0\r\nQUIT\n" and head[12] == 0x21 and head[13] == 0x11:
                    body = socket.inet_ntoa(f.read(struct.unpack("!H", head[14:16])[0])[:4]).encode()
                while f.readline() not in (b"\r\n", b""): pass
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", 80)); s.listen(64)
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """#

    @Test func aPublishedPortAnswersOnEveryNode() throws {
        Lab.removeStale()
        let name = "ing\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        let created = try shoalAt(n1, ["service", "create", "--name", "my-web", "--network", "front", "--publish", "published=8080,target=80",
                                       "--", "python3", "-c", VIPRootTests.server], timeout: 60)
        #expect(created.status == 0 && created.output.contains("converged"), "\(created.output)")
        let listed = try shoalAt(n1, ["service", "ls"]).output
        #expect(listed.contains("*:8080->80/tcp"), "\(listed)")
        let task = try #require(try VIPRootTests().runningTasks(n1, "my-web").first).prefix(12)

        // Every node answers, from every node: one task, so two of them relay to another node.
        var failures: [String] = []
        for client in lab.nodes {
            for target in lab.nodes {
                let body = try get("\(target.underlayAddress)", 8080, from: client)
                if body != String(task) { failures.append("\(client.name) → \(target.name):8080 answered \"\(body)\"") }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        // Keep-alive through the mesh: three requests on one connection (curl reuses it).
        let url = "http://\(lab.nodes[1].underlayAddress):8080/"
        let kept = try NamespacedProcess.run(["curl", "-s", "--max-time", "5", url, url, url], in: lab.nodes[2].namespace, timeoutSeconds: 10)
        #expect(kept.output == String(repeating: String(task), count: 3), "\(kept.output)")

        // No number: the swarm picks one in 30000-32767, and it answers too.
        #expect(try shoalAt(n1, ["service", "create", "--name", "auto", "--network", "front", "-p", "80", "--",
                                 "python3", "-c", VIPRootTests.server], timeout: 60).status == 0)
        let ports = try shoalAt(n1, ["service", "ls"]).output
        let auto = try #require(ports.range(of: #"\*:(3\d{4})->80/tcp"#, options: .regularExpression).map { String(ports[$0].dropFirst(2).prefix(5)) })
        let number = try #require(Int(auto))
        #expect((30000...32767).contains(number), "\(ports)")
        #expect(try get("\(lab.nodes[1].underlayAddress)", number, from: lab.nodes[2]).count == 12)

        // PROXY protocol v2, opt-in per port: the task learns each client's own address
        // (the relay's connection comes from the ingress sandbox), from another node and from
        // the node itself.
        #expect(try shoalAt(n1, ["service", "create", "--name", "proxied", "--network", "front",
                                 "--publish", "published=8081,target=80,proxy-protocol=v2", "--", "python3", "-c", Self.proxyAwareServer],
                            timeout: 60).status == 0)
        #expect(try shoalAt(n1, ["service", "inspect", "--pretty", "proxied"]).output.contains("  ProxyProtocol = v2"))
        #expect(try get("\(lab.nodes[1].underlayAddress)", 8081, from: lab.nodes[2]) == "\(lab.nodes[2].underlayAddress)")
        #expect(try get("\(lab.nodes[0].underlayAddress)", 8081, from: lab.nodes[0]) == "\(lab.nodes[0].underlayAddress)")
        let version = try shoalAt(n1, ["service", "create", "--name", "v1", "-p", "published=8082,target=80,proxy-protocol=v1", "--", "sleep", "100"])
        #expect(version.status != 0 && version.output.contains("proxy-protocol is v2"), "\(version.output)")
        let host = try shoalAt(n1, ["service", "create", "--name", "v2host", "-p", "published=8082,target=80,mode=host,proxy-protocol=v2", "--", "sleep", "100"])
        #expect(host.status == 1 && host.output.contains("the PROXY protocol is for TCP ports published with ingress mode"), "\(host.output)")

        // Taken: refused, naming the service that holds it; nothing else written.
        let taken = try shoalAt(n1, ["service", "create", "--name", "again", "-p", "8080:80", "--", "sleep", "100"])
        #expect(taken.status == 1 && taken.output == "Error: port 8080/tcp is already published by service my-web\n", "\(taken.output)")
        #expect(!(try shoalAt(n1, ["service", "ls"]).output.contains("again")))

        // Removed: the port closes on every node.
        #expect(try shoalAt(n1, ["service", "rm", "my-web"]).status == 0)
        var closed = false
        for _ in 0..<50 where !closed {
            closed = try lab.nodes.allSatisfy { try get("\($0.underlayAddress)", 8080, from: lab.nodes[0]).isEmpty }
            if !closed { usleep(200_000) }
        }
        #expect(closed, "port 8080 still answers after service rm")
    }
}
