// Gossip's parsers on arbitrary bytes: the envelope (what arrives on 7946, plaintext or
// sealed), the packet decoder, and a live engine that receives whatever decodes — as a
// datagram or as a stream frame. Decoded packets must re-encode to the same messages; the
// engine's invariants are preconditions, so a crash here is a packet that breaks a member.
//
// Input: byte 0 chooses the path (bit 0: stream, bit 1: wrapped in a plaintext envelope,
// bit 2: sealed envelope under the fuzzer's key), the rest is the payload.
import FuzzDriver
import Gossip

let keyring = try! GossipKeyring(primaryKey: [UInt8](repeating: 7, count: 32))
nonisolated(unsafe) var engine = makeEngine()
nonisolated(unsafe) var inputs = 0
nonisolated(unsafe) var now = 0

/// A member that knows two others and holds entries in network "ov", so that hostile claims
/// meet real state.
func makeEngine() -> GossipEngine {
    var configuration = GossipConfiguration(
        name: "n1", address: GossipAddress(ipv4: 0x0A00_0001, port: 7946), randomSeed: 1, startWallMicroseconds: 1_000_000)
    configuration.probeInterval = 1_000_000
    let engine = GossipEngine(configuration: configuration)
    engine.start(now: 0)
    let peers = [("n2", UInt32(0x0A00_0002)), ("n3", UInt32(0x0A00_0003))].map { name, ip in
        GossipCodec.encode(.member(MemberRecord(name: name, address: GossipAddress(ipv4: ip, port: 7946), incarnation: 1, status: .alive, from: name)))
    }
    engine.receive(GossipCodec.packet(peers), from: "n2", address: nil, overStream: false, now: 0)
    try? engine.joinNetwork("ov", now: 0)
    try? engine.put(EntryKey(network: "ov", table: "endpoints", key: "t1"), value: [10, 0, 0, 1], now: 0)
    _ = engine.takeOutput()
    return engine
}

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var sender: MemberName = "n2"
    if mode & 6 != 0 {
        guard let opened = try? GossipEnvelope.open(bytes, keyring: mode & 4 != 0 ? keyring : nil) else { return 0 }
        bytes = opened.packet
        sender = opened.sender
    }
    let overStream = mode & 1 != 0
    if let messages = try? GossipCodec.decode(bytes, fromStream: overStream) {
        let again = GossipCodec.packet(messages.map(GossipCodec.encode))
        precondition((try? GossipCodec.decode(again, fromStream: overStream)) == messages, "a packet that does not round-trip")
    }
    // Keep the engine's state bounded across millions of inputs.
    inputs += 1
    if inputs % 2_000 == 0 { engine = makeEngine() }
    now += 7_000_000
    engine.receive(bytes, from: sender, address: GossipAddress(ipv4: 0x0A00_0002, port: 7946), overStream: overStream, now: now)
    engine.advance(to: now)
    _ = engine.takeOutput()
    return 0
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("GossipFuzz_main")
func gossipFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
