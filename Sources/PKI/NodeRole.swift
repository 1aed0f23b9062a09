// Who a certificate says its holder is: the node ID (CN), its role (OU) and its cluster (O).
// Authorization on 2377 reads only this: a worker's certificate can call neither the
// managers' API nor take part in Raft.

import X509

/// The role a node certificate grants.
public enum CertificateRole: String, Sendable, Hashable, CaseIterable {
    /// A manager: Raft member, control API, CA.
    case manager = "shoal-manager"
    /// A worker: dispatcher sessions only.
    case worker = "shoal-worker"
}

/// The identity a node certificate carries.
public struct NodeIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The node's ID (the certificate's CN).
    public var nodeID: String
    /// Its role (the OU).
    public var role: CertificateRole
    /// The cluster that issued it (the O).
    public var clusterID: String

    /// An identity.
    public init(nodeID: String, role: CertificateRole, clusterID: String) {
        self.nodeID = nodeID
        self.role = role
        self.clusterID = clusterID
    }

    /// The identity in `certificate`'s subject; nil when it is not a node certificate.
    public init?(_ certificate: Certificate) {
        var commonName: String?
        var unit: String?
        var organization: String?
        for relative in certificate.subject {
            for attribute in relative {
                switch attribute.type {
                case .RDNAttributeType.commonName: commonName = attribute.value.description
                case .RDNAttributeType.organizationalUnitName: unit = attribute.value.description
                case .RDNAttributeType.organizationName: organization = attribute.value.description
                default: break
                }
            }
        }
        guard let commonName, !commonName.isEmpty, let unit, let role = CertificateRole(rawValue: unit), let organization
        else { return nil }
        self.init(nodeID: commonName, role: role, clusterID: organization)
    }

    /// The subject a certificate for this identity carries.
    var subject: DistinguishedName {
        get throws {
            try DistinguishedName {
                OrganizationName(clusterID)
                OrganizationalUnitName(role.rawValue)
                CommonName(nodeID)
            }
        }
    }

    public var description: String { "\(nodeID) (\(role.rawValue) of \(clusterID))" }
}
