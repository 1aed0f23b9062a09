import Logging
import NIOCore
import Raft

/// How a member's messages reach the other members. The member calls it on its own event
/// loop only: once per Ready with everything that Ready emitted (so a transport can write
/// them and flush once), and ``close()`` when it stops. The default is ``PeerTransport``, TCP
/// frames on the member's own listener (`shoal raft`); the managers carry the same messages
/// inside their gRPC server on 2377 under mutual TLS.
public protocol RaftMessageTransport: AnyObject, Sendable {
    /// Sends `messages` (one Ready's worth, any recipients); drops what cannot go now, as
    /// Raft tolerates loss.
    func send(_ messages: [Message])
    /// Stops sending and receiving: nothing reaches the member after this returns.
    func close()
}

/// What a member gives the transport it is built with.
public struct RaftTransportHooks: Sendable {
    /// The member's event loop; ``RaftMessageTransport/send(_:)`` is called on it.
    public let loop: EventLoop
    /// The member's logger.
    public let logger: Logger
    /// A member's "host:port" as the member knows it (from the membership change that added
    /// it, or the founders' flags). Call on ``loop``.
    public let addressOf: @Sendable (NodeID) -> String?
    /// Hands a message from another member to this one; callable from any thread.
    public let deliver: @Sendable (Message) -> Void
}

/// Builds a member's transport once the member exists.
public typealias RaftTransportFactory = @Sendable (RaftTransportHooks) throws -> any RaftMessageTransport
