import Glibc
import HostNet
import Logging
import NIOCore
import Testing
import Wire

@testable import IngressLB

/// The routing mesh's relay with real sockets and real peers: the proxy listens on a port of
/// this namespace, and a Python server in a scratch namespace, at 127.0.0.1 there, stands for
/// the service's VIP (the proxy's connections are made inside its sandbox, as on a node).
@Suite(.enabled(if: getuid() == 0, "needs root: creates a network namespace"), .serialized)
struct IngressProxyRootTests {
    /// Reads the request until the client's end of stream, then answers 4 MB and closes.
    static let answersAfterEndOfStream = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 8080)); s.listen(8); print("ready", flush=True)
        c, _ = s.accept()
        while c.recv(65536): pass
        c.sendall(b"x" * 4000000); c.close()
        """

    /// A PROXY-aware server: reads the version 2 header, answers what it says, and closes.
    static let proxyAware = """
        import socket, struct
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 8080)); s.listen(8); print("ready", flush=True)
        def exactly(c, n):
            data = b""
            while len(data) < n:
                chunk = c.recv(n - len(data))
                if not chunk: break
                data += chunk
            return data
        while True:
            c, _ = s.accept()
            head = exactly(c, 16)
            if head[:12] != b"\\r\\n\\r\\n\\x00\\r\\nQUIT\\n" or head[12] != 0x21 or head[13] != 0x11:
                c.sendall(b"no header " + head.hex().encode()); c.close(); continue
            (length,) = struct.unpack("!H", head[14:16])
            body = exactly(c, length)
            source, destination = socket.inet_ntoa(body[0:4]), socket.inet_ntoa(body[4:8])
            sport, dport = struct.unpack("!HH", body[8:12])
            rest = c.recv(100)
            c.sendall(("%s:%d %s:%d %s" % (source, sport, destination, dport, rest.decode())).encode()); c.close()
        """

    /// A client of `port` on 127.0.0.1 with a small receive buffer: sends "hello", ends its
    /// stream, waits a second (the relay queues what it cannot pass on yet), then reads all and
    /// prints its own address and what it read (its length when longer than 200 bytes).
    static func client(_ port: UInt16) -> [String] {
        let script = """
            import socket, time
            c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", \(port))); c.sendall(b"hello"); c.shutdown(socket.SHUT_WR); time.sleep(1)
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk: break
                data += chunk
            me = c.getsockname()
            print("%s:%d" % me, len(data) if len(data) > 200 else data.decode())
            """
        return ["python3", "-c", script]
    }

    /// A port nobody listens on now (the kernel's pick for a moment ago).
    func freePort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        _ = IPv4SocketAddress(IPv4Address(127, 0, 0, 1), port: 0).withSockaddr { bind(descriptor, $0, $1) }
        return try #require(IPv4SocketAddress.local(of: descriptor)).port
    }

    /// Runs `body` with a scratch namespace holding a server (`script`, once it printed
    /// "ready") and a proxy whose sandbox is that namespace; removes all of it afterwards.
    func withRelay(_ script: String, proxyProtocol: Bool, _ body: (UInt16) throws -> Void) throws {
        NetworkNamespace.removeOrphanedScratch()
        let namespace = try NetworkNamespace.create(named: NetworkNamespace.scratchName("relay"))
        defer { try? namespace.delete() }
        let server = try NamespacedProcess(["python3", "-c", script], in: namespace)
        defer { server.signal(SIGKILL); _ = server.wait(timeoutSeconds: 5) }
        #expect(try server.readLine(timeoutSeconds: 10) == "ready")
        let proxy = try IngressProxy(sandbox: namespace, threads: 1, logger: Logger(label: "test"))
        defer { proxy.stop() }
        let port = try freePort()
        proxy.apply([PublishedPort(published: port, target: 8080, virtualAddress: IPv4Address(127, 0, 0, 1), service: "test", proxyProtocol: proxyProtocol)])
        #expect(proxy.ports == [port])
        try body(port)
    }

    @Test func whatTheServerSentBeforeItClosedReachesASlowClientWhoEndedItsStreamFirst() throws {
        try withRelay(Self.answersAfterEndOfStream, proxyProtocol: false) { port in
            let result = try NamespacedProcess.run(Self.client(port), timeoutSeconds: 30)
            #expect(result.status == 0 && result.output.hasSuffix(" 4000000\n"), "\(result.output)")
        }
    }

    @Test func withProxyProtocolTheServerReadsTheClientsAddressFirst() throws {
        try withRelay(Self.proxyAware, proxyProtocol: true) { port in
            let result = try NamespacedProcess.run(Self.client(port), timeoutSeconds: 30)
            // "127.0.0.1:CLIENTPORT 127.0.0.1:CLIENTPORT 127.0.0.1:PORT hello": the header named the client and the port it reached.
            let words = result.output.split(separator: " ")
            #expect(result.status == 0 && words.count == 4, "\(result.output)")
            #expect(words.count == 4 && words[0] == words[1] && words[2] == "127.0.0.1:\(port)" && words[3] == "hello\n", "\(result.output)")
        }
    }

    @Test func withoutProxyProtocolTheServerReadsTheClientsBytesFirst() throws {
        try withRelay(Self.proxyAware, proxyProtocol: false) { port in
            let result = try NamespacedProcess.run(Self.client(port), timeoutSeconds: 30)
            #expect(result.output.contains(" no header 68656c6c6f"), "\(result.output)")
        }
    }

    @Test func theHeaderIsHAProxysBinaryLayout() {
        var buffer = ByteBuffer()
        ProxyProtocolHeader(source: IPv4Address(192, 0, 2, 7), sourcePort: 51000, destination: IPv4Address(10, 1, 2, 3), destinationPort: 8080)
            .write(to: &buffer)
        #expect(buffer.readableBytes == ProxyProtocolHeader.size)
        #expect(
            buffer.readBytes(length: buffer.readableBytes)! == [
                0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
                192, 0, 2, 7, 10, 1, 2, 3, 0xC7, 0x38, 0x1F, 0x90,
            ])
    }
}
