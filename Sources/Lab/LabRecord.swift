import DurableFiles
import Foundation
import HostNet
import Wire

/// What a lab has created, written to disk *before* each object is created so that a lab torn
/// down after a crash (of the test, the CLI or the machine's user) still knows everything it
/// has to remove — and nothing that is not its own.
public struct LabRecord: Codable, Sendable, Equatable {
    /// Where records live; one JSON file per lab.
    public static let directory = "/run/shoal/labs"

    /// The lab's unique name (also in every namespace name it creates).
    public var name: String
    /// The process that brought the lab up, and that process's start time (to tell it apart
    /// from a later process that reuses the pid).
    public var owner: ProcessIdentity
    /// Kept after the owner exits (`shoal lab up`); otherwise the lab is stale once its owner
    /// is gone (a test that crashed) and ``Lab/removeStale()`` removes it.
    public var persistent: Bool
    /// The underlay subnet and the nodes on it.
    public var underlay: IPv4Prefix
    public var nodes: [NodeRecord]
    /// Every namespace this lab may have created, in creation order.
    public var namespaces: [String]
    /// Long-running processes the lab started (daemons in nodes), stopped at teardown.
    public var processes: [ProcessIdentity] = []
    /// Files the lab wrote (daemon configurations, control sockets), removed at teardown.
    public var files: [String] = []

    /// One node of a lab.
    public struct NodeRecord: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var underlayAddress: IPv4Address
    }

    /// The record's file.
    public var path: String { Self.path(forLab: name) }

    static func path(forLab name: String) -> String { "\(directory)/\(name).json" }

    /// Writes the record atomically.
    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.writeAtomically(try encoder.encode(self), to: path, mode: 0o644)
    }

    /// Reads one record.
    static func load(path: String) throws -> LabRecord {
        try JSONDecoder().decode(LabRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The directory for files of this lab.
    public var fileDirectory: String { "\(Self.directory)/\(name).d" }

    /// Every record on this host; unreadable files are skipped.
    public static func all() -> [LabRecord] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap {
            try? load(path: "\(directory)/\($0)")
        }
    }

    /// True while the process that made the lab is alive (same pid, same start time).
    public var ownerIsAlive: Bool { owner.isAlive }
}
