// A manager's open connections to the other managers, one per address, shared by Raft's
// transport, forwarding to the leader and membership calls: a gRPC client multiplexes every
// call and stream over its one HTTP/2 connection, and reconnects on its own with backoff.

import ClusterAPI
import GRPCNIOTransportHTTP2
import Synchronization

/// Connections to other managers under this node's mutual TLS.
public final class PeerConnections: Sendable {
    private let connections = Mutex<[String: APIConnection]>([:])
    private let security: @Sendable () -> HTTP2ClientTransport.Posix.TransportSecurity

    /// Connections made with `security` (read at each new connection, so renewed
    /// credentials are used from the next one on).
    public init(security: @escaping @Sendable () -> HTTP2ClientTransport.Posix.TransportSecurity) {
        self.security = security
    }

    /// The connection to `address` ("host:port"), opened on first use.
    public func connection(to address: String) throws(APIError) -> APIConnection {
        if let existing = connections.withLock({ $0[address] }) { return existing }
        let target = try APITarget(parsing: address)
        let made: APIConnection
        do { made = try APIConnection(to: target, security: security()) } catch {
            throw APIError(.unavailable, "cannot connect to \(address): \(error)")
        }
        let (kept, extra) = connections.withLock { table -> (APIConnection, APIConnection?) in
            if let raced = table[address] { return (raced, made) }
            table[address] = made
            return (made, nil)
        }
        extra?.close()
        return kept
    }

    /// Closes every connection (on stop, or after this node's certificate changed).
    public func closeAll() {
        let all = connections.withLock { table -> [APIConnection] in
            defer { table = [:] }
            return Array(table.values)
        }
        for connection in all { connection.close() }
    }
}
