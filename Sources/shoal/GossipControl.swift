import Foundation
import Gossip

/// The JSON-line protocol between `shoal gossip …` commands and a running `shoal gossip serve`.
struct GossipControlRequest: Codable, Sendable {
    enum Operation: String, Codable, Sendable {
        case members, entries, put, delete, join, joinNetwork, leaveNetwork, statistics, events, keys, addKey, useKey, removeKey, leave
    }

    var operation: Operation
    var network: String?
    var table: String?
    var key: String?
    var value: String?
    /// `join`: addresses; `addKey`: the base64 key; `useKey`/`removeKey`: the key ID in hex.
    var arguments: [String] = []
    /// `events`: the last sequence number already seen.
    var after: Int?
}

/// A visible entry, as the CLI prints it.
struct GossipEntryView: Codable, Sendable {
    var network: String
    var table: String
    var key: String
    var owner: String
    var value: String
}

/// One event of the ordered change stream.
struct GossipEventView: Codable, Sendable {
    var sequence: Int
    var kind: String
    var member: MemberInfo?
    var entry: GossipEntryView?
    var deleted: Bool?
}

/// The daemon's answer.
struct GossipControlResponse: ControlAnswer {
    var ok: Bool
    var error: String?
    var members: [MemberInfo]?
    var entries: [GossipEntryView]?
    var events: [GossipEventView]?
    var statistics: GossipStatistics?
    var drops: GossipDrops?
    var networks: [String]?
    var keys: [String]?

    static func failure(_ message: String) -> GossipControlResponse { GossipControlResponse(ok: false, error: message) }
    static var success: GossipControlResponse { GossipControlResponse(ok: true) }
}
