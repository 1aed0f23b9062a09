import Foundation
import Glibc

/// What was made for one task's sandbox — its network namespace, its control groups, its
/// process — written to a file before each is made, so that whoever finds the file later (a
/// restarted daemon, `lab down` after a daemon was killed) removes exactly that and nothing
/// else.
public struct SandboxRecord: Codable, Equatable, Sendable {
    /// The task the sandbox is for.
    public var taskID: String
    /// The network namespace's name, once created.
    public var namespace: String?
    /// The control groups, once created.
    public var controlGroup: ControlGroup?
    /// The process, once started (pid and start time: a reused pid is never killed).
    public var process: ProcessIdentity?

    /// The record's file name inside a task's directory.
    public static let fileName = "record.json"

    /// A record of nothing made yet.
    public init(taskID: String) { self.taskID = taskID }

    /// True when something of the sandbox may still exist.
    public var holdsAnything: Bool { namespace != nil || controlGroup != nil || process != nil }

    /// The record in `directory`, if there is a readable one.
    public static func load(from directory: String) -> SandboxRecord? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(fileName)") else { return nil }
        return try? JSONDecoder().decode(SandboxRecord.self, from: data)
    }

    /// Writes the record into `directory` (atomically: a reader sees the old or the new one).
    public func save(in directory: String) throws {
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: "\(directory)/\(Self.fileName)"), options: .atomic)
    }

    /// Removes what the record says was made: the process (only if it is the same one), the
    /// control groups (and anything left in them), the namespace.
    public func removeSandbox() {
        if let process, process.isAlive { kill(process.pid, SIGKILL) }
        if let controlGroup { try? controlGroup.remove() }
        if let namespace {
            let named = NetworkNamespace(named: namespace)
            if named.exists { try? named.delete() }
        }
    }

    /// Removes every sandbox recorded in the task directories under `root` (at most three
    /// levels down: `NODE-data/tasks/ID`); returns the task IDs whose sandboxes were removed.
    @discardableResult
    public static func sweep(under root: String) -> [String] {
        var removed: [String] = []
        func visit(_ directory: String, depth: Int) {
            if let record = load(from: directory), record.holdsAnything {
                record.removeSandbox()
                removed.append(record.taskID)
                return
            }
            guard depth < 3, let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
            for entry in entries.sorted() {
                var isDirectory: ObjCBool = false
                let path = "\(directory)/\(entry)"
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { visit(path, depth: depth + 1) }
            }
        }
        visit(root, depth: 0)
        return removed
    }
}
