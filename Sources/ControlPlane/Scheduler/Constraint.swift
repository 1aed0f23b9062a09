// Placement constraints as swarm writes them: `node.role==manager`, `node.labels.zone!=a`.
// Values compare without case, as swarmkit's do; `node.ip` also takes a subnet.

import ClusterAPI
import EngineKit
import Wire

/// One parsed `--constraint` expression.
struct Constraint: Sendable, Equatable {
    /// What part of the node it reads.
    enum Key: Sendable, Equatable {
        case id, hostname, role, ip, os, architecture
        case label(String)
    }

    let key: Key
    /// True for `==`, false for `!=`.
    let equal: Bool
    let value: String

    /// Parses `expression`, or says what is wrong with it.
    init(_ expression: String) throws(APIError) {
        let operators = ["==", "!="]
        let found = operators.compactMap { op in expression.range(of: op).map { (op, $0) } }
        guard found.count == 1, let (op, range) = found.first,
            expression[range.upperBound...].range(of: op) == nil
        else {
            throw APIError(.invalidSpec, "invalid constraint \"\(expression)\": expected one operator, == or !=", field: "placement.constraints")
        }
        let name = expression[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        let value = expression[range.upperBound...].trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty else {
            throw APIError(.invalidSpec, "invalid constraint \"\(expression)\": no value after \(op)", field: "placement.constraints")
        }
        let lowered = name.lowercased()
        switch lowered {
        case "node.id": key = .id
        case "node.hostname": key = .hostname
        case "node.role": key = .role
        case "node.ip": key = .ip
        case "node.platform.os": key = .os
        case "node.platform.arch": key = .architecture
        default:
            guard lowered.hasPrefix("node.labels."), name.count > "node.labels.".count else {
                throw APIError(
                    .invalidSpec,
                    "invalid constraint \"\(expression)\": the key must be node.id, node.hostname, node.role, node.ip, "
                        + "node.platform.os, node.platform.arch or node.labels.NAME",
                    field: "placement.constraints")
            }
            key = .label(String(name.dropFirst("node.labels.".count)))
        }
        if key == .role, !["manager", "worker"].contains(value.lowercased()) {
            throw APIError(.invalidSpec, "invalid constraint \"\(expression)\": a role is manager or worker", field: "placement.constraints")
        }
        if key == .ip, IPv4Address(value) == nil, IPv4Prefix(value) == nil {
            throw APIError(.invalidSpec, "invalid constraint \"\(expression)\": \(value) is not an IPv4 address or subnet", field: "placement.constraints")
        }
        self.equal = op == "=="
        self.value = value
    }

    /// Whether `node` satisfies the constraint.
    func matches(_ node: Shoal_Api_Node) -> Bool {
        let holds: Bool
        switch key {
        case .id: holds = node.id.caseInsensitiveEquals(value)
        case .hostname:
            holds = node.nodeDescription.hostname.caseInsensitiveEquals(value) || node.spec.annotations.name.caseInsensitiveEquals(value)
        case .role: holds = (node.role == .manager ? "manager" : "worker").caseInsensitiveEquals(value)
        case .ip:
            let address = node.underlayAddress
            if let address, let subnet = IPv4Prefix(value) {
                holds = subnet.contains(address)
            } else {
                holds = address != nil && address == IPv4Address(value)
            }
        case .os: holds = node.nodeDescription.platform.os.caseInsensitiveEquals(value)
        case .architecture: holds = node.nodeDescription.platform.architecture.caseInsensitiveEquals(value)
        case .label(let name): holds = node.spec.annotations.labels[name]?.caseInsensitiveEquals(value) ?? false
        }
        return holds == equal
    }

    /// Every expression of `placement`, parsed.
    static func all(_ placement: Shoal_Api_Placement) throws(APIError) -> [Constraint] {
        var constraints: [Constraint] = []
        for expression in placement.constraints { constraints.append(try Constraint(expression)) }
        return constraints
    }
}

extension String {
    fileprivate func caseInsensitiveEquals(_ other: String) -> Bool { lowercased() == other.lowercased() }
}

extension Shoal_Api_Node {
    /// The node's IPv4 address as it advertised it (its VTEP and its 2377 listener), if any.
    var underlayAddress: IPv4Address? {
        (try? HostPort(parsing: status.addr, defaultPort: 2377)).flatMap { IPv4Address($0.host) }
    }
}
