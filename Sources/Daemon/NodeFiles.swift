// What a node keeps in its data directory, so that a restarted daemon comes back with the
// same identity, role and certificates without joining again:
//
//   state.json        the swarm membership (node and cluster IDs, role, Raft ID, managers)
//   certificates/     node.key (0600), node.crt, ca.crt — DER
//   raft/             a manager's write-ahead log and snapshots
//
// Every file is replaced atomically (DurableFiles); keys are 0600 and the directories 0700.

import DurableFiles
import Foundation

/// A node's swarm membership as persisted in `state.json`.
public struct NodeMembershipState: Codable, Sendable, Equatable {
    /// The node's ID (its certificate's CN).
    public var nodeID: String
    /// The cluster's ID (its certificate's O).
    public var clusterID: String
    /// Whether the node holds a manager certificate.
    public var isManager: Bool
    /// Its Raft member ID, for managers.
    public var raftID: UInt64?
    /// host:port other nodes reach it at.
    public var advertiseAddress: String
    /// host:port its 2377 listener binds.
    public var listenAddress: String
    /// Managers' host:2377 it knows, for its agent's session.
    public var managers: [String]
    /// For managers: the Raft members and addresses it was told when it joined (a founder's
    /// address is in no membership change, so a restarted joiner needs it from here).
    public var raftPeers: [UInt64: String] = [:]
}

/// The files under one data directory.
public struct NodeFiles: Sendable {
    /// The data directory.
    public let directory: String

    /// Files under `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    var statePath: String { directory + "/state.json" }
    var certificateDirectory: String { directory + "/certificates" }
    var keyPath: String { certificateDirectory + "/node.key" }
    var certificatePath: String { certificateDirectory + "/node.crt" }
    var rootPath: String { certificateDirectory + "/ca.crt" }
    var gossipKeysPath: String { certificateDirectory + "/gossip.keys" }
    /// Where a manager's Raft data lives.
    public var raftDirectory: String { directory + "/raft" }
    /// The agent's tasks: one directory each (record, logs, /etc files).
    public var tasksDirectory: String { directory + "/tasks" }
    /// The routing mesh's sandbox record.
    public var ingressDirectory: String { directory + "/ingress" }
    /// The gossip member's own networks and entries (kept by the Gossip module itself).
    public var gossipDirectory: String { directory + "/gossip" }

    /// The persisted membership, or nil when the node never joined (or left).
    public func loadState() throws -> NodeMembershipState? {
        guard FileManager.default.fileExists(atPath: statePath) else { return nil }
        let bytes = try DurableFile.readAll(statePath)
        do {
            return try JSONDecoder().decode(NodeMembershipState.self, from: Data(bytes))
        } catch {
            throw DurableFileError("decode", statePath, errno: 0, detail: "\(error); move the data directory aside to start unjoined")
        }
    }

    /// Persists the membership.
    public func save(_ state: NodeMembershipState) throws {
        try DurableFile.makeDirectories(directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.writeAtomically(try encoder.encode(state), to: statePath, mode: 0o600)
    }

    /// The node's key, certificate and the root it trusts, DER.
    public func loadCredentials() throws -> (key: [UInt8], certificate: [UInt8], root: [UInt8]) {
        try finishReplacingCredentials()
        return (try DurableFile.readAll(keyPath), try DurableFile.readAll(certificatePath), try DurableFile.readAll(rootPath))
    }

    /// Replaces the key and certificate with a renewed pair, crash-safe: both are written
    /// beside the old ones first, then renamed over them, key first; a pair found half
    /// renamed at load is finished, one found half written is dropped.
    public func replaceCredentials(key: [UInt8], certificate: [UInt8]) throws {
        try DurableFile.writeAtomically(key, to: keyPath + ".next", mode: 0o600)
        try DurableFile.writeAtomically(certificate, to: certificatePath + ".next", mode: 0o644)
        try DurableFile.syncDirectory(certificateDirectory)
        try finishReplacingCredentials()
    }

    private func finishReplacingCredentials() throws {
        let manager = FileManager.default
        let (nextKey, nextCertificate) = (keyPath + ".next", certificatePath + ".next")
        switch (manager.fileExists(atPath: nextKey), manager.fileExists(atPath: nextCertificate)) {
        case (true, true):
            try DurableFile.move(nextKey, to: keyPath)
            try DurableFile.move(nextCertificate, to: certificatePath)
        case (false, true):
            try DurableFile.move(nextCertificate, to: certificatePath)
        case (true, false):
            try DurableFile.remove(nextKey)
        case (false, false):
            return
        }
        try DurableFile.syncDirectory(certificateDirectory)
    }

    /// Persists the key (0600), certificate and root; the key first, so a certificate on disk
    /// always has its key beside it.
    public func saveCredentials(key: [UInt8], certificate: [UInt8], root: [UInt8]) throws {
        try DurableFile.makeDirectories(certificateDirectory)
        try DurableFile.writeAtomically(key, to: keyPath, mode: 0o600)
        try DurableFile.writeAtomically(certificate, to: certificatePath, mode: 0o644)
        try DurableFile.writeAtomically(root, to: rootPath, mode: 0o644)
        try DurableFile.syncDirectory(certificateDirectory)
    }

    /// The gossip keys last handed out by the managers, oldest first (the last is primary), so
    /// a node restarted while every manager is down still joins its peers' gossip.
    public func loadGossipKeys() -> [[UInt8]] {
        guard let bytes = try? DurableFile.readAll(gossipKeysPath),
            let encoded = try? JSONDecoder().decode([Data].self, from: Data(bytes))
        else { return [] }
        return encoded.map { [UInt8]($0) }
    }

    /// Persists the gossip keys (0600).
    public func saveGossipKeys(_ keys: [[UInt8]]) throws {
        try DurableFile.makeDirectories(certificateDirectory)
        try DurableFile.writeAtomically(try JSONEncoder().encode(keys.map { Data($0) }), to: gossipKeysPath, mode: 0o600)
    }

    /// Forgets the membership and everything under it (`swarm leave`), the gossip member's
    /// own state included (a node that joins another swarm starts with no networks).
    public func removeAll() throws {
        for path in [statePath, keyPath, certificatePath, rootPath, gossipKeysPath] { try DurableFile.remove(path) }
        try removeDirectory(raftDirectory)
        try removeDirectory(gossipDirectory)
    }

    /// Removes the Raft member's log and snapshots (`swarm leave`, a demotion, a promotion that
    /// joins anew).
    public func removeRaftData() throws { try removeDirectory(raftDirectory) }

    private func removeDirectory(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw DurableFileError("remove", path, errno: 0, detail: "\(error)")
        }
    }
}
