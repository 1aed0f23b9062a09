import Foundation
import Gossip
import Logging
import NIOPosix
import Testing

/// A member's own networks and entries survive its restart, written by the server itself,
/// byte for byte (values need not be text).
@Suite struct PersistentStateTests {
    /// A server on loopback at a port of this process's own, keeping its state in `directory`.
    static func server(_ directory: String, group: MultiThreadedEventLoopGroup, port: UInt16) -> GossipServer {
        let configuration = GossipConfiguration(
            name: "m1", address: GossipAddress(ipv4: 0x7F00_0001, port: port), randomSeed: 7,
            startWallMicroseconds: UInt64(Date().timeIntervalSince1970 * 1_000_000))
        return GossipServer(configuration: configuration, keyring: nil, group: group, logger: Logger(label: "test"), stateDirectory: directory)
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "shoal-gossip-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    let binary: [UInt8] = [0xFF, 0x00, 0xFE, 0x80, 0x0A, 0xC3]

    @Test func networksAndBinaryEntriesComeBackAfterARestart() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let port = UInt16(40_000 + getpid() % 10_000)
        let binary = binary

        let first = Self.server(directory, group: group, port: port)
        try first.start(bindHost: "127.0.0.1")
        try first.run { engine, now in
            try engine.joinNetwork("ov", now: now)
            try engine.joinNetwork("empty", now: now)
            try engine.put(EntryKey(network: "ov", table: "endpoints", key: "t1"), value: binary, now: now)
            try engine.put(EntryKey(network: "ov", table: "endpoints", key: "t2"), value: [1], now: now)
            try engine.delete(EntryKey(network: "ov", table: "endpoints", key: "t2"), now: now)
        }.wait()
        try first.flushState().wait()
        try first.close().wait()

        let saved = try #require(try GossipStateFile(directory: directory).load())
        #expect(saved.networks == ["empty", "ov"])
        #expect(saved.entries.map(\.key) == ["t1"])

        let second = Self.server(directory, group: group, port: port)
        try second.start(bindHost: "127.0.0.1")
        defer { _ = try? second.close().wait() }
        let (networks, entries) = try second.run { engine, _ in (engine.joinedNetworks.sorted(), engine.ownEntries) }.wait()
        #expect(networks == ["empty", "ov"])
        #expect(entries.count == 1)
        #expect(entries.first?.key == EntryKey(network: "ov", table: "endpoints", key: "t1"))
        #expect(entries.first?.value == binary)
    }

    @Test func theHostChoosesWhatToRestoreAndAnUnreadableFileIsRefused() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let port = UInt16(30_000 + getpid() % 10_000)
        try GossipStateFile(directory: directory).save(
            GossipPersistentState(networks: ["ov"], entries: [.init(key: EntryKey(network: "ov", table: "endpoints", key: "old"), value: binary)]))

        let server = Self.server(directory, group: group, port: port)
        try server.start(bindHost: "127.0.0.1") { GossipPersistentState(networks: $0.networks) }
        let (networks, entries) = try server.run { engine, _ in (engine.joinedNetworks, engine.ownEntries.count) }.wait()
        #expect(networks == ["ov"])
        #expect(entries == 0)
        try server.close().wait()

        try Data("{not json".utf8).write(to: URL(fileURLWithPath: GossipStateFile(directory: directory).path))
        let refused = Self.server(directory, group: group, port: port)
        #expect(throws: GossipStateFileError.self) { try refused.start(bindHost: "127.0.0.1") }
    }
}
