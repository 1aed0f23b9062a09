import Foundation
import Raft

/// What travels on port 2377: length-prefixed frames (32-bit big-endian length, set by the
/// pipeline), each starting with a channel byte. Raft messages use the core's versioned
/// binary codec; client requests and answers are JSON, small and rare next to fsync.
public enum FrameChannel: UInt8, Sendable {
    /// A ``Message`` between members.
    case raft = 1
    /// A ``ClientRequest``.
    case request = 2
    /// A ``ClientResponse``.
    case response = 3
}

/// The largest frame accepted: a snapshot chunk or an append batch, with room to spare.
public let maximumFrameBytes = 8 << 20

/// A request from a client (the CLI, the load generator) to a member.
public struct ClientRequest: Codable, Sendable {
    /// What is asked.
    public enum Operation: Codable, Sendable {
        /// Set a key (committed through the log).
        case put(key: String, value: String)
        /// Delete a key.
        case delete(key: String)
        /// Read a key linearizably (ReadIndex).
        case get(key: String)
        /// Describe the member.
        case status
        /// Record a member's address, then add it as a learner.
        case addLearner(id: NodeID, address: String)
        /// Promote a learner to voter.
        case promote(id: NodeID)
        /// Remove a member.
        case remove(id: NodeID)
        /// Hand leadership to a voter.
        case transferLeadership(to: NodeID)
        /// Propose `count` puts of keys `prefix0…` at once (answered when the last commits):
        /// fills a log quickly for catch-up tests and benchmarks.
        case putMany(prefix: String, count: Int, valueBytes: Int)
    }

    /// Matches the response to the request on a connection with many in flight.
    public var id: UInt64
    /// The operation.
    public var operation: Operation

    /// Creates a request.
    public init(id: UInt64, operation: Operation) {
        self.id = id
        self.operation = operation
    }
}

/// A member's answer.
public struct ClientResponse: Codable, Sendable {
    /// The request answered.
    public var id: UInt64
    /// Whether it was done.
    public var ok: Bool
    /// Why not, when not.
    public var error: String?
    /// The leader to ask instead (0: unknown), with its address when known.
    public var leader: NodeID
    public var leaderAddress: String?
    /// The value read (`get`), nil when absent.
    public var value: String?
    /// The log index a write committed at.
    public var index: LogIndex?
    /// For `status`.
    public var status: RaftMemberStatus?

    /// Creates a response.
    public init(
        id: UInt64, ok: Bool, error: String? = nil, leader: NodeID = 0, leaderAddress: String? = nil,
        value: String? = nil, index: LogIndex? = nil, status: RaftMemberStatus? = nil
    ) {
        self.id = id
        self.ok = ok
        self.error = error
        self.leader = leader
        self.leaderAddress = leaderAddress
        self.value = value
        self.index = index
        self.status = status
    }
}

/// One member's state as `shoal raft status` shows it.
public struct RaftMemberStatus: Codable, Sendable {
    public var id: NodeID
    public var role: String
    public var term: Term
    public var leader: NodeID
    public var commit: LogIndex
    public var applied: LogIndex
    public var lastIndex: LogIndex
    public var snapshotIndex: LogIndex
    public var voters: [NodeID]
    public var learners: [NodeID]
    /// On a leader: each follower's matched index.
    public var matched: [String: LogIndex]
    /// Frames dropped because they did not decode.
    public var rejectedFrames: Int
    /// Snapshot chunks received from leaders, and snapshots installed from them.
    public var snapshotChunksReceived: Int
    public var snapshotsInstalled: Int
}

enum JSONCoding {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? JSONEncoder().encode(value)).map { Array($0) } ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
