// Join tokens in swarm's exact shape: `SWMTKN-1-<digest>-<secret>`, where the digest is the
// SHA-256 of the root CA certificate (DER) in base 36 over 50 characters, and the secret is
// 16 random bytes in base 36 over 25 characters. A joining node checks the digest against the
// CA certificate the manager shows it *before* it sends the secret, so a node tricked into
// talking to the wrong cluster gives nothing away; the manager compares secrets in constant
// time. One token admits workers, another managers.

import Crypto

/// A parsed join token.
public struct JoinToken: Hashable, Sendable, CustomStringConvertible {
    /// SHA-256 of the root CA certificate's DER bytes.
    public var caDigest: [UInt8]
    /// The 16-byte secret that proves the holder was given the token.
    public var secret: [UInt8]

    static let prefix = "SWMTKN-1-"
    static let digestCharacters = 50
    static let secretCharacters = 25
    /// Length of the secret in bytes.
    public static let secretBytes = 16

    /// A token for the CA whose certificate hashes to `caDigest`, with `secret`.
    public init(caDigest: [UInt8], secret: [UInt8]) {
        precondition(caDigest.count == SHA256.byteCount && secret.count == Self.secretBytes)
        self.caDigest = caDigest
        self.secret = secret
    }

    /// A new token with a fresh random secret for `root`.
    public static func generate(for root: RootCA) -> JoinToken {
        var generator = SystemRandomNumberGenerator()
        return JoinToken(caDigest: root.digest, secret: (0..<secretBytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// Why a text is not a join token.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case malformed

        public var description: String {
            "not a join token: expected SWMTKN-1-<50 base-36 digits>-<25 base-36 digits>; copy it again from `shoal swarm join-token worker|manager` on a manager"
        }
    }

    /// Parses `SWMTKN-1-<digest>-<secret>`.
    public init(parsing text: String) throws(ParseError) {
        guard text.hasPrefix(Self.prefix) else { throw .malformed }
        let parts = text.dropFirst(Self.prefix.count).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == Self.digestCharacters, parts[1].utf8.count == Self.secretCharacters,
            let digest = Base36.decode(parts[0], count: SHA256.byteCount),
            let secret = Base36.decode(parts[1], count: Self.secretBytes)
        else { throw .malformed }
        caDigest = digest
        self.secret = secret
    }

    public var description: String {
        Self.prefix + Base36.encode(caDigest, width: Self.digestCharacters) + "-" + Base36.encode(secret, width: Self.secretCharacters)
    }

    /// Whether the CA certificate a manager presents is the one this token was made for
    /// (checked by the joiner before it sends anything).
    public func matches(_ root: RootCA) -> Bool { constantTimeEqual(caDigest, root.digest) }

    /// Whether `other` carries the same secret, compared in constant time (by the manager).
    public func hasSameSecret(as other: JoinToken) -> Bool {
        constantTimeEqual(caDigest, other.caDigest) && constantTimeEqual(secret, other.secret)
    }
}

/// Equality that takes the same time wherever two equal-length byte strings differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
