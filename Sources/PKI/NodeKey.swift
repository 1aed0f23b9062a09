// A node's own key and the request it sends the CA: the key never leaves the node (it is
// written 0600 in the data dir); the CA sees only the CSR, signed with that key.

import Crypto
import Foundation
import SwiftASN1
import X509

/// A node's private key and a CSR over it.
public struct NodeKey: Sendable {
    /// The private key.
    public let privateKey: Certificate.PrivateKey

    /// A fresh P-256 key.
    public init() {
        privateKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
    }

    /// A key from its DER bytes (as ``der`` wrote them).
    public init(der: [UInt8]) throws(PKIError) {
        do { privateKey = try Certificate.PrivateKey(derBytes: der) } catch { throw .undecodable("node key") }
    }

    /// The key's DER bytes, to store with mode 0600.
    public var der: [UInt8] {
        get throws { try DERCoding.encode(privateKey) }
    }

    /// A CSR over this key. The subject is left to the CA, which names the node itself.
    public func signingRequest() throws -> CertificateSigningRequest {
        try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("shoal-node") }, privateKey: privateKey,
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
    }

    /// A CSR's DER bytes, as the join RPC carries them.
    public static func encode(_ request: CertificateSigningRequest) throws -> [UInt8] { try DERCoding.encode(request) }

    /// A CSR from DER bytes.
    public static func decodeRequest(_ der: [UInt8]) throws(PKIError) -> CertificateSigningRequest {
        do { return try CertificateSigningRequest(derEncoded: der) } catch { throw .undecodable("certificate request") }
    }
}

/// When a node renews its certificate: at a random point between 50 % and 80 % of its life,
/// as swarm does, so that a cluster's nodes do not all renew at once.
public enum RenewalSchedule {
    /// The time to renew a certificate valid from `notBefore` to `notAfter`.
    public static func renewalTime(notBefore: Date, notAfter: Date, using random: inout some RandomNumberGenerator) -> Date {
        let life = notAfter.timeIntervalSince(notBefore)
        return notBefore + life * Double.random(in: 0.5...0.8, using: &random)
    }
}
