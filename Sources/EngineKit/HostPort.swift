// The one parser of "host:port" in Shoal: listen and advertise flags, Raft peers, gossip joins,
// DNS upstreams and the CLI's endpoints all read their addresses through it, so every command
// accepts the same forms and refuses the same mistakes with the same words.

/// A host (a name, a dotted IPv4 address or an IPv6 address) and a port, as the user wrote them.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// The host without brackets: `192.0.2.11`, `::1`, `n1.example`.
    public var host: String
    /// The port, 1–65535 (0 only where a caller allows "any port").
    public var port: UInt16

    /// A host and port from their parts.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Why a text is not `host:port`.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// Nothing before the colon.
        case missingHost(String)
        /// No port, and the caller gave no default.
        case missingPort(String)
        /// The port is not a number in 1–65535.
        case invalidPort(String)
        /// An IPv6 address without brackets, or an unclosed bracket.
        case malformed(String)

        public var description: String {
            switch self {
            case .missingHost(let text): "'\(text)' has no host: write HOST:PORT, e.g. 192.0.2.11:2377"
            case .missingPort(let text): "'\(text)' has no port: write HOST:PORT, e.g. 192.0.2.11:2377"
            case .invalidPort(let text): "'\(text)' has a port outside 1-65535"
            case .malformed(let text): "'\(text)' is not HOST:PORT (IPv6 addresses go in brackets: [::1]:2377)"
            }
        }
    }

    /// Parses `host:port`, `[v6]:port`, or a bare host when `defaultPort` is given.
    /// `allowZero` accepts port 0 ("let the kernel choose"), which listeners in tests use.
    public init(parsing text: String, defaultPort: UInt16? = nil, allowZero: Bool = false) throws(ParseError) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .malformed(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.first == ":" else { throw .malformed(text) }
                portText = rest.dropFirst()
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            switch colons {
            case 0:
                host = Substring(text)
            case 1:
                let colon = text.firstIndex(of: ":")!
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            default:
                throw .malformed(text)
            }
        }
        guard !host.isEmpty else { throw .missingHost(text) }
        if let portText {
            guard let port = UInt16(portText), port > 0 || allowZero else { throw .invalidPort(text) }
            self.port = port
        } else {
            guard let defaultPort else { throw .missingPort(text) }
            self.port = defaultPort
        }
        self.host = String(host)
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
