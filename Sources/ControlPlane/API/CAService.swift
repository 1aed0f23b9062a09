// The certificate authority on 2377. Any manager hands out the root certificate (a joiner
// checks its digest against the token before it sends the secret). Issuing for a new node
// runs on the leader: it checks the token's secret in constant time, creates the Node object
// and signs the CSR for the token's role. Renewal is signed by whichever manager is asked,
// for the identity and role already on record.

import ClusterAPI
import Foundation
import GRPCCore
import PKI
import SwiftProtobuf
import X509

struct CAService: Shoal_Api_CA.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer
    private var manager: Manager { get throws(APIError) { try handle.require() } }

    func getRootCACertificate(
        request: Shoal_Api_GetRootCACertificateRequest, context: ServerContext
    ) async throws -> Shoal_Api_GetRootCACertificateResponse {
        do {
            _ = try authorizer.caller(context)  // Joiners too.
            let store = try manager.store
            let cluster: Shoal_Api_Cluster?
            do throws(ManagerStoreError) { cluster = try await store.readLocal { $0.clusters.sorted.first } } catch {
                throw Manager.apiError(error)
            }
            guard let cluster else { throw APIError(.unavailable, "this manager has no cluster yet; retry") }
            var response = Shoal_Api_GetRootCACertificateResponse()
            response.certificate = cluster.rootCa.caCert
            return response
        } catch {
            throw APIError(error).rpcError
        }
    }
}

struct NodeCAService: Shoal_Api_NodeCA.SimpleServiceProtocol {
    let handle: ManagerHandle
    let authorizer: Authorizer
    private var manager: Manager { get throws(APIError) { try handle.require() } }

    func issueNodeCertificate(
        request: Shoal_Api_IssueNodeCertificateRequest, context: ServerContext
    ) async throws -> Shoal_Api_IssueNodeCertificateResponse {
        do {
            let caller = try authorizer.caller(context)
            if request.token.isEmpty {
                guard case .node(let identity) = caller else {
                    throw APIError(.invalidToken, "a join token is required: get one with `shoal swarm join-token worker` on a manager")
                }
                return try await renew(identity, csr: [UInt8](request.csr))
            }
            return try await manager.onLeader({ () async throws -> Shoal_Api_IssueNodeCertificateResponse in
                try await admit(request)
            }, forward: { try await $0.nodeCA.issueNodeCertificate(request) })
        } catch {
            throw APIError(error).rpcError
        }
    }

    func nodeCertificateStatus(
        request: Shoal_Api_NodeCertificateStatusRequest, context: ServerContext
    ) async throws -> Shoal_Api_NodeCertificateStatusResponse {
        do {
            _ = try authorizer.requireNode(context)
            guard let node = try await manager.read({ $0.nodes[request.nodeID] }) else {
                throw APIError(.notFound, "no such node: \(request.nodeID)", objectID: request.nodeID)
            }
            var response = Shoal_Api_NodeCertificateStatusResponse()
            response.status = node.certificate.status
            response.certificate = node.certificate
            return response
        } catch {
            throw APIError(error).rpcError
        }
    }

    /// A new node: the token decides its role; the Node object is created before the
    /// certificate is signed, so a node with a certificate always exists in the store.
    private func admit(_ request: Shoal_Api_IssueNodeCertificateRequest) async throws(APIError) -> Shoal_Api_IssueNodeCertificateResponse {
        let cluster = try await manager.cluster()
        let presented: JoinToken
        do throws(JoinToken.ParseError) { presented = try JoinToken(parsing: request.token) } catch {
            throw APIError(.invalidToken, "the join token is malformed: \(error)", field: "token")
        }
        let root = try signingRoot(cluster)
        guard presented.matches(root) else {
            throw APIError(.invalidToken, "the join token names another swarm's CA: get a token from this swarm's `shoal swarm join-token`")
        }
        let role: CertificateRole
        if let manager = try? JoinToken(parsing: cluster.rootCa.joinTokens.manager), presented.hasSameSecret(as: manager) {
            role = .manager
        } else if let worker = try? JoinToken(parsing: cluster.rootCa.joinTokens.worker), presented.hasSameSecret(as: worker) {
            role = .worker
        } else {
            throw APIError(
                .invalidToken,
                "the join token is not valid (rotated or mistyped): get the current one with `shoal swarm join-token worker|manager`")
        }
        let csr = try decodeCSR([UInt8](request.csr))
        let name = request.nodeName.isEmpty ? "node" : request.nodeName
        var node = Shoal_Api_Node()
        node.id = RandomID.make()
        node.spec.annotations.name = name
        node.spec.desiredRole = role == .manager ? .manager : .worker
        node.spec.membership = .accepted
        node.spec.availability = request.availability
        node.role = node.spec.desiredRole
        node.nodeDescription.hostname = name
        node.nodeDescription.advertiseAddr = request.advertiseAddr
        node.nodeDescription.engineVersion = engineVersion
        node.status.state = .unknown
        node.status.addr = request.advertiseAddr
        if role == .manager { node.managerStatus.addr = request.advertiseAddr }
        let identity = NodeIdentity(nodeID: node.id, role: role, clusterID: cluster.id)
        let certificate = try sign(csr, identity, root: root, cluster: cluster)
        node.certificate.role = node.role
        node.certificate.status.state = .issued
        node.certificate.certificate = Data(certificate)
        node.certificate.cn = node.id
        _ = try await manager.write([Shoal_Api_StoreAction(.create, node)])
        try manager.logger.info("node joined", metadata: ["node": "\(node.id)", "name": "\(name)", "role": "\(role.rawValue)"])
        var response = Shoal_Api_IssueNodeCertificateResponse()
        response.nodeID = node.id
        response.nodeMembership = .accepted
        response.certificateChain = [Data(certificate)]
        return response
    }

    /// A renewal: same node, the role its Node object has now.
    private func renew(_ identity: NodeIdentity, csr bytes: [UInt8]) async throws(APIError) -> Shoal_Api_IssueNodeCertificateResponse {
        let store = try manager.store
        let (cluster, node): (Shoal_Api_Cluster?, Shoal_Api_Node?)
        do throws(ManagerStoreError) {
            (cluster, node) = try await store.readLocal { ($0.clusters.sorted.first, $0.nodes[identity.nodeID]) }
        } catch {
            throw Manager.apiError(error)
        }
        guard let cluster else { throw APIError(.unavailable, "this manager has no cluster yet; retry") }
        guard let node else { throw APIError(.permissionDenied, "node \(identity.nodeID) was removed from the swarm: join again") }
        let role: CertificateRole = node.role == .manager ? .manager : .worker
        let certificate = try sign(
            try decodeCSR(bytes), NodeIdentity(nodeID: node.id, role: role, clusterID: cluster.id), root: try signingRoot(cluster),
            cluster: cluster)
        var response = Shoal_Api_IssueNodeCertificateResponse()
        response.nodeID = node.id
        response.nodeMembership = .accepted
        response.certificateChain = [Data(certificate)]
        return response
    }

    private func signingRoot(_ cluster: Shoal_Api_Cluster) throws(APIError) -> RootCA {
        do throws(PKIError) {
            return try RootCA(certificateDER: [UInt8](cluster.rootCa.caCert), keyDER: [UInt8](cluster.rootCa.caKey))
        } catch {
            throw APIError(.unavailable, "the cluster's root CA cannot sign: \(error)")
        }
    }

    private func decodeCSR(_ bytes: [UInt8]) throws(APIError) -> CertificateSigningRequest {
        do throws(PKIError) { return try NodeKey.decodeRequest(bytes) } catch {
            throw APIError(.invalidSpec, "the certificate request does not decode: \(error)", field: "csr")
        }
    }

    private func sign(
        _ csr: CertificateSigningRequest, _ identity: NodeIdentity, root: RootCA, cluster: Shoal_Api_Cluster
    ) throws(APIError) -> [UInt8] {
        do {
            return try root.issue(csr, for: identity, validity: ClusterDefaults.certificateExpiry(of: cluster.spec)).derBytes
        } catch let error as PKIError {
            throw APIError(.invalidSpec, "cannot issue a certificate: \(error)", field: "csr")
        } catch {
            throw APIError(.unavailable, "cannot encode the certificate: \(error)")
        }
    }
}

/// The version `node ls` shows in ENGINE VERSION.
public let engineVersion = "shoal-0.2"
