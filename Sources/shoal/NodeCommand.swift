import ArgumentParser
import ClusterAPI
import Foundation
import SwiftProtobuf

/// `shoal node …`: the swarm's nodes, through a manager.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Manage swarm nodes.", subcommands: [List.self, Inspect.self, Update.self, Promote.self, Demote.self, Remove.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the nodes in the swarm.")
        @OptionGroup var daemon: DaemonAddress
        @OptionGroup var output: ListFormat
        @Flag(name: .shortAndLong, help: "Only node IDs.")
        var quiet = false

        func run() async throws {
            try await reportingFailures {
                let (nodes, selfID) = try await daemon.call { connection in
                    let nodes = try await connection.control.listNodes(.init(), options: cliCallOptions).nodes
                    return (nodes, try await connection.swarm.info(.init(), options: cliCallOptions).nodeID)
                }
                let rows = nodes.sorted { $0.spec.annotations.name < $1.spec.annotations.name }.map { NodeRow($0, selfID: selfID) }
                if quiet {
                    for row in rows { print(row.id) }
                    return
                }
                if output.isJSON {
                    for row in rows { print(row.json) }
                } else {
                    print(NodeRow.table(rows))
                }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node in full (self for this one).")
        @OptionGroup var daemon: DaemonAddress
        @Flag(help: "Human-readable output.")
        var pretty = false
        @Argument(help: "Node ID, ID prefix or hostname; `self` for this node.")
        var node: String

        func run() async throws {
            try await reportingFailures {
                let found = try await daemon.call { connection in
                    var request = Shoal_Api_GetNodeRequest()
                    request.nodeID = node == "self" ? try await connection.swarm.info(.init(), options: cliCallOptions).nodeID : node
                    return try await connection.control.getNode(request, options: cliCallOptions).node
                }
                if pretty {
                    let row = NodeRow(found, selfID: "")
                    print("ID:\t\t\t\(found.id)")
                    print("Hostname:\t\t\(row.hostname)")
                    print("Joined at:\t\t\(found.meta.createdAt.date)")
                    print("Status:")
                    print(" State:\t\t\t\(row.status)")
                    print(" Availability:\t\t\(row.availability)")
                    print(" Address:\t\t\(found.status.addr)")
                    if found.role == .manager {
                        print("Manager Status:")
                        print(" Address:\t\t\(found.managerStatus.addr)")
                        print(" Raft Status:\t\t\(found.managerStatus.reachability == .reachable ? "Reachable" : "Unreachable")")
                        print(" Leader:\t\t\(found.managerStatus.leader ? "Yes" : "No")")
                    }
                    print("Engine Version:\t\t\(found.nodeDescription.engineVersion)")
                    if !found.spec.annotations.labels.isEmpty {
                        print("Labels:")
                        for (key, value) in found.spec.annotations.labels.sorted(by: { $0.key < $1.key }) { print(" - \(key)=\(value)") }
                    }
                } else {
                    var options = JSONEncodingOptions()
                    options.preserveProtoFieldNames = false
                    print(try found.jsonString(options: options))
                }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update a node's availability and labels.")
        @OptionGroup var daemon: DaemonAddress
        @Option(help: "active, pause or drain.")
        var availability: String?
        @Option(parsing: .singleValue, help: "Add or update a label (key=value).")
        var labelAdd: [String] = []
        @Option(parsing: .singleValue, help: "Remove a label by key.")
        var labelRm: [String] = []
        @Argument(help: "Node ID, ID prefix or hostname.")
        var node: String

        func run() async throws {
            try await reportingFailures {
                let availability = try self.availability.map(availabilityFlag)
                let added = try KeyValueText.pairs(labelAdd, flag: "--label-add")
                _ = try await daemon.call { connection in
                    try await connection.changeNodeSpec(node, options: cliCallOptions) { spec in
                        if let availability { spec.availability = availability }
                        for (key, value) in added { spec.annotations.labels[key] = value }
                        for key in labelRm { spec.annotations.labels[key] = nil }
                    }
                }
                print(node)
            }
        }
    }

    /// Sets each of `nodes`' desired role (the leader does the rest) and says so in docker's words.
    static func setDesiredRole(_ role: Shoal_Api_NodeRole, of nodes: [String], through daemon: DaemonAddress, saying: (String) -> String) async throws {
        try await reportingFailures {
            for node in nodes {
                _ = try await daemon.call { connection in
                    try await connection.changeNodeSpec(node, options: cliCallOptions) { $0.desiredRole = role }
                }
                print(saying(node))
            }
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Promote nodes to managers (they join Raft once the leader writes it).")
        @OptionGroup var daemon: DaemonAddress
        @Argument(help: "Node IDs, ID prefixes or hostnames.")
        var nodes: [String]

        func run() async throws {
            try await NodeCommand.setDesiredRole(.manager, of: nodes, through: daemon) { "Node \($0) promoted to a manager in the swarm." }
        }
    }

    struct Demote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Demote managers to workers (each leaves Raft first; refused when the managers left would lose quorum).")
        @OptionGroup var daemon: DaemonAddress
        @Argument(help: "Node IDs, ID prefixes or hostnames.")
        var nodes: [String]

        func run() async throws {
            try await NodeCommand.setDesiredRole(.worker, of: nodes, through: daemon) { "Manager \($0) demoted in the swarm." }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a node from the swarm.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(name: .shortAndLong, help: "Remove even if the node is not down.")
        var force = false
        @Argument(help: "Node ID, ID prefix or hostname.")
        var node: String

        func run() async throws {
            try await reportingFailures {
                _ = try await daemon.call { connection in
                    var get = Shoal_Api_GetNodeRequest()
                    get.nodeID = node
                    var request = Shoal_Api_RemoveNodeRequest()
                    request.nodeID = try await connection.control.getNode(get, options: cliCallOptions).node.id
                    request.force = force
                    return try await connection.control.removeNode(request, options: cliCallOptions)
                }
                print(node)
            }
        }
    }
}

/// One `node ls` row, with docker's words.
struct NodeRow {
    let id, hostname, status, availability, managerStatus, engineVersion: String
    let isSelf: Bool

    init(_ node: Shoal_Api_Node, selfID: String) {
        id = node.id
        hostname = node.nodeDescription.hostname.isEmpty ? node.spec.annotations.name : node.nodeDescription.hostname
        status =
            switch node.status.state {
            case .ready: "Ready"
            case .down: "Down"
            case .disconnected: "Disconnected"
            default: "Unknown"
            }
        availability =
            switch node.spec.availability {
            case .pause: "Pause"
            case .drain: "Drain"
            default: "Active"
            }
        if node.role == .manager {
            managerStatus =
                node.managerStatus.leader ? "Leader" : node.managerStatus.reachability == .reachable ? "Reachable" : "Unreachable"
        } else {
            managerStatus = ""
        }
        engineVersion = node.nodeDescription.engineVersion
        isSelf = node.id == selfID
    }

    /// `node ls`'s table, docker's columns, ` *` after the node asked.
    static func table(_ rows: [NodeRow]) -> String {
        Table.render(
            header: ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"],
            rows: rows.map { [$0.id + ($0.isSelf ? " *" : ""), $0.hostname, $0.status, $0.availability, $0.managerStatus, $0.engineVersion] })
    }

    /// Docker's field names, one object.
    var json: String {
        ListFormat.jsonLine([
            "ID": id, "Hostname": hostname, "Status": status, "Availability": availability, "ManagerStatus": managerStatus,
            "EngineVersion": engineVersion, "Self": isSelf,
        ])
    }
}

/// Docker's tables: columns padded to the widest cell plus three spaces.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }
}
