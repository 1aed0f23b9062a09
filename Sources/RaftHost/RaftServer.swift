import EngineKit
import NIOCore
import Raft

/// `shoal raft serve`: a ``RaftMember`` over the key-value store, answering the JSON client
/// requests of `shoal raft put|get|status|…` that arrive on its 2377 connections.
public final class RaftServer: Sendable {
    /// How the member runs.
    public typealias Configuration = RaftMemberConfiguration

    /// The member.
    public let member: RaftMember<KeyValueStore>

    /// Opens the data directory (recovering or bootstrapping) and starts serving on `loop`.
    public init(configuration: Configuration, loop: EventLoop) throws {
        member = try RaftMember(configuration: configuration, loop: loop)
        try loop.submit { [member] in
            member.peerTransport?.onRequest = { [weak member] request, respond in
                guard let member else { return }
                RaftServer.handle(request, on: member, respond: respond)
            }
        }.wait()
    }

    /// The configuration it runs with.
    public var configuration: Configuration { member.configuration }
    /// The port actually bound.
    public var port: Int { member.port }

    /// Stops ticking and closes the sockets.
    public func stop() { member.stop() }

    private static func handle(
        _ request: ClientRequest, on member: RaftMember<KeyValueStore>, respond: @escaping (ClientResponse) -> Void
    ) {
        let id = request.id
        let me = member.configuration.id
        func answer<T>(_ future: EventLoopFuture<T>, _ success: @escaping (T) -> ClientResponse) {
            // Requests arrive on the member's loop, where its futures complete too.
            future.assumeIsolated().whenComplete { result in
                switch result {
                case .success(let value): respond(success(value))
                case .failure(let error): respond(failure(id, error, member))
                }
            }
        }
        func write(_ future: EventLoopFuture<RaftMember<KeyValueStore>.Committed>) {
            answer(future) { ClientResponse(id: id, ok: true, leader: me, index: $0.index) }
        }
        switch request.operation {
        case .put(let key, let value):
            write(member.propose(KeyValueCommand.put(key: key, value: Array(value.utf8)).encoded))
        case .delete(let key):
            write(member.propose(KeyValueCommand.delete(key: key).encoded))
        case .get(let key):
            answer(member.read { $0.values[key].map { String(decoding: $0, as: UTF8.self) } }) {
                ClientResponse(id: id, ok: true, leader: me, value: $0)
            }
        case .status:
            answer(member.status()) { ClientResponse(id: id, ok: true, leader: $0.leader, status: $0) }
        case .addLearner(let learner, let address):
            // The address travels in the change itself, so it is checked before it is
            // committed for good: every member learns it from that entry.
            guard (try? HostPort(parsing: address)) != nil else {
                respond(ClientResponse(id: id, ok: false, error: "member address '\(address)' is not HOST:PORT"))
                return
            }
            write(member.proposeMembershipChange(MembershipChange(.addLearner, node: learner, context: Array(address.utf8))))
        case .promote(let learner):
            write(member.proposeMembershipChange(MembershipChange(.addVoter, node: learner)))
        case .remove(let target):
            write(member.proposeMembershipChange(MembershipChange(.remove, node: target)))
        case .putMany(let prefix, let count, let valueBytes):
            guard count > 0, count <= 10_000_000, valueBytes >= 0, valueBytes <= 1 << 20 else {
                respond(ClientResponse(id: id, ok: false, error: "count or value size out of range"))
                return
            }
            let value = [UInt8](repeating: UInt8(ascii: "v"), count: valueBytes)
            write(member.propose(batch: (0..<count).map { KeyValueCommand.put(key: prefix + "\($0)", value: value).encoded }))
        case .transferLeadership(let target):
            answer(member.transferLeadership(to: target).flatMap { member.leader() }) {
                ClientResponse(id: id, ok: true, leader: $0.id)
            }
        }
    }

    /// The answer to a request that failed: where the leader is, or why not.
    private static func failure(_ id: UInt64, _ error: Error, _ member: RaftMember<KeyValueStore>) -> ClientResponse {
        guard let error = error as? RaftMemberError else { return ClientResponse(id: id, ok: false, error: "\(error)") }
        switch error {
        case .refused(.notLeader(let leader), let address):
            return ClientResponse(
                id: id, ok: false, error: RaftError.notLeader(leader: leader).description, leader: leader, leaderAddress: address)
        case .readAborted:
            // The leadership this member had is gone: the client asks the leader instead.
            return ClientResponse(id: id, ok: false, error: RaftError.notLeader(leader: 0).description)
        default:
            return ClientResponse(id: id, ok: false, error: error.description)
        }
    }
}
