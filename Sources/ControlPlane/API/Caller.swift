// Who is calling, decided once per RPC: the operator on the daemon's Unix socket (the socket's
// file mode is the authorization, as for docker.sock), a node by its certificate on 2377, or
// a joiner that has none yet. Authorization is by the certificate's OU: a worker reaches the
// dispatcher and certificate renewal, never Control, Raft or membership.

import ClusterAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import PKI

/// The party on the other end of an RPC.
public enum Caller: Sendable, Equatable {
    /// The operator, through the local Unix socket.
    case localOperator
    /// A node, by its verified certificate.
    case node(NodeIdentity)
    /// A node with no certificate yet (its self-signed joiner certificate).
    case joiner
}

/// Decides who calls on one listener.
public struct Authorizer: Sendable {
    /// The roots certificates are checked against; nil on the Unix socket.
    let roots: TrustedRoots?

    /// The Unix socket's authorizer: every caller is the local operator.
    public static let localSocket = Authorizer(roots: nil)

    /// 2377's authorizer: callers are who their certificates say.
    public static func network(_ roots: TrustedRoots) -> Authorizer { Authorizer(roots: roots) }

    /// Who calls. On 2377 the TLS handshake already refused a peer without an acceptable
    /// certificate; this reads which kind it presented.
    public func caller(_ context: ServerContext) throws(APIError) -> Caller {
        guard let roots else { return .localOperator }
        guard let tls = context.transportSpecific as? HTTP2ServerTransport.Posix.Context, let certificate = tls.peerCertificate
        else { throw APIError(.permissionDenied, "a client certificate is required on this port") }
        if let identity = try? roots.identity(of: certificate) { return .node(identity) }
        if JoinerCertificate.isJoiner(certificate) { return .joiner }
        throw APIError(.permissionDenied, "the client certificate was not issued by this cluster's CA")
    }

    /// The caller, when it is the operator or a manager; else PermissionDenied.
    @discardableResult
    public func requireManager(_ context: ServerContext) throws(APIError) -> Caller {
        let caller = try caller(context)
        switch caller {
        case .localOperator: return caller
        case .node(let identity) where identity.role == .manager: return caller
        case .node(let identity):
            throw APIError(.permissionDenied, "node \(identity.nodeID) holds a worker certificate: this call needs a manager")
        case .joiner:
            throw APIError(.permissionDenied, "this call needs a node certificate: join the swarm first")
        }
    }

    /// The calling node's identity (any role); else PermissionDenied.
    public func requireNode(_ context: ServerContext) throws(APIError) -> NodeIdentity {
        guard case .node(let identity) = try caller(context) else {
            throw APIError(.permissionDenied, "this call needs a node certificate")
        }
        return identity
    }
}
