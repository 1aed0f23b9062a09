import ArgumentParser
import ClusterAPI
import Foundation
import SwiftProtobuf

/// `shoal network …`: the swarm's overlay networks, through a manager.
struct NetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Manage overlay networks.", subcommands: [Create.self, List.self, Inspect.self, Remove.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an overlay network.")
        @OptionGroup var daemon: DaemonAddress
        @Option(name: [.customShort("d"), .long], help: "Driver: overlay.")
        var driver = "overlay"
        @Option(help: "Subnet in CIDR form (default: the next free /24 of 10.0.0.0/8).")
        var subnet: String?
        @Option(help: "Gateway address inside the subnet (default: its first address).")
        var gateway: String?
        @Option(name: [.customShort("o"), .long], parsing: .singleValue, help: "Driver option: encrypted.")
        var opt: [String] = []
        @Option(parsing: .singleValue, help: "A label (key=value).")
        var label: [String] = []
        @Flag(help: "Make it the swarm's routing-mesh network (there is one).")
        var ingress = false
        @Argument(help: "The network's name.")
        var name: String

        func run() async throws {
            try await reportingFailures {
                var request = Shoal_Api_CreateNetworkRequest()
                request.spec.annotations.name = name
                request.spec.annotations.labels = try KeyValueText.pairs(label, flag: "--label")
                request.spec.driver = driver
                request.spec.subnet = subnet ?? ""
                request.spec.gateway = gateway ?? ""
                request.spec.ingress = ingress
                for option in opt {
                    switch option {
                    case "encrypted", "encrypted=true": request.spec.encrypted = true
                    case "encrypted=false": request.spec.encrypted = false
                    default: throw CLIFailure("unknown network option \(option): the overlay driver takes encrypted")
                    }
                }
                let network = try await daemon.call { try await $0.control.createNetwork(request, options: cliCallOptions).network }
                print(network.id)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the networks.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(name: .shortAndLong, help: "Only IDs.")
        var quiet = false
        @Flag(help: "Do not truncate IDs.")
        var noTrunc = false
        @OptionGroup var output: ListFormat

        func run() async throws {
            try await reportingFailures {
                let networks = try await daemon.call { try await $0.control.listNetworks(.init(), options: cliCallOptions).networks }
                    .sorted { $0.spec.annotations.name < $1.spec.annotations.name }
                if quiet {
                    for network in networks { print(noTrunc ? network.id : ShortID.of(network.id)) }
                    return
                }
                output.emit(
                    header: ["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "VNI"],
                    fields: ["ID", "Name", "Driver", "Scope", "Subnet", "VNI"],
                    rows: networks.map { network in
                        [noTrunc ? network.id : ShortID.of(network.id), network.spec.annotations.name, network.spec.driver, "swarm",
                         network.subnet, network.vni == 0 ? "" : "\(network.vni)"]
                    })
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show networks in full, as JSON.")
        @OptionGroup var daemon: DaemonAddress
        @Argument(help: "Network names, IDs or ID prefixes.")
        var networks: [String]

        func run() async throws {
            try await reportingFailures {
                let found = try await daemon.call { connection in
                    var found: [Shoal_Api_Network] = []
                    for reference in networks {
                        var request = Shoal_Api_GetNetworkRequest()
                        request.networkID = reference
                        found.append(try await connection.control.getNetwork(request, options: cliCallOptions).network)
                    }
                    return found
                }
                print(try JSONArrayText.of(found))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove networks.")
        @OptionGroup var daemon: DaemonAddress
        @Argument(help: "Network names, IDs or ID prefixes.")
        var networks: [String]

        func run() async throws {
            try await reportingFailures {
                try await daemon.call { connection in
                    for reference in networks {
                        var request = Shoal_Api_RemoveNetworkRequest()
                        request.networkID = reference
                        _ = try await connection.control.removeNetwork(request, options: cliCallOptions)
                        print(reference)
                    }
                }
            }
        }
    }
}

/// Docker's short IDs: the first 12 characters.
enum ShortID {
    static func of(_ id: String) -> String { String(id.prefix(12)) }
}

/// `key=value` flags (`--label`, `--env`), one parser for all.
enum KeyValueText {
    /// The pairs of `values`; a value without `=` has an empty value.
    static func pairs(_ values: [String], flag: String) throws -> [String: String] {
        var pairs: [String: String] = [:]
        for value in values {
            let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty else { throw CLIFailure("invalid \(flag) \"\(value)\": give it as key=value") }
            pairs[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return pairs
    }
}

/// Objects printed as `inspect` does: an indented JSON array, fields in lowerCamelCase.
enum JSONArrayText {
    static func of(_ messages: [some SwiftProtobuf.Message]) throws -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = false
        let objects = try messages.map { try JSONSerialization.jsonObject(with: $0.jsonUTF8Data(options: options)) }
        let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
