// Raft's decoders on arbitrary bytes: the message codec (what arrives on 2377) and the WAL
// segment parser (what a damaged disk returns). Messages that decode must re-encode to the
// same value, and are then stepped into live cores (a leader and a follower) whose log
// invariants are preconditions: a crash here is a message that breaks a member.
import FuzzDriver
import Raft
import RaftHost

/// A 3-member group with member 1 leading and member 2 following, ready for hostile input.
func makeCores() -> (leader: RaftNode, follower: RaftNode) {
    let bootstrap = RaftNode.bootstrap(voters: [1, 2, 3])
    var leader = RaftNode(configuration: RaftConfiguration(id: 1, randomSeed: 1), hardState: bootstrap.hardState, entries: bootstrap.entries)
    var follower = RaftNode(configuration: RaftConfiguration(id: 2, randomSeed: 2), hardState: bootstrap.hardState, entries: bootstrap.entries)
    leader.campaign()
    for _ in 0..<3 {
        for core in [1, 2] {
            var node = core == 1 ? leader : follower
            guard node.hasReady else { continue }
            let ready = node.ready()
            node.advance(ready)
            if core == 1 { leader = node } else { follower = node }
            for message in ready.messages where message.to == (core == 1 ? 2 : 1) {
                if core == 1 { follower.step(message) } else { leader.step(message) }
            }
        }
    }
    return (leader, follower)
}

let cores = makeCores()

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let message = try? Message(decoding: bytes) {
        precondition((try? Message(decoding: message.encoded())) == message, "a message that does not round-trip")
        for var core in [cores.leader, cores.follower] {
            var addressed = message
            addressed.to = core.status.id
            core.step(addressed)
            while core.hasReady { core.advance(core.ready()) }
        }
    }
    if let (records, valid) = try? WriteAheadLog.decodeSegment(bytes) {
        precondition(valid <= size, "intact bytes beyond the input")
        var log = PersistentLog()
        for record in records { try? log.apply(record) }
    }
    return 0
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("RaftFuzz_main")
func raftFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
