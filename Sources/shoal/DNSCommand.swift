import ArgumentParser
import Dispatch
import EngineKit
import Foundation
import HostNet
import Logging
import NIOCore
import NIOPosix
import ServiceDNS
import Wire

/// `shoal dns serve`: the service-discovery DNS server on its own, from a record file — for
/// the demo and the benchmarks until the agent feeds it from the cluster.
struct DNSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns", abstract: "Run the service-discovery DNS server.", subcommands: [Serve.self])

    /// The record file: records (as the agent will hand them), listeners, upstreams.
    struct Configuration: Codable {
        struct ListenerConfiguration: Codable {
            var address: IPv4Address
            var port: UInt16?
            /// The network namespace to bind in (a task's); the caller's when absent.
            var namespace: String?
            /// Whose view of the records this listener serves.
            var sandbox: String
        }

        var networks: [String: [ServiceRecord]]
        var sandboxes: [String: [String]]
        var listeners: [ListenerConfiguration]
        /// `address:port` of upstream resolvers; the host's /etc/resolv.conf when absent.
        var upstreams: [String]?

        var records: DNSRecords { DNSRecords(networks: networks, sandboxes: sandboxes) }

        static func load(_ path: String) throws -> Configuration {
            do {
                return try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw ValidationError("\(path) is not a valid DNS configuration: \(OverlayConfiguration.describe(error))")
            }
        }
    }

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve DNS from a record file until stopped (SIGHUP reloads the records).")

        @Option(help: "The JSON record file: networks, sandboxes, listeners, optional upstreams.")
        var config: String

        func run() throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let logger = Logger(label: "shoal.dns.daemon")
            let configuration = try Configuration.load(config)
            let store: RecordStore
            do { store = try RecordStore(configuration.records) } catch { throw ValidationError("\(config): \(error)") }
            let upstreams = try configuration.upstreams.map { try $0.map(Self.parseUpstream) } ?? DNSForwarder.upstreams(fromResolvConf: "/etc/resolv.conf")
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let forwarder = try DNSForwarder(upstreams: upstreams, group: group)
            let server = DNSServer(resolver: DNSResolver(store: store), forwarder: forwarder, group: group)
            for listener in configuration.listeners {
                if listener.namespace != nil || listener.port ?? 53 < 1024 { try requireRoot() }
                let bound = try server.listen(
                    on: listener.address, port: listener.port ?? 53, namespace: listener.namespace.map(NetworkNamespace.init(named:)),
                    sandbox: listener.sandbox)
                print("serving \(listener.sandbox) on \(bound.address):\(bound.port)\(listener.namespace.map { " in \($0)" } ?? "")")
            }
            let configPath = config
            waitForTermination {
                do {
                    try store.replace(with: try Configuration.load(configPath).records)
                    logger.info("reloaded records")
                } catch {
                    logger.error("records not reloaded", metadata: ["error": "\(error)"])
                }
            }
            forwarder.close()
            try? group.syncShutdownGracefully()
        }

        static func parseUpstream(_ text: String) throws -> SocketAddress {
            do {
                let parsed = try HostPort(parsing: text, defaultPort: 53)
                return try SocketAddress(ipAddress: parsed.host, port: Int(parsed.port))
            } catch {
                throw ValidationError("upstream '\(text)' is not ADDRESS[:PORT]: \(error)")
            }
        }
    }
}
