// Mutual TLS on 2377, for both ends, from a node's DER certificate chain and key and a
// verification callback (the PKI's: which roots, which peers). Hostnames are never checked:
// a node is its certificate's CN, and every peer must present a certificate.

import GRPCNIOTransportHTTP2
import NIOCore
import NIOSSL

/// Checks a TLS peer's chain (leaf first) and completes the promise with the verdict.
public typealias PeerVerification = @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) -> Void

/// What a node presents on 2377.
public struct TLSCredentials: Sendable {
    /// Its certificate first, then intermediates, DER each.
    public var certificateChain: [[UInt8]]
    /// Its private key, DER.
    public var privateKey: [UInt8]

    /// Credentials from DER bytes.
    public init(certificateChain: [[UInt8]], privateKey: [UInt8]) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// A client's security: present these credentials; accept the server `verify` accepts
    /// (nil: accept any server, only to fetch a root CA whose digest is checked after).
    public func client(verifying verify: PeerVerification?) -> HTTP2ClientTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: certificateChain.map { .bytes($0, format: .der) }, privateKey: .bytes(privateKey, format: .der)
        ) { config in
            if let verify {
                config.serverCertificateVerification = .noHostnameVerification
                config.customVerificationCallback = verify
            } else {
                config.serverCertificateVerification = .noVerification
            }
        }
    }

    /// A server's security: present these credentials; require a client certificate that
    /// `verify` accepts.
    public func server(verifying verify: @escaping PeerVerification) -> HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: certificateChain.map { .bytes($0, format: .der) }, privateKey: .bytes(privateKey, format: .der)
        ) { config in
            config.clientCertificateVerification = .noHostnameVerification
            config.customVerificationCallback = verify
        }
    }
}
