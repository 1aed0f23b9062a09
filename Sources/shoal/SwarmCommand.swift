import ArgumentParser
import ClusterAPI
import Foundation
import SwiftProtobuf

/// `shoal swarm …`: this daemon's membership.
struct SwarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm", abstract: "Manage the swarm.",
        subcommands: [Init.self, Join.self, JoinToken.self, Leave.self, Update.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Initialize a swarm with this node as its first manager.")
        @OptionGroup var daemon: DaemonAddress
        @Option(help: "Address other nodes reach this manager at (host or host:port).")
        var advertiseAddr: String = ""
        @Option(help: "Address the cluster listener binds (host:port).")
        var listenAddr: String = ""
        @Option(help: "Validity of node certificates (e.g. 2160h, at least 1m).")
        var certExpiry: String?
        @Option(help: "Heartbeat period (e.g. 5s, at least 100ms).")
        var dispatcherHeartbeat: String?
        @Flag(help: "Restart a swarm whose quorum is lost from this manager's data alone.")
        var forceNewCluster = false

        func run() async throws {
            try await reportingFailures {
                var request = Shoal_Api_SwarmInitRequest()
                request.advertiseAddr = advertiseAddr
                request.listenAddr = listenAddr
                request.forceNewCluster = forceNewCluster
                if let certExpiry { request.certExpiry = try durationFlag("--cert-expiry", certExpiry) }
                if let dispatcherHeartbeat { request.dispatcherHeartbeat = try durationFlag("--dispatcher-heartbeat", dispatcherHeartbeat) }
                let response = try await daemon.call { try await $0.swarm.initialize(request, options: cliCallOptions) }
                print("Swarm initialized: current node (\(response.nodeID)) is now a manager.")
                print("")
                print("To add a worker to this swarm, run the following command:")
                print("")
                print("    shoal swarm join --token \(response.workerToken) \(response.advertiseAddr)")
                print("")
                print("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.")
            }
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a swarm as a node and/or manager.")
        @OptionGroup var daemon: DaemonAddress
        @Option(help: "The join token (SWMTKN-1-…).")
        var token: String
        @Option(help: "Address other nodes reach this node at.")
        var advertiseAddr: String = ""
        @Option(help: "Address the cluster listener binds, for managers.")
        var listenAddr: String = ""
        @Option(help: "Availability of the node (active, pause, drain).")
        var availability: String = "active"
        @Argument(help: "A manager's host:2377.")
        var remote: String

        func run() async throws {
            try await reportingFailures {
                var request = Shoal_Api_SwarmJoinRequest()
                request.token = token
                request.remoteAddr = remote
                request.advertiseAddr = advertiseAddr
                request.listenAddr = listenAddr
                request.availability = try availabilityFlag(availability)
                let response = try await daemon.call { try await $0.swarm.join(request, options: cliCallOptions) }
                print(response.role == .manager ? "This node joined a swarm as a manager." : "This node joined a swarm as a worker.")
            }
        }
    }

    struct JoinToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "join-token", abstract: "Manage join tokens.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(help: "Rotate the token.")
        var rotate = false
        @Flag(name: .shortAndLong, help: "Only display the token.")
        var quiet = false
        @Argument(help: "worker or manager.")
        var role: String

        func validate() throws {
            guard role == "worker" || role == "manager" else { throw ValidationError("the role must be worker or manager, not \(role)") }
        }

        func run() async throws {
            try await reportingFailures {
                let (cluster, info) = try await daemon.call { connection in
                    var cluster = try await connection.control.getCluster(.init(), options: cliCallOptions).cluster
                    if rotate {
                        var update = Shoal_Api_UpdateClusterRequest()
                        update.clusterID = cluster.id
                        update.clusterVersion = cluster.meta.version
                        update.spec = cluster.spec
                        if role == "worker" { update.rotation.workerJoinToken = true } else { update.rotation.managerJoinToken = true }
                        cluster = try await connection.control.updateCluster(update, options: cliCallOptions).cluster
                    }
                    return (cluster, try await connection.swarm.info(.init(), options: cliCallOptions))
                }
                let token = role == "worker" ? cluster.rootCa.joinTokens.worker : cluster.rootCa.joinTokens.manager
                if quiet {
                    print(token)
                    return
                }
                if rotate { print("Successfully rotated \(role) join token.\n") }
                print("To add a \(role) to this swarm, run the following command:")
                print("")
                print("    shoal swarm join --token \(token) \(info.advertiseAddr)")
            }
        }
    }

    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Leave the swarm.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(name: .shortAndLong, help: "Leave even as a manager (may break quorum).")
        var force = false

        func run() async throws {
            try await reportingFailures {
                var request = Shoal_Api_SwarmLeaveRequest()
                request.force = force
                _ = try await daemon.call { try await $0.swarm.leave(request, options: cliCallOptions) }
                print("Node left the swarm.")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update the swarm's settings.")
        @OptionGroup var daemon: DaemonAddress
        @Option(help: "Validity of node certificates (e.g. 2160h, at least 1m).")
        var certExpiry: String?
        @Option(help: "Heartbeat period (e.g. 5s, at least 100ms).")
        var dispatcherHeartbeat: String?

        func run() async throws {
            try await reportingFailures {
                let certExpiry = try self.certExpiry.map { try durationFlag("--cert-expiry", $0) }
                let heartbeat = try dispatcherHeartbeat.map { try durationFlag("--dispatcher-heartbeat", $0) }
                _ = try await daemon.call { connection in
                    let cluster = try await connection.control.getCluster(.init(), options: cliCallOptions).cluster
                    var update = Shoal_Api_UpdateClusterRequest()
                    update.clusterID = cluster.id
                    update.clusterVersion = cluster.meta.version
                    update.spec = cluster.spec
                    if let certExpiry { update.spec.caConfig.nodeCertExpiry = certExpiry }
                    if let heartbeat { update.spec.dispatcher.heartbeatPeriod = heartbeat }
                    return try await connection.control.updateCluster(update, options: cliCallOptions)
                }
                print("Swarm updated.")
            }
        }
    }
}

func durationFlag(_ flag: String, _ text: String) throws -> Google_Protobuf_Duration {
    guard let seconds = DurationText.seconds(text) else { throw CLIFailure("\(flag) \(text): not a duration (e.g. 90s, 1m, 2160h)") }
    return Google_Protobuf_Duration(timeInterval: seconds)
}

func availabilityFlag(_ text: String) throws -> Shoal_Api_NodeAvailability {
    switch text {
    case "active": .active
    case "pause": .pause
    case "drain": .drain
    default: throw CLIFailure("--availability \(text): must be active, pause or drain")
    }
}
