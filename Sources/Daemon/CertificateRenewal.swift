// A node's certificate is renewed before it expires, as swarm's are: at a random point
// between 50 % and 80 % of its life (so a cluster's nodes do not all renew at once), with a new
// key each time, from whichever manager answers (the CA signs for the role the node's object
// has now). The new certificate must chain to the cluster's roots and name this node; it is
// saved before it is used; then the 2377 listener presents it at its next handshakes (NIOSSL's
// certificate reloading: the listener never restarts) and new outgoing connections carry it,
// while the connections already open go on (TLS checks a certificate at the handshake only).

import ClusterAPI
import Foundation
import GRPCCore
import PKI
import X509

extension Daemon {
    /// Renews the node's certificate on swarm's schedule until the task is cancelled; a
    /// failed renewal is tried again after a tenth of the time left (at least 1 s, at most
    /// a minute).
    func renewCertificates() async {
        var random = SystemRandomNumberGenerator()
        // Bounded by cancellation: each pass sleeps until its renewal time or its retry.
        while !Task.isCancelled {
            guard let state = joined, let leaf = state.credentials.current.certificateChain.first,
                let certificate = try? Certificate(derEncoded: leaf)
            else { return }
            let renewAt = RenewalSchedule.renewalTime(
                notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter, using: &random)
            let wait = renewAt.timeIntervalSinceNow
            if wait > 0 {
                logger.debug("certificate renewal scheduled", metadata: ["at": "\(renewAt)"])
                do { try await Task.sleep(for: .seconds(wait)) } catch { return }
            }
            do {
                try await renewCertificate()
            } catch {
                let retry = min(max(certificate.notValidAfter.timeIntervalSinceNow / 10, 1), 60)
                logger.warning("certificate renewal failed", metadata: ["error": "\(error)", "retry": "\(Int(retry)) s"])
                do { try await Task.sleep(for: .seconds(retry)) } catch { return }
            }
        }
    }

    /// Asks a manager for a new certificate for a new key, checks it, saves it, and uses it.
    func renewCertificate() async throws {
        guard let state = joined else { return }
        let key = NodeKey()
        var request = Shoal_Api_IssueNodeCertificateRequest()
        request.csr = Data(try NodeKey.encode(try key.signingRequest()))
        var managers = state.membership.managers
        if state.membership.isManager { managers.insert(state.membership.advertiseAddress, at: 0) }
        let issued = try await firstManagerAnswering(managers) { address in
            try await state.connections.connection(to: address).nodeCA
                .issueNodeCertificate(request, options: callOptions(timeout: .seconds(10)))
        }
        guard let der = issued.certificateChain.first.map(Array.init) else { throw APIError(.unavailable, "the CA returned no certificate") }
        let identity = try state.roots.identity(of: try Certificate(derEncoded: der))
        guard identity.nodeID == state.membership.nodeID, identity.clusterID == state.membership.clusterID else {
            throw APIError(.permissionDenied, "the renewed certificate names \(identity), not this node")
        }
        try files.replaceCredentials(key: try key.der, certificate: der)
        try await use(TLSCredentials(certificateChain: [der], privateKey: try key.der))
        logger.info("certificate renewed", metadata: ["role": "\(identity.role.rawValue)"])
    }

    /// `call` on each of `managers` in turn until one answers; the last failure when none does.
    func firstManagerAnswering<T: Sendable>(_ managers: [String], _ call: (String) async throws -> T) async throws -> T {
        var lastError: Error = APIError(.unavailable, "no manager is known to this node")
        for address in managers {
            do { return try await call(address) } catch { lastError = error }
        }
        throw lastError
    }

    /// Presents `credentials` from now on: at the listener's next handshakes, and on new
    /// connections to other nodes (the ones open are retired gracefully: their calls finish).
    private func use(_ credentials: TLSCredentials) async throws {
        guard let state = joined else { return }
        try state.credentials.replace(with: credentials)
        state.connections.closeAll()
    }
}
