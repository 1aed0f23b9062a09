// What a gossip member keeps across restarts: the networks it joined and the entries it owns.
// Everything else (members, other members' entries, clocks) is learnt again from the others;
// a member's own state exists nowhere else once every peer has declared it dead, so the server
// writes it down after each change and writes it back into the engine when it starts again.

import DurableFiles
import Foundation

/// A member's own state: its networks and its entries, values as raw bytes.
public struct GossipPersistentState: Codable, Equatable, Sendable {
    /// One entry this member owns.
    public struct Entry: Codable, Equatable, Sendable {
        /// Where it lives.
        public var network: String
        /// Its table in that network.
        public var table: String
        /// Its key in that table.
        public var key: String
        /// Its value, any bytes (JSON carries them as base64).
        public var value: Data

        /// An entry of `key` with `value`.
        public init(key: EntryKey, value: [UInt8]) {
            network = key.network
            table = key.table
            self.key = key.key
            self.value = Data(value)
        }

        /// The engine's key of this entry.
        public var entryKey: EntryKey { EntryKey(network: network, table: table, key: key) }
    }

    /// The networks joined, sorted.
    public var networks: [String]
    /// The entries owned, sorted by key.
    public var entries: [Entry]

    /// A state of `networks` and `entries`.
    public init(networks: [String] = [], entries: [Entry] = []) {
        self.networks = networks
        self.entries = entries
    }

    /// What `engine` owns now.
    public init(of engine: GossipEngine) {
        networks = engine.joinedNetworks.sorted()
        entries = engine.ownEntries.map { Entry(key: $0.key, value: $0.value) }
    }

    /// Joins the networks and writes the entries into `engine` (a restarted member: fresh
    /// clocks, so the entries supersede whatever a previous life left with the others).
    public func restore(into engine: GossipEngine, now: Int) throws(GossipTableError) {
        for network in networks where !engine.joinedNetworks.contains(network) { try engine.joinNetwork(network, now: now) }
        for entry in entries {
            if !engine.joinedNetworks.contains(entry.network) { try engine.joinNetwork(entry.network, now: now) }
            try engine.put(entry.entryKey, value: Array(entry.value), now: now)
        }
    }
}

/// The file that holds a member's ``GossipPersistentState``: `gossip-state.json` in a
/// directory, replaced atomically (temp file, fsync, rename, fsync of the directory).
public struct GossipStateFile: Sendable {
    /// The directory that holds the file (made when first written).
    public let directory: String

    /// The file in `directory`.
    public init(directory: String) { self.directory = directory }

    /// The file's path.
    public var path: String { "\(directory)/gossip-state.json" }

    /// The state written last, or nil when there is none yet.
    public func load() throws -> GossipPersistentState? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(GossipPersistentState.self, from: Data(DurableFile.readAll(path)))
        } catch {
            throw GossipStateFileError(path: path, reason: "\(error)")
        }
    }

    /// Replaces the file with `state`.
    public func save(_ state: GossipPersistentState) throws {
        try DurableFile.makeDirectories(directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.writeAtomically(try encoder.encode(state), to: path)
    }
}

/// A state file that exists but cannot be read as one.
public struct GossipStateFileError: Error, CustomStringConvertible, Sendable {
    /// The file.
    public let path: String
    /// Why it was refused.
    public let reason: String

    public var description: String { "cannot read the gossip state \(path): \(reason)" }
}
