// `swarm init`, `join`, `leave` and `info` on this daemon, and the Swarm service that serves
// them on the Unix socket.

import ClusterAPI
import ControlPlane
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import PKI
import Raft
import SwiftProtobuf
import X509

extension Daemon {
    /// host:port from `text` or the daemon's flag, with 2377 when no port is given.
    func advertise(_ text: String) throws(APIError) -> String {
        let given = text.isEmpty ? configuration.advertiseAddress : text
        guard !given.isEmpty else {
            throw APIError(.invalidSpec, "no advertise address: pass --advertise-addr to `shoal daemon` or to this command", field: "advertise_addr")
        }
        let withPort = (try? APITarget.dialable(given)) != nil ? given : (given.contains(":") && !given.hasPrefix("[") ? "[\(given)]:2377" : "\(given):2377")
        return try APITarget.dialable(withPort).description
    }

    private func requireInactive() throws(APIError) {
        if joined != nil {
            throw APIError(
                .failedPrecondition,
                "this node is already part of a swarm: use `shoal swarm leave` to leave it and join another one")
        }
    }

    /// `swarm init`: a new root CA, this node's manager certificate, a one-member Raft group,
    /// and the Cluster and Node objects.
    func initialize(_ request: Shoal_Api_SwarmInitRequest) async throws(APIError) -> Shoal_Api_SwarmInitResponse {
        if request.forceNewCluster { return try await forceNewCluster() }
        try requireInactive()
        let advertise = try advertise(request.advertiseAddr)
        let listen = request.listenAddr.isEmpty ? configuration.listenAddress : request.listenAddr
        var spec = ClusterDefaults.spec(
            certificateExpiry: request.hasCertExpiry ? request.certExpiry.timeInterval : nil,
            heartbeatPeriod: request.hasDispatcherHeartbeat ? request.dispatcherHeartbeat.timeInterval : nil)
        try ClusterDefaults.validate(spec)
        spec.annotations.name = "default"
        let nodeID = RandomID.make()
        let clusterID = RandomID.make()
        let raftID = UInt64.random(in: 1...UInt64.max)
        do {
            try files.removeAll()  // A half-done earlier init leaves no Raft data behind.
            let root = try RootCA.create()
            let key = NodeKey()
            let certificate = try root.issue(
                try key.signingRequest(), for: NodeIdentity(nodeID: nodeID, role: .manager, clusterID: clusterID),
                validity: ClusterDefaults.certificateExpiry(of: spec))
            try files.saveCredentials(key: try key.der, certificate: try certificate.derBytes, root: root.der)
            let membership = NodeMembershipState(
                nodeID: nodeID, clusterID: clusterID, isManager: true, raftID: raftID, advertiseAddress: advertise,
                listenAddress: listen, managers: [advertise], raftPeers: [raftID: advertise])
            try await activate(membership, bootstrap: true)
            guard let manager = handle.current else { throw APIError(.unavailable, "the manager did not start") }

            var cluster = Shoal_Api_Cluster()
            cluster.id = clusterID
            cluster.spec = spec
            cluster.rootCa.caCert = Data(root.der)
            cluster.rootCa.caKey = Data(root.keyDER ?? [])
            cluster.rootCa.caCertDigest = "sha256:" + root.digest.map { String(format: "%02x", $0) }.joined()
            cluster.rootCa.joinTokens.worker = JoinToken.generate(for: root).description
            cluster.rootCa.joinTokens.manager = JoinToken.generate(for: root).description
            var node = Shoal_Api_Node()
            node.id = nodeID
            node.spec.annotations.name = configuration.nodeName
            node.spec.desiredRole = .manager
            node.spec.membership = .accepted
            node.spec.availability = .active
            node.role = .manager
            node.nodeDescription.hostname = configuration.nodeName
            node.nodeDescription.advertiseAddr = advertise
            node.nodeDescription.engineVersion = engineVersion
            node.status.addr = advertise
            node.managerStatus.raftID = raftID
            node.managerStatus.addr = advertise
            node.certificate.role = .manager
            node.certificate.status.state = .issued
            node.certificate.certificate = Data(try certificate.derBytes)
            node.certificate.cn = nodeID
            try await waitForLeadership(manager)
            _ = try await manager.store.update([Shoal_Api_StoreAction(.create, cluster), Shoal_Api_StoreAction(.create, node)])
            try files.save(membership)
            logger.info("swarm initialized", metadata: ["nodeID": "\(nodeID)", "clusterID": "\(clusterID)"])
            var response = Shoal_Api_SwarmInitResponse()
            response.nodeID = nodeID
            response.clusterID = clusterID
            response.workerToken = cluster.rootCa.joinTokens.worker
            response.advertiseAddr = advertise
            return response
        } catch {
            await deactivate()
            try? files.removeAll()
            throw APIError(error)
        }
    }

    /// `swarm init --force-new-cluster`: the quorum is lost, and this manager goes on alone
    /// with its own copy of the store. Its Raft data is set aside (not deleted until the new
    /// group holds every object), a new one-member group starts under a new Raft ID, and
    /// every object is written back in one transaction. The CA, tokens and certificates are
    /// the same, so workers stay joined; the other managers show Unreachable until they
    /// leave and join again.
    private func forceNewCluster() async throws(APIError) -> Shoal_Api_SwarmInitResponse {
        guard let state = joined, state.membership.isManager, let manager = state.manager else {
            throw APIError(
                .failedPrecondition, "--force-new-cluster restarts a swarm from a manager's data: this node is not a manager")
        }
        let store: ClusterStore
        do throws(ManagerStoreError) { store = try await manager.store.readLocal { $0 } } catch {
            throw APIError(.unavailable, "cannot read this manager's store: \(error)")
        }
        guard let cluster = store.clusters.sorted.first else {
            throw APIError(.failedPrecondition, "this manager's store holds no cluster: nothing to restart from")
        }
        await deactivate(keepingTasks: true)
        let setAside = files.raftDirectory + ".before-force-new-cluster"
        do {
            if FileManager.default.fileExists(atPath: setAside) { try FileManager.default.removeItem(atPath: setAside) }
            try FileManager.default.moveItem(atPath: files.raftDirectory, toPath: setAside)
        } catch {
            throw APIError(.unavailable, "cannot set the old Raft data aside: \(error)")
        }
        var membership = state.membership
        let raftID = UInt64.random(in: 1...UInt64.max)
        membership.raftID = raftID
        membership.raftPeers = [raftID: membership.advertiseAddress]
        membership.managers = [membership.advertiseAddress]
        do {
            try files.save(membership)
            try await activate(membership, bootstrap: true)
        } catch {
            throw APIError(.unavailable, "cannot start the new Raft group: \(error); the old data is in \(setAside)")
        }
        guard let newManager = handle.current else { throw APIError(.unavailable, "the manager did not start") }
        try await waitForLeadership(newManager)
        var actions: [Shoal_Api_StoreAction] = store.clusters.sorted.map { Shoal_Api_StoreAction(.create, $0) }
        for var node in store.nodes.sorted {
            if node.id == membership.nodeID {
                node.managerStatus.raftID = raftID
            } else if node.role == .manager {
                node.managerStatus.raftID = 0  // Not in the new group: it must leave and join again.
                node.managerStatus.reachability = .unreachable
            }
            actions.append(Shoal_Api_StoreAction(.create, node))
        }
        actions += store.networks.sorted.map { Shoal_Api_StoreAction(.create, $0) }
        actions += store.services.sorted.map { Shoal_Api_StoreAction(.create, $0) }
        actions += store.tasks.sorted.map { Shoal_Api_StoreAction(.create, $0) }
        do throws(ManagerStoreError) {
            _ = try await newManager.store.update(actions.map { action in
                var action = action
                switch action.target {  // New group, new versions: a create carries none.
                case .node(var object): object.meta = Shoal_Api_Meta(); action.target = .node(object)
                case .service(var object): object.meta = Shoal_Api_Meta(); action.target = .service(object)
                case .task(var object): object.meta = Shoal_Api_Meta(); action.target = .task(object)
                case .network(var object): object.meta = Shoal_Api_Meta(); action.target = .network(object)
                case .cluster(var object): object.meta = Shoal_Api_Meta(); action.target = .cluster(object)
                case nil: break
                }
                return action
            })
        } catch {
            throw APIError(.unavailable, "cannot write the objects back: \(error); the old data is in \(setAside)")
        }
        try? FileManager.default.removeItem(atPath: setAside)
        logger.warning("forced a new cluster from this manager's data", metadata: ["objects": "\(actions.count)", "raftID": "\(raftID)"])
        var response = Shoal_Api_SwarmInitResponse()
        response.nodeID = membership.nodeID
        response.clusterID = membership.clusterID
        response.workerToken = cluster.rootCa.joinTokens.worker
        response.advertiseAddr = membership.advertiseAddress
        return response
    }

    private func waitForLeadership(_ manager: Manager) async throws(APIError) {
        for _ in 0..<100 {
            if await manager.isLeader() { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
        throw APIError(.unavailable, "the new swarm's Raft group elected no leader within 5 s")
    }

    /// `swarm join`: fetch the root, check it against the token's digest before sending the
    /// secret, get a certificate for the token's role, then (managers) join Raft.
    func join(_ request: Shoal_Api_SwarmJoinRequest) async throws(APIError) -> Shoal_Api_SwarmJoinResponse {
        try requireInactive()
        let token: JoinToken
        do throws(JoinToken.ParseError) { token = try JoinToken(parsing: request.token) } catch {
            throw APIError(.invalidToken, "the join token is malformed: \(error)", field: "token")
        }
        let remote = try APITarget.dialable(request.remoteAddr).description
        let advertise = try advertise(request.advertiseAddr)
        let listen = request.listenAddr.isEmpty ? configuration.listenAddress : request.listenAddr
        do {
            try files.removeAll()
            let key = NodeKey()
            let joiner = TLSCredentials(
                certificateChain: [try JoinerCertificate.make(for: key).derBytes], privateKey: try key.der)

            // 1. The root, over TLS that trusts nothing yet; checked against the token.
            let rootDER = try await withConnection(to: remote, security: joiner.client(verifying: nil)) { connection in
                try await connection.ca.getRootCACertificate(.init(), options: callOptions(timeout: .seconds(10))).certificate
            }
            let root = try RootCA(certificateDER: [UInt8](rootDER))
            guard token.matches(root) else {
                throw APIError(
                    .invalidToken,
                    "the manager at \(remote) has a CA whose digest does not match the token's: the token is for another swarm "
                        + "(or the connection is intercepted). Nothing was sent; check the address and the token")
            }
            let roots = TrustedRoots([root])

            // 2. The certificate, over TLS that now verifies the manager.
            var issue = Shoal_Api_IssueNodeCertificateRequest()
            issue.csr = Data(try NodeKey.encode(try key.signingRequest()))
            issue.token = request.token
            issue.nodeName = configuration.nodeName
            issue.advertiseAddr = advertise
            issue.availability = request.availability
            let issued = try await withConnection(to: remote, security: joiner.client(verifying: roots.verificationCallback(.node))) {
                try await $0.nodeCA.issueNodeCertificate(issue, options: callOptions(timeout: .seconds(10)))
            }
            guard let certificateDER = issued.certificateChain.first else { throw APIError(.unavailable, "the CA returned no certificate") }
            let identity = try roots.identity(of: try Certificate(derEncoded: [UInt8](certificateDER)))
            try files.saveCredentials(key: try key.der, certificate: [UInt8](certificateDER), root: root.der)
            var membership = NodeMembershipState(
                nodeID: identity.nodeID, clusterID: identity.clusterID, isManager: identity.role == .manager, raftID: nil,
                advertiseAddress: advertise, listenAddress: listen, managers: [remote])

            // 3. Managers: a Raft ID and the group's members from the leader.
            if membership.isManager {
                let credentials = TLSCredentials(certificateChain: [[UInt8](certificateDER)], privateKey: try key.der)
                let joined = try await joinRaft(at: remote, advertise: advertise, credentials: credentials, roots: roots)
                membership.raftID = joined.raftID
                membership.raftPeers = Dictionary(joined.members.map { ($0.raftID, $0.addr) }, uniquingKeysWith: { a, _ in a })
                membership.managers = Array(Set(joined.members.map(\.addr).filter { !$0.isEmpty && $0 != advertise })).sorted()
            }
            try files.save(membership)
            try await activate(membership, bootstrap: false)
            logger.info("joined the swarm", metadata: ["nodeID": "\(identity.nodeID)", "role": "\(identity.role.rawValue)"])
            var response = Shoal_Api_SwarmJoinResponse()
            response.nodeID = identity.nodeID
            response.role = membership.isManager ? .manager : .worker
            return response
        } catch {
            await deactivate()
            try? files.removeAll()
            throw APIError(error)
        }
    }

    /// RaftMembership.Join at the leader (following one redirect from a follower).
    func joinRaft(
        at remote: String, advertise: String, credentials: TLSCredentials, roots: TrustedRoots
    ) async throws -> Shoal_Api_JoinResponse {
        var request = Shoal_Api_JoinRequest()
        request.addr = advertise
        var target = remote
        for _ in 0..<5 {
            do {
                return try await withConnection(to: target, security: credentials.client(verifying: roots.verificationCallback(.node))) {
                    try await $0.raftMembership.join(request, options: callOptions(timeout: .seconds(10)))
                }
            } catch {
                let failure = APIError(error)
                guard failure.reason == .notLeader, !failure.detail.leaderAddr.isEmpty else { throw failure }
                target = failure.detail.leaderAddr
            }
        }
        throw APIError(.unavailable, "could not reach the Raft leader to join")
    }

    private func withConnection<T: Sendable>(
        to address: String, security: HTTP2ClientTransport.Posix.TransportSecurity,
        _ body: (APIConnection) async throws -> T
    ) async throws -> T {
        let connection = try APIConnection(to: try APITarget(parsing: address), security: security)
        defer { connection.close() }
        return try await body(connection)
    }

    /// `swarm leave`: a manager only with `force` (and it leaves Raft first when it can).
    func leave(_ request: Shoal_Api_SwarmLeaveRequest) async throws(APIError) {
        guard let state = joined else { throw APIError(.failedPrecondition, "this node is not part of a swarm") }
        if state.membership.isManager {
            guard request.force else {
                throw APIError(
                    .failedPrecondition,
                    "this node is a manager: leaving can break the managers' quorum (and leaving the last manager erases the swarm). "
                        + "Demote it first (`shoal node demote`), or use --force")
            }
            if state.manager != nil, let raftID = state.membership.raftID {
                var leaveRequest = Shoal_Api_LeaveRequest()
                leaveRequest.raftID = raftID
                for address in state.membership.managers where address != state.membership.advertiseAddress {
                    if (try? await state.connections.connection(to: address).raftMembership.leave(
                        leaveRequest, options: callOptions(timeout: .seconds(3)))) != nil { break }
                }
            }
        }
        await deactivate()
        do { try files.removeAll() } catch { throw APIError(.unavailable, "left, but cannot clear the data directory: \(error)") }
        logger.info("left the swarm")
    }

    /// Where this daemon stands.
    func info() -> Shoal_Api_SwarmInfoResponse {
        var response = Shoal_Api_SwarmInfoResponse()
        response.nodeName = configuration.nodeName
        guard let state = joined else { return response }
        response.state = .active
        response.nodeID = state.membership.nodeID
        response.clusterID = state.membership.clusterID
        response.role = state.membership.isManager ? .manager : .worker
        response.managers = state.membership.managers
        response.advertiseAddr = state.membership.advertiseAddress
        return response
    }
}

/// The Swarm service on the Unix socket.
struct SwarmService: Shoal_Api_Swarm.SimpleServiceProtocol {
    let daemon: Daemon

    func initialize(request: Shoal_Api_SwarmInitRequest, context: ServerContext) async throws -> Shoal_Api_SwarmInitResponse {
        do { return try await daemon.initialize(request) } catch { throw APIError(error).rpcError }
    }

    func join(request: Shoal_Api_SwarmJoinRequest, context: ServerContext) async throws -> Shoal_Api_SwarmJoinResponse {
        do { return try await daemon.join(request) } catch { throw APIError(error).rpcError }
    }

    func leave(request: Shoal_Api_SwarmLeaveRequest, context: ServerContext) async throws -> Shoal_Api_SwarmLeaveResponse {
        do {
            try await daemon.leave(request)
            return Shoal_Api_SwarmLeaveResponse()
        } catch {
            throw APIError(error).rpcError
        }
    }

    func info(request: Shoal_Api_SwarmInfoRequest, context: ServerContext) async throws -> Shoal_Api_SwarmInfoResponse {
        await daemon.info()
    }
}
