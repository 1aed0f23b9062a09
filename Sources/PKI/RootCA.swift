// The cluster's root certificate authority (after swarmkit's ca/): made at `swarm init`
// (ECDSA P-256, CN shoal-ca, 20 years), it signs every node certificate. Managers hold its key;
// every node holds its certificate, whose SHA-256 is the digest in the join tokens.

import Crypto
import Foundation
import SwiftASN1
import X509

/// A root CA: its certificate, and its key where this node may sign.
public struct RootCA: Sendable {
    /// The self-signed root certificate.
    public let certificate: Certificate
    /// Its private key; nil on a node that only verifies.
    public let privateKey: Certificate.PrivateKey?
    /// The certificate's DER bytes.
    public let der: [UInt8]
    /// SHA-256 of ``der``: what join tokens name.
    public var digest: [UInt8] { Array(SHA256.hash(data: der)) }

    /// Default life of a root: 20 years, as swarm's.
    public static let defaultValidity: TimeInterval = 20 * 365 * 24 * 3600
    /// The root's common name.
    public static let commonName = "shoal-ca"

    /// A new root with a fresh P-256 key, valid from a minute before `now` (clock skew).
    public static func create(now: Date = Date(), validity: TimeInterval = defaultValidity) throws -> RootCA {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName { CommonName(commonName) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now - 60, notValidAfter: now + validity, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        return try RootCA(certificate: certificate, privateKey: key)
    }

    /// A root from its certificate (and key, on managers).
    public init(certificate: Certificate, privateKey: Certificate.PrivateKey?) throws(PKIError) {
        // A key that is not the certificate's would sign certificates no node accepts.
        if let privateKey, privateKey.publicKey != certificate.publicKey { throw .keyMismatch }
        guard (try? certificate.extensions.basicConstraints) == .isCertificateAuthority(maxPathLength: 0) else {
            throw .notACertificateAuthority
        }
        self.certificate = certificate
        self.privateKey = privateKey
        do { der = try DERCoding.encode(certificate) } catch { throw .undecodable("CA certificate") }
    }

    /// A root from DER bytes of its certificate and, optionally, of its PKCS#8/SEC1 key.
    public init(certificateDER: [UInt8], keyDER: [UInt8]? = nil) throws(PKIError) {
        let certificate = try DERCoding.certificate(certificateDER)
        var key: Certificate.PrivateKey?
        if let keyDER {
            do { key = try Certificate.PrivateKey(derBytes: keyDER) } catch { throw .undecodable("CA key") }
        }
        try self.init(certificate: certificate, privateKey: key)
    }

    /// The key's DER bytes (to store 0600), or nil when this root has none.
    public var keyDER: [UInt8]? { privateKey.flatMap { try? DERCoding.encode($0) } }

    /// Signs a node certificate for `identity` over the key in `request`, valid for
    /// `validity` from a little before `now` (a tenth of it, at most a minute: clocks differ
    /// between nodes, and the renewal schedule counts the life from notBefore). The request
    /// must be signed by its own key.
    public func issue(
        _ request: CertificateSigningRequest, for identity: NodeIdentity, validity: TimeInterval, now: Date = Date()
    ) throws(PKIError) -> Certificate {
        guard let privateKey else { throw .cannotSign }
        guard validity >= 60 else { throw .validityTooShort(seconds: Int(validity)) }
        guard request.publicKey.isValidSignature(request.signature, for: request) else { throw .invalidRequest }
        do {
            return try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: request.publicKey,
                notValidBefore: now - min(60, validity / 10), notValidAfter: now + validity, issuer: certificate.subject,
                subject: try identity.subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectAlternativeNames([.dnsName(identity.nodeID), .dnsName(identity.role.rawValue)])
                    AuthorityKeyIdentifier(keyIdentifier: try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
                },
                issuerPrivateKey: privateKey)
        } catch {
            throw .undecodable("certificate for \(identity): \(error)")
        }
    }

    /// The identity in `certificate` when this root signed it and it is valid at `now`.
    public func verify(_ certificate: Certificate, now: Date = Date()) throws(PKIError) -> NodeIdentity {
        guard certificate.issuer == self.certificate.subject,
            self.certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
        else { throw .untrusted }
        guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else { throw .expired }
        guard let identity = NodeIdentity(certificate) else { throw .notANodeCertificate }
        return identity
    }
}

/// DER in and out for certificates and keys, with the package's errors turned into ours.
enum DERCoding {
    static func encode(_ value: some DERSerializable) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(value)
        return serializer.serializedBytes
    }

    static func encode(_ key: Certificate.PrivateKey) throws -> [UInt8] {
        let document = try key.serializeAsPEM()
        return document.derBytes
    }

    static func certificate(_ der: [UInt8]) throws(PKIError) -> Certificate {
        do { return try Certificate(derEncoded: der) } catch { throw .undecodable("certificate") }
    }
}
