// The typed client's connection: one gRPC client over HTTP/2, to a daemon's Unix socket (the
// CLI) or to a manager's 2377 under mutual TLS (agents, managers forwarding to the leader,
// Raft). The caller brings the TLS configuration: trust is the PKI's business, not the API's.

import EngineKit
import GRPCCore
import GRPCNIOTransportHTTP2

/// Where a client connects: `unix:///path.sock` or `host:port` (also `tcp://host:port`).
public enum APITarget: Sendable, Hashable, CustomStringConvertible {
    /// A daemon's Unix socket.
    case unixSocket(path: String)
    /// A manager's host and port.
    case hostPort(host: String, port: Int)

    /// Parses `unix:///path`, `tcp://host:port` or `host:port` (IPv6 in brackets).
    public init(parsing text: String) throws(APIError) {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw APIError(.invalidSpec, "\(text): a unix address needs an absolute path, e.g. unix:///run/shoal/shoal.sock")
            }
            self = .unixSocket(path: path)
            return
        }
        let hostPort: HostPort
        do throws(HostPort.ParseError) {
            hostPort = try HostPort(parsing: text.hasPrefix("tcp://") ? String(text.dropFirst("tcp://".count)) : text)
        } catch {
            throw APIError(.invalidSpec, "\(text): \(error) (expected unix:///path or host:port)")
        }
        self = .hostPort(host: hostPort.host, port: Int(hostPort.port))
    }

    /// A host:port another node can dial (not a Unix socket).
    public static func dialable(_ text: String) throws(APIError) -> APITarget {
        let target = try APITarget(parsing: text)
        guard case .hostPort = target else { throw APIError(.invalidSpec, "\(text) is not host:port") }
        return target
    }

    public var description: String {
        switch self {
        case .unixSocket(let path): "unix://\(path)"
        case .hostPort(let host, let port): HostPort(host: host, port: UInt16(port)).description
        }
    }

    var resolvable: any ResolvableTarget {
        switch self {
        case .unixSocket(let path): .unixDomainSocket(path: path)
        // Literal addresses go to the IP resolvers, which put no IP in TLS SNI (NIOSSL refuses it).
        case .hostPort(let host, let port) where host.contains(":"): .ipv6(host: host, port: port)
        case .hostPort(let host, let port) where host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." }):
            .ipv4(host: host, port: port)
        case .hostPort(let host, let port): .dns(host: host, port: port)
        }
    }
}

/// One open client connection and the typed service clients over it. Close it when done.
public final class APIConnection: Sendable {
    /// The gRPC client.
    public let client: GRPCClient<HTTP2ClientTransport.Posix>
    /// Where it connects.
    public let target: APITarget
    private let running: Task<Void, Never>

    /// Connects to `target` with `security` (plaintext suits only the Unix socket).
    public init(to target: APITarget, security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext) throws {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff.initial = .milliseconds(50)
        config.backoff.max = .seconds(2)
        config.connection.maxIdleTime = nil
        let transport = try HTTP2ClientTransport.Posix(
            target: target.resolvable, transportSecurity: security, config: config)
        let client = GRPCClient(transport: transport)
        self.client = client
        self.target = target
        running = Task { try? await client.runConnections() }
    }

    /// Ends the connection once calls in flight finish.
    public func close() {
        client.beginGracefulShutdown()
    }

    /// Waits until the connection is fully closed (after ``close()``).
    public func closed() async {
        await running.value
    }

    /// The Swarm service (a daemon's Unix socket only).
    public var swarm: Shoal_Api_Swarm.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The Control service (managers).
    public var control: Shoal_Api_Control.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The CA service (managers; needs no node certificate).
    public var ca: Shoal_Api_CA.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The NodeCA service (managers).
    public var nodeCA: Shoal_Api_NodeCA.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The Dispatcher service (managers).
    public var dispatcher: Shoal_Api_Dispatcher.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The TaskIO service (every node: exec and logs; to the operator and managers).
    public var taskIO: Shoal_Api_TaskIO.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The RaftMembership service (managers, to manager certificates).
    public var raftMembership: Shoal_Api_RaftMembership.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    /// The RaftTransport service (managers, to manager certificates).
    public var raftTransport: Shoal_Api_RaftTransport.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
}

/// A call's options with a deadline, so no caller waits forever on a dead peer.
public func callOptions(timeout: Duration) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = timeout
    return options
}
