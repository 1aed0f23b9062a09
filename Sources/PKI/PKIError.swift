// What can go wrong with certificates and keys, each with what to do about it.

/// A refused certificate, request or key.
public enum PKIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bytes that are not the DER or PEM they should be.
    case undecodable(String)
    /// A CSR whose signature does not match its own key: the requester does not hold it.
    case invalidRequest
    /// The certificate was not issued by any trusted root.
    case untrusted
    /// The certificate is outside its validity period at the time of the check.
    case expired
    /// The certificate's subject is not a node identity.
    case notANodeCertificate
    /// A validity shorter than allowed.
    case validityTooShort(seconds: Int)
    /// This CA has no private key (a node's copy of the root), so it cannot sign.
    case cannotSign
    /// The CA key given does not belong to the CA certificate.
    case keyMismatch
    /// The certificate given as the root is not a CA certificate.
    case notACertificateAuthority

    public var description: String {
        switch self {
        case .undecodable(let what): "cannot decode \(what)"
        case .invalidRequest: "the certificate request is not signed by its own key"
        case .untrusted: "the certificate was not issued by this cluster's CA"
        case .expired: "the certificate is expired or not yet valid"
        case .notANodeCertificate: "the certificate names no node (CN), role (OU) and cluster (O)"
        case .validityTooShort(let seconds): "certificate expiry \(seconds) s is below the minimum of 60 s"
        case .cannotSign: "this node holds the CA certificate but not its key: ask a manager"
        case .keyMismatch: "the CA key does not belong to the CA certificate: give the key that signed it"
        case .notACertificateAuthority: "the root certificate is not a CA certificate (basic constraints CA, path length 0)"
        }
    }
}
