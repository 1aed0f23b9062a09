import ArgumentParser
import Foundation
import Gossip
import HostNet
import Logging
import NIOCore
import NIOPosix

/// `shoal gossip`: the membership and table layer on 7946.
struct GossipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gossip", abstract: "SWIM/Lifeguard membership and network-scoped tables (port 7946).",
        subcommands: [
            GossipServe.self, GossipMembers.self, GossipEntries.self, GossipPut.self, GossipDelete.self, GossipJoin.self,
            GossipJoinNetwork.self, GossipLeaveNetwork.self, GossipStats.self, GossipEvents.self, GossipKey.self,
            GossipLeave.self, GossipSimulate.self,
        ])
}

/// Where a client command finds the daemon.
struct GossipControlOptions: ParsableArguments {
    @Option(help: "The daemon's control socket.") var control = "/run/shoal/gossip.sock"

    func send(_ request: GossipControlRequest, timeout: Double = 10) throws -> GossipControlResponse {
        let response: GossipControlResponse = try ControlChannel.exchange(request, to: control, timeout: timeout)
        guard response.ok else { throw ValidationError(response.error ?? "the daemon refused the request") }
        return response
    }
}

struct GossipServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run a gossip member on UDP and TCP (stops on SIGINT/SIGTERM; SIGTERM leaves gracefully).")

    @Option(help: "This member's unique name.") var name: String
    @Option(help: "The address to advertise and bind, a.b.c.d.") var address: String
    @Option(help: "UDP and TCP port.") var port: UInt16 = 7946
    @Option(help: "Members to join through, comma-separated a.b.c.d[:port].") var join: String?
    @Option(help: "Networks to join at start, comma-separated.") var networks: String?
    @Option(help: "Gossip keys in base64 (16, 24 or 32 bytes), comma-separated, primary first; none means plaintext.")
    var keys: String?
    @Option(help: "Directory that keeps this member's networks and entries across restarts.") var dataDir: String?
    @Option(help: "Control socket for the other `shoal gossip` commands.") var control = "/run/shoal/gossip.sock"
    @Flag(help: "Log every member change.") var verbose = false

    func run() throws {
        guard let advertised = GossipAddress(address, defaultPort: port) else { throw ValidationError("--address: not a.b.c.d: \(address)") }
        let keyring = try keys.map { try GossipKeyring(base64Keys: $0.split(separator: ",").map(String.init)) }
        var logger = Logger(label: "shoal.gossip")
        logger.logLevel = verbose ? .info : .warning
        var configuration = GossipConfiguration(
            name: name, address: GossipAddress(ipv4: advertised.ipv4, port: port),
            randomSeed: UInt64.random(in: 0...UInt64.max), startWallMicroseconds: UInt64(Date().timeIntervalSince1970 * 1_000_000))
        configuration.maximumDatagramBytes = 1_400
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The server keeps its own networks and entries in --data-dir and restores them here.
        let server = GossipServer(configuration: configuration, keyring: keyring, group: group, logger: logger, stateDirectory: dataDir)
        do {
            try server.start(bindHost: advertised.host)
        } catch let error as GossipStateFileError {
            throw ValidationError("\(error); move it away to start without it")
        }
        let initialNetworks = networks?.split(separator: ",").map(String.init) ?? []
        try server.run { engine, now in
            for network in initialNetworks where !engine.joinedNetworks.contains(network) { try engine.joinNetwork(network, now: now) }
        }.wait()
        let seeds = (join?.split(separator: ",") ?? []).compactMap { GossipAddress(String($0), defaultPort: port) }
        if !seeds.isEmpty { try server.run { engine, now in engine.join(seeds, now: now) }.wait() }
        let controlChannel = try ControlChannel.serveLines(at: control, group: group) { (request: GossipControlRequest) in
            GossipControlHandler(server: server).handle(request)
        }
        FileHandle.standardOutput.write(Data("gossip member \(name) on \(advertised.host):\(port) (\(keyring == nil ? "plaintext" : "AES-GCM")), control \(control)\n".utf8))
        if waitForTermination() == SIGTERM { try? server.leave().wait() }
        try? controlChannel.close().wait()
        try? server.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Serves the control protocol against a running server.
struct GossipControlHandler: Sendable {
    let server: GossipServer

    func handle(_ request: GossipControlRequest) -> GossipControlResponse {
        do {
            return try answer(request)
        } catch {
            return .failure("\(error)")
        }
    }

    private func answer(_ request: GossipControlRequest) throws -> GossipControlResponse {
        switch request.operation {
        case .members:
            return GossipControlResponse(ok: true, members: try server.run { engine, _ in engine.memberList }.wait())
        case .entries:
            let network = try required(request.network, "--network")
            let entries = try server.run { engine, _ in engine.entries(in: network).map { view($0.key, $0.owner, $0.value) } }.wait()
            return GossipControlResponse(ok: true, entries: entries.filter { request.table == nil || $0.table == request.table })
        case .put, .delete:
            let key = EntryKey(
                network: try required(request.network, "--network"), table: try required(request.table, "--table"),
                key: try required(request.key, "--key"))
            let value = Array((request.value ?? "").utf8)
            let isPut = request.operation == .put
            try server.run { engine, now in
                if isPut { try engine.put(key, value: value, now: now) } else { try engine.delete(key, now: now) }
            }.wait()
            try server.flushState().wait()  // acknowledged means on disk
            return .success
        case .join:
            let addresses = try request.arguments.map { text in
                guard let address = GossipAddress(text) else { throw ValidationError("not a.b.c.d[:port]: \(text)") }
                return address
            }
            try server.run { engine, now in engine.join(addresses, now: now) }.wait()
            return .success
        case .joinNetwork, .leaveNetwork:
            let network = try required(request.network, "--network")
            let joining = request.operation == .joinNetwork
            try server.run { engine, now in
                if joining { try engine.joinNetwork(network, now: now) } else { engine.leaveNetwork(network, now: now) }
            }.wait()
            try server.flushState().wait()  // acknowledged means on disk
            return .success
        case .statistics:
            let (statistics, networks) = try server.run { engine, _ in (engine.statistics, engine.joinedNetworks) }.wait()
            return GossipControlResponse(ok: true, statistics: statistics, drops: try server.dropCounters().wait(), networks: networks)
        case .events:
            let events = try server.events(after: request.after ?? 0).wait().map { sequence, event in
                switch event {
                case .member(let info):
                    return GossipEventView(sequence: sequence, kind: "member", member: info)
                case .entry(let change):
                    return GossipEventView(
                        sequence: sequence, kind: "entry", entry: view(change.key, change.owner, change.value ?? []),
                        deleted: change.value == nil)
                }
            }
            // Per (network, table) when asked: the change stream a watcher of one table reads.
            let watched = events.filter { event in
                guard let entry = event.entry else { return request.network == nil }
                return (request.network == nil || entry.network == request.network) && (request.table == nil || entry.table == request.table)
            }
            return GossipControlResponse(ok: true, events: watched)
        case .keys, .addKey, .useKey, .removeKey:
            let operation = request.operation
            let argument = request.arguments.first
            let ids = try server.updateKeyring { ring in
                switch operation {
                case .addKey: try ring.add(try GossipKeyring.decode(argument ?? ""))
                case .useKey: try ring.makePrimary(try keyID(argument))
                case .removeKey: try ring.remove(try keyID(argument))
                default: break
                }
            }.wait()
            return GossipControlResponse(ok: true, keys: ids.map(GossipKeyring.format))
        case .leave:
            try server.run { engine, now in engine.leave(now: now) }.wait()
            return .success
        }
    }
}

private func view(_ key: EntryKey, _ owner: MemberName, _ value: [UInt8]) -> GossipEntryView {
    GossipEntryView(network: key.network, table: key.table, key: key.key, owner: owner, value: String(decoding: value, as: UTF8.self))
}

private func required(_ value: String?, _ option: String) throws -> String {
    guard let value, !value.isEmpty else { throw ValidationError("\(option) is required") }
    return value
}

private func keyID(_ text: String?) throws -> UInt32 {
    guard let text, let id = UInt32(text, radix: 16) else { throw ValidationError("a key ID is eight hex digits (see `shoal gossip key list`)") }
    return id
}

struct GossipMembers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "members", abstract: "List the members and their state.")
    @OptionGroup var control: GossipControlOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let members = try control.send(GossipControlRequest(operation: .members)).members ?? []
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(members), as: UTF8.self))
            return
        }
        print("NAME".padding(toLength: 16, withPad: " ", startingAt: 0) + "ADDRESS".padding(toLength: 22, withPad: " ", startingAt: 0) + "STATUS   INCARNATION")
        for member in members {
            print(
                member.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + member.address.description.padding(toLength: 22, withPad: " ", startingAt: 0)
                    + member.status.description.padding(toLength: 9, withPad: " ", startingAt: 0) + "\(member.incarnation)")
        }
    }
}

struct GossipEntries: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "entries", abstract: "List the visible entries of a network.")
    @OptionGroup var control: GossipControlOptions
    @Option(help: "The network.") var network: String
    @Option(help: "Only this table.") var table: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let entries = try control.send(GossipControlRequest(operation: .entries, network: network, table: table)).entries ?? []
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        for entry in entries { print("\(entry.network)/\(entry.table)/\(entry.key) = \(entry.value)  (owner \(entry.owner))") }
    }
}

struct GossipPut: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Write this member's entry.")
    @OptionGroup var control: GossipControlOptions
    @Option var network: String
    @Option var table: String
    @Option var key: String
    @Option var value: String

    func run() throws {
        _ = try control.send(GossipControlRequest(operation: .put, network: network, table: table, key: key, value: value))
    }
}

struct GossipDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete this member's entry.")
    @OptionGroup var control: GossipControlOptions
    @Option var network: String
    @Option var table: String
    @Option var key: String

    func run() throws {
        _ = try control.send(GossipControlRequest(operation: .delete, network: network, table: table, key: key))
    }
}

struct GossipJoin: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "join", abstract: "Join the cluster through known members.")
    @OptionGroup var control: GossipControlOptions
    @Argument(help: "Members' addresses, a.b.c.d[:port].") var addresses: [String]

    func run() throws { _ = try control.send(GossipControlRequest(operation: .join, arguments: addresses)) }
}

struct GossipJoinNetwork: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "join-network", abstract: "Join a network (receive its entries).")
    @OptionGroup var control: GossipControlOptions
    @Argument var network: String

    func run() throws { _ = try control.send(GossipControlRequest(operation: .joinNetwork, network: network)) }
}

struct GossipLeaveNetwork: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "leave-network", abstract: "Leave a network (its entries go).")
    @OptionGroup var control: GossipControlOptions
    @Argument var network: String

    func run() throws { _ = try control.send(GossipControlRequest(operation: .leaveNetwork, network: network)) }
}

struct GossipLeave: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "leave", abstract: "Announce a graceful leave (then stop the daemon).")
    @OptionGroup var control: GossipControlOptions

    func run() throws { _ = try control.send(GossipControlRequest(operation: .leave)) }
}

struct GossipStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Counters: traffic, probes, and what was dropped.")
    @OptionGroup var control: GossipControlOptions

    func run() throws {
        let response = try control.send(GossipControlRequest(operation: .statistics))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        struct Stats: Encodable {
            var statistics: GossipStatistics?
            var drops: GossipDrops?
            var networks: [String]?
        }
        print(String(decoding: try encoder.encode(Stats(statistics: response.statistics, drops: response.drops, networks: response.networks)), as: UTF8.self))
    }
}

struct GossipEvents: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "The ordered change stream (member and entry events), as JSON lines.")
    @OptionGroup var control: GossipControlOptions
    @Option(help: "Only events after this sequence number.") var after = 0
    @Option(help: "Only entry changes of this network.") var network: String?
    @Option(help: "Only entry changes of this table.") var table: String?

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let request = GossipControlRequest(operation: .events, network: network, table: table, after: after)
        for event in try control.send(request).events ?? [] {
            print(String(decoding: try encoder.encode(event), as: UTF8.self))
        }
    }
}

struct GossipKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "The keyring: list | add BASE64 | use ID | remove ID.",
        discussion: "Rotate with no loss of membership: add the new key on every member, use it on every member, then remove the old one.")
    @OptionGroup var control: GossipControlOptions
    @Argument(help: "list, add, use or remove") var action: String
    @Argument(help: "The key (add) or its ID (use, remove).") var argument: String?

    func run() throws {
        let operation: GossipControlRequest.Operation
        switch action {
        case "list": operation = .keys
        case "add": operation = .addKey
        case "use": operation = .useKey
        case "remove": operation = .removeKey
        default: throw ValidationError("unknown key action \(action): list, add, use or remove")
        }
        let response = try control.send(GossipControlRequest(operation: operation, arguments: argument.map { [$0] } ?? []))
        for (index, id) in (response.keys ?? []).enumerated() { print(index == 0 ? "\(id) (primary)" : id) }
    }
}
