// Mutual TLS on 2377, for both ends, from a node's DER certificate chain and key and a
// verification callback (the PKI's: which roots, which peers). Hostnames are never checked:
// a node is its certificate's CN, and every peer must present a certificate.

import GRPCNIOTransportHTTP2
import NIOCertificateReloading
import NIOCore
import NIOSSL
import Synchronization

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

    /// A server's security: present these credentials (or, with `reloading`, whatever it holds
    /// at each handshake); require a client certificate that `verify` accepts.
    public func server(
        verifying verify: @escaping PeerVerification, reloading: ReloadableCredentials? = nil
    ) -> HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: certificateChain.map { .bytes($0, format: .der) }, privateKey: .bytes(privateKey, format: .der)
        ) { config in
            config.clientCertificateVerification = .noHostnameVerification
            config.customVerificationCallback = verify
            config.certificateReloader = reloading
        }
    }
}

/// A node's credentials that change when its certificate is renewed: a listener built with
/// them presents the current ones at each new handshake (NIOSSL's certificate reloading, so
/// the listener never restarts), and new client connections take ``current``.
public final class ReloadableCredentials: CertificateReloader, Sendable {
    private let state: Mutex<(credentials: TLSCredentials, override: NIOSSLContextConfigurationOverride)>

    /// Starts with `credentials`; throws when they do not decode.
    public init(_ credentials: TLSCredentials) throws {
        state = Mutex((credentials, try Self.override(credentials)))
    }

    /// The credentials to present from now on.
    public var current: TLSCredentials { state.withLock { $0.credentials } }

    /// Replaces them (a renewed certificate); throws, changing nothing, when they do not decode.
    public func replace(with credentials: TLSCredentials) throws {
        let override = try Self.override(credentials)
        state.withLock { $0 = (credentials, override) }
    }

    public var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride { state.withLock { $0.override } }

    private static func override(_ credentials: TLSCredentials) throws -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = try credentials.certificateChain.map { .certificate(try NIOSSLCertificate(bytes: $0, format: .der)) }
        override.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: credentials.privateKey, format: .der))
        return override
    }
}
