import Foundation

/// Identifies a process across pid reuse: its pid plus its start time in clock ticks since
/// boot (field 22 of /proc/PID/stat). Used to tell whether whoever created a namespace or a lab
/// is still alive, so that leftovers of a crashed run are found without touching anything else.
public struct ProcessIdentity: Hashable, Sendable, Codable {
    public let pid: Int32
    public let startTime: UInt64

    /// This process.
    public static var current: ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// True while a process with this pid *and* start time exists.
    public var isAlive: Bool { Self.startTime(of: pid) == startTime }

    /// The start time of `pid`, or nil when there is no such process.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may contain spaces) start at field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}

extension NetworkNamespace {
    /// The prefix of scratch namespaces named by ``scratchName(_:)``.
    public static let scratchPrefix = "shoal-tmp-"

    /// A unique name for a short-lived namespace (a test's) that embeds this process's
    /// identity, so that ``removeOrphanedScratch()`` can remove it if the process dies first.
    public static func scratchName(_ purpose: String) -> String {
        let me = ProcessIdentity.current
        return "\(scratchPrefix)\(me.pid)-\(me.startTime)-\(purpose)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Removes scratch namespaces whose creating process has died (a crashed test). Never
    /// touches a namespace without the scratch prefix. Returns the names removed.
    @discardableResult
    public static func removeOrphanedScratch() -> [String] {
        all().filter { $0.hasPrefix(scratchPrefix) }.compactMap { name in
            let fields = name.dropFirst(scratchPrefix.count).split(separator: "-")
            guard fields.count >= 2, let pid = Int32(fields[0]), let start = UInt64(fields[1]) else { return nil }
            guard !ProcessIdentity(pid: pid, startTime: start).isAlive else { return nil }
            return (try? NetworkNamespace(named: name).delete()) == nil ? nil : name
        }
    }
}
