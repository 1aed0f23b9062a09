// Which roots a node trusts, and the one check of a peer's certificate on 2377, used by the
// TLS handshake (through NIOSSL's verification callback) and by authorization after it.
// During a root rotation both roots are trusted; the set is replaced in place, so listeners
// and clients pick the change up on their next handshake without a restart.

import Foundation
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The roots this node trusts (the cluster's root, and during rotation the next one).
public final class TrustedRoots: Sendable {
    private let roots: Mutex<[RootCA]>

    /// Trusts `roots`.
    public init(_ roots: [RootCA]) {
        self.roots = Mutex(roots)
    }

    /// The roots trusted now.
    public var current: [RootCA] { roots.withLock { $0 } }

    /// Trusts `roots` from now on, instead of the previous set.
    public func replace(with roots: [RootCA]) {
        self.roots.withLock { $0 = roots }
    }

    /// The identity in `certificate` when one of the trusted roots issued it and it is valid now.
    public func identity(of certificate: Certificate, now: Date = Date()) throws(PKIError) -> NodeIdentity {
        var failure = PKIError.untrusted
        for root in current {
            do throws(PKIError) { return try root.verify(certificate, now: now) } catch { failure = error }
        }
        throw failure
    }

    /// How a TLS peer's certificate is checked.
    public enum PeerPolicy: Sendable {
        /// A node certificate from a trusted root (every client and server on 2377).
        case node
        /// As ``node``, or a joiner's self-signed certificate: a node that has no certificate
        /// yet still does mutual TLS, and authorization lets it reach only the CA.
        case nodeOrJoiner
    }

    /// NIOSSL's verification callback for `policy`: the handshake fails unless the peer's leaf
    /// passes. Hostnames are not checked: a node's name is its certificate's CN, checked by
    /// the caller where it matters.
    public func verificationCallback(
        _ policy: PeerPolicy
    ) -> @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) -> Void {
        { [self] chain, promise in
            guard let leaf = chain.first, let certificate = try? Certificate(derEncoded: leaf.toDERBytes()) else {
                return promise.succeed(.failed)
            }
            let accepted: Bool
            if (try? identity(of: certificate)) != nil {
                accepted = true
            } else if case .nodeOrJoiner = policy {
                accepted = JoinerCertificate.isJoiner(certificate)
            } else {
                accepted = false
            }
            promise.succeed(accepted ? .certificateVerified(VerificationMetadata(ValidatedCertificateChain(chain))) : .failed)
        }
    }
}

/// The self-signed certificate a node presents before it has one from the cluster, so that
/// even the join is mutual TLS (gRPC's server cannot make client certificates optional). It
/// proves nothing but that the joiner holds its key; the join token authorizes it.
public enum JoinerCertificate {
    /// The joiner certificates' common name.
    public static let commonName = "shoal-joiner"

    /// A certificate over `key`, signed by itself, valid for an hour.
    public static func make(for key: NodeKey, now: Date = Date()) throws -> Certificate {
        let name = try DistinguishedName { CommonName(commonName) }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.privateKey.publicKey,
            notValidBefore: now - 60, notValidAfter: now + 3600, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: key.privateKey)
    }

    /// Whether `certificate` is a joiner's: named so, and signed by its own key.
    public static func isJoiner(_ certificate: Certificate, now: Date = Date()) -> Bool {
        certificate.subject == certificate.issuer
            && certificate.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.commonName }
                .map(\.value.description) == [commonName]
            && certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
            && certificate.notValidBefore <= now && now <= certificate.notValidAfter
    }
}

extension Certificate {
    /// The certificate's DER bytes.
    public var derBytes: [UInt8] {
        get throws { try DERCoding.encode(self) }
    }
}
