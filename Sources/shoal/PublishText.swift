import ClusterAPI

/// `--publish` as docker writes it: the long form `published=8080,target=80,protocol=udp,
/// mode=host` (`published` optional: the swarm picks one in 30000-32767) or the short form
/// `8080:80`, `8080:80/udp`, `80` (a target only). Shoal adds `proxy-protocol=v2` to the long
/// form: the routing mesh then tells the task each client's address in a PROXY v2 header.
enum PublishText {
    static func port(_ text: String) throws -> Shoal_Api_PortConfig {
        var port = Shoal_Api_PortConfig()
        func number(_ value: Substring, _ what: String) throws -> UInt32 {
            guard let number = UInt32(value), (1...65535).contains(number) else {
                throw CLIFailure("invalid --publish \(text): \(what) port \(value) is not 1 to 65535")
            }
            return number
        }
        if text.contains("=") {
            for field in text.split(separator: ",") {
                let pair = field.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { throw CLIFailure("invalid --publish \(text): \(field) is not KEY=VALUE") }
                switch pair[0] {
                case "published": port.publishedPort = try number(pair[1], "published")
                case "target": port.targetPort = try number(pair[1], "target")
                case "protocol": port.protocol = try protocolNumber(pair[1], text)
                case "mode":
                    switch pair[1] {
                    case "ingress": port.publishMode = .ingress
                    case "host": port.publishMode = .host
                    default: throw CLIFailure("invalid --publish \(text): mode is ingress or host")
                    }
                case "proxy-protocol":
                    guard pair[1] == "v2" else { throw CLIFailure("invalid --publish \(text): proxy-protocol is v2") }
                    port.proxyProtocol = true
                default:
                    throw CLIFailure("invalid --publish \(text): unknown field \(pair[0]) (published, target, protocol, mode, proxy-protocol)")
                }
            }
            guard port.targetPort != 0 else { throw CLIFailure("invalid --publish \(text): target is required") }
            return port
        }
        let halves = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let ports = halves[0]
        port.protocol = try protocolNumber(halves.count > 1 ? halves[1] : "tcp", text)
        let numbers = ports.split(separator: ":", omittingEmptySubsequences: false)
        switch numbers.count {
        case 1: port.targetPort = try number(numbers[0], "target")
        case 2:
            port.publishedPort = try number(numbers[0], "published")
            port.targetPort = try number(numbers[1], "target")
        default: throw CLIFailure("invalid --publish \(text): use PUBLISHED:TARGET[/PROTOCOL] or published=…,target=…")
        }
        return port
    }

    private static func protocolNumber(_ text: Substring, _ whole: String) throws -> Shoal_Api_PortProtocol {
        switch text {
        case "tcp": return .tcp
        case "udp": return .udp
        default: throw CLIFailure("invalid --publish \(whole): protocol is tcp or udp")
        }
    }
}
