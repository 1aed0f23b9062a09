import Crypto
import Foundation
import PKI
import Testing
import X509

/// The cluster's trust: a root that signs node certificates naming node, role and cluster;
/// join tokens in swarm's shape that a joiner checks before it gives its secret away.
@Suite struct PKITests {
    @Test func aRootSignsNodeCertificatesThatNameNodeRoleAndCluster() throws {
        let root = try RootCA.create()
        #expect(root.certificate.subject.description.contains("shoal-ca"))
        #expect(root.certificate.notValidAfter.timeIntervalSince(root.certificate.notValidBefore) > 19 * 365 * 24 * 3600)
        let key = NodeKey()
        let request = try NodeKey.decodeRequest(try NodeKey.encode(try key.signingRequest()))
        let identity = NodeIdentity(nodeID: "n4f2k", role: .worker, clusterID: "c9x")
        let certificate = try root.issue(request, for: identity, validity: 90 * 24 * 3600)
        #expect(try root.verify(certificate) == identity)
        #expect(certificate.publicKey == key.privateKey.publicKey)
        // Ninety days, less the minute of skew allowance.
        let life = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        #expect(abs(life - (90 * 24 * 3600 + 60)) < 2)
        #expect(throws: PKIError.expired) { try root.verify(certificate, now: Date() + 91 * 24 * 3600) }
        // A one-minute certificate (tests) is backdated by a tenth of its life, not a minute.
        let short = try root.issue(request, for: identity, validity: 60)
        #expect(abs(short.notValidAfter.timeIntervalSince(short.notValidBefore) - 66) < 2)
    }

    @Test func anotherRootsCertificateAndAForgedRequestAreRefused() throws {
        let root = try RootCA.create()
        let other = try RootCA.create()
        let identity = NodeIdentity(nodeID: "n1", role: .manager, clusterID: "c1")
        let foreign = try other.issue(try NodeKey().signingRequest(), for: identity, validity: 3600)
        #expect(throws: PKIError.untrusted) { try root.verify(foreign) }
        #expect(throws: PKIError.validityTooShort(seconds: 59)) {
            try root.issue(try NodeKey().signingRequest(), for: identity, validity: 59)
        }
        // A node that holds only the root certificate cannot sign.
        let verifierOnly = try RootCA(certificateDER: root.der)
        #expect(throws: PKIError.cannotSign) { try verifierOnly.issue(try NodeKey().signingRequest(), for: identity, validity: 3600) }
        #expect(throws: PKIError.self) { try RootCA(certificateDER: [0x30, 0x03, 0x01, 0x01]) }
        // Another root's key, and a node certificate given as the root, are refused.
        #expect(throws: PKIError.keyMismatch) { try RootCA(certificateDER: root.der, keyDER: other.keyDER) }
        #expect(throws: PKIError.notACertificateAuthority) { try RootCA(certificateDER: try foreign.serializeAsPEM().derBytes) }
    }

    @Test func theRootAndNodeKeysSurviveTheirBytes() throws {
        let root = try RootCA.create()
        let restored = try RootCA(certificateDER: root.der, keyDER: root.keyDER)
        #expect(restored.digest == root.digest)
        let certificate = try restored.issue(
            try NodeKey().signingRequest(), for: NodeIdentity(nodeID: "n2", role: .worker, clusterID: "c"), validity: 600)
        #expect(try root.verify(certificate).nodeID == "n2")
        let key = NodeKey()
        #expect(try NodeKey(der: try key.der).privateKey.publicKey == key.privateKey.publicKey)
    }

    @Test func joinTokensHaveSwarmsShapeAndRoundTrip() throws {
        let root = try RootCA.create()
        let token = JoinToken.generate(for: root)
        let text = token.description
        let parts = text.split(separator: "-")
        #expect(parts.count == 4 && parts[0] == "SWMTKN" && parts[1] == "1")
        #expect(parts[2].count == 50 && parts[3].count == 25)
        #expect(parts[2].allSatisfy { $0.isNumber || ("a"..."z").contains($0) })
        let parsed = try JoinToken(parsing: text)
        #expect(parsed == token && parsed.matches(root) && parsed.hasSameSecret(as: token))
        #expect(!parsed.matches(try RootCA.create()))
        #expect(!JoinToken.generate(for: root).hasSameSecret(as: token))
        // Extremes of both halves survive base 36.
        let zeros = JoinToken(caDigest: Array(repeating: 0, count: 32), secret: Array(repeating: 0, count: 16))
        let ones = JoinToken(caDigest: Array(repeating: 0xFF, count: 32), secret: Array(repeating: 0xFF, count: 16))
        #expect(try JoinToken(parsing: zeros.description) == zeros)
        #expect(try JoinToken(parsing: ones.description) == ones)
    }

    @Test func malformedTokensAreRefusedWithTheWayOut() {
        let good = JoinToken(caDigest: Array(repeating: 7, count: 32), secret: Array(repeating: 9, count: 16)).description
        for bad in ["", "SWMTKN-1-", "SWMTKN-2-" + good.dropFirst(9), String(good.dropLast()), good + "0",
            good.replacingOccurrences(of: "-", with: "_"), String(good.prefix(9)) + String(repeating: "z", count: 50) + "-" + good.suffix(25),
            good.uppercased()]
        {
            #expect(throws: JoinToken.ParseError.malformed, "\(bad)") { try JoinToken(parsing: bad) }
        }
        #expect(JoinToken.ParseError.malformed.description.contains("shoal swarm join-token"))
    }

    @Test func renewalFallsBetweenHalfAndFourFifthsOfTheLife() {
        var random = SystemRandomNumberGenerator()
        let start = Date(timeIntervalSince1970: 1_000_000)
        let end = start + 1_000
        for _ in 0..<200 {
            let renewal = RenewalSchedule.renewalTime(notBefore: start, notAfter: end, using: &random)
            #expect(renewal >= start + 500 && renewal <= start + 800)
        }
    }

    /// OpenSSL, an independent verifier, accepts the chain for both TLS purposes and reads the
    /// subject as the CA wrote it (skipped where the openssl tool is missing).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func openSSLVerifiesTheChainForClientAndServer() throws {
        let root = try RootCA.create()
        let identity = NodeIdentity(nodeID: "n7", role: .manager, clusterID: "c42")
        let certificate = try root.issue(try NodeKey().signingRequest(), for: identity, validity: 3600)
        let directory = NSTemporaryDirectory() + "shoal-pki-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try root.certificate.serializeAsPEM().pemString.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        try certificate.serializeAsPEM().pemString.write(toFile: directory + "/node.pem", atomically: true, encoding: .utf8)
        for purpose in ["sslclient", "sslserver"] {
            let (status, output) = try run("/usr/bin/openssl", ["verify", "-purpose", purpose, "-CAfile", directory + "/ca.pem", directory + "/node.pem"])
            #expect(status == 0 && output.contains("OK"), "\(purpose): \(output)")
        }
        let (_, subject) = try run("/usr/bin/openssl", ["x509", "-noout", "-subject", "-in", directory + "/node.pem"])
        #expect(subject.contains("O = c42") && subject.contains("OU = shoal-manager") && subject.contains("CN = n7"), "\(subject)")
    }

    private func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
